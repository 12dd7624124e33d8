"""The Celery app of the workers: `celery -A alert_pipeline.celery_app worker`. The same app as
the one `ALERT_PIPELINE_EXECUTOR=celery` submits steps to (dagster_celery's, on the broker of
`ALERT_PIPELINE_CELERY_BROKER`), so the workers need no configuration module of their own."""

from dagster_celery.config import DEFAULT_CONFIG, dict_wrapper
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from alert_pipeline.executors import CELERY_SETTINGS, broker_url

app = make_app(
    {
        "broker": broker_url(),
        "backend": "rpc://",
        "include": [],
        "config_source": dict_wrapper(DEFAULT_CONFIG | CELERY_SETTINGS),
    }
)
execute_plan = create_task(app)
