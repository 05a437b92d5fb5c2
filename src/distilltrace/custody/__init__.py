"""Chain of custody: one evidence bundle per campaign and suspect, checkable by a third
party (`build_bundle`, `verify_bundle`; see docs/custody.md)."""

from distilltrace.custody.build import BuildResult, CustodyConfig, CustodyInputs, build_bundle
from distilltrace.custody.bundle import CustodyError, VerifyError
from distilltrace.custody.verify import VerifyResult, verify_bundle

__all__ = [
    "BuildResult",
    "CustodyConfig",
    "CustodyError",
    "CustodyInputs",
    "VerifyError",
    "VerifyResult",
    "build_bundle",
    "verify_bundle",
]
