"""Subprocess entry point for the crash tests: one `ingest_pending` pass, or a whole
`alert-pipeline run`, to be killed with SIGKILL.

    python -m alert_pipeline_tests.crash_worker ingest HOME START_US END_US
    python -m alert_pipeline_tests.crash_worker run HOME

Prints `ready` once everything is imported (so that the parent times its kill from the start of
the work itself, not from the interpreter's start) and `done` when it returns. With
`ALERT_PIPELINE_TEST_KILL_BEFORE_REPLACE=n` it SIGKILLs itself just before its n-th `os.replace`:
every write is a temp file renamed into place, so this stops the work at each state between two
of them in turn. With `ALERT_PIPELINE_TEST_KILL_AFTER_INGEST=1`, `run` SIGKILLs itself as soon as
the ingestion has returned: the ledger is written, nothing is materialized yet.
"""

import os
import signal
import sys
from pathlib import Path

from alert_pipeline import runner
from alert_pipeline.batch_typing import TimeRange
from alert_pipeline.cli import main as cli_main
from alert_pipeline.home import Home
from alert_pipeline.ingestion import ingest_pending

KILL_BEFORE_REPLACE = "ALERT_PIPELINE_TEST_KILL_BEFORE_REPLACE"
KILL_AFTER_INGEST = "ALERT_PIPELINE_TEST_KILL_AFTER_INGEST"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_before_replace(n: int) -> None:
    real_replace, calls = os.replace, 0

    def replace(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == n:
            _die()
        return real_replace(*args, **kwargs)

    os.replace = replace


def kill_after_ingest() -> None:
    real_ingest = runner.ingest_pending

    def ingest(*args, **kwargs):
        real_ingest(*args, **kwargs)
        _die()

    runner.ingest_pending = ingest


def main(argv: list[str]) -> int:
    if os.environ.get(KILL_BEFORE_REPLACE):
        kill_before_replace(int(os.environ[KILL_BEFORE_REPLACE]))
    if os.environ.get(KILL_AFTER_INGEST):
        kill_after_ingest()
    print("ready", flush=True)
    if argv[0] == "run":
        code = cli_main(["run", "--home", argv[1]])
        print("done", code, flush=True)
        return code
    home, start_us, end_us = Path(argv[1]), int(argv[2]), int(argv[3])
    outcomes = ingest_pending(Home(home), TimeRange(start_us, end_us))
    print("done", " ".join(f"{o.name}={o.status}" for o in outcomes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
