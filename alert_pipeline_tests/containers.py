"""The Compose stack run for real: the project's Dockerfile built and its docker-compose.yml run by
docker-compose v1 against podman's Docker-compatible API (deploy/podman/up.sh), for
`test_containers.py`.

The base images `python:3.11-slim-bookworm` and `postgres:16` are stand-ins built locally from
Debian bookworm (no image registry is reachable here): see deploy/podman/.
"""

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alert_pipeline.home import Home
from alert_pipeline.runner import run_pipeline
from alert_pipeline_tests.helpers import reports
from alert_pipeline_tests.object_store import WEED
from alert_pipeline_tests.stack import REPO, free_port, graphql, poll_until, run_days

PODMAN = REPO / "deploy" / "podman"
SERVICES = ("postgres", "user_code", "webserver", "daemon")
HEALTH_TIMEOUT = 240
DATA = "/opt/dagster/data"  # ALERT_PIPELINE_HOME inside user_code (the pipeline_data volume)
_HOME = "import os; from alert_pipeline.home import Home; home = Home(os.environ['ALERT_PIPELINE_HOME'])"
UPLOAD = (  # python -c …, in user_code: a file as a landing object of the s3:// home, once the
    # store (started with the stack, no healthcheck) answers
    f"{_HOME}; import sys, time; from pathlib import Path; "
    "from alert_pipeline.objects import object_home; from alert_pipeline.errors import PipelineError\n"
    "for attempt in range(30):\n"
    "    try:\n"
    "        object_home(home.root).upload(Path(sys.argv[1]), home.incoming / Path(sys.argv[1]).name)\n"
    "        break\n"
    "    except PipelineError:\n"
    "        time.sleep(2)\n"
    "else:\n"
    "    raise SystemExit('the object store never answered')"
)
FETCH_REPORTS = f"{_HOME}; from alert_pipeline.objects import synced; print(synced(home.reports))"


