"""Subprocess entry point for the crash tests in `test_bad_input.py`: one `ingest_pending` pass.

    python -m alert_pipeline_tests.crash_worker HOME START_US END_US

Prints `ready` once everything is imported (so that the parent times its kill from the start of
the ingestion itself, not from the interpreter's start) and `done` with the outcomes when it
returns. With `ALERT_PIPELINE_TEST_KILL_BEFORE_REPLACE=n` it SIGKILLs itself just before its n-th
`os.replace`: every write is a temp file renamed into place, so this stops the ingestion at each
state between two of them in turn.
"""

import os
import signal
import sys
from pathlib import Path

from alert_pipeline.loader import TimeRange
from alert_pipeline.warehouse import Home, ingest_pending

KILL_BEFORE_REPLACE = "ALERT_PIPELINE_TEST_KILL_BEFORE_REPLACE"


def kill_before_replace(n: int) -> None:
    real_replace, calls = os.replace, 0

    def replace(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(*args, **kwargs)

    os.replace = replace


def main(argv: list[str]) -> int:
    home, start_us, end_us = Path(argv[0]), int(argv[1]), int(argv[2])
    if os.environ.get(KILL_BEFORE_REPLACE):
        kill_before_replace(int(os.environ[KILL_BEFORE_REPLACE]))
    print("ready", flush=True)
    outcomes = ingest_pending(Home(home), TimeRange(start_us, end_us))
    print("done", " ".join(f"{o.name}={o.status}" for o in outcomes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
