"""pytest_lkft: Linux kernel functional testing as a pytest plugin."""

from __future__ import annotations

from pytest_lkft.parsers.model import Case, Counts, Metric, Result

__all__ = ["Case", "Counts", "Metric", "Result"]
__version__ = "0.1.0"
