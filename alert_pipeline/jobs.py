"""Jobs: ingesting named landing files (what the sensor launches), and the asset jobs."""

from dagster import AssetSelection, Field, OpExecutionContext, define_asset_job, job, op

from alert_pipeline.assets import alert_report, log_outcomes, rule_assets, validated_logs
from alert_pipeline.resources import AlertHome
from alert_pipeline.warehouse import ingest_pending


@op(config_schema={"files": Field([str], default_value=[], description="landing file names")})
def ingest_landing_files(context: OpExecutionContext, alert_home: AlertHome) -> None:
    """Ingest the named landing files (all new settled ones when none are named) into the
    warehouse; the sensor then requests the partitions they changed."""
    files = context.op_config["files"]
    outcomes = ingest_pending(
        alert_home.home(),
        alert_home.time_range(),
        only=set(files) if files else None,
        min_age_seconds=0 if files else alert_home.settle_seconds,
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


validated_logs_job = define_asset_job("validated_logs_job", selection=[validated_logs])
alerts_job = define_asset_job(
    "alerts_job", selection=AssetSelection.assets(*rule_assets, alert_report)
)
daily_alerts_job = define_asset_job(
    "daily_alerts_job",
    selection=AssetSelection.assets(validated_logs, *rule_assets, alert_report),
    description="The whole chain for a day or a range of days: validated_logs, rules, report.",
)
