"""Where a run's steps execute, chosen by configuration only.

By default every run executes in one process (`in_process_executor`): a day's few steps do not
pay a process start each, and the `AlertHome` resource holds the run's lock (runs.py) for the
whole run. With `ALERT_PIPELINE_EXECUTOR=celery` each step is a Celery task on the broker of
`ALERT_PIPELINE_CELERY_BROKER` (default RabbitMQ on 127.0.0.1 as guest), executed by whichever
`celery -A alert_pipeline.celery_app worker` takes it, on any machine (docs/deploying.md, *Scaling*).
With `ALERT_PIPELINE_EXECUTOR=k8s` each step is a Kubernetes Job from the run's image, with the
run launcher's environment (deploy/helm/values.yaml). Steps of one run then live in several
processes, so a run's liveness is left to Dagster's run monitoring instead of the run lock.
"""

import os

from dagster import ExecutorDefinition, in_process_executor

EXECUTOR_ENV = "ALERT_PIPELINE_EXECUTOR"
BROKER_ENV = "ALERT_PIPELINE_CELERY_BROKER"
DEFAULT_BROKER = "pyamqp://guest@127.0.0.1:5672//"
EXECUTORS = ("in_process", "celery", "k8s")


def executor_name() -> str:
    name = os.environ.get(EXECUTOR_ENV) or "in_process"
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={name!r}: expected one of {', '.join(EXECUTORS)}")
    return name


def distributed() -> bool:
    """Whether a run's steps may execute in several processes (no run lock then)."""
    return executor_name() != "in_process"


# A step is acknowledged when it ends, not when it starts: if its worker dies, the broker gives it
# to another worker (ingestion and every asset are idempotent, so running it again is safe). A
# worker takes one step at a time, so a long file never holds back steps another worker could do.
CELERY_SETTINGS = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
}


def broker_url() -> str:
    return os.environ.get(BROKER_ENV) or DEFAULT_BROKER


def run_executor() -> ExecutorDefinition:
    name = executor_name()
    if name == "k8s":
        from dagster_k8s import k8s_job_executor  # the `cluster` extra

        # Unconfigured: namespace, image and environment come from the K8sRunLauncher, and run
        # config may still set e.g. `max_concurrent`.
        return k8s_job_executor
    if name == "celery":
        from dagster_celery import celery_executor  # the `cluster` extra

        # Named, not copied: the broker's credentials stay in the environment.
        broker = {"env": BROKER_ENV} if os.environ.get(BROKER_ENV) else DEFAULT_BROKER
        return celery_executor.configured({"broker": broker, "config_source": CELERY_SETTINGS})
    return in_process_executor
