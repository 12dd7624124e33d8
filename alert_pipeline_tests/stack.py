"""The Compose deployment, run without Docker: a helper for `test_deploy.py`.

`ComposeStack` reads docker-compose.yml and the Dockerfile and starts each Dagster service of the
Compose file as a separate local process (its own process group, output to a file):

- with the service's `command`, `environment` and `healthcheck` from docker-compose.yml, the
  image's `ENV` from the Dockerfile, and `${VAR}` substitution from a `.env`-like mapping;
- in its own mount namespace (`unshare --mount`, root only), where `/opt/dagster` is the
  service's own copy of the image's folder (the production deploy/dagster.yaml byte for byte, and
  deploy/workspace.yaml with Compose service names resolved to 127.0.0.1), and each named volume
  of the service is a host folder bind-mounted at its mount point, shared with the other
  services that mount it. So container paths stay as they are (`DAGSTER_HOME=/opt/dagster/...`)
  and, as in Docker, the same path means a different folder in each service unless a volume
  is mounted there. Docker seeds an empty named volume with the image's content: so does this.
- on the host network: `0.0.0.0` becomes 127.0.0.1, container ports become free local ports,
  and Compose service names used as host names (`user_code`, `postgres`) become 127.0.0.1;
- started in `depends_on` order, each waiting for its dependencies' healthchecks, which run in
  the service's namespace as `docker exec` would run them.

The database is a fresh one on the local PostgreSQL (`fresh_database`), not a container.
"""

import contextlib
import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"
WORKSPACE_YAML = REPO / "deploy" / "workspace.yaml"

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
LOCALHOST = "127.0.0.1"
HEALTH_TIMEOUT = 120
STOP_TIMEOUT = 20
IMAGE_ROOT = "/opt/dagster"  # the image's own folders; each service gets its own copy
# What the image holds there (Dockerfile COPY and mkdir).
IMAGE_FILES = {
    "/opt/dagster/dagster_home/dagster.yaml": DAGSTER_YAML,
    "/opt/dagster/dagster_home/workspace.yaml": WORKSPACE_YAML,
}
IMAGE_DIRS = (
    "/opt/dagster/dagster_home/storage",
    "/opt/dagster/data/incoming",
    "/opt/dagster/data/warehouse",
    "/opt/dagster/data/quarantine",
    "/opt/dagster/data/reports",
)
TMP_ROOT = "/tmp/"  # not namespaced here: container paths under /tmp get a per-service folder
VENV_BIN = Path(sys.executable).parent
# Environment of the test process that must not leak into the services.
DROPPED_ENV = ("COV_CORE_", "COVERAGE_", "DAGSTER_", "ALERT_PIPELINE_", "POSTGRES_", "PG")


# --- PostgreSQL --------------------------------------------------------------------------------


def pg_connect(dbname: str = "postgres"):
    import psycopg2  # installed by dagster-postgres

    return psycopg2.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=5
    )


def postgres_problem() -> str | None:
    """Why the local PostgreSQL cannot be used, or None when it can."""
    try:
        pg_connect().close()
    except Exception as error:  # any reason is a reason to skip
        return f"PostgreSQL on {PG_HOST}:{PG_PORT} (user {PG_USER}) not reachable: {error}"
    return None


def database_exists(name: str) -> bool:
    with contextlib.closing(pg_connect()) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cursor.fetchone() is not None


@contextlib.contextmanager
def fresh_database(prefix: str = "alert_pipeline_deploy") -> Iterator[str]:
    """A new, empty database; dropped (connections closed by force) afterwards."""
    from psycopg2 import sql

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    connection = pg_connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        connection.close()


def query(database: str, text: str, params: tuple = ()) -> list[tuple]:
    with contextlib.closing(pg_connect(database)) as connection, connection.cursor() as cursor:
        cursor.execute(text, params)
        return cursor.fetchall()


# --- mount namespaces --------------------------------------------------------------------------


def opt_mount_point() -> str:
    """Where each service's image folder is bind-mounted: /opt/dagster when the host has that
    folder, else /opt itself (hidden only inside the service's namespace)."""
    return IMAGE_ROOT if Path(IMAGE_ROOT).is_dir() else str(Path(IMAGE_ROOT).parent)


