"""Traffic forensics: find distillation campaigns in API request logs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distilltrace.traffic.scanner import ScanResult


def scan(source: Any, **kwargs: Any) -> ScanResult:
    """Scan request logs for distillation campaigns (see `distilltrace.traffic.scan.scan`)."""
    from distilltrace.traffic.scanner import scan as _scan

    return _scan(source, **kwargs)


__all__ = ["scan"]
