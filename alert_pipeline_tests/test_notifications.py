"""Notifications end to end: `alert-pipeline run` / `notify` and Dagster runs against real
receivers on 127.0.0.1 (an HTTP server for webhooks, Slack and PagerDuty, an SMTP server), with
nothing of the transport mocked."""

import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterInstance,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from alert_pipeline.assets import alert_report, rule_assets, validated_logs
from alert_pipeline.cli import main
from alert_pipeline.definitions import defs
from alert_pipeline.home import Home
from alert_pipeline.ledger import STATE_URL_ENV, TABLE
from alert_pipeline.notification_assets import incident_notifications
from alert_pipeline.notifications.outbox import open_outbox, postgres_schema
from alert_pipeline.resources import AlertHome
from alert_pipeline.runner import dagster_instance
from alert_pipeline_tests.cluster import POSTGRES_URL, postgres_problem
from alert_pipeline_tests.helpers import epoch, need, record, run_ingest_job, write_csv
from alert_pipeline_tests.receivers import http_receiver, smtp_receiver
from alert_pipeline_tests.stack import free_port
from alert_pipeline_tests.test_sensors import Landing

REPO = Path(__file__).resolve().parents[1]
DAY = "2021-09-14"
APP = "com.example.app"
FOREVER = 1_000_000  # max_age_hours that keeps 2021 fresh
ALL_ASSETS = [validated_logs, *rule_assets, incident_notifications, alert_report]


def burst(day: str, at: float, n: int = 12, bundle: str = APP, spacing: float = 1.0) -> list:
    """`n` fatal events `spacing` s apart from `at` s after midnight: with n > 10 and spacing
    1 s, an incident of both rules (all traffic, and the bundle)."""
    return [
        record(date=epoch(day, at + i * spacing), severity="Fatal", bundle_id=bundle)
        for i in range(n)
    ]


def quiet(day: str, at: float) -> list:
    return [record(date=epoch(day, at), severity="Info")]


def configure(home: Path, *channels: dict, **settings) -> None:
    """notifications.yaml with these channels; 2021 is fresh, retries come quickly."""
    document = {"max_age_hours": FOREVER, "retry_first_seconds": 0.1, **settings}
    document["channels"] = list(channels)
    (home / "notifications.yaml").write_text(yaml.safe_dump(document))


def hook(url: str, name: str = "hook", **more) -> dict:
    return {"name": name, "type": "webhook", "url": f"{url}/{name}", **more}


def run(home: Path, *more: str) -> int:
    return main(["run", "--home", str(home), *more])


def until_retries_are_due(home: Path) -> None:
    """Wait until every queued message may be tried again (after its backoff)."""
    with open_outbox(Home(home)) as outbox:
        (due,) = outbox.db.execute(
            "SELECT max(next_attempt_us) FROM messages WHERE state = 'queued'"
        ).fetchone()
    time.sleep(max(0.0, due / 1e6 - time.time()) + 0.05)


def land(home: Path, name: str, records: list) -> None:
    write_csv(home / "incoming" / name, records)


def statuses(requests) -> list[tuple[str, str, int]]:
    return [(r.json["rule"], r.json["status"], r.json["revision"]) for r in requests]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "incoming").mkdir()
    return tmp_path


@pytest.fixture(params=["home", "postgres"])
def state(request, home: Path, monkeypatch) -> Iterator[str]:
    """The home's ledger and outbox in it, or in the real Postgres (STATE_URL)."""
    if request.param == "postgres":
        problem = postgres_problem()
        need(problem is None, problem or "")
        monkeypatch.setenv(STATE_URL_ENV, POSTGRES_URL)
    yield request.param
    if request.param == "postgres":
        with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {postgres_schema(Home(home))} CASCADE")
            cursor.execute(f"DELETE FROM {TABLE} WHERE home = %s", (str(Home(home).root),))


