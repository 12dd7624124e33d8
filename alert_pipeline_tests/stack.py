"""Helpers for the tests of live stacks (`dagster dev` in test_live.py, the containers of
test_containers.py): ports, process groups, GraphQL, polling, run tags, and reading the Compose
file and the Dockerfile."""

import contextlib
import datetime as dt
import json
import re
import shlex
import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
LOCALHOST = "127.0.0.1"


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
    what: str,
    timeout: float,
    check: Callable[[], tuple[bool, object]],
    logs: Callable[[], str],
    every: float = 1.0,
) -> object:
    """Call `check` every `every` s until it says done; fail with its last state and the logs."""
    deadline = time.monotonic() + timeout
    while True:
        done, state = check()
        if done:
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not done after {timeout} s; last state: {state}\n{logs()}")
        time.sleep(every)


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
