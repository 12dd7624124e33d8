"""What each channel is sent, rendered from an event's body (the incident summary only: never a
raw record, a device or a user identifier). Values that come from log records (group values
such as `bundle_id`) are escaped for Slack mrkdwn and for HTML e-mail; JSON carries them as data.
"""

import html
import json
from email.message import EmailMessage

from alert_pipeline.notifications.config import Channel

TITLES = {
    "firing": "FIRING",
    "updated": "UPDATED",
    "resolved": "RESOLVED",
    "withdrawn": "WITHDRAWN",
    "digest": "RECORDED, NOT PAGED",
    "test": "TEST",
}


def webhook_payload(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, ensure_ascii=False).encode()


_GROUP = "\0group\0"  # where the group's value (log data) goes in a line


def _group(body: dict) -> str | None:
    """The group's value text (from the log records), or None for all traffic."""
    group = body.get("group") or {}
    return ", ".join(f"{k}={v}" for k, v in group.items()) if group else None


def _lines(body: dict) -> tuple[str, list[str]]:
    """A title and lines of text, with _GROUP where the group's value goes."""
    kind = body.get("kind")
    if kind == "test":
        return "TEST alert_pipeline: test message", [
            f"A test of channel {body['channel']} sent by alert-pipeline notify --test.",
            "Nothing is wrong; no incident.",
        ]
    if kind == "digest":
        reasons = ", ".join(
            f"{reason}: {sum(rules.values())}"
            for reason, rules in sorted(body["not_paged"].items())
        )
        first, last = body["days"]
        return f"alert_pipeline: {body['incidents']} incidents recorded, not paged", [
            f"{body['incidents']} incidents of {first} to {last} were recorded without paging "
            f"anyone ({reasons}): see the daily reports.",
        ]
    status = body["status"]
    scope = f"for {_GROUP}" if _group(body) else "over all traffic"
    ongoing = "still going on" if body["open"] else "ended"
    lines = [
        f"{body['event_count']} fatal errors (peak {body['peak_count']} within "
        f"{body['window_seconds']:g} s; threshold: more than {body['threshold']}) {scope}",
        f"from {body['start']} to {body['end']} ({ongoing})",
        f"incident {body['incident_id']} · revision {body['revision']} · day {body['partition']}",
        f"report: {body['report']}",
    ]
    if status == "withdrawn":
        lines.insert(0, "A corrected file removed the data of this incident: it did not happen.")
    title = f"{TITLES[status]} alert_pipeline: {body['rule']}"
    return title + (f" ({_GROUP})" if _group(body) else ""), lines


def _render(body: dict, text, value) -> tuple[str, list[str]]:
    """Title and lines with our text rendered by `text` and the log value by `value`."""
    title, lines = _lines(body)
    group = _group(body)

    def fill(line: str) -> str:
        rendered = text(line)
        return rendered.replace(_GROUP, value(group)) if group else rendered

    return fill(title), [fill(line) for line in lines]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_value(text: str) -> str:
    """A log value in mrkdwn: escaped, and in code so that *_~ do not format it."""
    flat = " ".join(text.replace("`", "ˋ").split())
    return f"`{_slack_escape(flat)}`"


def slack_text(body: dict) -> str:
    title, lines = _render(body, _slack_escape, _slack_value)
    return "\n".join([f"*{title}*", *lines])


def _plain(text: str) -> str:
    return " ".join(text.split())  # no newline or control character from a value


def plain_text(body: dict) -> tuple[str, str]:
    """A subject line and a plain-text body (text/plain renders nothing)."""
    title, lines = _render(body, lambda line: line, _plain)
    return title, "\n".join(lines) + "\n"


def email_message(channel: Channel, body: dict, idempotency_key: str, thread: str | None):
    """A plain-text and HTML message; its Message-ID is the idempotency key (a retry is the same
    message) and follow-ups refer to the incident's first message."""
    subject, text = plain_text(body)
    title, lines = _render(body, html.escape, lambda value: html.escape(_plain(value)))
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = channel.smtp["from"]
    message["To"] = ", ".join(channel.smtp["to"])
    message["Message-ID"] = f"<{idempotency_key}@alert-pipeline>"
    if thread:
        message["In-Reply-To"] = message["References"] = thread
    message.set_content(text)
    markup = "".join(f"<p>{line}</p>" for line in lines)
    message.add_alternative(
        f"<!DOCTYPE html><html><body><h2>{title}</h2>{markup}</body></html>", subtype="html"
    )
    return message


def pagerduty_event(body: dict, action: str, routing_key: str) -> dict:
    """An Events API v2 event: `trigger` (firing, updated) or `resolve` under the incident key."""
    event = {"routing_key": routing_key, "event_action": action, "dedup_key": body["incident_id"]}
    if action == "trigger":
        title, lines = plain_text(body)
        event["payload"] = {
            "summary": title[:1024],
            "source": "alert_pipeline",
            "severity": "critical",
            "timestamp": body["start"],
            "component": body["rule"],
            "custom_details": {k: v for k, v in body.items() if k != "report"} | {"text": lines},
        }
    return event