def namespace_problem() -> str | None:
    """Why services cannot get their own mount namespace here, or None when they can."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare (util-linux) not found"
    point = opt_mount_point()
    needed = [REPO, Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve()]
    hidden = [p for p in needed if p.is_relative_to(point)]
    if hidden:
        return f"mounting over {point} would hide {hidden}"
    result = subprocess.run(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            f"mount --bind {shlex.quote(point)} {shlex.quote(point)}",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return f"cannot create a mount namespace (needs root): {result.stderr.strip()}"
    return None


# --- Compose and Dockerfile reading ------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?)([-?])([^}]*))?\}|\$(\w+)")


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's substitution: `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
    `$VAR`, and `$$` for a literal `$`; only from `variables` (as from `.env`)."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(5)
        colon, kind, argument = match.group(2), match.group(3), match.group(4)
        if name in variables and (variables[name] != "" or not colon):
            return variables[name]
        if kind == "-":
            return argument
        if kind == "?":
            raise KeyError(f"{name}: {argument}")
        return ""

    return _INTERPOLATION.sub(replace, value)


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # safe_load resolves `<<:` merge keys


def dockerfile_env() -> dict[str, str]:
    """The `ENV` of the Dockerfile's last stage (the image the services run)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages = re.split(r"(?im)^FROM\s", text)
    env: dict[str, str] = {}
    for line in stages[-1].splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0].upper() == "ENV":
            for pair in shlex.split(words[1]):
                key, _, value = pair.partition("=")
                env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)
    return env


# --- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((LOCALHOST, port)) == 0


