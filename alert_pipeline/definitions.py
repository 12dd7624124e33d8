"""The Dagster code location: assets, checks, jobs, the sensor, the schedule and resources."""

from dagster import Definitions

from alert_pipeline.assets import alert_report, rule_assets, validated_logs
from alert_pipeline.jobs import alerts_job, daily_alerts_job, ingest_job, validated_logs_job
from alert_pipeline.resources import AlertHome
from alert_pipeline.sensors import daily_alerts_schedule, landing_folder_sensor

defs = Definitions(
    assets=[validated_logs, *rule_assets, alert_report],
    jobs=[ingest_job, validated_logs_job, alerts_job, daily_alerts_job],
    sensors=[landing_folder_sensor],
    schedules=[daily_alerts_schedule],
    resources={"alert_home": AlertHome()},
)
