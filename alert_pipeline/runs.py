"""Runs in the Dagster instance: who launched them, whether a started one still has a process, and
what earlier attempts on the same inputs did.

Every run that works on a home holds a lock on `<home>/.runs/<run id>.lock` for as long as its
process lives (the `AlertHome` resource takes it; runs execute in one process). A run still marked
STARTED whose lock is free lost its process — SIGKILL, OOM, a reboot, a stopped container — and
would stay STARTED for ever: `fail_orphaned_runs` marks it failed, so that it blocks nothing and
what it left undone is seen as stale and done again. A run that ends writes FINISHED into its lock
before releasing it: between that and Dagster recording its end, the run is still STARTED with
its lock free, and it must not be taken for a dead one.
"""

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from alert_pipeline.executors import distributed
from alert_pipeline.home import Home

LAUNCHED_BY = "alert_pipeline/launched_by"  # cli | sensor | schedule
INPUTS = "alert_pipeline/inputs"  # digest of what the run works on (see sensors.py)
# A run tagged by us that has been STARTED this long without ever taking its lock died before
# its first step (killed while starting up).
NO_LOCK_GRACE_SECONDS = 120
FINISHED = "finished\n"
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
FAILED = [DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]


def _lock_path(home: Home, run_id: str):
    return home.root / ".runs" / f"{run_id}.lock"


@contextmanager
def holding_run_lock(home: Home, run_id: str) -> Iterator[None]:
    """Hold the run's lock while the block runs: the run's process is alive."""
    path = _lock_path(home, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            handle.write(FINISHED)
            handle.flush()


def _lock_is_free(home: Home, run_id: str) -> bool | None:
    """True if no process holds the run's lock and the run did not finish; False if one holds
    it or the run finished (Dagster records its end next); None if it was never taken."""
    try:
        descriptor = os.open(_lock_path(home, run_id), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return os.read(descriptor, len(FINISHED)).decode() != FINISHED
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)


def fail_orphaned_runs(instance: DagsterInstance, home: Home) -> list[str]:
    """Mark failed the STARTED runs of this home whose process is gone; returns their ids.
    Lock files of finished runs are removed. Not with a distributed executor, whose runs hold no
    lock: Dagster's run monitoring tells their dead run workers (deploy/dagster.cluster.yaml)."""
    if distributed():
        return []
    failed = []
    now = dt.datetime.now(dt.UTC).timestamp()
    for record in instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        run = record.dagster_run
        free = _lock_is_free(home, run.run_id)
        never_locked = (
            free is None
            and LAUNCHED_BY in run.tags
            and now - (record.start_time or now) > NO_LOCK_GRACE_SECONDS
        )
        if free or never_locked:
            instance.report_run_failed(
                run,
                message="Marked failed by alert_pipeline: the process running it is gone "
                "(killed, out of memory, or the machine or container stopped). Whatever it "
                "left undone is done again by the next run, sensor tick or schedule.",
            )
            failed.append(run.run_id)
    locks = [path.stem for path in (home.root / ".runs").glob("*.lock")]
    if locks:
        for record in instance.get_run_records(RunsFilter(run_ids=locks)):
            if record.dagster_run.is_finished:
                _lock_path(home, record.dagster_run.run_id).unlink(missing_ok=True)
    return failed


@dataclass(frozen=True)
class Attempts:
    """Runs that failed on the same inputs: how many, the latest, and when it ended."""

    failed: int
    last_run_id: str
    last_end: float


@dataclass(frozen=True)
class RunHistory:
    """What the sensor and the schedule need to know of the runs they launched before."""

    busy: dict[str, str] = field(default_factory=dict)  # job name → an unfinished run's id
    attempts: dict[str, Attempts] = field(default_factory=dict)  # inputs digest → failures


def run_history(instance: DagsterInstance, since: dt.datetime) -> RunHistory:
    """Unfinished runs launched by the sensor or the schedule, and failures since `since`."""
    busy = {}
    for run in instance.get_runs(RunsFilter(statuses=UNFINISHED)):
        if run.tags.get(LAUNCHED_BY) in ("sensor", "schedule"):
            busy.setdefault(run.job_name, run.run_id)
    attempts: dict[str, Attempts] = {}
    for record in instance.get_run_records(RunsFilter(statuses=FAILED, updated_after=since)):
        inputs = record.dagster_run.tags.get(INPUTS)
        if inputs is None:
            continue
        end = record.end_time or record.update_timestamp.timestamp()
        before = attempts.get(inputs)
        if before is None or end > before.last_end:
            count = (before.failed if before else 0) + 1
            attempts[inputs] = Attempts(count, record.dagster_run.run_id, end)
        else:
            attempts[inputs] = Attempts(before.failed + 1, before.last_run_id, before.last_end)
    return RunHistory(busy, attempts)
