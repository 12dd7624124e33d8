"""A custom rule as users write one, in a module of their own that imports only the public API
(rules.yaml names it as `class: alert_pipeline_tests.custom_rules:CrashesOnOneOs`)."""

from dataclasses import dataclass

import pandas as pd

from alert_pipeline import SlidingWindowRule


@dataclass(frozen=True)
class CrashesOnOneOs(SlidingWindowRule):
    """Fatal errors, counted only on one operating system."""

    os_name: str = "android"
    reads = ("os",)

    def select(self, records: pd.DataFrame) -> pd.Series:
        return super().select(records) & (records["os"] == self.os_name).to_numpy()
