"""Input checks of a provenance test, before any query: references and their controls
(each model once, no control that is the suspect or its reference, enough controls), the
config's values, and the output folder."""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from distilltrace.errors import InputError
from distilltrace.models.base import Model
from distilltrace.models.precision import check_dtype
from distilltrace.provenance.config import MIN_CONTROLS, WHY_CONTROLS, ProvenanceConfig


class RepeatedModelWarning(UserWarning):
    """A reference or control given more than once (the same identity hash): counted once."""


def check_request(references: Sequence[Model], cfg: ProvenanceConfig) -> None:
    """The checks that need no model: at least one reference, alpha in (0, 1), and for the
    harvest_membership test readable served exchanges and which reference served them."""
    if not references:
        raise InputError("give at least one reference model")
    if not 0 < cfg.alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {cfg.alpha}")
    from distilltrace.provenance.membership import NAME as MEMBERSHIP

    if MEMBERSHIP in cfg.tests:
        from distilltrace.provenance.served import check_served

        check_served(cfg)
        if len(references) > 1 and not cfg.served_by:
            raise InputError(
                f"the {MEMBERSHIP} test runs against the reference that served the answers: "
                "with several references, name it (served_by / --served-by)"
            )


def check_config(cfg: ProvenanceConfig) -> None:
    """The greedy test's unit and margin, the reverse test's margin, the control rule and
    the compute precision."""
    if cfg.agreement_unit not in ("char", "word"):
        raise InputError(f"agreement_unit must be 'char' or 'word', got {cfg.agreement_unit!r}")
    if cfg.reverse_margin < 0:
        raise InputError(
            f"reverse_margin must be >= 0 (nats per character), got {cfg.reverse_margin}"
        )
    if cfg.control_rule not in ("all", "matched"):
        raise InputError(f"control_rule must be 'all' or 'matched', got {cfg.control_rule!r}")
    if cfg.control_rule == "matched" and not (cfg.capability_check and cfg.n_format_pilot > 0):
        raise InputError("control_rule 'matched' needs the capability check (capability_check on)")
    if not 0 <= cfg.agreement_margin < 1:
        raise InputError(f"agreement_margin must be in [0, 1), got {cfg.agreement_margin}")
    check_dtype(cfg.dtype)


def _control_lists(
    references: Sequence[Model],
    controls: Sequence[Model] | Mapping[str, Sequence[Model]],
    name_of: Callable[[Model], str] | None,
) -> list[list[Model]]:
    """One control list per reference, from any of the accepted forms of `controls`."""
    if isinstance(controls, Mapping):
        ref_names = [(name_of(r) if name_of else r.info.name) for r in references]
        missing = [n for n in ref_names if n not in controls]
        if missing:
            raise InputError(f"no controls given for references {missing}")
        return [list(controls[n]) for n in ref_names]
    if controls and isinstance(controls[0], list | tuple):
        if len(controls) != len(references):
            raise InputError("give one control list per reference")
        return [list(c) for c in controls]
    return [list(controls) for _ in references]


def _once(models: Sequence[Model], what: str, said: dict[str, None]) -> list[Model]:
    """`models` with repeats (the same identity hash) counted once; repeats noted in `said`."""
    out: dict[str, Model] = {}
    for m in models:
        first = out.setdefault(m.info.identity, m)
        if first is not m:
            again = "" if first.info.name == m.info.name else f" (as {m.info.name!r})"
            said[f"{what} {first.info.name!r} given more than once{again}: counted once"] = None
    return list(out.values())


def checked_inputs(
    suspect: Model,
    references: Sequence[Model],
    controls: Sequence[Model] | Mapping[str, Sequence[Model]],
    name_of: Callable[[Model], str] | None,
    stacklevel: int = 2,
) -> tuple[list[Model], list[list[Model]]]:
    """References and their control lists with each model once (by identity hash: a
    repeated reference pools its controls; one object per identity across the lists).
    Repeats are a RepeatedModelWarning (`stacklevel` as for warnings.warn, from the caller)."""
    said: dict[str, None] = {}
    by_ref: dict[str, tuple[Model, list[Model]]] = {}
    for r, cl in zip(references, _control_lists(references, controls, name_of), strict=True):
        if r.info.identity in by_ref:
            said[f"reference {r.info.name!r} given more than once: counted once"] = None
        by_ref.setdefault(r.info.identity, (r, []))[1].extend(cl)
    canon = {k: r for k, (r, _) in by_ref.items()}
    refs = [r for r, _ in by_ref.values()]
    lists = [
        [canon.setdefault(c.info.identity, c) for c in _once(cl, "control", said)]
        for _, cl in by_ref.values()
    ]
    for msg in said:
        warnings.warn(msg, RepeatedModelWarning, stacklevel=stacklevel + 1)
    for r, cl in zip(refs, lists, strict=True):
        check_controls(suspect, r, cl)
    return refs, lists


def check_controls(suspect: Model, ref: Model, ctrls: Sequence[Model]) -> None:
    """No control is the suspect or the reference; at least MIN_CONTROLS of them."""
    for c in ctrls:
        for what, m in (("the suspect", suspect), ("the reference", ref)):
            if c.info.identity == m.info.identity:
                raise InputError(
                    f"control {c.info.name!r} is {what} itself ({m.info.name!r}, same identity "
                    "hash): a control must be another model"
                )
    if len(ctrls) < MIN_CONTROLS:
        raise InputError(
            f"reference {ref.info.name}: {len(ctrls)} control(s) given (repeats counted once), "
            f"at least {MIN_CONTROLS} are needed: {WHY_CONTROLS}"
        )


def check_out_dir(out: str | Path, option: str = "--out") -> Path:
    """Raise InputError (one line) unless `out` is a folder, or can be made one, that a file
    can be written in. Run before any model is loaded; leaves nothing behind."""
    p = Path(out).expanduser()
    blocker = next((q for q in (p, *p.parents) if q.exists() and not q.is_dir()), None)
    if blocker == p:
        raise InputError(f"{option} {p} is a file, not a folder")
    if blocker is not None:
        raise InputError(f"{option} {p}: {blocker} is a file, so no folder can be made in it")
    made = [q for q in (p, *p.parents) if not q.exists()]  # deepest first
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".distilltrace-write-check-"):
            pass
    except OSError as e:
        raise InputError(f"{option} {p}: cannot write outputs there ({e.strerror or e})") from None
    finally:
        for q in made:
            with contextlib.suppress(OSError):
                q.rmdir()
    return p
