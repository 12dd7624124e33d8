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
from alert_pipeline.resources import AlertHome, HomeIOManager
from alert_pipeline.sensors import (
    daily_alerts_schedule,
    landing_folder_sensor,
    notification_delivery_sensor,
)

# Settings given in the environment reach the resources as EnvVar: the UI shows their source.
settings = {
    field: EnvVar(variable)
    for field, variable in (
        ("path", "ALERT_PIPELINE_HOME"),
        ("start_date", "ALERT_PIPELINE_START_DATE"),
    )
    if os.environ.get(variable)
}
alert_home = AlertHome(**settings)
io_manager = HomeIOManager(**{k: v for k, v in settings.items() if k == "path"})

defs = Definitions(
    assets=[validated_logs, *rule_assets, incident_notifications, alert_report],
    asset_checks=[undated_records_check, notification_config_check, dead_letters_check],
    jobs=[ingest_job, daily_alerts_job, undated_check_job, notification_checks_job],
    sensors=[landing_folder_sensor, notification_delivery_sensor],
    schedules=[daily_alerts_schedule],
    resources={"alert_home": alert_home, "io_manager": io_manager},
    executor=run_executor(),
)
