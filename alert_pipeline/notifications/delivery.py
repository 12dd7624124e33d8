"""Delivering the outbox: each event becomes one message per channel that wants it (fan-out),
then due messages are sent, in order per channel and incident, a few at a time.

One deliverer at a time per home (a lock file): the sensor, `alert-pipeline run` / `notify` and
the asset may all try; the others return at once. A message is marked `sending` before it goes
out, so a deliverer that dies mid-send leaves it `sending`: the next deliverer sends it again with
the same Idempotency-Key (receivers can drop the copy). 429, 5xx and connection errors are retried
with exponential backoff and jitter, at least as late as `Retry-After` asks; other 4xx, and
anything still failing after the retry budget (default 24 h), go to the dead letters.
"""

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from alert_pipeline.home import Home
from alert_pipeline.ledger import lock
from alert_pipeline.notifications.config import Notifications
from alert_pipeline.notifications.outbox import Message, Outbox, open_outbox
from alert_pipeline.notifications.transports import Outcome, send
from alert_pipeline.rules import MICROS_PER_SECOND

MAX_RETRY_SECONDS = 1800.0
TRIES_PER_PASS = 3  # then the message waits for a later pass: a receiver that is down for long
PARALLEL_SENDS = 8


@dataclass
class Delivery:
    """What one delivery pass did, and what is left."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    queued: int = 0  # left for later
    next_attempt_us: int | None = None
    busy: bool = False  # another deliverer was at work

    def text(self) -> str:
        if self.busy:
            return "notifications: another delivery is under way"
        text = f"notifications: {self.sent} sent, {self.queued} queued, {self.dead} dead"
        if self.queued and self.next_attempt_us:
            when = time.strftime(
                "%H:%M:%S UTC", time.gmtime(self.next_attempt_us / MICROS_PER_SECOND)
            )
            text += f" (next attempt {when})"
        return text


def fan_out(outbox: Outbox, notifications: Notifications, now_us: int) -> None:
    """Turn every new event into messages for the channels that want it. PagerDuty is sent
    `trigger` for firing and updated, `resolve` for resolved and withdrawn, and nothing once
    resolved: a trigger after a resolve would open a new PagerDuty incident."""
    for event in outbox.unfanned():
        messages = []
        for channel in notifications.channels:
            if event.status == "digest":
                if channel.digest:
                    messages.append((channel.name, "send"))
            elif channel.wants(event.rule):
                if channel.type != "pagerduty":
                    messages.append((channel.name, "send"))
                elif not outbox.resolved(channel.name, event.key):
                    ends = event.status in ("resolved", "withdrawn")
                    messages.append((channel.name, "resolve" if ends else "trigger"))
        outbox.fan_out(event, messages, now_us)


def _backoff(first: float, attempts: int, retry_after: float | None) -> float:
    """Exponential, with full jitter over its upper half, and never sooner than asked."""
    delay = min(MAX_RETRY_SECONDS, first * 2**attempts) * random.uniform(0.5, 1.0)
    return max(delay, retry_after or 0.0)


def _send(notifications: Notifications, message: Message, thread: str | None) -> Outcome:
    channels = {c.name: c for c in notifications.channels}
    channel = channels.get(message.channel)
    if channel is None:
        return Outcome(False, permanent=True, error=f"channel {message.channel} is not configured")
    return send(channel, message.event.body, message.action, message.idempotency_key, thread)


def deliver(
    home: Home, notifications: Notifications, budget_seconds: float, wait_seconds: float = 0.0
) -> Delivery:
    """Fan out new events and send what is due, for up to `budget_seconds`, waiting for a retry
    only when it falls due within `wait_seconds` (a blip); what is left stays queued."""
    deadline = time.monotonic() + budget_seconds
    result = Delivery()
    budget_us = int(notifications.retry_budget_hours * 3600 * MICROS_PER_SECOND)
    tried: dict[int, int] = {}  # failed attempts in this pass
    rested: set[int] = set()  # tried enough in this pass: left for a later one
    with lock(home, "notifications:deliver", wait=False) as held:  # one deliverer at a time
        if not held:
            return Delivery(busy=True)
        with open_outbox(home) as outbox, ThreadPoolExecutor(PARALLEL_SENDS) as pool:
            outbox.requeue_sending()
            fan_out(outbox, notifications, time.time_ns() // 1000)
            while time.monotonic() < deadline:
                now_us = time.time_ns() // 1000
                batch = outbox.claim_due(now_us, 4 * PARALLEL_SENDS, skip=rested)
                if not batch:
                    upcoming = outbox.next_attempt_us(skip=rested)
                    wait = (upcoming - now_us) / MICROS_PER_SECOND if upcoming else None
                    if wait is None or wait > wait_seconds or time.monotonic() + wait > deadline:
                        break
                    time.sleep(max(wait, 0.01))
                    continue
                threads = [outbox.thread(m.channel, m.event.key) for m in batch]
                outcomes = pool.map(partial(_send, notifications), batch, threads)
                settled = []
                for message, outcome in zip(batch, outcomes, strict=True):
                    now_us = time.time_ns() // 1000
                    if outcome.delivered:
                        settled.append((message, "sent", now_us, "", outcome.thread))
                        result.sent += 1
                    elif outcome.permanent or now_us - message.created_us > budget_us:
                        error = outcome.error + ("" if outcome.permanent else " (gave up)")
                        settled.append((message, "dead", now_us, error, None))
                        result.dead += 1
                    else:
                        delay = _backoff(
                            notifications.retry_first_seconds, message.attempts, outcome.retry_after
                        )
                        retry_at = now_us + int(delay * MICROS_PER_SECOND)
                        tried[message.id] = tried.get(message.id, 0) + 1
                        if tried[message.id] >= TRIES_PER_PASS:
                            rested.add(message.id)
                        settled.append((message, "retry", retry_at, outcome.error, None))
                        result.retried += 1
                outbox.settle(settled, time.time_ns() // 1000)
            result.queued = sum(c.get("queued", 0) for c in outbox.counts().values())
            result.next_attempt_us = outbox.next_attempt_us()
    return result
