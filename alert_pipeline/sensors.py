"""The landing-folder sensor and the daily schedule.

The sensor works in two steps, each a cheap look at the disk:
1. landing files whose version (size, mtime, ctime) stayed the same since the previous tick are
   settled; they are ingested by an `ingest_job` run whose run key carries their versions;
2. ledger entries written since (by that run, or by any other ingestion) name the days each file
   version changed; the sensor requests `daily_alerts_job` for those days and their neighbours
   with data, one run per range of consecutive days.
The content hash lives in the ledger: the ingestion computes it, so a tick never reads file bodies.
"""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)

from alert_pipeline.jobs import daily_alerts_job, ingest_job
from alert_pipeline.partitions import affected_partitions, daily_partitions, day_ranges, range_tags
from alert_pipeline.resources import SCHEDULE_CRON, SENSOR_INTERVAL_SECONDS, AlertHome
from alert_pipeline.warehouse import (
    UNDATED,
    days_with_data,
    landing_files,
    landing_name,
    read_ledger,
)

MAX_FILES_PER_TICK = 500
MAX_RANGES_PER_TICK = 50


@dataclass
class LandingCursor:
    """What the sensor has seen: landing file versions waiting to settle, versions sent to
    ingestion, and ledger versions whose partitions were requested."""

    waiting: dict[str, list[int]] = field(default_factory=dict)
    sent: dict[str, list[int]] = field(default_factory=dict)
    handled: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, text: str | None) -> "LandingCursor | None":
        return cls(**json.loads(text)) if text else None

    def dump(self) -> str:
        return json.dumps(
            {"waiting": self.waiting, "sent": self.sent, "handled": self.handled}, sort_keys=True
        )


@dataclass(frozen=True)
class TickPlan:
    ingest: list[str]
    ranges: list[tuple[str, str]]
    versions_key: str
    cursor: LandingCursor


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def ledger_version(entry: dict) -> str:
    """Changes whenever an ingestion changed what a file contributes."""
    return _digest([entry.get(k) for k in ("sha256", "ingested_at", "duplicate_of", "rejected")])


def plan_tick(
    files: dict[str, list[int]],
    ledger: dict[str, dict],
    cursor: LandingCursor | None,
    with_data: set[str],
    valid_days: set[str] | None = None,
) -> TickPlan:
    """Decide one tick from the landing versions, the ledger and the previous cursor (pure).

    On the first tick (no cursor) the ledger as it is counts as handled: days already ingested
    were materialized by whoever ingested them; the landing files are still looked at, and
    those already in the ledger are recognised there as unchanged.
    """
    first_tick = cursor is None
    cursor = cursor or LandingCursor()
    new = LandingCursor(sent={n: v for n, v in cursor.sent.items() if n in files})
    ready = []
    for name, version in sorted(files.items()):
        if cursor.sent.get(name) == version:
            continue
        if cursor.waiting.get(name) == version and len(ready) < MAX_FILES_PER_TICK:
            ready.append(name)
            new.sent[name] = version
        else:
            new.waiting[name] = version
    versions = {name: ledger_version(entry) for name, entry in ledger.items()}
    if first_tick:
        new.handled = versions
        return TickPlan(ready, [], "", new)
    new.handled = {n: v for n, v in cursor.handled.items() if n in versions}
    changed: set[str] = set()
    taken = []
    for name in sorted(versions):
        if new.handled.get(name) == versions[name]:
            continue
        days = set(ledger[name].get("changed_days", [])) - {UNDATED}
        if valid_days is not None:
            days &= valid_days
        candidate = changed | days
        ranges = day_ranges(affected_partitions(candidate, with_data))
        if taken and len(ranges) > MAX_RANGES_PER_TICK:
            break  # the rest waits for the next tick
        changed = candidate
        taken.append((name, versions[name]))
        new.handled[name] = versions[name]
    ranges = day_ranges(affected_partitions(changed, with_data)) if changed else []
    return TickPlan(ready, ranges, _digest(taken), new)


def _landing_versions(alert_home: AlertHome) -> dict[str, list[int]]:
    home = alert_home.home()
    versions = {}
    for path in landing_files(home.incoming):
        try:
            stat = path.stat()
        except OSError:
            continue  # vanished between listing and stat: seen on the next tick if back
        versions[landing_name(home.incoming, path)] = [
            stat.st_size,
            stat.st_mtime_ns,
            stat.st_ctime_ns,
        ]
    return versions


@sensor(
    jobs=[ingest_job, daily_alerts_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Ingests settled landing files and refreshes every day (and neighbour) they change.",
)
def landing_folder_sensor(context: SensorEvaluationContext, alert_home: AlertHome) -> SensorResult:
    home = alert_home.home()
    ledger = read_ledger(home)
    valid_days = set(daily_partitions.get_partition_keys(dynamic_partitions_store=context.instance))
    plan = plan_tick(
        _landing_versions(alert_home),
        ledger,
        LandingCursor.load(context.cursor),
        days_with_data(home),
        valid_days,
    )
    requests = []
    if plan.ingest:
        requests.append(
            RunRequest(
                job_name=ingest_job.name,
                run_key=f"ingest:{_digest({n: plan.cursor.sent[n] for n in plan.ingest})}",
                run_config={"ops": {"ingest_landing_files": {"config": {"files": plan.ingest}}}},
                tags={"alert_pipeline/files": str(len(plan.ingest))},
            )
        )
    for first, last in plan.ranges:
        requests.append(
            RunRequest(
                job_name=daily_alerts_job.name,
                run_key=f"alerts:{first}:{last}:{plan.versions_key}",
                tags=range_tags(first, last),
            )
        )
    if not requests:
        waiting = len(plan.cursor.waiting)
        return SensorResult(
            skip_reason=SkipReason(
                f"{waiting} landing files settling" if waiting else "no new landing files"
            ),
            cursor=plan.cursor.dump(),
        )
    return SensorResult(run_requests=requests, cursor=plan.cursor.dump())


@schedule(
    cron_schedule=SCHEDULE_CRON,
    job=daily_alerts_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Finalizes yesterday's (UTC) partition of the whole chain, even if no file landed.",
)
def daily_alerts_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    yesterday = str(context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(1))
    if not daily_partitions.has_partition_key(yesterday):
        return SkipReason(f"{yesterday} is before the first partition")
    return RunRequest(run_key=f"daily:{yesterday}", partition_key=yesterday)
