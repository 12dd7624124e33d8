"""Configuration in one place, read from environment variables with defaults that work on a
laptop: the home folder, the first partition day, and the timing of the sensor and schedule."""

import datetime as dt
import os
from pathlib import Path

from dagster import ConfigurableResource

from alert_pipeline.loader import TimeRange
from alert_pipeline.rules import day_start_us
from alert_pipeline.warehouse import Home

DEFAULT_HOME = os.environ.get("ALERT_PIPELINE_HOME", "data")
START_DATE = os.environ.get("ALERT_PIPELINE_START_DATE", "2021-01-01")
SETTLE_SECONDS = float(os.environ.get("ALERT_PIPELINE_SETTLE_SECONDS", "10"))
MAX_QUARANTINED_SHARE = float(os.environ.get("ALERT_PIPELINE_MAX_QUARANTINED_SHARE", "0.01"))
SENSOR_INTERVAL_SECONDS = int(os.environ.get("ALERT_PIPELINE_SENSOR_INTERVAL_SECONDS", "30"))
SCHEDULE_CRON = os.environ.get("ALERT_PIPELINE_SCHEDULE_CRON", "30 0 * * *")


class AlertHome(ConfigurableResource):
    """The home folder (landing, warehouse, quarantine, reports) and the first partition day.

    `settle_seconds`: a landing file modified more recently than this is left for later by runs
    that ingest on their own (UI materializations, the schedule), as it may still be being written.
    `max_quarantined_share`: above this share of a day's records quarantined, the quality check
    on `validated_logs` warns.
    """

    path: str = DEFAULT_HOME
    start_date: str = START_DATE
    settle_seconds: float = SETTLE_SECONDS
    max_quarantined_share: float = MAX_QUARANTINED_SHARE

    def home(self) -> Home:
        return Home(Path(self.path)).create()

    def time_range(self) -> TimeRange:
        """Record times that belong to a partition: from the start date through today (UTC)."""
        tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        return TimeRange(
            day_start_us(dt.date.fromisoformat(self.start_date)),
            day_start_us(tomorrow),
        )
