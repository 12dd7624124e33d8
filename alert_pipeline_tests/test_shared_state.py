"""Ingestion without a global lock, with the ledger and locks in the home (default) or in a real
PostgreSQL (ALERT_PIPELINE_STATE_URL): different files ingest at once, two names of one content
give one result, and a worker killed mid-ingestion (holding its locks) leaves nothing a re-run
does not finish as a clean run would."""

import random
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg2
import pytest
from dagster import DagsterInstance, materialize

from alert_pipeline import ingestion, ledger
from alert_pipeline.assets import RECONCILE_CHECK, validated_logs
from alert_pipeline.generate import generate_logs
from alert_pipeline.home import Home, source_id
from alert_pipeline.ingestion import ingest_pending
from alert_pipeline.ledger import STATE_URL_ENV, TABLE, day_lock, lock, read_ledger, write_entry
from alert_pipeline.resources import AlertHome
from alert_pipeline.warehouse import stored_rows
from alert_pipeline_tests.cluster import POSTGRES_URL, postgres_problem
from alert_pipeline_tests.helpers import need
from alert_pipeline_tests.test_bad_input import (
    TR,
    assert_same_as_reference,
    contents,
    crash_landing,
    landed_home,
    worker,
)


@pytest.fixture(params=["home", "postgres"])
def state(request, monkeypatch, tmp_path) -> str:
    """Where the ledger and locks live; the environment is inherited by workers."""
    if request.param == "postgres":
        problem = postgres_problem()
        need(problem is None, problem or "")
        monkeypatch.setenv(STATE_URL_ENV, POSTGRES_URL)
    else:
        monkeypatch.delenv(STATE_URL_ENV, raising=False)
    yield request.param
    if request.param == "postgres":
        with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {TABLE} WHERE home LIKE %s", (f"{tmp_path}%",))


def landing_of(home: Home, files: dict[str, int]) -> None:
    for seed, (name, rows) in enumerate(files.items()):
        generate_logs(home.incoming, rows=rows, days=2, seed=seed, one_file=name)


def in_thread(target, *args, **kwargs) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(target(*args, **kwargs)), daemon=True)
    thread.start()
    return thread, result


def test_different_files_ingest_at_once_while_one_file_waits_for_its_lock(state, tmp_path):
    home = Home(tmp_path / "home").create()
    landing_of(home, {"a.csv": 2_000, "b.csv": 2_000})
    with lock(home, f"source:{source_id('a.csv')}"):  # as a worker ingesting a.csv holds it
        waiting, a_result = in_thread(ingest_pending, home, TR, {"a.csv"})
        other, b_result = in_thread(ingest_pending, home, TR, {"b.csv"})
        other.join(timeout=60)
        assert [o.status for o in b_result[0]] == ["ingested"]
        time.sleep(0.5)
        assert waiting.is_alive() and set(read_ledger(home)) == {"b.csv"}
    waiting.join(timeout=60)
    assert [(o.name, o.status) for o in a_result[0]] == [("a.csv", "ingested")]
    assert set(read_ledger(home)) == {"a.csv", "b.csv"}


def test_a_day_is_never_seen_with_a_file_half_swapped_in(state, tmp_path):
    # A new version of a file is swapped in, and a day reconciled, only under the day's lock: while
    # it is held, the ingestion writes neither parts nor ledger and validated_logs waits.
    home = Home(tmp_path / "home").create()
    landing_of(home, {"a.csv": 2_000})
    ingest_pending(home, TR)
    before = read_ledger(home)["a.csv"]
    day = min(before["days"])
    parts = {p: p.stat().st_mtime_ns for p in home.day_dir(day).glob("*.parquet")}
    generate_logs(home.incoming, rows=3_000, days=2, seed=7, one_file="a.csv")
    resources = {"alert_home": AlertHome(path=str(home.root), settle_seconds=0)}
    with DagsterInstance.ephemeral() as instance:
        with day_lock(home, [day]):
            ingesting, outcomes = in_thread(ingest_pending, home, TR)
            reconciling, results = in_thread(
                materialize,
                [validated_logs],
                partition_key=day,
                instance=instance,
                resources=resources,
            )
            time.sleep(2)
            assert ingesting.is_alive() and reconciling.is_alive()
            assert read_ledger(home)["a.csv"] == before
            assert {p: p.stat().st_mtime_ns for p in home.day_dir(day).glob("*.parquet")} == parts
        ingesting.join(timeout=60)
        reconciling.join(timeout=60)
    assert [o.status for o in outcomes[0]] == ["ingested"]
    checks = {c.check_name: c.passed for c in results[0].get_asset_check_evaluations()}
    assert results[0].success and checks[RECONCILE_CHECK]
    assert sum(c["read"] for c in read_ledger(home)["a.csv"]["days"].values()) == 3_000