def podman_problem() -> str | None:
    """Why the stack cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "podman here needs root (mounts, networks)"
    missing = [t for t in ("podman", "docker-compose", "debootstrap", "catatonit", "runc")]
    missing = [t for t in missing if not shutil.which(t) and not Path(f"/usr/bin/{t}").exists()]
    if missing:
        return f"not installed: {', '.join(missing)} (Debian packages; .ci/run installs them)"
    return None


def _running(pid: int) -> bool:
    """Whether a process runs (a killed one whose parent is gone may linger as a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@dataclass
class PodmanStack:
    """One Compose project (a copy of the repository's tracked files and a generated .env) and
    the podman state (API socket, healthcheck pump, logs) of its run."""

    project: Path
    state: Path
    port: int
    services: tuple[str, ...] = SERVICES  # those with a healthcheck
    workers: int = 0  # containers of the `worker` service (profile `cluster`)
    home: str = DATA  # ALERT_PIPELINE_HOME inside user_code: the data volume, or an s3:// home

    @classmethod
    def prepare(
        cls,
        root: Path,
        variables: dict[str, str],
        name: str = "alertpipeline",
        services: tuple[str, ...] = SERVICES,
        workers: int = 0,
    ) -> "PodmanStack":
        """Copy what git tracks (Dockerfile, docker-compose.yml, sources) and write a .env:
        the project's files unchanged, only the settings of `.env` chosen here."""
        project = root / f"{name}{os.getpid()}"  # the Compose project name
        tracked = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
        ).stdout.split(b"\0")
        for name in filter(None, tracked):
            source = REPO / os.fsdecode(name)
            if source.is_file():
                target = project / os.fsdecode(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        port = free_port()
        settings = {
            "POSTGRES_PASSWORD": "containers-test-password",
            "DAGSTER_POSTGRES_PASSWORD": "containers-test-password",
            "WEBSERVER_PORT": str(port),
            **variables,
        }
        lines = [
            line
            for line in (REPO / ".env.example").read_text().splitlines()
            if line.split("=")[0] not in settings
        ]
        (project / ".env").write_text(
            "\n".join(lines + [f"{k}={v}" for k, v in settings.items()]) + "\n"
        )
        home = variables.get("ALERT_PIPELINE_HOME", DATA)
        return cls(project, root / "podman-state", port, services, workers, home)

    @property
    def env(self) -> dict[str, str]:
        return os.environ | {
            "STATE": str(self.state),
            "CONTAINERS_CONF": str(PODMAN / "containers.conf"),
            "DOCKER_HOST": f"unix://{self.state}/podman.sock",
            **({"WEED": WEED} if WEED else {}),  # up.sh builds the SeaweedFS stand-in from it
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> float:
        """Build the image and start the stack; seconds it took (base images included)."""
        started = time.monotonic()
        scale = ["--scale", f"worker={self.workers}"] if self.workers else []
        self._run(["bash", str(PODMAN / "up.sh"), str(self.project), *scale], timeout=1800)
        return time.monotonic() - started

    def down(self, volumes: bool = True) -> None:
        if volumes:
            self._run(["bash", str(PODMAN / "down.sh"), str(self.project)], check=False)
        else:
            self.compose("down")

    @contextmanager
    def running(self) -> Iterator["PodmanStack"]:
        """Up and healthy; afterwards down, with nothing of it left (containers, volumes, the API
        socket, the healthcheck pump)."""
        pumps: list[int] = []
        try:
            up = self.up()
            pumps.append(int((self.state / "pump.pid").read_text()))
            healthy = self.wait_healthy()
            print(f"up in {up:.0f} s (image built), healthy {healthy:.0f} s later")
            yield self
        finally:
            self.down()
            left = self.podman("ps", "-a", "--format", "{{.Names}}", check=False).split()
            volumes = self.podman("volume", "ls", "--format", "{{.Name}}", check=False).split()
            assert not [n for n in left + volumes if n.startswith(self.project.name)], (
                left,
                volumes,
            )
            assert not (self.state / "podman.sock").exists()
            time.sleep(0.5)
            assert not [pid for pid in pumps if _running(pid)], "the healthcheck pump is left"

    def compose(self, *args: str, timeout: float = 300) -> str:
        return self._run(["docker-compose", *args], timeout=timeout)

    def podman(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        return self._run(["podman", *args], check=check, timeout=timeout)

    def _run(self, argv: list[str], check: bool = True, timeout: float = 300) -> str:
        result = subprocess.run(
            argv,
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{argv} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def container(self, service: str, number: int = 1) -> str:
        return f"{self.project.name}_{service}_{number}"

    def exec(self, service: str, *argv: str, check: bool = True) -> str:
        return self.podman("exec", self.container(service), *argv, check=check)

    def health(self) -> dict[str, str]:
        statuses = {}
        for service in self.services:
            out = self.podman(
                "inspect", "--format", "{{json .State}}", self.container(service), check=False
            )
            state = json.loads(out) if out.strip() else {}
            health = (state.get("Health") or state.get("Healthcheck") or {}).get("Status")
            statuses[service] = health or state.get("Status", "missing")
        return statuses

    def wait_healthy(self) -> float:
        started = time.monotonic()
        while (statuses := self.health()) and set(statuses.values()) != {"healthy"}:
            if time.monotonic() - started > HEALTH_TIMEOUT:
                raise AssertionError(
                    f"not healthy after {HEALTH_TIMEOUT} s: {statuses}\n{self.logs()}"
                )
            time.sleep(2)
        return time.monotonic() - started

    def logs(self, lines: int = 40) -> str:
        containers = [self.container(s) for s in self.services]
        containers += [self.container("worker", n) for n in range(1, self.workers + 1)]
        return "\n".join(f"--- {name}\n" + self.output(name, lines) for name in containers)

    def output(self, container: str, lines: int = 0) -> str:
        """What a container wrote, on both streams (`podman logs` keeps them apart)."""
        tail = ["--tail", str(lines)] if lines else []
        return subprocess.run(
            ["podman", "logs", *tail, container],
            cwd=self.project,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        ).stdout

    def graphql(self, text: str, variables: dict | None = None) -> dict:
        return graphql(self.url, text, variables, timeout=60)

    def drop(self, path: Path) -> None:
        """A file into the landing folder the way writers should: in the data volume, copied
        under a name the sensor ignores, then renamed; in an object store, uploaded whole (by
        the pipeline's own upload, from inside user_code)."""
        if self.home.startswith("s3://"):
            self.podman("cp", str(path), f"{self.container('user_code')}:/tmp/{path.name}")
            self.exec("user_code", "python", "-c", UPLOAD, f"/tmp/{path.name}")
            return
        target = f"{DATA}/incoming/{path.name}"
        self.podman("cp", str(path), f"{self.container('user_code')}:{target}.part")
        self.exec("user_code", "mv", f"{target}.part", target)

    def reports_folder(self) -> str:
        """The reports folder inside user_code: of the data volume, or fetched from the store."""
        if self.home.startswith("s3://"):
            return self.exec("user_code", "python", "-c", FETCH_REPORTS).strip()
        return f"{DATA}/reports"

    def copy_out(self, inside: str, outside: Path) -> Path:
        outside.parent.mkdir(parents=True, exist_ok=True)
        self.podman("cp", f"{self.container('user_code')}:{inside}", str(outside))
        return outside


# --- the runs of a stack, over GraphQL ------------------------------------------------------------

ACTIVE = {"QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED", "CANCELING"}
PHASE_TIMEOUT = 180
RUNS_QUERY = """
query Runs { runsOrError { __typename
  ... on Runs { results { runId jobName status startTime endTime creationTime tags { key value } } }
} }"""
FAILURES_QUERY = """
query Failures($runId: ID!) { logsForRun(runId: $runId) { __typename
  ... on EventConnection { events { __typename
    ... on ExecutionStepFailureEvent { stepKey error { message } }
    ... on RunFailureEvent { message error { message } } } } } }"""


def reference_reports(root: Path, files: list[Path]) -> dict[str, dict]:
    """What `alert-pipeline run` reports for the same files."""
    home = Home(root).create()
    for path in files:
        shutil.copy(path, home.incoming / path.name)
    run_pipeline(home)
    return reports(home.reports)


def stack_reports(stack: PodmanStack, tmp_path: Path) -> dict[str, dict]:
    return reports(stack.copy_out(stack.reports_folder(), tmp_path / "reports"))


def runs(stack: PodmanStack) -> list[dict]:
    result = stack.graphql(RUNS_QUERY)["runsOrError"]
    assert result["__typename"] == "Runs", result
    return result["results"]


def summary(current: list[dict]) -> list[tuple]:
    return [(r["runId"][:8], r["jobName"], r["status"], run_days(r)) for r in current]


def why_failed(stack: PodmanStack, failed: list[dict]) -> str:
    """The failed runs' step and run errors (first: the containers' logs are long)."""
    reasons = []
    for run in failed:
        result = stack.graphql(FAILURES_QUERY, {"runId": run["runId"]})["logsForRun"]
        for event in result.get("events", []):
            error = (event.get("error") or {}).get("message") or event.get("message")
            if error:
                reasons.append(f"{run['runId'][:8]} {event.get('stepKey') or 'run'}: {error}")
    return "\n".join([*reasons, f"{summary(failed)}", stack.logs()])


def wait_runs(stack: PodmanStack, what: str, done: Callable[[list[dict]], bool]) -> list[dict]:
    """Poll the runs until none is active and `done` says so; a failed run (other than those in
    `stack.killed_runs`) fails at once, with its errors."""

    def check() -> tuple[bool, object]:
        current = runs(stack)
        failed = [
            r for r in current if r["status"] == "FAILURE" and r["runId"] not in expected_failures
        ]
        assert not failed, why_failed(stack, failed)
        busy = [r for r in current if r["status"] in ACTIVE]
        return not busy and done(current), current

    expected_failures = getattr(stack, "killed_runs", set())
    return poll_until(what, PHASE_TIMEOUT, check, stack.logs)
