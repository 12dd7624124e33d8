"""The landing-folder sensor and the daily schedule.

Both compare desired and actual state on every evaluation and ask for the difference, so whatever
interrupted an earlier run (a kill, a full disk, a lost container) is finished by the next tick:
1. landing files whose version is not the one in the ledger are pending; once a pending file's
   version stayed the same since the previous tick it is settled, and settled files are ingested
   by an `ingest_job` run;
2. days whose outputs are stale (freshness.py) get `daily_alerts_job` runs, one per range of
   consecutive days, once no ingestion is under way, or beside one when they have waited
   MAX_ALERT_WAIT (files landing faster than they are ingested would hold them back for good).
A run that fails is retried at once, then after RETRY_SECONDS; after MAX_ATTEMPTS failures on the
same inputs the sensor waits until they change or the failures are older than HISTORY. The
content hash lives in the ledger: the ingestion computes it, so a tick never reads file bodies.
"""

import datetime as dt
import json
import time
from dataclasses import dataclass, field

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunConfig,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    schedule,
    sensor,
)

from alert_pipeline.errors import PipelineError
from alert_pipeline.freshness import day_states, digest, rule_settings, stale_days
from alert_pipeline.home import Home
from alert_pipeline.ingestion import landing_versions
from alert_pipeline.jobs import (
    IngestConfig,
    daily_alerts_job,
    ingest_job,
    notification_checks_job,
    undated_check_job,
)
from alert_pipeline.ledger import read_ledger, undated_records
from alert_pipeline.notifications.config import config_path, load_notifications
from alert_pipeline.notifications.delivery import deliver
from alert_pipeline.notifications.outbox import open_outbox
from alert_pipeline.partitions import daily_partitions, day_ranges, days_per_run, range_tags
from alert_pipeline.pipeline import RULE_NAMES
from alert_pipeline.registry import RULES
from alert_pipeline.resources import SCHEDULE_CRON, SENSOR_INTERVAL_SECONDS, AlertHome
from alert_pipeline.rules import lookback_days
from alert_pipeline.runs import (
    INPUTS,
    LAUNCHED_BY,
    RunHistory,
    fail_orphaned_runs,
    run_history,
)

MAX_FILES_PER_TICK = 500
MAX_RANGES_PER_TICK = 50
MAX_ATTEMPTS = 3
RETRY_SECONDS = 60
SENSOR_DELIVERY_SECONDS = 20.0  # a sensor evaluation may take 60 s
HISTORY = dt.timedelta(days=1)  # failures older than this no longer hold a retry back
MAX_ALERT_WAIT = dt.timedelta(minutes=5)  # stale days wait for ingestion runs at most this long
# Days around a range whose data its rule outputs may read: the inputs of its runs.
MARGIN_DAYS = max(lookback_days(rule) for rule in RULES) + 1


@dataclass
class LandingCursor:
    """Pending landing file versions as seen on the previous tick (a file is settled when its
    version is still the same one tick later), the undated records last checked, and since when
    stale days wait."""

    waiting: dict[str, list[int]] = field(default_factory=dict)
    undated: str = ""  # digest of the ledger's undated records ("" for none)
    stale_since: float = 0.0  # when the stale days began to wait for a run (0: none waits)

    @classmethod
    def load(cls, text: str | None) -> "LandingCursor | None":
        if not text:
            return None
        state = json.loads(text)
        return cls(
            waiting=state.get("waiting", {}),
            undated=state.get("undated", ""),
            stale_since=state.get("stale_since", 0.0),
        )

    def dump(self) -> str:
        state = {"waiting": self.waiting, "undated": self.undated, "stale_since": self.stale_since}
        return json.dumps(state, sort_keys=True)


@dataclass(frozen=True)
class Request:
    """One run to ask for: files to ingest, or a range of days to materialize."""

    job_name: str
    run_key: str
    inputs: str
    files: tuple[str, ...] = ()
    days: tuple[str, str] | None = None


@dataclass(frozen=True)
class TickPlan:
    requests: list[Request]
    notes: list[str]  # why something waits
    cursor: LandingCursor