def test_one_content_under_two_names_at_once_is_stored_once(state, tmp_path, monkeypatch):
    home = Home(tmp_path / "home").create()
    landing_of(home, {"x.csv": 40_000})
    shutil.copyfile(home.incoming / "x.csv", home.incoming / "y.csv")
    real_lookup = ingestion.original_of

    def slow_lookup(*args):  # widens the window between "is it new?" and "it is stored"
        found = real_lookup(*args)
        time.sleep(1.0)
        return found

    monkeypatch.setattr(ingestion, "original_of", slow_lookup)
    start = threading.Barrier(2)

    def ingest(name: str):
        start.wait()
        return ingest_pending(home, TR, {name})

    threads = [in_thread(ingest, name) for name in ("x.csv", "y.csv")]
    for thread, _ in threads:
        thread.join(timeout=120)
    outcomes = [outcome for _, result in threads for outcome in result[0]]
    assert Counter(o.status for o in outcomes) == Counter(["ingested", "duplicate"])
    ledger = read_ledger(home)
    original = next(o.name for o in outcomes if o.status == "ingested")
    copy = ({"x.csv", "y.csv"} - {original}).pop()
    assert ledger[copy]["duplicate_of"] == original and ledger[copy]["days"] == {}
    for day, counts in ledger[original]["days"].items():
        assert stored_rows(home, day) == counts["stored"]
    assert sum(c["read"] for c in ledger[original]["days"].values()) == 40_000


@pytest.fixture(scope="module")
def small_landing(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A landing folder (files over three days, bad records, a duplicate, a rejected file) and
    the contents of a clean run of it with the ledger in the home."""
    root = tmp_path_factory.mktemp("shared")
    landing = crash_landing(root / "landing", rows_per_file=60_000)
    reference = landed_home(root / "reference", landing)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(STATE_URL_ENV, raising=False)
        ingest_pending(reference, TR)
        return root, landing, contents(reference)


def test_two_workers_at_once_end_as_one_clean_run(state, small_landing):
    root, landing, reference = small_landing
    home = landed_home(root / f"two-{state}", landing)
    first, second = worker(home), worker(home)
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), outputs
    handled = Counter(part.split("=")[0] for o in outputs for part in o.split()[2:])
    assert set(handled.values()) == {1}, handled  # every file by exactly one of them
    assert_same_as_reference(home, landing, reference)
    assert bool(list(home.ledger.glob("*.json"))) == (state == "home")


def test_a_worker_killed_holding_its_locks_then_a_rerun_ends_as_a_clean_run(state, small_landing):
    root, landing, reference = small_landing
    home = landed_home(root / f"killed-{state}", landing)
    process = worker(home)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(random.Random(state).uniform(0.2, 0.8))
    process.send_signal(signal.SIGKILL)
    process.wait()
    rerun = worker(home)  # would wait forever for a lock the dead worker held
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    assert_same_as_reference(home, landing, reference)


def test_a_connection_dropped_by_postgres_is_made_again(tmp_path, monkeypatch):
    problem = postgres_problem()
    need(problem is None, problem or "")
    monkeypatch.setenv(STATE_URL_ENV, POSTGRES_URL)
    home = Home(tmp_path / "home")
    write_entry(home, {"file": "a.csv", "source": source_id("a.csv"), "days": {}})
    (backend,) = ledger._query(POSTGRES_URL, "SELECT pg_backend_pid()")[0]
    with psycopg2.connect(POSTGRES_URL) as other, other.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (backend,))  # as a server restart does
    assert set(read_ledger(home)) == {"a.csv"}
    assert ledger._query(POSTGRES_URL, "SELECT pg_backend_pid()")[0][0] != backend
    ledger._query(POSTGRES_URL, f"DELETE FROM {TABLE} WHERE home = %s", (str(home.root),))
