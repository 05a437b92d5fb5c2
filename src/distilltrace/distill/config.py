"""`TrainConfig`: every training setting and its default, in one place.

The trainers (`train_seq_kd`, `train_lm`, `train_logit_kd`) and the loop (`run_training`)
read their settings from one `TrainConfig` (scikit-learn's parameters-as-object, nanoGPT's
one config). The trainers also accept the settings as keyword arguments
(``train_seq_kd(st, data, out, epochs=3, lr=2e-3)``), applied on top of ``cfg``.

Adding a setting: add a field here (with `setting(...)` when it changes the trained
weights, so that it enters the run's identity) and read ``cfg.<name>`` where it applies.
A setting declared with the default ``identity="changed"`` enters the identity only when
set to a non-default value, so runs made before it existed keep their identity (their
checkpoints and finished results stay valid).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from distilltrace.errors import InputError

PRECISIONS = ("float32", "bf16-mixed", "auto")


def setting(default: Any, *, identity: str | None = "changed", key: str | None = None) -> Any:
    """A TrainConfig field. identity: how it enters the run identity (the fingerprint a
    checkpoint or finished run is matched against): "always", "changed" (only when not the
    default), "logit-kd" (for logit-KD runs), or None (never: it does not change the
    weights). key: its name in the identity, if not the field name."""
    return field(default=default, metadata={"identity": identity, "key": key})


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (see docs/distill.md, "What the training loop guarantees")."""

    # how long: `steps` if given, else `epochs` passes over the examples
    epochs: float = setting(1.0, identity=None)  # enters the identity as the step count
    steps: int | None = setting(None, identity=None)
    # optimisation (AdamW, linear warm-up then cosine decay to 10%, clipping)
    lr: float = setting(1e-3, identity="always")
    batch_size: int = setting(8, identity="always")
    seed: int = setting(0, identity="always")
    max_len: int = setting(256, identity="always")
    warmup: float = setting(0.05, identity="always")  # fraction of the steps
    weight_decay: float = setting(0.0, identity="always")
    grad_clip: float = setting(1.0)  # max gradient norm
    # rows per forward/backward pass (gradients accumulated up to batch_size); None: the
    # whole batch when it fits in memory, else the largest halving of it that does. Same
    # update either way (up to floating-point rounding), so not part of the run identity.
    micro_batch_size: int | None = setting(None, identity=None)
    adam_betas: tuple[float, float] = setting((0.9, 0.95))
    # data
    max_examples: int | None = setting(None, identity=None)  # seq-KD / LM: first N only
    # logit-KD
    divergence: str = setting("fkl", identity="logit-kd")  # fkl | rkl | jsd
    beta: float = setting(0.5, identity="logit-kd")  # JSD mixing weight
    kd_temperature: float = setting(1.0, identity="logit-kd", key="temperature")
    # numerics: "float32", or "bf16-mixed" (the forward pass and loss under bfloat16
    # autocast; weights, gradients and AdamW stay float32): 1.9-2.2x faster on a CPU with
    # native bf16 (docs/benchmarks.md, "Compute precision"), but 12x slower than float32
    # where bfloat16 is emulated (an AVX2-only CPU, session 32). "auto" is bf16-mixed where the
    # training device runs bfloat16 natively, else float32 (`for_device`; the run's identity
    # and its recorded config hold the concrete one). Part of the identity when changed.
    precision: str = setting("float32")
    # running
    resume: bool = setting(True, identity=None)
    device: str = setting("auto", identity=None)
    progress: bool = setting(True, identity=None)
    checkpoint_every: int | None = setting(None, identity=None)  # steps; default: by time
    checkpoint_every_s: float = setting(120.0, identity=None)
    stop_after: int | None = setting(None, identity=None)  # end this call after N steps

    @classmethod
    def resolve(cls, cfg: TrainConfig | None = None, settings: dict[str, Any] | None = None):
        """``cfg`` (default: the defaults) with keyword settings applied on top."""
        base = cfg if cfg is not None else cls()
        if not isinstance(base, TrainConfig):
            raise TypeError(f"cfg must be a TrainConfig, got {type(base).__name__}")
        if not settings:
            return base
        names = {f.name for f in fields(cls)}
        bad = sorted(set(settings) - names)
        if bad:
            raise TypeError(f"unknown training setting(s) {bad}; settings: {sorted(names)}")
        return replace(base, **settings)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def for_device(self, device: Any) -> TrainConfig:
        """This config with precision "auto" made concrete for `device`: "bf16-mixed" where
        it multiplies bfloat16 natively (models.precision.native_bf16), else "float32"."""
        if self.precision != "auto":
            return self
        from distilltrace.models.precision import native_bf16

        return replace(self, precision="bf16-mixed" if native_bf16(str(device)) else "float32")

    def run_identity(self, method: str) -> dict[str, Any]:
        """The settings that identify a training run of `method` (see `setting`)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            mode, value = f.metadata.get("identity"), getattr(self, f.name)
            if (
                mode == "always"
                or (mode == "changed" and value != f.default)
                or (mode == "logit-kd" and method.startswith("logit-kd"))
            ):
                out[f.metadata.get("key") or f.name] = (
                    list(value) if isinstance(value, tuple) else value
                )
        return out

    def check(self) -> None:
        """Raise InputError unless the settings every method reads are valid."""
        if self.precision not in PRECISIONS:
            raise InputError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )

    def check_logit_kd(self) -> None:
        """Raise InputError unless the logit-KD settings are valid."""
        from distilltrace.distill.divergence import DIVERGENCES

        if self.divergence not in DIVERGENCES:
            raise InputError(
                f"divergence must be one of {', '.join(DIVERGENCES)}, got {self.divergence!r}"
            )
        if self.divergence == "jsd" and not 0.0 < self.beta < 1.0:
            raise InputError(f"jsd needs 0 < beta < 1, got {self.beta}")
        if self.kd_temperature <= 0:
            raise InputError(f"temperature must be > 0, got {self.kd_temperature}")
