"""Sending one message over one channel: a JSON webhook, Slack (incoming webhook, or the Web API
with a bot token, editing the incident's first message on updates), e-mail over SMTP, and the
PagerDuty Events API v2. Every send says whether it was delivered, and if not, whether trying
again can help (429, 5xx, a connection error, an SMTP 4xx) and how long the receiver asked to
wait (`Retry-After`)."""

import email.utils
import hashlib
import hmac
import http.client
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from alert_pipeline.notifications.config import Channel
from alert_pipeline.notifications.messages import (
    email_message,
    pagerduty_event,
    slack_text,
    webhook_payload,
)

TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-Alert-Pipeline-Signature"


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    permanent: bool = False  # trying again cannot help (a 4xx other than 429, an SMTP 5xx)
    retry_after: float | None = None  # seconds the receiver asked for
    error: str = ""
    thread: str | None = None  # what follow-ups refer to: Slack channel:ts, e-mail Message-ID


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        moment = email.utils.parsedate_to_datetime(value)
        return max(0.0, moment.timestamp() - time.time()) if moment else None


def _post(url: str, data: bytes, headers: dict[str, str]) -> tuple[Outcome, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return Outcome(True), response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
        detail = body[:200].decode("utf-8", "replace").strip()
        text = f"HTTP {error.code}" + (f": {detail}" if detail else "")
        if error.code == 429 or error.code >= 500:
            wait = _retry_after(error.headers.get("Retry-After"))
            return Outcome(False, retry_after=wait, error=text), body
        return Outcome(False, permanent=True, error=text), body
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        return Outcome(False, error=f"{type(error).__name__}: {reason}"), b""


def _json_headers(idempotency_key: str) -> dict[str, str]:
    return {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": idempotency_key}


def send_webhook(channel: Channel, body: dict, idempotency_key: str) -> Outcome:
    data = webhook_payload(body)
    headers = _json_headers(idempotency_key)
    if channel.secret:
        digest = hmac.new(channel.secret.encode(), data, hashlib.sha256).hexdigest()
        headers[SIGNATURE_HEADER] = f"sha256={digest}"
    return _post(channel.url, data, headers)[0]


def send_slack(channel: Channel, body: dict, idempotency_key: str, thread: str | None) -> Outcome:
    text = slack_text(body)
    headers = _json_headers(idempotency_key)
    if not channel.token:
        return _post(channel.url, json.dumps({"text": text}).encode(), headers)[0]
    headers["Authorization"] = f"Bearer {channel.token}"
    if thread:  # edit the incident's message
        where, ts = thread.split(":", 1)
        method, request = "chat.update", {"channel": where, "ts": ts, "text": text}
    else:
        method, request = "chat.postMessage", {"channel": channel.slack_channel, "text": text}
    outcome, reply = _post(f"{channel.api_url}/{method}", json.dumps(request).encode(), headers)
    if not outcome.delivered:
        return outcome
    answer = json.loads(reply or b"{}")
    if not answer.get("ok"):
        problem = answer.get("error", "no ok in the reply")
        return Outcome(False, permanent=problem != "ratelimited", error=f"Slack: {problem}")
    return Outcome(True, thread=None if thread else f"{answer['channel']}:{answer['ts']}")


def send_email(channel: Channel, body: dict, idempotency_key: str, thread: str | None) -> Outcome:
    smtp = channel.smtp
    message = email_message(channel, body, idempotency_key, thread)
    context = ssl.create_default_context(cafile=smtp.get("ca_file"))
    try:
        if smtp["security"] == "tls":
            client = smtplib.SMTP_SSL(
                smtp["host"], smtp["port"], timeout=TIMEOUT_SECONDS, context=context
            )
        else:
            client = smtplib.SMTP(smtp["host"], smtp["port"], timeout=TIMEOUT_SECONDS)
        with client:
            if smtp["security"] == "starttls":
                client.starttls(context=context)
            if smtp["username"]:
                client.login(smtp["username"], smtp["password"])
            refused = client.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        return Outcome(False, permanent=min(codes) >= 500, error=f"SMTP refused: {codes}")
    except smtplib.SMTPResponseException as error:
        text = f"SMTP {error.smtp_code}: {error.smtp_error.decode('utf-8', 'replace')}"
        return Outcome(False, permanent=error.smtp_code >= 500, error=text)
    except (smtplib.SMTPException, OSError) as error:
        return Outcome(False, error=f"{type(error).__name__}: {error}")
    if refused:
        return Outcome(False, error=f"SMTP refused some recipients: {sorted(refused)}")
    return Outcome(True, thread=message["Message-ID"])


def send_pagerduty(channel: Channel, body: dict, action: str, idempotency_key: str) -> Outcome:
    event = pagerduty_event(body, action, channel.routing_key)
    return _post(channel.url, json.dumps(event).encode(), _json_headers(idempotency_key))[0]


def send(
    channel: Channel, body: dict, action: str, idempotency_key: str, thread: str | None
) -> Outcome:
    """Send one message; `thread`: what the incident's first message on this channel returned."""
    if channel.type == "webhook":
        return send_webhook(channel, body, idempotency_key)
    if channel.type == "slack":
        return send_slack(channel, body, idempotency_key, thread)
    if channel.type == "email":
        return send_email(channel, body, idempotency_key, thread)
    return send_pagerduty(channel, body, action, idempotency_key)
