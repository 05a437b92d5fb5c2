"""The built-in provenance tests, registered exactly as a plugin registers its own (see
docs/extending.md). Their order here is the order they run and are reported in."""

from __future__ import annotations

from distilltrace.provenance.agreement import GreedyAgreement
from distilltrace.provenance.lexical import LexicalFingerprint
from distilltrace.provenance.likelihood import Likelihood, ReverseLikelihood
from distilltrace.provenance.registry import register

register(GreedyAgreement())
register(Likelihood())
register(ReverseLikelihood())
register(LexicalFingerprint())
