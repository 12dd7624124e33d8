"""How fast the outbox empties into a webhook on 127.0.0.1 (the figure of docs/benchmarks.md):

    python -m alert_pipeline_tests.notify_throughput [MESSAGES]

Records MESSAGES firing events (one per synthetic incident) in a fresh home's outbox, then times
one delivery pass (fan-out included) into the test suite's threaded HTTP receiver.
"""

import sys
import tempfile
import time
from pathlib import Path

import yaml

from alert_pipeline.home import Home
from alert_pipeline.notifications.config import load_notifications
from alert_pipeline.notifications.decisions import event_body
from alert_pipeline.notifications.delivery import deliver
from alert_pipeline.notifications.lifecycle import Known
from alert_pipeline.notifications.outbox import open_outbox
from alert_pipeline.pipeline import RULE_NAMES
from alert_pipeline.rules import Incident
from alert_pipeline_tests.receivers import http_receiver


def queue(home: Home, messages: int) -> None:
    start = 1_631_577_600_000_000  # 2021-09-14
    known = [
        Known(
            key=incident.incident_id,
            incident=incident,
            open=False,
            state="ended",
            paged=True,
            reason="",
            revision=1,
        )
        for incident in (
            Incident(
                rule="fatal_errors_per_minute",
                group_by=None,
                group=None,
                start_us=start + n * 120_000_000,
                end_us=start + n * 120_000_000 + 60_000_000,
                peak_count=11,
                event_count=11,
                threshold=10,
                window_us=60_000_000,
                last_breach_us=start + n * 120_000_000,
            )
            for n in range(messages)
        )
    ]
    with open_outbox(home) as outbox:
        outbox.record([], [(k, "firing", event_body(home, k, "firing")) for k in known], start)


def main(argv: list[str]) -> int:
    messages = int(argv[0]) if argv else 10_000
    with tempfile.TemporaryDirectory() as folder, http_receiver() as receiver:
        home = Home(Path(folder)).create()
        channel = {"name": "hook", "type": "webhook", "url": f"{receiver.url}/hook"}
        (home.root / "notifications.yaml").write_text(yaml.safe_dump({"channels": [channel]}))
        queue(home, messages)
        config = load_notifications(home, RULE_NAMES)
        started = time.perf_counter()
        delivery = deliver(home, config, budget_seconds=3600)
        seconds = time.perf_counter() - started
        accepted = len(receiver.accepted("/hook"))
    print(
        f"{messages} queued messages: {delivery.sent} delivered ({accepted} received) in "
        f"{seconds:.2f} s = {delivery.sent / seconds:,.0f} deliveries/s; {delivery.text()}"
    )
    return 0 if accepted == messages else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
