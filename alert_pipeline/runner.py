"""`alert-pipeline run`: ingest what is new in the landing folder, then bring every stale day up to
date through the project's Dagster definitions, in the home's own Dagster instance (the one
`make ui` opens).

Like the sensor, it works from state, not from what this process just did: the days to
materialize are the stale ones (freshness.py), so whatever an interrupted run left undone —
killed between ingestion and materialization, a full disk, a reboot — the next run finishes.
"""

import time
from dataclasses import dataclass, field

from alert_pipeline.errors import PipelineError
from alert_pipeline.home import UNDATED, Home
from alert_pipeline.ingestion import FileOutcome, ingest_pending
from alert_pipeline.ledger import read_ledger
from alert_pipeline.notifications.config import load_notifications
from alert_pipeline.notifications.delivery import deliver
from alert_pipeline.notifications.outbox import open_outbox
from alert_pipeline.partitions import day_ranges, range_tags
from alert_pipeline.pipeline import RULE_NAMES
from alert_pipeline.progress import Progress
from alert_pipeline.registry import RULES
from alert_pipeline.report import read_report_document
from alert_pipeline.resources import AlertHome
from alert_pipeline.runs import LAUNCHED_BY, fail_orphaned_runs
from alert_pipeline.sensors import stale_partitions
from alert_pipeline.warehouse import quarantine_reason_kinds

LOCAL_DAGSTER_YAML = """\
# Local Dagster instance for `alert-pipeline run` and `make ui` (SQLite, few concurrent runs).
telemetry:
  enabled: false
nux:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 2
# Runs stuck starting are marked failed; a run whose process died later is marked failed by the
# landing-folder sensor or the next `alert-pipeline run` (alert_pipeline/runs.py).
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
"""


RUN_DELIVERY_SECONDS = 30.0
RETRY_WAIT_SECONDS = 5.0  # a retry due sooner is waited for: a receiver's blip


@dataclass
class RunSummary:
    home: Home
    outcomes: list[FileOutcome]
    partitions: list[str] = field(default_factory=list)
    incidents: dict[str, int] = field(default_factory=dict)
    orphaned_runs: list[str] = field(default_factory=list)
    delivery: str = ""  # what was delivered ("" without channels)
    notifications_held: str = ""  # why notifications.yaml cannot be used

    @property
    def files_without_records(self) -> list[FileOutcome]:
        """Files of this run that added no record: rejected whole, or every record quarantined."""
        return [
            o
            for o in self.outcomes
            if o.status == "rejected" or (o.status == "ingested" and o.read and not o.stored)
        ]

    def lines(self) -> list[str]:
        by_status: dict[str, int] = {}
        for outcome in self.outcomes:
            by_status[outcome.status] = by_status.get(outcome.status, 0) + 1
        files = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none new"
        lines = [
            f"files: {files}",
            f"records: {sum(o.read for o in self.outcomes)} read, "
            f"{sum(o.stored for o in self.outcomes)} stored, "
            f"{sum(o.quarantined for o in self.outcomes)} quarantined",
        ]
        for o in self.outcomes:
            if o.status == "duplicate":
                lines.append(f"duplicate file {o.name}: {o.reason}, nothing new")
            elif o.status == "rejected":
                lines.append(f"rejected file {o.name}: {o.reason}")
        if self.orphaned_runs:
            lines.append(
                f"interrupted runs marked failed: {len(self.orphaned_runs)} "
                "(what they left undone is done now)"
            )
        if self.partitions:
            lines.append(f"partitions materialized: {_ranges_text(self.partitions)}")
            lines += [f"incidents {rule}: {n}" for rule, n in self.incidents.items()]
        else:
            lines.append("nothing to materialize: every day is up to date")
        return lines + ([self.delivery] if self.delivery else [])

    def warnings(self) -> list[str]:
        """What needs a person: files that added nothing, and records on no day's report."""
        warnings = []
        for o in self.files_without_records:
            if o.status == "rejected":
                where = self.home.rejected_files
                warnings.append(f"{o.name} added no records: the file was rejected ({where})")
            else:
                warnings.append(f"{o.name} added no records: all {o.read} were quarantined")
        for o in self.outcomes:
            undated = o.days.get(UNDATED)
            if undated is not None:
                kinds = quarantine_reason_kinds(self.home, UNDATED, o.name)
                reasons = ", ".join(f"{kind} ×{n}" for kind, n in kinds.items())
                warnings.append(
                    f"{o.name}: {undated.quarantined} records have no usable date ({reasons}); "
                    f"no day's report shows them: {self.home.quarantine_dir(UNDATED)}"
                )
        return warnings


