"""A Dagster cluster on this machine for the tests and the scaling probe: Dagster's Celery
executor on the real RabbitMQ (127.0.0.1:5672, guest), Celery workers as separate processes, the
instance and the ledger in the real PostgreSQL (127.0.0.1:5432, trusted)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import psycopg2
from dagster import DagsterEventType, DagsterInstance

from alert_pipeline.home import Home
from alert_pipeline.ledger import STATE_URL_ENV
from alert_pipeline.objects import CACHE_ENV, object_home
from alert_pipeline_tests.object_store import BUCKET, SeaweedFS
from alert_pipeline_tests.stack import REPO, poll_until

BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
POSTGRES_URL = os.environ.get(
    "ALERT_PIPELINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def postgres_problem() -> str | None:
    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg2.Error as error:
        return f"no PostgreSQL at {POSTGRES_URL}: {error}".strip()
    return None


def rabbitmq_problem() -> str | None:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as error:
        return f"no RabbitMQ at 127.0.0.1:5672: {error}"
    return None


CELERY = [sys.executable, "-m", "celery", "-A", "alert_pipeline.celery_app"]


@dataclass
class Cluster:
    home: Home
    dagster_home: Path
    env: dict[str, str]
    logs: dict[str, Path] = field(default_factory=dict)
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    isolated: bool = os.geteuid() == 0 and shutil.which("unshare") is not None

    def start_worker(self, name: str) -> None:
        """A Celery worker process (in its own process group) taking one step at a time. As
        root, in a mount namespace of its own where the instance's storage folder
        ($DAGSTER_HOME/storage, which Dagster hands to every step) is an empty private tmpfs, as
        on a machine of its own: workers share only Postgres, the broker and the pipeline home.
        With a home in an object store, the worker has a cache folder of its own, and the local
        folder of the home (this process's cache) is hidden from it too."""
        self.logs[name] = self.dagster_home.parent / f"{name}.log"
        worker = [*CELERY, "worker", "-n", f"{name}@%h", "--concurrency", "1", "-l", "info"]
        worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        env = dict(self.env)
        hidden = [self.dagster_home / "storage"]
        if object_home(self.home.root):
            env[CACHE_ENV] = str(self.worker_cache(name))
            hidden.append(self.home.root)
        if self.isolated:
            for folder in hidden:
                folder.mkdir(parents=True, exist_ok=True)
            mounts = " && ".join(f'mount -t tmpfs tmpfs "${n}"' for n in range(len(hidden)))
            worker = [
                *("unshare", "--mount", "--propagation", "private", "sh", "-c"),
                f'{mounts} && shift {len(hidden) - 1} && exec "$@"',
                *(str(folder) for folder in hidden),
                *worker,
            ]
        with open(self.logs[name], "a") as log:
            self.workers[name] = subprocess.Popen(
                worker,
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        poll_until(
            f"Celery worker {name} ready",
            120,
            lambda: ("ready." in self.logs[name].read_text(), None),
            self.tails,
        )

    def land(self, path: Path) -> None:
        """A file in the home's landing folder (uploaded, for a home in an object store)."""
        if store := object_home(self.home.root):
            store.upload(path, self.home.incoming / path.name)
        else:
            shutil.copy(path, self.home.incoming / path.name)

    def worker_cache(self, name: str) -> Path:
        """A worker's cache folder, with a home in an object store."""
        return self.dagster_home.parent / f"cache-{name}"

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.send_signal(signal.SIGTERM)
        for worker in self.workers.values():
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)

    def dagster(self, *argv: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "dagster", *argv, "-m", "alert_pipeline.definitions"],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:], self.tails())
        return result.stdout

    def tails(self) -> str:
        return "\n".join(f"--- {n}\n{p.read_text()[-2000:]}" for n, p in self.logs.items())

    def workers_of_steps(self) -> dict[str, set[str]]:
        """Step key → the Celery workers that executed it, from the instance's event log."""
        executed: dict[str, set[str]] = {}
        with mock.patch.dict(os.environ, self.env):  # the instance's settings
            instance = DagsterInstance.from_config(str(self.dagster_home))
        for run in instance.get_runs():
            for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
                event = record.dagster_event
                metadata = event.engine_event_data.metadata if event else {}
                if "Celery worker" in metadata:
                    worker = metadata["Celery worker"].value.split("@")[0]
                    executed.setdefault(event.step_key, set()).add(worker)
        return executed


@contextmanager
def celery_cluster(
    root: Path, workers: tuple[str, ...], store: SeaweedFS | None = None
) -> Iterator[Cluster]:
    """Celery workers on the broker, a Dagster instance (deploy/dagster.cluster.yaml) in a new
    Postgres database, a home with its ledger in Postgres (in `store` when given; this process
    then has the store's variables set); all removed at the end."""
    database = f"alert_pipeline_cluster_{os.getpid()}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {database}")
        cursor.execute(f"CREATE DATABASE {database}")
    dagster_home = root / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.cluster.yaml", dagster_home / "dagster.yaml")
    settings = store.env() | {CACHE_ENV: str(root / "cache")} if store else {}
    location = f"s3://{BUCKET}/{root.name}" if store else str(root / "home")
    try:
        with mock.patch.dict(os.environ, settings):
            home = Home(location).create()
            with _cluster(workers, home, dagster_home, database) as deployed:
                yield deployed
    finally:
        with admin.cursor() as cursor:
            cursor.execute("DELETE FROM alert_pipeline_ledger WHERE home = %s", (location,))
            cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


@contextmanager
def _cluster(
    workers: tuple[str, ...], home: Home, dagster_home: Path, database: str
) -> Iterator[Cluster]:
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": "5432",
        "DAGSTER_POSTGRES_USER": "postgres",
        "DAGSTER_POSTGRES_PASSWORD": "trusted",  # the server trusts 127.0.0.1
        "DAGSTER_POSTGRES_DB": database,
        "ALERT_PIPELINE_HOME": home.location,
        STATE_URL_ENV: POSTGRES_URL,
        "ALERT_PIPELINE_EXECUTOR": "celery",
        "ALERT_PIPELINE_SETTLE_SECONDS": "0",  # the files are complete when landed
        "ALERT_PIPELINE_CELERY_BROKER": BROKER,
    }
    subprocess.run([*CELERY, "purge", "-f"], env=env, cwd=REPO, check=True, capture_output=True)
    deployed = Cluster(home, dagster_home, env)
    try:
        for name in workers:
            deployed.start_worker(name)
        yield deployed
    finally:
        deployed.stop()