def group_alive(pgid: int) -> list[int]:
    """Processes of the group that are not zombies (read from /proc; Linux)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(stat.parent.name))
    return alive


def reset_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and Dagster maps SIGTERM onto SIGINT's
    # handler: inherited, SIG_IGN would make a service ignore SIGTERM. In a container (tini as
    # PID 1, `init: true`) the service starts with the default handlers, as here.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def graphql(url: str, text: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """POST a query to a Dagster webserver's GraphQL endpoint; fail on any GraphQL error."""
    body = json.dumps({"query": text, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise AssertionError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


def poll_until(
    what: str, timeout: float, check: Callable[[], tuple[bool, object]], logs: Callable[[], str]
) -> object:
    """Call `check` every second until it says done; fail with its last state and the logs."""
    deadline = time.monotonic() + timeout
    while True:
        done, state = check()
        if done:
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not done after {timeout} s; last state: {state}\n{logs()}")
        time.sleep(1)


def run_tags(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["tags"]}


def run_days(run: dict) -> list[str]:
    """The partitions a run (from GraphQL, with its tags) covers: one key or a range."""
    found = run_tags(run)
    if "dagster/partition" in found:
        return [found["dagster/partition"]]
    first = found.get("dagster/asset_partition_range_start")
    last = found.get("dagster/asset_partition_range_end")
    if not (first and last):
        return []
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [str(start + dt.timedelta(days=n)) for n in range((end - start).days + 1)]


@dataclass
class Service:
    """One Compose service as a local process group in its own mount namespace."""

    name: str
    argv: list[str]
    env: dict[str, str]
    mounts: list[tuple[Path, str]]  # (host folder, container path), in mount order
    log: Path
    healthcheck: list[str] | None = None
    process: subprocess.Popen | None = None
    stopped_by: str | None = None

    def inside(self, argv: list[str]) -> list[str]:
        """`argv` run in a new mount namespace with the service's mounts (no fork: the
        command keeps the pid, so signals reach it directly)."""
        script = "set -e\n" + "".join(
            f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}\n"
            for source, target in self.mounts
        )
        script += 'cd "$DAGSTER_HOME"\nexec "$@"\n'
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            script,
            "sh",
            *argv,
        ]

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.inside(self.argv),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=reset_sigint,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_health(self) -> subprocess.CompletedProcess | None:
        """Run the Compose healthcheck once, in the service's namespace (None if it has none)."""
        if not self.healthcheck:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return subprocess.run(
                self.inside(self.healthcheck),
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=30,
            )
        return subprocess.CompletedProcess(self.healthcheck, -1, "", "timed out")

    def stop(self, timeout: float = STOP_TIMEOUT) -> str:
        """SIGTERM to the process group (as `docker compose stop`), SIGKILL to whatever is left
        after `timeout` seconds. Returns which signal ended it."""
        if self.process is None:
            return "never started"
        pgid = self.process.pid  # start_new_session: the leader's pid is the group id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self.process.poll() is None or group_alive(pgid)):
            time.sleep(0.2)
        how = "SIGTERM"
        if self.process.poll() is None or group_alive(pgid):
            how = "SIGKILL"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.stopped_by = self.stopped_by or how
        return how

    def output(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class ComposeStack:
    """The Dagster services of docker-compose.yml on this machine, against a local database."""

    root: Path
    database: str
    overrides: Mapping[str, str] = field(default_factory=dict)  # extra `.env` entries
    external: tuple[str, ...] = ("postgres",)  # Compose services this machine provides

    def __post_init__(self) -> None:
        self.compose = load_compose()
        self.ports = {"4000": free_port(), "3000": free_port()}  # container -> local port
        self.variables = {
            # what `.env` would hold, pointing at the local PostgreSQL (trust authentication:
            # deploy/dagster.yaml requires a password, the server does not check it)
            "POSTGRES_USER": PG_USER,
            "POSTGRES_PASSWORD": "unused-with-trust-auth",
            "POSTGRES_DB": self.database,
            "DAGSTER_POSTGRES_HOST": "postgres",
            "DAGSTER_POSTGRES_PORT": str(PG_PORT),
            "DAGSTER_POSTGRES_USER": PG_USER,
            "DAGSTER_POSTGRES_PASSWORD": "unused-with-trust-auth",
            "DAGSTER_POSTGRES_DB": self.database,
            **self.overrides,
        }
        self.services: dict[str, Service] = {}
        for name, spec in self.compose["services"].items():
            if name not in self.external:
                self.services[name] = self._service(name, spec)

    # folders

    def fs(self, service: str) -> Path:
        """The host folder holding the service's container files (its image copy)."""
        return self.root / "containers" / service

    def image_path(self, service: str, path: str) -> Path:
        return self.fs(service) / path.lstrip("/")

    def volume(self, name: str) -> Path:
        return self.root / "volumes" / name

    # container words -> local ones

    def _map_word(self, service: str, word: str) -> str:
        if word == "0.0.0.0":
            return LOCALHOST
        if word in self.ports:
            return str(self.ports[word])
        if word.startswith(TMP_ROOT):
            return str(self.image_path(service, word))
        for port, local in self.ports.items():  # a URL inside a `python -c` healthcheck
            word = word.replace(f"127.0.0.1:{port}", f"127.0.0.1:{local}")
        return word

    def _map_host(self, host: str) -> str:
        """A Compose service name used as a host name resolves to this machine."""
        return LOCALHOST if host in self.compose["services"] else host

    def _argv(self, service: str, words: list) -> list[str]:
        argv = [self._map_word(service, str(word)) for word in words]
        if argv[0] == "python":
            argv[0] = sys.executable
        elif (VENV_BIN / argv[0]).exists():
            argv[0] = str(VENV_BIN / argv[0])
        return argv

    def _healthcheck(self, service: str, spec: dict) -> list[str] | None:
        test = (spec.get("healthcheck") or {}).get("test")
        if not test or test[0] == "NONE":
            return None
        if test[0] == "CMD":
            return self._argv(service, test[1:])
        if test[0] == "CMD-SHELL":
            return ["/bin/sh", "-c", interpolate(test[1], self.variables)]
        raise ValueError(f"unknown healthcheck form {test!r}")

    def environment(self, service: str) -> dict[str, str]:
        """The process environment: the image's ENV, the `.env` variables when the service
        reads it as its `env_file`, then the service's `environment`."""
        spec = self.compose["services"][service]
        env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV)}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env_file = self.variables if ".env" in (spec.get("env_file") or []) else {}
        declared = {**dockerfile_env(), **env_file, **(spec.get("environment") or {})}
        for key, value in declared.items():
            value = interpolate(str(value), self.variables)
            env[key] = (
                self._map_host(value) if key.endswith("_HOST") else self._map_word(service, value)
            )
        return env

    def _service(self, name: str, spec: dict) -> Service:
        for directory in IMAGE_DIRS:
            self.image_path(name, directory).mkdir(parents=True, exist_ok=True)
        for path, source in IMAGE_FILES.items():
            shutil.copyfile(source, self.image_path(name, path))
        self._localize_workspace(self.image_path(name, "/opt/dagster/dagster_home/workspace.yaml"))
        point = opt_mount_point()
        mounts = [(self.image_path(name, point), point)]
        for mount in spec.get("volumes") or []:
            source, target = interpolate(str(mount), self.variables).split(":")[:2]
            if "/" in source or not target.startswith(IMAGE_ROOT):
                raise ValueError(f"{name}: volume {mount} is not simulated")
            volume = self.volume(source)
            if not volume.exists():  # Docker seeds an empty named volume with the image's files
                shutil.copytree(self.image_path(name, target), volume)
            mounts.append((volume, target))
        for directory in (self.image_path(name, "/tmp/matplotlib"),):
            directory.mkdir(parents=True, exist_ok=True)
        return Service(
            name=name,
            argv=self._argv(name, spec["command"]),
            env=self.environment(name),
            mounts=mounts,
            log=self.root / f"{name}.log",
            healthcheck=self._healthcheck(name, spec),
        )

    def _localize_workspace(self, path: Path) -> None:
        workspace = yaml.safe_load(path.read_text())
        for entry in workspace["load_from"]:
            server = entry.get("grpc_server")
            if server:
                server["host"] = self._map_host(server["host"])
                server["port"] = self.ports[str(server["port"])]
        path.write_text(yaml.safe_dump(workspace, sort_keys=False))

    # lifecycle

    def order(self) -> list[str]:
        """Services in `depends_on` order (dependencies first)."""
        ordered: list[str] = []

        def visit(name: str) -> None:
            for dependency in self.compose["services"][name].get("depends_on") or {}:
                visit(dependency)
            if name not in ordered:
                ordered.append(name)

        for name in self.compose["services"]:
            visit(name)
        return ordered

    def external_health(self, name: str) -> subprocess.CompletedProcess:
        """The healthcheck of a service this machine provides (Postgres' `pg_isready`), run
        with that service's interpolated environment against the local server."""
        spec = self.compose["services"][name]
        env = dict(os.environ)
        env.update({k: interpolate(str(v), self.variables) for k, v in spec["environment"].items()})
        env |= {"PGHOST": PG_HOST, "PGPORT": str(PG_PORT)}
        command = self._healthcheck(name, spec)
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)

    def health(self, name: str) -> subprocess.CompletedProcess | None:
        if name in self.external:
            return self.external_health(name)
        return self.services[name].check_health()

    def wait_healthy(self, name: str, timeout: float = HEALTH_TIMEOUT) -> float:
        """Run the service's healthcheck until it passes; returns the seconds it took."""
        started = time.monotonic()
        while True:
            service = self.services.get(name)
            if service is not None and not service.running():
                raise RuntimeError(
                    f"{name} exited with {service.process.returncode}\n{service.output(200)}"
                )
            result = self.health(name)
            if result is None or result.returncode == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(
                    f"{name} not healthy after {timeout} s: {result.stdout}{result.stderr}\n"
                    + self.outputs()
                )
            time.sleep(1)

    def start(self) -> dict[str, float]:
        """Start every service once the services it depends on are healthy (Compose's
        `condition: service_healthy`), then wait for each to be healthy. Returns the seconds
        each took to become healthy after its dependencies were."""
        healthy: dict[str, float] = {}
        for name in self.order():
            spec = self.compose["services"][name]
            for dependency, rule in (spec.get("depends_on") or {}).items():
                assert rule.get("condition") == "service_healthy", (name, dependency, rule)
                if dependency not in healthy:
                    healthy[dependency] = self.wait_healthy(dependency)
            if name in self.services:
                self.services[name].start()
        for name in self.order():
            if name not in healthy:
                healthy[name] = self.wait_healthy(name)
        return healthy

    def stop(self) -> dict[str, str]:
        """Stop in reverse start order; returns how each service ended."""
        return {
            name: self.services[name].stop()
            for name in reversed(self.order())
            if name in self.services
        }

    def outputs(self, lines: int = 60) -> str:
        return "\n".join(service.output(lines) for service in self.services.values())

    def logs(self) -> dict[str, str]:
        return {
            name: service.log.read_text(errors="replace") if service.log.exists() else ""
            for name, service in self.services.items()
        }

    # access

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.ports['3000']}"

    @property
    def data(self) -> Path:
        """ALERT_PIPELINE_HOME as the runs see it: the `pipeline_data` volume."""
        return self.volume("pipeline_data")

    def graphql(self, text: str, variables: dict | None = None) -> dict:
        return graphql(self.url, text, variables, timeout=60)
