"""The Dagster code location: assets, checks, jobs and resources of alert_pipeline."""

from dagster import AssetSelection, Definitions, define_asset_job

from alert_pipeline.assets import alert_report, rule_assets, validated_logs
from alert_pipeline.resources import AlertHome

validated_logs_job = define_asset_job("validated_logs_job", selection=[validated_logs])
alerts_job = define_asset_job(
    "alerts_job", selection=AssetSelection.assets(*rule_assets, alert_report)
)
daily_alerts_job = define_asset_job("daily_alerts_job", selection=AssetSelection.all())

defs = Definitions(
    assets=[validated_logs, *rule_assets, alert_report],
    jobs=[validated_logs_job, alerts_job, daily_alerts_job],
    resources={"alert_home": AlertHome()},
)