def _ranges_text(days: list[str]) -> str:
    return ", ".join(a if a == b else f"{a}…{b}" for a, b in day_ranges(days))


def dagster_instance(home: Home):
    """The persistent Dagster instance under the home folder (the one `make ui` opens)."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    home.dagster.mkdir(parents=True, exist_ok=True)
    config = home.dagster / "dagster.yaml"
    if not config.exists():
        config.write_text(LOCAL_DAGSTER_YAML)
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home.dagster)))


def _failure_detail(result) -> str:
    """The first line of the error that failed the first failed step, else of the run."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            error = event.step_failure_data.error
            while error.cause is not None:  # Dagster wraps the step's own error
                error = error.cause
            return f"{event.step_key}: {error.message.strip().splitlines()[0]}"
    failure = next((e for e in result.all_events if e.is_failure), None)
    return failure.message if failure is not None else "see the run in the UI"


def _execute(instance, home: Home, job_name: str, tags: dict[str, str], what: str) -> None:
    from alert_pipeline.definitions import defs

    result = defs.resolve_job_def(job_name).execute_in_process(
        run_config={
            "resources": {
                name: {"config": {"path": home.location}} for name in ("alert_home", "io_manager")
            },
            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},  # the CLI says it
        },
        instance=instance,
        tags=tags | {LAUNCHED_BY: "cli"},
        raise_on_error=False,
    )
    if not result.success:
        raise PipelineError(f"{what} failed: {_failure_detail(result)}")


def run_pipeline(home: Home, progress: Progress | None = None) -> RunSummary:
    """Ingest what is new in the landing folder (telling `progress`) and materialize every stale
    day; after an ingestion that changed no day, still check for records without a usable date."""
    started_us = time.time_ns() // 1000
    config = AlertHome(path=home.location)
    outcomes = ingest_pending(home, config.time_range(), progress=progress)
    if progress is not None:
        progress.close()
    summary = RunSummary(home, outcomes)
    with dagster_instance(home) as instance:
        summary.orphaned_runs = fail_orphaned_runs(instance, home)
        summary.partitions = list(stale_partitions(home, read_ledger(home)))
        for first, last in day_ranges(summary.partitions):
            tags = range_tags(first, last)
            _execute(instance, home, "daily_alerts_job", tags, f"days {first}…{last}")
        if summary.outcomes and not summary.partitions:
            _execute(instance, home, "undated_check_job", {}, "the undated records check")
    try:
        summary.delivery = deliver_notifications(home, RUN_DELIVERY_SECONDS, started_us)
    except PipelineError as error:  # the pipeline ran: say so, then why nobody is paged
        summary.notifications_held = str(error)
    summary.incidents = {
        rule.name: sum(
            1
            for day in summary.partitions
            for incident in report_incidents(home, day)
            if incident["rule"] == rule.name
        )
        for rule in RULES
    }
    return summary


def deliver_notifications(home: Home, budget_seconds: float, since_us: int | None = None) -> str:
    """Deliver what is due for up to `budget_seconds`; a line saying what happened, counting
    what was sent since `since_us` ("" when no channel is configured). What is left stays
    queued for `notify` or the sensor."""
    config = load_notifications(home, RULE_NAMES)
    if not config.channels:
        deliver(home, config, 0)  # events of a home without channels are sent to nobody
        return ""
    delivery = deliver(home, config, budget_seconds, RETRY_WAIT_SECONDS)
    if since_us is not None and not delivery.busy:
        with open_outbox(home) as outbox:
            delivery.sent, delivery.dead = outbox.settled_since(since_us)
    return delivery.text()


def report_incidents(home: Home, day: str) -> list[dict]:
    document = read_report_document(home.reports, day)
    return document["incidents"] if document else []
