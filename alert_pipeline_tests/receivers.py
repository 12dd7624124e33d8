"""Real receivers on 127.0.0.1 for the notification tests: an HTTP server (webhook, Slack's
incoming webhooks and Web API, PagerDuty's Events API) that records every request and answers
as scripted, and an SMTP server (aiosmtpd) that keeps every message."""

import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from alert_pipeline_tests.stack import free_port


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    url: str
    requests: list[Request] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)  # path → next statuses
    retry_after: str | None = None
    delay: float = 0.0  # seconds to wait before answering
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, *statuses: int) -> None:
        """Answer the next requests to `path` with these statuses (then 200 / 202 again)."""
        with self.lock:
            self.script.setdefault(path, []).extend(statuses)

    def accepted(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path and r.status < 300]

    def _next_status(self, path: str) -> int:
        with self.lock:
            queued = self.script.get(path)
            if queued:
                return queued.pop(0)
        return 202 if path.startswith("/pagerduty") else 200


def _handler(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # small replies go out at once
        wbufsize = 1 << 16  # one write per reply, flushed when it is complete

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            if len(body) < length:  # the sender died mid-request: nothing was received
                self.close_connection = True
                return
            time.sleep(receiver.delay)
            status = receiver._next_status(self.path)
            reply = b"ok"
            if status < 300 and self.path.startswith("/slack-api/"):
                request = json.loads(body)
                posted = sum(1 for r in receiver.requests if r.path.endswith("postMessage"))
                ts = request.get("ts") or f"1700000000.{posted:06d}"
                reply = json.dumps({"ok": True, "channel": "C0ONCALL", "ts": ts}).encode()
            with receiver.lock:
                receiver.requests.append(Request(self.path, dict(self.headers), body, status))
            self.send_response(status)
            if status in (429, 503) and receiver.retry_after:
                self.send_header("Retry-After", receiver.retry_after)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's 5 drops connections under parallel sends
    daemon_threads = True


@contextmanager
def http_receiver(port: int | None = None) -> Iterator[HttpReceiver]:
    port = port or free_port()
    receiver = HttpReceiver(f"http://127.0.0.1:{port}")
    server = _Server(("127.0.0.1", port), _handler(receiver))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: list[str] = []  # SMTP replies to RCPT TO, one per message, e.g. "451 later"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if self.refuse:
            return self.refuse.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"


@contextmanager
def smtp_receiver(tls: ssl.SSLContext | None = None) -> Iterator[tuple[int, _Mailbox]]:
    """With `tls`, the server offers STARTTLS and requires it."""
    mailbox = _Mailbox()
    port = free_port()
    starttls = {"tls_context": tls, "require_starttls": True} if tls else {}
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **starttls)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()
