"""Configuration in one place: where the home folder is and which days are partitions, read from
environment variables with defaults that work on a laptop."""

import datetime as dt
import os
from pathlib import Path

from dagster import ConfigurableResource

from alert_pipeline.loader import TimeRange
from alert_pipeline.rules import day_start_us
from alert_pipeline.warehouse import Home

DEFAULT_HOME = os.environ.get("ALERT_PIPELINE_HOME", "data")
START_DATE = os.environ.get("ALERT_PIPELINE_START_DATE", "2021-01-01")


class AlertHome(ConfigurableResource):
    """The home folder (landing, warehouse, quarantine, reports) and the first partition day."""

    path: str = DEFAULT_HOME
    start_date: str = START_DATE

    def home(self) -> Home:
        return Home(Path(self.path)).create()

    def time_range(self) -> TimeRange:
        """Record times that belong to a partition: from the start date through today (UTC)."""
        tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        return TimeRange(
            day_start_us(dt.date.fromisoformat(self.start_date)),
            day_start_us(tomorrow),
        )