def _run_key(
    what: str, prefix: str, inputs: str, history: RunHistory, now: float, notes: list[str]
) -> str | None:
    """The run key of the next attempt on `inputs`, or None (with a note) to wait. Keys carry the
    HISTORY period: once failures are older than that, a new try on the same inputs needs a key
    Dagster has not seen (it skips a sensor's run key it launched before)."""
    period = int(now // HISTORY.total_seconds())
    attempts = history.attempts.get(inputs)
    if attempts is None:
        return f"{prefix}:{inputs}:{period}:0"
    if attempts.failed >= MAX_ATTEMPTS:
        notes.append(
            f"{what}: {attempts.failed} runs failed on the same inputs, the last "
            f"{attempts.last_run_id}; not retried until they change or a day has passed"
        )
        return None
    retry_at = attempts.last_end + RETRY_SECONDS * (2 ** (attempts.failed - 1) - 1)
    if now < retry_at:
        when = dt.datetime.fromtimestamp(retry_at, dt.UTC).strftime("%H:%M:%S UTC")
        notes.append(f"{what}: run {attempts.last_run_id} failed; tried again at {when}")
        return None
    return f"{prefix}:{inputs}:{period}:{attempts.failed}"


def plan_ingestion(
    landing: dict[str, list[int]],
    ledger: dict[str, dict],
    cursor: LandingCursor | None,
    history: RunHistory,
    now: float,
) -> tuple[list[Request], list[str], LandingCursor]:
    """Settled landing files whose version is not in the ledger, for one `ingest_job` run."""
    pending = {n: v for n, v in landing.items() if ledger.get(n, {}).get("version") != v}
    waiting = cursor.waiting if cursor else {}
    settled = sorted(n for n, v in pending.items() if waiting.get(n) == v)[:MAX_FILES_PER_TICK]
    notes: list[str] = []
    if not settled:
        return [], notes, LandingCursor(pending)
    if ingest_job.name in history.busy:
        notes.append(f"{len(settled)} files wait for ingestion run {history.busy[ingest_job.name]}")
        return [], notes, LandingCursor(pending)
    inputs = digest({name: pending[name] for name in settled})
    key = _run_key(f"ingesting {len(settled)} files", "ingest", inputs, history, now, notes)
    requests = [] if key is None else [Request(ingest_job.name, key, inputs, tuple(settled))]
    return requests, notes, LandingCursor(pending)


def plan_alerts(
    stale: dict[str, str],
    states: dict[str, str],
    history: RunHistory,
    now: float,
    days_per_run: int | None = None,
    wait_for_ingestion: bool = True,
) -> tuple[list[Request], list[str]]:
    """One `daily_alerts_job` run per range of consecutive stale days (of at most `days_per_run`
    days), unless one is under way (or, with `wait_for_ingestion`, an ingestion run). A run's
    inputs, which its failures are counted on, are the data states of the days its rules may
    read; its run key also carries why its days are stale, so that a day stale anew (a dead
    letter found since its run) is asked for again, under a key Dagster has not used."""
    ranges = day_ranges(list(stale), days_per_run)[:MAX_RANGES_PER_TICK]
    if not ranges:
        return [], []
    busy_first = (ingest_job.name,) if wait_for_ingestion else ()
    for job_name in (*busy_first, daily_alerts_job.name):
        if job_name in history.busy:
            return [], [f"{len(stale)} stale days wait for run {history.busy[job_name]}"]
    requests, notes = [], []
    settings = [rule_settings(rule) for rule in RULES]
    for first, last in ranges:
        start = dt.date.fromisoformat(first) - dt.timedelta(days=MARGIN_DAYS)
        end = dt.date.fromisoformat(last) + dt.timedelta(days=MARGIN_DAYS)
        window = {d: s for d, s in states.items() if str(start) <= d <= str(end)}
        inputs = digest([first, last, settings, window])
        why = digest({d: s for d, s in stale.items() if first <= d <= last})
        what = f"days {first}…{last}"
        key = _run_key(what, f"alerts:{first}:{last}:{why}", inputs, history, now, notes)
        if key is not None:
            requests.append(Request(daily_alerts_job.name, key, inputs, days=(first, last)))
    return requests, notes


def plan_tick(
    landing: dict[str, list[int]],
    ledger: dict[str, dict],
    cursor: LandingCursor | None,
    stale: dict[str, str],
    history: RunHistory,
    now: float,
    days_per_run: int | None = None,
) -> TickPlan:
    """Decide one tick from the landing versions, the ledger, the stale days, the runs launched
    before and the previous cursor (pure). Stale days wait while files are being ingested, for
    at most MAX_ALERT_WAIT: then their runs go beside the ingestion (correct either way, as
    outputs record what they were built from; waiting only saves runs soon stale again)."""
    requests, notes, new_cursor = plan_ingestion(landing, ledger, cursor, history, now)
    since = min((cursor.stale_since if cursor else 0.0) or now, now)
    overdue = now - since >= MAX_ALERT_WAIT.total_seconds()
    alerts: list[Request] = []
    if requests and stale and not overdue:
        notes.append(f"{len(stale)} stale days wait for the ingestion")
    else:
        alerts, waiting = plan_alerts(
            stale, day_states(ledger), history, now, days_per_run, wait_for_ingestion=not overdue
        )
        requests, notes = requests + alerts, notes + waiting
    new_cursor.stale_since = since if stale and not alerts else 0.0
    undated = undated_records(ledger)
    new_cursor.undated = digest(undated) if undated else ""
    if new_cursor.undated != (cursor.undated if cursor else ""):
        inputs = new_cursor.undated or digest(undated)
        requests.append(Request(undated_check_job.name, f"undated:{inputs}", inputs))
    return TickPlan(requests, notes, new_cursor)


def stale_partitions(home: Home, ledger: dict[str, dict]) -> dict[str, str]:
    """Stale days (see freshness.py) that are partitions."""
    stale = stale_days(home, RULES, ledger)
    return {day: why for day, why in stale.items() if daily_partitions.has_partition_key(day)}


def _landing_versions(home: Home) -> dict[str, list[int]]:
    """Versions of the landing files; one that vanished meanwhile is seen on the next tick."""
    return {name: version for _, name, version in landing_versions(home) if version}


def run_request(request: Request, launched_by: str) -> RunRequest:
    tags = {LAUNCHED_BY: launched_by, INPUTS: request.inputs}
    if request.days is not None:
        return RunRequest(
            job_name=request.job_name,
            run_key=request.run_key,
            tags=tags | range_tags(*request.days),
        )
    return RunRequest(
        job_name=request.job_name,
        run_key=request.run_key,
        run_config=RunConfig(ops={"ingest_landing_files": IngestConfig(files=list(request.files))}),
        tags=tags | {"alert_pipeline/files": str(len(request.files))},
    )


def _history(
    context: SensorEvaluationContext | ScheduleEvaluationContext, home: Home
) -> RunHistory:
    """Runs of the instance, after marking failed those whose process is gone."""
    for run_id in fail_orphaned_runs(context.instance, home):
        context.log.warning(f"run {run_id} lost its process: marked failed")
    return run_history(context.instance, since=dt.datetime.now(dt.UTC) - HISTORY)


@sensor(
    jobs=[ingest_job, daily_alerts_job, undated_check_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Ingests settled landing files and brings every stale day up to date.",
)
def landing_folder_sensor(context: SensorEvaluationContext, alert_home: AlertHome) -> SensorResult:
    home = alert_home.home()
    history = _history(context, home)
    ledger = read_ledger(home)
    plan = plan_tick(
        _landing_versions(home),
        ledger,
        LandingCursor.load(context.cursor),
        stale_partitions(home, ledger),
        history,
        time.time(),
        days_per_run(),
    )
    if not plan.requests:
        waiting = len(plan.cursor.waiting)
        reason = "; ".join(plan.notes) or (
            f"{waiting} landing files settling" if waiting else "nothing new, no stale day"
        )
        return SensorResult(skip_reason=SkipReason(reason), cursor=plan.cursor.dump())
    return SensorResult(
        run_requests=[run_request(r, "sensor") for r in plan.requests], cursor=plan.cursor.dump()
    )


@schedule(
    cron_schedule=SCHEDULE_CRON,
    job=daily_alerts_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Finalizes yesterday's (UTC) partition of the whole chain, even if no file "
    "landed, and every stale day.",
)
def daily_alerts_schedule(
    context: ScheduleEvaluationContext, alert_home: AlertHome
) -> list[RunRequest] | SkipReason:
    yesterday = str(context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(1))
    home = alert_home.home()
    ledger = read_ledger(home)
    stale = stale_partitions(home, ledger)
    planned, notes = plan_alerts(
        stale, day_states(ledger), _history(context, home), time.time(), wait_for_ingestion=False
    )
    requests = [run_request(r, "schedule") for r in planned]
    covered = any(first <= yesterday <= last for first, last in (r.days for r in planned))
    if daily_partitions.has_partition_key(yesterday) and not covered:
        requests.append(
            RunRequest(
                run_key=f"daily:{yesterday}",
                partition_key=yesterday,
                tags={LAUNCHED_BY: "schedule"},
            )
        )
    if not requests:
        return SkipReason("; ".join(notes) or f"{yesterday} is before the first partition")
    return requests


@sensor(
    jobs=[notification_checks_job],
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Delivers due notifications from the outbox, retries included; runs the "
    "notification checks when notifications.yaml or the dead letters change.",
)
def notification_delivery_sensor(
    context: SensorEvaluationContext, alert_home: AlertHome
) -> SensorResult:
    """What is due is sent for up to SENSOR_DELIVERY_SECONDS; a send that fails stays in the
    outbox (never in this cursor) and is tried again on a later tick."""
    home = alert_home.home()
    try:
        config, problem = load_notifications(home, RULE_NAMES), ""
    except PipelineError as error:
        config, problem = None, str(error)
    delivery = deliver(home, config, SENSOR_DELIVERY_SECONDS) if config else None
    with open_outbox(home) as outbox:
        dead = [d["id"] for d in outbox.dead_letters()]
    path = config_path(home)
    text = path.read_text(errors="replace") if path.exists() else ""
    state = digest([text, dead]) if text or dead else ""
    reason = f"notifications held: {problem}" if problem else delivery.text()
    if state == (context.cursor or ""):
        return SensorResult(skip_reason=SkipReason(reason), cursor=state)
    checks = RunRequest(
        job_name=notification_checks_job.name,
        run_key=f"notification-checks:{state}",
        tags={LAUNCHED_BY: "sensor"},
    )
    return SensorResult(run_requests=[checks], cursor=state)
