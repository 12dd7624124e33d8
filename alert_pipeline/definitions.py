"""The Dagster code location: assets, checks, jobs, the sensor, the schedule and resources.

Runs execute in one process unless `ALERT_PIPELINE_EXECUTOR` says otherwise (executors.py).
"""

import os

from dagster import Definitions, EnvVar

from alert_pipeline.assets import (
    alert_report,
    rule_assets,
    undated_records_check,
    validated_logs,
)
from alert_pipeline.executors import run_executor
from alert_pipeline.jobs import (
    daily_alerts_job,
    ingest_job,
    notification_checks_job,
    undated_check_job,
)
from alert_pipeline.notification_assets import (
    dead_letters_check,
    incident_notifications,
    notification_config_check,
)
from alert_pipeline.resources import AlertHome
from alert_pipeline.sensors import (
    daily_alerts_schedule,
    landing_folder_sensor,
    notification_delivery_sensor,
)

# Settings given in the environment reach the resource as EnvVar: the UI shows their source.
alert_home = AlertHome(
    **{
        field: EnvVar(variable)
        for field, variable in (
            ("path", "ALERT_PIPELINE_HOME"),
            ("start_date", "ALERT_PIPELINE_START_DATE"),
        )
        if os.environ.get(variable)
    }
)

defs = Definitions(
    assets=[validated_logs, *rule_assets, incident_notifications, alert_report],
    asset_checks=[undated_records_check, notification_config_check, dead_letters_check],
    jobs=[ingest_job, daily_alerts_job, undated_check_job, notification_checks_job],
    sensors=[landing_folder_sensor, notification_delivery_sensor],
    schedules=[daily_alerts_schedule],
    resources={"alert_home": alert_home},
    executor=run_executor(),
)
