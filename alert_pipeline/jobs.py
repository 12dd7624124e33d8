"""Jobs: ingesting named landing files (what the sensor launches), and the whole daily chain."""

from collections.abc import Iterator

from dagster import (
    AssetMaterialization,
    AssetSelection,
    Config,
    DynamicOut,
    DynamicOutput,
    OpExecutionContext,
    define_asset_job,
    job,
    op,
)
from pydantic import Field

from alert_pipeline.assets import (
    alert_report,
    count_metadata,
    rule_assets,
    undated_records_check,
    validated_logs,
)
from alert_pipeline.home import UNDATED, source_id
from alert_pipeline.ingestion import FileOutcome, ingest_pending, pending_files
from alert_pipeline.ledger import day_counts
from alert_pipeline.notification_assets import (
    dead_letters_check,
    incident_notifications,
    notification_config_check,
)
from alert_pipeline.progress import Progress
from alert_pipeline.resources import AlertHome


class IngestConfig(Config):
    files: list[str] = Field(
        default=[], description="landing file names; none: every settled landing file"
    )


def log_outcomes(context: OpExecutionContext, outcomes: list[FileOutcome]) -> None:
    """One log line per landing file handled, warnings for rejected ones."""
    for outcome in outcomes:
        if outcome.status == "rejected":
            context.log.warning(f"file rejected: {outcome.name}: {outcome.reason}")
        elif outcome.status == "ingested":
            context.log.info(
                f"ingested {outcome.name}: {outcome.read} read, {outcome.stored} stored, "
                f"{outcome.quarantined} quarantined, days {sorted(outcome.days)}"
            )
        else:
            context.log.info(f"skipped {outcome.name}: {outcome.status} {outcome.reason}".strip())


@op(out=DynamicOut(str))
def ingest_landing_files(
    config: IngestConfig, alert_home: AlertHome
) -> Iterator[DynamicOutput[str]]:
    """The landing files to ingest (the named ones, or every new settled one), one step each:
    with a distributed executor, workers share them."""
    home = alert_home.home()
    settle = 0 if config.files else alert_home.settle_seconds
    for _, name in pending_files(home, settle, set(config.files) if config.files else None):
        yield DynamicOutput(name, mapping_key=source_id(name))


@op(out={})
def ingest_landing_file(
    context: OpExecutionContext, alert_home: AlertHome, name: str
) -> Iterator[AssetMaterialization]:
    """Ingest one landing file into the warehouse, and record a `validated_logs` materialization
    for each day it changed, so the UI's partition status is true; the sensor then requests the
    partitions it changed."""
    home = alert_home.home()
    outcomes = ingest_pending(
        home,
        alert_home.time_range(),
        only={name},
        progress=Progress.to_log("ingesting", context.log.info),
    )
    log_outcomes(context, outcomes)
    for day in sorted({day for o in outcomes for day in o.changed_days} - {UNDATED}):
        yield AssetMaterialization(
            asset_key=validated_logs.key,
            partition=day,
            description=f"ingested {name}",
            metadata=count_metadata(day_counts(home, day)),
        )


@job(description="Ingest landing files into the warehouse ledger and day Parquet.")
def ingest_job() -> None:
    ingest_landing_files().map(ingest_landing_file)


daily_alerts_job = define_asset_job(
    "daily_alerts_job",
    selection=AssetSelection.assets(
        validated_logs, *rule_assets, incident_notifications, alert_report
    ),
    description="The whole chain for a day or a range of days: validated_logs, rules, "
    "notifications, report.",
)
undated_check_job = define_asset_job(
    "undated_check_job",
    selection=AssetSelection.checks(undated_records_check),
    description="The check that no landing file's records lack a usable date (after ingestions "
    "that changed no day).",
)
notification_checks_job = define_asset_job(
    "notification_checks_job",
    selection=AssetSelection.checks(notification_config_check, dead_letters_check),
    description="The checks that notifications.yaml can be used and nothing is in the dead "
    "letters (when either changes).",
)