@pytest.mark.usefixtures("state")
def test_an_incident_is_paged_once_whatever_is_run_again(home, monkeypatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    with http_receiver() as receiver:
        configure(home, hook(receiver.url, secret_env="HOOK_SECRET"))
        land(home, "a.csv", burst(DAY, 3600) + quiet(DAY, 9000))
        assert run(home) == 0
        pages = receiver.accepted("/hook")
        assert sorted(statuses(pages)) == [
            ("fatal_errors_per_bundle_per_hour", "firing", 1),
            ("fatal_errors_per_minute", "firing", 1),
        ]
        for page in pages:
            body = page.json
            assert body["partition"] == DAY and body["open"] is False
            assert body["report"] == str(home / "reports" / DAY / "alert_report.json")
            assert {"start", "end", "peak_count", "event_count", "threshold"} <= set(body)
            assert not {"adv_id", "session_id", "error_message", "raw"} & set(body)
            signature = hmac.new(b"s3cret", page.body, hashlib.sha256).hexdigest()
            assert page.headers["X-Alert-Pipeline-Signature"] == f"sha256={signature}"
            assert len(page.headers["Idempotency-Key"]) == 32
        bundle = next(p.json for p in pages if p.json["group"])
        assert bundle["group"] == {"bundle_id": APP}

        # nothing new, whatever runs again
        assert run(home) == 0
        resources = {"alert_home": AlertHome(path=str(home), settle_seconds=0)}
        with DagsterInstance.ephemeral() as instance:
            for tags in ({}, {"dagster/backfill": "b1"}):  # re-materialized, and backfilled
                result = materialize(
                    ALL_ASSETS, partition_key=DAY, instance=instance, resources=resources, tags=tags
                )
                assert result.success
        shutil.copy(home / "incoming" / "a.csv", home / "incoming" / "again.csv")  # re-delivered
        assert run(home) == 0
        assert len(receiver.requests) == 2


@pytest.mark.usefixtures("state")
def test_a_flaky_receiver_gets_one_delivery_and_a_dead_one_a_dead_letter(home, capsys) -> None:
    with http_receiver() as receiver:
        configure(home, hook(receiver.url), hook(receiver.url, name="broken"))
        receiver.answer("/hook", 503, 503)  # then 200
        receiver.answer("/broken", 400, 400)  # refused: never retried
        land(home, "a.csv", burst(DAY, 3600))
        assert run(home) == 0
        out = capsys.readouterr().out
        assert "notifications: 2 sent, 0 queued, 2 dead" in out
        tries = [r for r in receiver.requests if r.path == "/hook"]
        assert [r.status for r in tries].count(200) == 2 and len(tries) == 4
        keys = {r.json["incident_id"]: set() for r in tries}
        for r in tries:
            keys[r.json["incident_id"]].add(r.headers["Idempotency-Key"])
        assert all(len(k) == 1 for k in keys.values()), "retries carry the same key"
        assert len(receiver.accepted("/hook")) == 2
        assert len([r for r in receiver.requests if r.path == "/broken"]) == 2

        # the dead letters are visible: the status, the check, the report
        assert main(["notify", "--home", str(home), "--status"]) == 1
        status = capsys.readouterr().out
        assert "channel broken: 2 dead" in status and "HTTP 400" in status
        with dagster_instance(Home(home)) as instance:
            check = AssetCheckKey(AssetKey("incident_notifications"), "dead_letters")
            evaluation = instance.get_latest_asset_check_evaluation_record(check)
        assert evaluation.event.dagster_event.event_specific_data.passed is False
        report = json.loads((home / "reports" / DAY / "alert_report.json").read_text())
        assert {d["channel"] for d in report["notifications"]["dead_letters"]} == {"broken"}
        assert "2 dead letters" in (home / "reports" / DAY / "alert_report.md").read_text()

        # the channel is fixed: the dead letters are sent
        assert main(["notify", "--home", str(home), "--retry-dead"]) == 0
        assert len(receiver.accepted("/broken")) == 2
        assert main(["notify", "--home", str(home), "--status"]) == 0


def test_retry_after_is_honoured_and_the_retry_budget_ends_in_a_dead_letter(home, capsys) -> None:
    with http_receiver() as receiver:
        configure(home, hook(receiver.url), retry_budget_hours=2 / 3600)  # two seconds
        receiver.retry_after = "1.5"
        receiver.answer("/hook", 429, *[503] * 50)  # the second message: refused, then down
        land(home, "a.csv", burst(DAY, 3600))
        assert run(home) == 0
        tries: dict[str, list[float]] = {}
        for r in receiver.requests:
            tries.setdefault(r.headers["Idempotency-Key"], []).append(r.at)
        waits = [b - a for times in tries.values() for a, b in itertools.pairwise(times)]
        assert waits and min(waits) >= 1.5, waits  # never sooner than Retry-After
        time.sleep(2)
        assert main(["notify", "--home", str(home)]) == 0
        out = capsys.readouterr().out
        assert "1 dead" in out or "2 dead" in out
    with open_outbox(Home(home)) as outbox:
        dead = outbox.dead_letters()
    assert dead and all(d["error"].endswith("(gave up)") for d in dead)


def test_incidents_first_seen_by_a_backfill_are_recorded_not_paged(home) -> None:
    with http_receiver() as receiver:
        configure(home, hook(receiver.url))
        land(home, "a.csv", burst(DAY, 3600))
        resources = {"alert_home": AlertHome(path=str(home), settle_seconds=0)}
        with DagsterInstance.ephemeral() as instance:
            run_ingest_job(home, instance)
            tags = {"dagster/backfill": "last-month"}
            assert materialize(
                ALL_ASSETS, partition_key=DAY, instance=instance, resources=resources, tags=tags
            ).success
        assert run(home) == 0  # and not paged later either
    assert receiver.requests == []
    report = json.loads((home / "reports" / DAY / "alert_report.json").read_text())
    reasons = {i["reason"] for i in report["notifications"]["incidents"].values()}
    assert reasons == {"backfill"}


def test_a_receiver_down_for_a_whole_run_gets_it_from_the_next_notify(home, capsys) -> None:
    port = free_port()
    configure(home, hook(f"http://127.0.0.1:{port}"))
    land(home, "a.csv", burst(DAY, 3600))
    assert main(["run", "--home", str(home)]) == 0
    assert "0 sent, 2 queued, 0 dead" in capsys.readouterr().out
    with http_receiver(port) as receiver:
        until_retries_are_due(home)
        assert main(["notify", "--home", str(home)]) == 0
        assert "notifications: 2 sent, 0 queued, 0 dead" in capsys.readouterr().out
        assert len(receiver.accepted("/hook")) == 2


def test_historical_incidents_are_not_paged_one_digest_says_so(home) -> None:
    with http_receiver() as receiver:
        configure(
            home,
            hook(receiver.url),
            hook(receiver.url, name="digest", digest=True),
            max_age_hours=48,
        )
        land(home, "old.csv", burst("2021-09-13", 3600) + burst(DAY, 3600))
        assert run(home) == 0
        assert receiver.accepted("/hook") == []
        (digest,) = receiver.accepted("/digest")
        assert digest.json["kind"] == "digest" and digest.json["incidents"] == 4
        assert digest.json["not_paged"] == {
            "historical": {"fatal_errors_per_bundle_per_hour": 2, "fatal_errors_per_minute": 2}
        }
        assert run(home) == 0
        assert len(receiver.requests) == 1


def test_late_and_corrected_files_update_move_and_withdraw_the_same_page(home) -> None:
    minute = "fatal_errors_per_minute"
    with http_receiver() as receiver:
        configure(home, hook(receiver.url, rules=[minute]))
        land(home, "a.csv", burst(DAY, 3600) + quiet(DAY, 9000))
        run(home)
        (fired,) = receiver.accepted("/hook")
        key = fired.json["incident_id"]

        land(home, "late.csv", burst(DAY, 3612, n=6))  # the burst goes on: bigger
        run(home)
        land(home, "earlier.csv", burst(DAY, 3590, n=9))  # late data before it: a new start
        run(home)
        write_csv(home / "incoming" / "a.csv", quiet(DAY, 9000))  # corrected: no burst at all
        write_csv(home / "incoming" / "late.csv", quiet(DAY, 9100))
        write_csv(home / "incoming" / "earlier.csv", quiet(DAY, 9200))
        run(home)

    pages = receiver.accepted("/hook")
    assert statuses(pages) == [
        (minute, "firing", 1),
        (minute, "updated", 2),
        (minute, "updated", 3),
        (minute, "withdrawn", 4),
    ]
    assert {p.json["incident_id"] for p in pages} == {key}
    assert pages[1].json["event_count"] == 18
    moved = pages[2].json
    assert moved["start"] < fired.json["start"] and moved["detected_incident_id"] != key


def test_hourly_files_of_today_fire_an_open_incident_then_resolve_it(home) -> None:
    today = str(dt.datetime.now(dt.UTC).date())
    minute = "fatal_errors_per_minute"
    with http_receiver() as receiver:
        configure(home, hook(receiver.url, rules=[minute]), max_age_hours=48)
        land(home, "hour-00.csv", quiet(today, 0) + burst(today, 3580, n=12, spacing=1))
        run(home)
        land(home, "hour-01.csv", quiet(today, 3660) + quiet(today, 7100))
        run(home)
    firing, resolved = (p.json for p in receiver.accepted("/hook"))
    assert (firing["status"], firing["open"]) == ("firing", True)
    assert (resolved["status"], resolved["open"]) == ("resolved", False)
    assert resolved["incident_id"] == firing["incident_id"] and resolved["revision"] == 2


@pytest.mark.usefixtures("state")
def test_a_notify_killed_while_delivering_then_run_again_loses_nothing(home) -> None:
    """Messages queued while the receiver was down; `notify` is killed in the middle of
    sending them; the next `notify` sends the rest. Copies carry the same Idempotency-Key."""
    configure(home, hook(f"http://127.0.0.1:{free_port()}"))
    bundles = [f"com.app{n:03d}" for n in range(120)]
    land(
        home, "many.csv", [r for n, b in enumerate(bundles) for r in burst(DAY, 120 * n, bundle=b)]
    )
    run(home)
    with http_receiver() as receiver:
        receiver.delay = 0.05
        configure(home, hook(receiver.url))
        until_retries_are_due(home)
        process = subprocess.Popen(
            [sys.executable, "-m", "alert_pipeline.cli", "notify", "--home", str(home)],
            cwd=REPO,
            env=os.environ | {"PYTHONPATH": str(REPO)},
        )
        deadline = time.monotonic() + 60
        while len(receiver.requests) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
        killed_after = len(receiver.requests)
        assert main(["notify", "--home", str(home)]) == 0

    pages = receiver.accepted("/hook")
    by_key: dict[str, set[str]] = {}
    for page in pages:
        by_key.setdefault(page.json["incident_id"], set()).add(page.headers["Idempotency-Key"])
    expected = 2 * len(bundles)  # each burst: an incident of each rule
    assert 40 <= killed_after < len(pages)
    assert len(by_key) == expected == len({p.headers["Idempotency-Key"] for p in pages})
    assert all(len(keys) == 1 for keys in by_key.values())


HOSTILE = "<!channel> <script>alert(1)</script> *bold* `tick`"


def test_slack_with_a_bot_token_edits_its_message_and_escapes_log_text(home, monkeypatch) -> None:
    monkeypatch.setenv("SLACK_TOKEN", "xoxb-test")
    hourly = "fatal_errors_per_bundle_per_hour"
    with http_receiver() as receiver:
        slack = {
            "name": "slack",
            "type": "slack",
            "token_env": "SLACK_TOKEN",
            "channel": "#oncall",
            "api_url": f"{receiver.url}/slack-api",
            "rules": [hourly],
        }
        configure(home, slack, {"name": "hooked", "type": "slack", "url": f"{receiver.url}/in"})
        land(home, "a.csv", burst(DAY, 3600, bundle=HOSTILE))
        run(home)
        land(home, "late.csv", burst(DAY, 3620, bundle=HOSTILE))
        run(home)
    posted, updated = (r for r in receiver.requests if r.path.startswith("/slack-api"))
    assert posted.path == "/slack-api/chat.postMessage" and posted.json["channel"] == "#oncall"
    assert posted.headers["Authorization"] == "Bearer xoxb-test"
    assert updated.path == "/slack-api/chat.update"
    assert (updated.json["channel"], updated.json["ts"]) == ("C0ONCALL", "1700000000.000000")
    incoming = [r.json["text"] for r in receiver.accepted("/in")]
    for text in [posted.json["text"], updated.json["text"], *incoming]:
        assert "<!channel>" not in text and "<script>" not in text
    escaped = "`bundle_id=&lt;!channel&gt; &lt;script&gt;alert(1)&lt;/script&gt; *bold* ˋtickˋ`"
    assert any(escaped in text for text in incoming)


def test_pagerduty_triggers_under_the_incident_key_and_never_after_a_resolve(
    home, monkeypatch
) -> None:
    monkeypatch.setenv("PD_KEY", "routing-key")
    minute = "fatal_errors_per_minute"
    with http_receiver() as receiver:
        pagerduty = {
            "name": "pd",
            "type": "pagerduty",
            "routing_key_env": "PD_KEY",
            "url": f"{receiver.url}/pagerduty",
            "rules": [minute],
        }
        configure(home, pagerduty, hook(receiver.url, rules=[minute]))
        land(home, "a.csv", burst(DAY, 3600))
        run(home)
        write_csv(home / "incoming" / "a.csv", quiet(DAY, 9000))  # corrected: withdrawn
        run(home)
        write_csv(home / "incoming" / "a.csv", burst(DAY, 3600))  # back again
        run(home)
    events = [r.json for r in receiver.accepted("/pagerduty")]
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert events[0]["routing_key"] == "routing-key" and events[0]["payload"]["severity"]
    assert events[0]["dedup_key"] == events[1]["dedup_key"]
    assert [s for _, s, _ in statuses(receiver.accepted("/hook"))] == [
        "firing",
        "withdrawn",
        "firing",
    ]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("security", ["none", "starttls"])
def test_email_has_text_and_html_and_retries_a_temporary_refusal(
    home, certificate, security
) -> None:
    cert, key = certificate
    tls = None
    if security == "starttls":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
    with smtp_receiver(tls) as (port, mailbox):
        email = {
            "name": "mail",
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "security": security,
            "ca_file": str(cert),
            "from": "alerts@example.com",
            "to": ["oncall@example.com"],
            "rules": ["fatal_errors_per_bundle_per_hour"],
        }
        configure(home, email)
        mailbox.refuse = ["451 try again later"]
        land(home, "a.csv", burst(DAY, 3600, bundle=HOSTILE))
        assert run(home) == 0
    (message,) = mailbox.messages
    assert message["Subject"].startswith("FIRING alert_pipeline: fatal_errors_per_bundle_per_hour")
    html = message.get_body(("html",)).get_content()
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert HOSTILE.split()[1] in message.get_body(("plain",)).get_content()
    assert message["Message-ID"].endswith("@alert-pipeline>")


@pytest.mark.parametrize(
    ("channel", "env", "words"),
    [
        ({"name": "x", "type": "fax"}, {}, "channel 'x': type: Input tag 'fax'"),
        (
            {"name": "x", "type": "webhook", "url_env": "NOPE"},
            {},
            "url_env: environment variable NOPE is not set",
        ),
        (
            {"name": "x", "type": "webhook", "url": "ftp://h/x"},
            {},
            "url: 'ftp://h/x' is not an http(s) URL",
        ),
        (
            {"name": "x", "type": "webhook", "url": "http://h", "rules": ["nope"]},
            {},
            "rules: no rule named nope",
        ),
        (
            {"name": "x", "type": "pagerduty", "routing_key_env": "PD"},
            {},
            "routing_key_env: environment variable PD is not set",
        ),
        ({"name": "x", "type": "slack", "token_env": "T"}, {"T": "t"}, "channel: missing"),
        (
            {"name": "x", "type": "email", "host": "h", "from": "a@b", "to": []},
            {},
            "channel 'x': to:",
        ),
    ],
)
def test_a_bad_configuration_is_one_line_naming_the_channel_and_key(
    home, capsys, monkeypatch, channel, env, words
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    configure(home, channel)
    assert main(["notify", "--home", str(home), "--check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"alert-pipeline: {home / 'notifications.yaml'}: ") and words in err
    assert err.count("\n") == 1


def test_a_bad_configuration_holds_pages_until_fixed_and_fails_the_check(home, capsys) -> None:
    with http_receiver() as receiver:
        configure(home, {"name": "hook", "type": "webhook", "url_env": "HOOK_URL"})
        land(home, "a.csv", burst(DAY, 3600))
        assert run(home) == 1  # the pipeline ran; nobody could be paged
        out, err = capsys.readouterr()
        assert "partitions materialized: 2021-09-14" in out
        assert err.strip().endswith("url_env: environment variable HOOK_URL is not set")
        with dagster_instance(Home(home)) as instance:
            check = AssetCheckKey(AssetKey("incident_notifications"), "notification_config")
            record = instance.get_latest_asset_check_evaluation_record(check)
        assert record.event.dagster_event.event_specific_data.passed is False
        configure(home, hook(receiver.url))
        assert main(["notify", "--home", str(home)]) == 0
        assert len(receiver.accepted("/hook")) == 2, "held, not lost"


def test_notify_test_sends_a_marked_message(home, capsys) -> None:
    with http_receiver() as receiver:
        configure(home, hook(receiver.url))
        assert main(["notify", "--home", str(home), "--test", "hook"]) == 0
        assert "test message delivered to hook (webhook)" in capsys.readouterr().out
        (sent,) = receiver.requests
        assert sent.json == {"kind": "test", "channel": "hook"}
        assert main(["notify", "--home", str(home), "--check"]) == 0
        assert "ok, 1 channels: hook (webhook)" in capsys.readouterr().out


def delivery_tick(instance, home: Path, cursor: str | None):
    sensor = defs.resolve_sensor_def("notification_delivery_sensor")
    with build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"alert_home": AlertHome(path=str(home))},
        definitions=defs,
    ) as context:
        return sensor.evaluate_tick(context)


@pytest.mark.usefixtures("state")
def test_the_delivery_sensor_sends_what_is_due_and_checks_when_things_change(home) -> None:
    with instance_for_test() as instance:
        quiet_tick = delivery_tick(instance, home, None)  # nothing configured: nothing to do
        assert quiet_tick.run_requests == [] and not quiet_tick.cursor
        configure(home, hook(f"http://127.0.0.1:{free_port()}"))  # the receiver is down
        land(home, "a.csv", burst(DAY, 3600))
        run(home)
        with http_receiver() as receiver:
            configure(home, hook(receiver.url))
            until_retries_are_due(home)
            first = delivery_tick(instance, home, quiet_tick.cursor)
            assert len(receiver.accepted("/hook")) == 2
            (checks,) = first.run_requests  # the configuration changed
            assert checks.job_name == "notification_checks_job"
            second = delivery_tick(instance, home, first.cursor)
        assert second.run_requests == []
        assert second.skip_message == "notifications: 0 sent, 0 queued, 0 dead"


def test_a_dead_letter_after_the_days_run_gets_the_day_asked_for_again(home) -> None:
    """The sensor asks for a stale day again, under a run key Dagster has not used, when what
    makes it stale changes: here a dead letter the delivery found after the day's run (with the
    same key, Dagster would skip the request until the next day)."""
    with http_receiver() as receiver, instance_for_test() as instance:
        configure(home, hook(receiver.url, name="broken"))
        receiver.answer("/broken", 503, 503, 400, 400)  # unavailable in the run, then refused
        land(home, "a.csv", burst(DAY, 3600))
        landing = Landing(home, instance)
        (built,) = [r for r in landing.settle() if r.job_name == "daily_alerts_job"]
        assert landing.report(DAY)["notifications"]["dead_letters"] == []
        until_retries_are_due(home)
        delivery_tick(instance, home, None)
        with open_outbox(Home(home)) as outbox:
            assert len(outbox.dead_letters()) == 2
        (again,) = landing.tick().run_requests
        assert again.job_name == "daily_alerts_job" and again.run_key != built.run_key
        landing.execute(again)
        assert len(landing.report(DAY)["notifications"]["dead_letters"]) == 2
        assert landing.settle() == []


def test_notifications_added_later_page_only_what_is_detected_from_then_on(home) -> None:
    land(home, "before.csv", burst(DAY, 3600))
    assert run(home) == 0  # no notifications.yaml: recorded, nobody paged
    with http_receiver() as receiver:
        configure(home, hook(receiver.url))
        land(home, "after.csv", burst(DAY, 20_000))
        assert run(home) == 0
    pages = receiver.accepted("/hook")
    assert len(pages) == 2 and all(p.json["start"] > f"{DAY}T05" for p in pages)
