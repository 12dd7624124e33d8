"""alert_pipeline: exact alerts about bursts of fatal errors in mobile-SDK logs.

The Python API (docs/python-api.md)::

    from alert_pipeline import load_logs, detect
    records = load_logs("data/sample_logs.csv")
    incidents = detect(records)

Imported on first use, so that the command line starts without pandas and Dagster.
"""

from typing import TYPE_CHECKING

__all__ = ["BUILTIN_RULES", "Logs", "SlidingWindowRule", "detect", "load_logs", "load_rules"]

_HOMES = {
    "load_logs": "alert_pipeline.api",
    "detect": "alert_pipeline.api",
    "Logs": "alert_pipeline.api",
    "SlidingWindowRule": "alert_pipeline.rules",
    "BUILTIN_RULES": "alert_pipeline.registry",
    "load_rules": "alert_pipeline.registry",
}

if TYPE_CHECKING:
    from alert_pipeline.api import Logs, detect, load_logs
    from alert_pipeline.registry import BUILTIN_RULES, load_rules
    from alert_pipeline.rules import SlidingWindowRule


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'alert_pipeline' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name]), name)
