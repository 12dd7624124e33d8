"""Jobs: ingesting named landing files (what the sensor launches), and the whole daily chain."""

from dagster import AssetSelection, Config, OpExecutionContext, define_asset_job, job, op
from pydantic import Field

from alert_pipeline.assets import (
    alert_report,
    log_outcomes,
    rule_assets,
    undated_records_check,
    validated_logs,
)
from alert_pipeline.ingestion import ingest_pending
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


@op
def ingest_landing_files(
    context: OpExecutionContext, config: IngestConfig, alert_home: AlertHome
) -> None:
    """Ingest the named landing files (all new settled ones when none are named) into the
    warehouse; the sensor then requests the partitions they changed."""
    outcomes = ingest_pending(
        alert_home.home(),
        alert_home.time_range(),
        only=set(config.files) if config.files else None,
        min_age_seconds=0 if config.files else alert_home.settle_seconds,
        progress=Progress.to_log("ingesting", context.log.info),
    )
    log_outcomes(context, outcomes)
    context.log.info(
        f"{len(outcomes)} files handled: {sum(o.read for o in outcomes)} records read, "
        f"{sum(o.stored for o in outcomes)} stored, {sum(o.quarantined for o in outcomes)} "
        "quarantined"
    )


@job(description="Ingest landing files into the warehouse ledger and day Parquet.")
def ingest_job() -> None:
    ingest_landing_files()


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
