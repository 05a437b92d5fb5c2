"""Token-level divergences between a teacher's and a student's next-token distributions.

All take log-probabilities over the same support (last dimension) and return one value
per position (nats): forward KL(p_teacher || q_student), reverse KL(q || p), and the
generalised Jensen-Shannon divergence of Agarwal et al. (2024, GKD) with mixing weight
beta: JSD_beta = beta * KL(p || m) + (1 - beta) * KL(q || m), m = beta * p + (1 - beta) * q.
"""

from __future__ import annotations

import math

import torch

from distilltrace.errors import InputError

DIVERGENCES = ("fkl", "rkl", "jsd")


def forward_kl(t_logp: torch.Tensor, s_logp: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per position."""
    p = t_logp.exp()
    return (p * (t_logp - s_logp)).sum(-1)


def reverse_kl(t_logp: torch.Tensor, s_logp: torch.Tensor) -> torch.Tensor:
    """KL(student || teacher) per position."""
    q = s_logp.exp()
    return (q * (s_logp - t_logp)).sum(-1)


def generalized_jsd(t_logp: torch.Tensor, s_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """beta * KL(p || m) + (1 - beta) * KL(q || m) with m = beta p + (1 - beta) q."""
    if not 0.0 < beta < 1.0:
        raise InputError(f"jsd needs 0 < beta < 1, got {beta}")
    m = torch.logsumexp(
        torch.stack([t_logp + math.log(beta), s_logp + math.log(1.0 - beta)]), dim=0
    )
    return beta * forward_kl(t_logp, m) + (1.0 - beta) * forward_kl(s_logp, m)


def divergence(
    name: str, t_logp: torch.Tensor, s_logp: torch.Tensor, beta: float = 0.5
) -> torch.Tensor:
    """The named divergence ("fkl", "rkl", "jsd") per position."""
    if name == "fkl":
        return forward_kl(t_logp, s_logp)
    if name == "rkl":
        return reverse_kl(t_logp, s_logp)
    if name == "jsd":
        return generalized_jsd(t_logp, s_logp, beta)
    raise InputError(f"divergence must be one of {', '.join(DIVERGENCES)}, got {name!r}")
