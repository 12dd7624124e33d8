"""Configuration in one place, read from environment variables with defaults that work on a
laptop: the home folder, the first partition day, and the timing of the sensor and schedule."""

import datetime as dt
import os
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from dagster import (
    ConfigurableIOManagerFactory,
    ConfigurableResource,
    InitResourceContext,
    InputContext,
    IOManager,
    OutputContext,
    UPathIOManager,
)
from upath import UPath

from alert_pipeline.atomic import atomic_file
from alert_pipeline.batch_typing import TimeRange
from alert_pipeline.errors import PipelineError
from alert_pipeline.executors import distributed
from alert_pipeline.home import Home
from alert_pipeline.objects import synced_file
from alert_pipeline.rules import day_start_us
from alert_pipeline.runs import holding_run_lock

T = TypeVar("T")


def _setting(name: str, default: str, parse: Callable[[str], T], expected: str) -> T:
    text = os.environ.get(name, default)
    try:
        return parse(text)
    except ValueError:
        raise PipelineError(f"{name}={text!r} is not {expected}") from None


def _positive(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(text)
    return value


def _day(text: str) -> str:
    return dt.date.fromisoformat(text).isoformat()


DEFAULT_HOME = os.environ.get("ALERT_PIPELINE_HOME", "data")
START_DATE = _setting("ALERT_PIPELINE_START_DATE", "2021-01-01", _day, "a date (YYYY-MM-DD)")
SETTLE_SECONDS = _setting(
    "ALERT_PIPELINE_SETTLE_SECONDS", "10", _positive, "a number of seconds ≥ 0"
)
MAX_QUARANTINED_SHARE = _setting(
    "ALERT_PIPELINE_MAX_QUARANTINED_SHARE", "0.01", _positive, "a share ≥ 0 (0.01 = 1 %)"
)
SENSOR_INTERVAL_SECONDS = _setting(
    "ALERT_PIPELINE_SENSOR_INTERVAL_SECONDS", "30", int, "a whole number of seconds"
)
SCHEDULE_CRON = os.environ.get("ALERT_PIPELINE_SCHEDULE_CRON", "30 0 * * *")


class AlertHome(ConfigurableResource):
    """The home folder (landing, warehouse, quarantine, reports) and the first partition day.

    `settle_seconds`: a landing file modified more recently than this is left for later by an
    `ingest_job` launched without file names (from the UI), as it may still be being written.
    `max_quarantined_share`: above this share of a day's records quarantined, the quality check
    on `validated_logs` warns.
    While a run uses it, the run holds its lock in the home (see runs.py), so that a run whose
    process died is told apart from one still working.
    """

    path: str = DEFAULT_HOME
    start_date: str = START_DATE
    settle_seconds: float = SETTLE_SECONDS
    max_quarantined_share: float = MAX_QUARANTINED_SHARE

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator["AlertHome"]:
        if context.run is None or distributed():  # steps in several processes: see executors.py
            yield self
            return
        with holding_run_lock(self.home(), context.run.run_id):
            yield self

    def home(self) -> Home:
        return Home(self.path).create()

    def time_range(self) -> TimeRange:
        """Record times that belong to a partition: from the start date through today (UTC)."""
        tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        return TimeRange(
            day_start_us(dt.date.fromisoformat(self.start_date)),
            day_start_us(tomorrow),
        )


class HomeIOManager(ConfigurableIOManagerFactory):
    """Where step outputs go: only the ingest fan-out's file names (the assets write their own
    storage). Kept in the home, under `dagster/storage` as the CLI's instance keeps them, because
    every worker has the home, while each machine may have its own DAGSTER_HOME. In an object
    store, each output is uploaded when written and fetched before it is read."""

    path: str = DEFAULT_HOME

    def create_io_manager(self, context: InitResourceContext) -> IOManager:
        storage = Home(self.path).dagster / "storage"  # made when first written
        return _HomePickles(UPath(storage))


class _HomePickles(UPathIOManager):
    """Outputs pickled by the home's one atomic writer (uploaded, in an object store)."""

    def dump_to_path(self, context: OutputContext, obj: object, path: UPath) -> None:
        with atomic_file(Path(path)) as handle:
            pickle.dump(obj, handle)

    def load_from_path(self, context: InputContext, path: UPath) -> object:
        return pickle.loads(synced_file(Path(path)).read_bytes())
