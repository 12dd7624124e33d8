"""The landing-folder sensor and the daily schedule through `evaluate_tick`, with chained cursors
on a temp folder, executing the runs they request."""

import datetime as dt
import json
import logging
import os
import pickle
import random
import time
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    BackfillPolicy,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    EventLogEntry,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.utils import make_new_run_id

from alert_pipeline.definitions import defs
from alert_pipeline.executors import EXECUTOR_ENV
from alert_pipeline.home import Home
from alert_pipeline.ingestion import ingest_pending
from alert_pipeline.partitions import backfill_policy, days_per_run, range_tags
from alert_pipeline.resources import AlertHome
from alert_pipeline.runs import (
    INPUTS,
    LAUNCHED_BY,
    NO_LOCK_GRACE_SECONDS,
    Attempts,
    RunHistory,
    holding_run_lock,
    run_history,
)
from alert_pipeline.sensors import (
    HISTORY,
    MAX_ALERT_WAIT,
    MAX_FILES_PER_TICK,
    RETRY_SECONDS,
    LandingCursor,
    plan_alerts,
    plan_tick,
)
from alert_pipeline_tests.helpers import (
    epoch,
    one_shot,
    read_records,
    record,
    reported_incidents,
    write_csv,
    write_split,
)

SENSOR = defs.resolve_sensor_def("landing_folder_sensor")
SCHEDULE = defs.resolve_schedule_def("daily_alerts_schedule")
REPOSITORY = defs.get_repository_def()


class Landing:
    """A temp home plus the sensor's chained cursor, executing the runs each tick requests.
    `location`: the home's, when it is not the local folder `root` (an `s3://` home)."""

    def __init__(self, root: Path, instance: DagsterInstance, location: str = "") -> None:
        self.root = root
        self.location = location or str(root)
        self.incoming = root / "incoming"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.instance = instance
        self.cursor: str | None = None
        self.resource = AlertHome(path=self.location, settle_seconds=0)

    def tick(self):
        with build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"alert_home": self.resource},
            definitions=defs,
        ) as context:
            result = SENSOR.evaluate_tick(context)
        self.cursor = result.cursor
        return result

    def schedule_tick(self, moment: dt.datetime):
        with build_schedule_context(
            instance=self.instance,
            scheduled_execution_time=moment,
            resources={"alert_home": self.resource},
            repository_def=REPOSITORY,
        ) as context:
            return SCHEDULE.evaluate_tick(context)

    def execute(self, request) -> None:
        job = defs.resolve_job_def(request.job_name)
        run_config = dict(request.run_config or {})
        run_config["resources"] = {
            name: {"config": {"path": self.location}} for name in ("alert_home", "io_manager")
        }
        result = job.execute_in_process(
            run_config=run_config,
            instance=self.instance,
            tags=request.tags,
            partition_key=request.partition_key,
        )
        assert result.success

    def settle(self, max_ticks: int = 30) -> list:
        """Tick and execute until the sensor asks for nothing more; return every request."""
        requested = []
        for _ in range(max_ticks):
            result = self.tick()
            if not result.run_requests and not json.loads(self.cursor)["waiting"]:
                return requested
            for request in result.run_requests:
                requested.append(request)
                self.execute(request)
        raise AssertionError("the sensor did not settle")

    def report(self, day: str) -> dict:
        return json.loads((self.root / "reports" / day / "alert_report.json").read_text())


@pytest.fixture
def landing(tmp_path: Path):
    with instance_for_test() as instance:  # persistent: schedules need it
        yield Landing(tmp_path, instance)


def day_records(day: str, n: int = 3, start: float = 3600) -> list[list[str]]:
    return [record(date=epoch(day, start + i)) for i in range(n)]


def alerts_ranges(requests) -> list[tuple[str, str]]:
    return [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
        if r.job_name == "daily_alerts_job"
    ]


def ingested_files(requests) -> list[str]:
    return [
        name
        for r in requests
        if r.job_name == "ingest_job"
        for name in r.run_config["ops"]["ingest_landing_files"]["config"]["files"]
    ]


def test_new_file_waits_one_tick_then_is_ingested_then_its_days_refreshed(landing) -> None:
    write_csv(landing.incoming / "a.csv", day_records("2021-09-10"))
    assert landing.tick().run_requests == []  # first tick: starts to settle
    second = landing.tick().run_requests
    assert ingested_files(second) == ["a.csv"]
    assert second[0].run_key.startswith("ingest:")
    landing.execute(second[0])
    # The ingestion says which days it wrote: the UI shows the partition materialized.
    ingested = landing.instance.get_latest_materialization_event(AssetKey("validated_logs"))
    assert ingested.asset_materialization.partition == "2021-09-10"
    assert ingested.asset_materialization.metadata["records_stored"].value == 3
    # The file names handed to the ingestion's steps are kept in the home, not the instance.
    [step_output] = (landing.root / "dagster" / "storage").glob("*/ingest_landing_files/result/*")
    assert pickle.loads(step_output.read_bytes()) == "a.csv"
    third = landing.tick().run_requests
    assert alerts_ranges(third) == [("2021-09-10", "2021-09-10")]
    landing.execute(third[0])
    assert landing.report("2021-09-10")["records"]["stored"] == 3
    # Unchanged files: nothing more to do, tick after tick.
    for _ in range(3):
        result = landing.tick()
        assert result.run_requests == []
        assert result.skip_message == "nothing new, no stale day"


def test_a_growing_file_is_not_read_until_it_stops_growing(landing) -> None:
    path = write_csv(landing.incoming / "growing.csv", day_records("2021-09-10", 2))
    landing.tick()
    for more in range(3):
        with open(path, "a") as handle:
            handle.write(",".join(record(date=epoch("2021-09-10", 7200 + more))) + "\n")
        assert landing.tick().run_requests == []
    requests = landing.settle()
    assert ingested_files(requests) == ["growing.csv"]
    assert landing.report("2021-09-10")["records"]["stored"] == 5


def test_part_file_is_ignored_until_renamed(landing) -> None:
    part = write_csv(landing.incoming / "upload.csv.part", day_records("2021-09-10"))
    assert landing.settle() == []
    part.rename(landing.incoming / "upload.csv")
    assert ingested_files(landing.settle()) == ["upload.csv"]


def test_redelivered_identical_file_adds_nothing(landing) -> None:
    original = write_csv(landing.incoming / "a.csv", day_records("2021-09-10"))
    landing.settle()
    (landing.incoming / "a-copy.csv").write_bytes(original.read_bytes())
    os.utime(original, ns=(1, 1_000_000_000))  # and the original touched
    requests = landing.settle()
    assert sorted(ingested_files(requests)) == ["a-copy.csv", "a.csv"]
    assert alerts_ranges(requests) == []  # no day changed
    assert landing.report("2021-09-10")["records"]["stored"] == 3


def test_corrected_file_replaces_its_previous_version(landing) -> None:
    path = write_csv(landing.incoming / "a.csv", day_records("2021-09-10", 4))
    first = landing.settle()
    write_csv(path, day_records("2021-09-11", 2))  # same name, new content, another day
    second = landing.settle()
    assert ingested_files(second) == ["a.csv"]
    assert second[0].run_key != first[0].run_key  # the run key carries the file version
    assert alerts_ranges(second) == [("2021-09-10", "2021-09-11")]
    assert landing.report("2021-09-10")["records"]["stored"] == 0
    assert landing.report("2021-09-11")["records"]["stored"] == 2


def test_a_file_spanning_three_days_refreshes_all_three_in_one_run(landing) -> None:
    records = [record(date=epoch(day, 100)) for day in ("2021-09-10", "2021-09-11", "2021-09-12")]
    write_csv(landing.incoming / "span.csv", records)
    requests = landing.settle()
    assert alerts_ranges(requests) == [("2021-09-10", "2021-09-12")]
    for day in ("2021-09-10", "2021-09-11", "2021-09-12"):
        assert landing.report(day)["records"]["stored"] == 1


def test_unreadable_file_is_quarantined_once_and_not_retried(landing) -> None:
    (landing.incoming / "broken.csv.gz").write_bytes(b"not gzip at all")
    write_csv(landing.incoming / "good.csv", day_records("2021-09-10"))
    requests = landing.settle()
    assert sorted(ingested_files(requests)) == ["broken.csv.gz", "good.csv"]
    reason = landing.root / "quarantine" / "files" / "broken.csv.gz.reason.txt"
    assert reason.read_text() == "cannot read it: Not a gzipped file (b'no')\n"
    assert not (landing.incoming / "broken.csv.gz").exists()
    assert landing.settle() == []


def test_a_late_file_refreshes_its_old_day_and_the_neighbour_sharing_a_burst(landing) -> None:
    # Day 2 arrives first: 5 fatal events just after midnight, no incident on their own.
    write_csv(
        landing.incoming / "day2.csv", [record(date=epoch("2021-09-11", 3 + i)) for i in range(5)]
    )
    landing.settle()
    assert landing.report("2021-09-11")["incidents"] == []
    # Day 1 arrives late with 6 events at 23:59:55: one burst, reported by day 2.
    write_csv(
        landing.incoming / "day1.csv",
        [record(date=epoch("2021-09-10", 86_395 + i * 0.5)) for i in range(6)],
    )
    requests = landing.settle()
    assert alerts_ranges(requests) == [("2021-09-10", "2021-09-11")]
    assert landing.report("2021-09-10")["incidents"] == []
    rules = {i["rule"] for i in landing.report("2021-09-11")["incidents"]}
    assert rules == {"fatal_errors_per_minute", "fatal_errors_per_bundle_per_hour"}


def test_five_thousand_small_files_are_drained_over_several_ticks() -> None:
    files = {f"f{n:05d}.csv": [10, n, n] for n in range(5000)}
    ledger: dict[str, dict] = {}
    cursor, batches, now = None, [], 0.0
    for _ in range(20):
        plan = plan_tick(files, ledger, cursor, {}, RunHistory(), now)
        cursor = plan.cursor
        for request in plan.requests:
            if request.job_name == "ingest_job":
                batches.append(request.files)
                ledger |= {name: {"version": files[name], "days": {}} for name in request.files}
    assert all(len(b) <= MAX_FILES_PER_TICK for b in batches)
    assert len(batches) == 5000 // MAX_FILES_PER_TICK
    drained = [name for b in batches for name in b]
    assert sorted(drained) == sorted(files) and len(drained) == len(set(drained))
    assert cursor.waiting == {}


def test_cursor_round_trips() -> None:
    cursor = LandingCursor(waiting={"a": [1, 2, 3]}, undated="x", stale_since=12.5)
    assert LandingCursor.load(cursor.dump()) == cursor
    assert LandingCursor.load(None) is None


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (dt.datetime(2024, 3, 1, 0, 30, tzinfo=dt.UTC), "2024-02-29"),
        (dt.datetime(2024, 1, 1, 0, 30, tzinfo=dt.UTC), "2023-12-31"),
        # 23:30 on the 10th in New York is 03:30 UTC on the 11th: yesterday in UTC is the 10th.
        (
            dt.datetime(2021, 9, 10, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4))),
            "2021-09-10",
        ),
    ],
)
def test_schedule_targets_yesterday_in_utc(landing, moment: dt.datetime, expected: str) -> None:
    result = landing.schedule_tick(moment)
    (request,) = result.run_requests
    assert request.partition_key == expected
    assert request.run_key == f"daily:{expected}"


def test_schedule_skips_days_before_the_first_partition(landing) -> None:
    result = landing.schedule_tick(dt.datetime(2020, 6, 1, 0, 30, tzinfo=dt.UTC))
    assert not result.run_requests
    assert "before the first partition" in result.skip_message


def test_schedule_also_finishes_every_stale_day(landing) -> None:
    write_csv(landing.incoming / "a.csv", day_records("2021-09-10") + day_records("2021-09-12"))
    ingest_pending(Home(landing.root), AlertHome(path=str(landing.root)).time_range())
    result = landing.schedule_tick(dt.datetime(2021, 9, 12, 0, 30, tzinfo=dt.UTC))
    assert alerts_ranges(result.run_requests) == [
        ("2021-09-10", "2021-09-10"),
        ("2021-09-12", "2021-09-12"),
    ]
    assert [r.partition_key for r in result.run_requests if r.partition_key] == ["2021-09-11"]
    assert {r.tags[LAUNCHED_BY] for r in result.run_requests} == {"schedule"}


@pytest.mark.parametrize("seed", [5])
def test_shuffled_arrival_through_the_sensor_equals_one_shot(landing, tmp_path, seed) -> None:
    from alert_pipeline.generate import generate_logs

    generated = generate_logs(tmp_path / "gen", rows=3000, days=3, seed=seed, one_file="all.csv")
    records = read_records(generated.files[0])
    expected = one_shot(records)
    rng = random.Random(seed)
    staging = tmp_path / "staging"
    staging.mkdir()
    files = write_split(records, staging, rng)
    rng.shuffle(files)
    for batch in (files[:4], files[4:]):
        for path in batch:
            path.rename(landing.incoming / path.name)
        landing.settle()
    reported = reported_incidents(landing.root)
    assert len(reported) == len(set(reported))
    assert set(reported) == expected


# --- self-healing: state, not events ----------------------------------------------------------


def ingest_without_materializing(landing: Landing, *days: str) -> None:
    """What a run killed between the ledger write and the materialization leaves."""
    write_csv(landing.incoming / "a.csv", [r for day in days for r in day_records(day)])
    ingest_pending(Home(landing.root), landing.resource.time_range())


def started_run(landing: Landing, first: str, last: str, ago: float = 0.0) -> DagsterRun:
    """A run of the sensor's that started `ago` seconds ago (its RUN_START event)."""
    run = DagsterRun(
        job_name="daily_alerts_job",
        run_id=make_new_run_id(),
        status=DagsterRunStatus.NOT_STARTED,
        tags={LAUNCHED_BY: "sensor", INPUTS: "i", **range_tags(first, last)},
    )
    landing.instance.add_run(run)
    started = DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name)
    landing.instance.handle_new_event(
        EventLogEntry(
            error_info=None,
            level=logging.DEBUG,
            user_message="",
            run_id=run.run_id,
            timestamp=time.time() - ago,
            dagster_event=started,
        )
    )
    return run


def test_the_first_tick_finishes_what_a_killed_run_left_undone(landing) -> None:
    ingest_without_materializing(landing, "2021-09-10", "2021-09-11")
    first = landing.tick()  # no cursor: a fresh daemon, or a reset sensor
    assert alerts_ranges(first.run_requests) == [("2021-09-10", "2021-09-11")]
    landing.execute(first.run_requests[0])
    assert landing.report("2021-09-10")["records"]["stored"] == 3
    assert landing.tick().run_requests == []


def test_a_started_run_whose_process_is_gone_is_failed_and_its_days_done_again(landing) -> None:
    ingest_without_materializing(landing, "2021-09-10")
    orphan = started_run(landing, "2021-09-10", "2021-09-10")
    lock = landing.root / ".runs" / f"{orphan.run_id}.lock"
    lock.parent.mkdir()
    lock.touch()  # taken by the run's process, released when it was killed

    result = landing.tick()

    assert landing.instance.get_run_by_id(orphan.run_id).status == DagsterRunStatus.FAILURE
    (request,) = result.run_requests
    assert alerts_ranges([request]) == [("2021-09-10", "2021-09-10")]
    landing.execute(request)
    assert landing.report("2021-09-10")["records"]["stored"] == 3
    landing.tick()
    assert not lock.exists(), "the lock of a finished run is removed"


def test_a_started_run_still_holding_its_lock_is_left_alone_and_waited_for(landing) -> None:
    ingest_without_materializing(landing, "2021-09-10")
    alive = started_run(landing, "2021-09-10", "2021-09-10")
    with holding_run_lock(Home(landing.root), alive.run_id):
        result = landing.tick()
    assert landing.instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED
    assert result.run_requests == []
    assert result.skip_message == f"1 stale days wait for run {alive.run_id}"


def test_a_run_that_released_its_lock_on_finishing_is_not_taken_for_a_dead_one(landing) -> None:
    """Between the end of a run's work (its lock released) and Dagster recording the run's end,
    the run is STARTED with a free lock: a tick then must leave it alone."""
    ingest_without_materializing(landing, "2021-09-10")
    ending = started_run(landing, "2021-09-10", "2021-09-10")
    with holding_run_lock(Home(landing.root), ending.run_id):
        pass
    landing.tick()
    assert landing.instance.get_run_by_id(ending.run_id).status == DagsterRunStatus.STARTED


def test_a_run_of_ours_that_died_before_taking_its_lock_is_failed_after_a_grace(landing) -> None:
    ingest_without_materializing(landing, "2021-09-10")
    young = started_run(landing, "2021-09-10", "2021-09-10", ago=10)
    old = started_run(landing, "2021-09-10", "2021-09-10", ago=NO_LOCK_GRACE_SECONDS + 10)
    landing.tick()
    assert landing.instance.get_run_by_id(young.run_id).status == DagsterRunStatus.STARTED
    assert landing.instance.get_run_by_id(old.run_id).status == DagsterRunStatus.FAILURE


def test_run_history_counts_failures_per_inputs_and_busy_runs(landing) -> None:
    def add(status: DagsterRunStatus, inputs: str, job: str = "daily_alerts_job") -> str:
        run_id = make_new_run_id()
        tags = {LAUNCHED_BY: "sensor", INPUTS: inputs}
        landing.instance.add_run(DagsterRun(job, run_id=run_id, status=status, tags=tags))
        return run_id

    first, last = add(DagsterRunStatus.FAILURE, "a"), add(DagsterRunStatus.CANCELED, "a")
    add(DagsterRunStatus.FAILURE, "b")
    add(DagsterRunStatus.SUCCESS, "c")
    started = add(DagsterRunStatus.STARTED, "d", job="ingest_job")
    history = run_history(landing.instance, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert {k: a.failed for k, a in history.attempts.items()} == {"a": 2, "b": 1}
    assert history.attempts["a"].last_run_id in (first, last)
    assert history.busy == {"ingest_job": started}


STALE = {"2021-09-10": "its report is missing"}


def plan_days(history: RunHistory, now: float, states: dict | None = None, stale=STALE):
    return plan_alerts(stale, states or {"2021-09-10": "s1"}, history, now)


def test_a_failed_run_is_retried_at_once_then_later_then_no_more() -> None:
    [request], _ = plan_days(RunHistory(), 1000.0)
    assert request.run_key.endswith(":0")

    def history(failed: int, end: float) -> RunHistory:
        return RunHistory(attempts={request.inputs: Attempts(failed, "r-last", end)})

    [retry], _ = plan_days(history(1, 999.0), 1000.0)
    assert retry.run_key == request.run_key.removesuffix(":0") + ":1"
    waits, notes = plan_days(history(2, 990.0), 1000.0)
    assert waits == [] and "run r-last failed; tried again at" in notes[0]
    [later], _ = plan_days(history(2, 990.0), 990.0 + RETRY_SECONDS)
    assert later.run_key.endswith(":2")
    gave_up, notes = plan_days(history(3, 0.0), 1e9)
    assert gave_up == []
    assert notes == [
        "days 2021-09-10…2021-09-10: 3 runs failed on the same inputs, the last r-last; "
        "not retried until they change or a day has passed"
    ]
    [fresh], _ = plan_days(history(3, 0.0), 1e9, {"2021-09-10": "s2"})  # new data
    assert fresh.run_key.endswith(":0") and fresh.inputs != request.inputs
    # Stale for another reason (a dead letter found since its run): asked for again, under a
    # new key; failures still count on the data.
    [again], _ = plan_days(RunHistory(), 1000.0, stale={"2021-09-10": "a dead letter since"})
    assert again.run_key != request.run_key and again.inputs == request.inputs
    assert plan_days(history(3, 0.0), 1e9, stale={"2021-09-10": "a dead letter since"})[0] == []
    # A day later the failures are out of the history: a new try, under a key never used (Dagster
    # would skip the first one's key).
    [next_day], _ = plan_days(RunHistory(), 1000.0 + HISTORY.total_seconds())
    assert next_day.run_key.endswith(":0") and next_day.run_key != request.run_key


def test_stale_days_wait_while_files_are_ingested() -> None:
    ledger = {"old.csv": {"version": [1, 1, 1], "days": {}}}
    landing = {"old.csv": [1, 1, 1], "new.csv": [2, 2, 2]}
    cursor = LandingCursor(waiting={"new.csv": [2, 2, 2]})
    plan = plan_tick(landing, ledger, cursor, STALE, RunHistory(), 0.0)
    assert [r.job_name for r in plan.requests] == ["ingest_job"]
    assert plan.requests[0].files == ("new.csv",)
    assert plan.notes == ["1 stale days wait for the ingestion"]
    busy = RunHistory(busy={"ingest_job": "r-1"})
    plan = plan_tick(landing, ledger, cursor, STALE, busy, 0.0)
    assert plan.requests == []
    assert plan.notes == [
        "1 files wait for ingestion run r-1",
        "1 stale days wait for run r-1",
    ]


def test_a_steady_stream_of_files_holds_stale_days_back_at_most_max_alert_wait() -> None:
    """A file settles on every tick and each ingestion run takes a tick, so one is always asked
    for or under way: the stale day's run goes beside them once the day has waited
    MAX_ALERT_WAIT, and the next wait starts after that run is asked for."""
    interval, wait = 30.0, MAX_ALERT_WAIT.total_seconds()
    landing: dict[str, list[int]] = {}
    ledger: dict[str, dict] = {}
    cursor, alerts, keys = None, [], set()
    for tick in range(36):
        now = tick * interval
        landing[f"f{tick}.csv"] = [1, tick, tick]
        history = RunHistory(busy={"ingest_job": "r-busy"}) if tick % 2 else RunHistory()
        plan = plan_tick(landing, ledger, cursor, STALE, history, now)
        cursor = LandingCursor.load(plan.cursor.dump())
        jobs = [r.job_name for r in plan.requests]
        for request in plan.requests:
            if request.job_name == "daily_alerts_job":
                alerts.append((now, jobs, history.busy))
                keys.add(request.run_key)
            for name in request.files:
                counts = {"read": 1, "stored": 1, "quarantined": 0}
                ledger[name] = {
                    "version": landing[name],
                    "sha256": name,
                    "days": {"2021-09-10": counts},
                }
    # At once on the first tick (no file has settled yet), then a tick after each wait begins.
    assert [at for at, _, _ in alerts] == [0.0] + [n * (wait + interval) for n in (1, 2, 3)]
    assert alerts[1][1:] == (["daily_alerts_job"], {"ingest_job": "r-busy"})  # beside a busy one
    assert alerts[2][1:] == (["ingest_job", "daily_alerts_job"], {})  # beside a new one
    assert len(keys) == 4


def test_the_wait_for_ingestion_is_kept_in_the_cursor_and_ends_with_the_stale_days() -> None:
    ledger = {"old.csv": {"version": [1, 1, 1], "days": {}}}
    landing = {"old.csv": [1, 1, 1], "new.csv": [2, 2, 2]}
    earlier = LandingCursor.load(json.dumps({"waiting": {"new.csv": [2, 2, 2]}, "undated": ""}))
    assert earlier.stale_since == 0.0  # a cursor written before the wait was kept
    future = LandingCursor(earlier.waiting, stale_since=1e9)  # the clock stepped back since
    assert plan_tick(landing, ledger, future, STALE, RunHistory(), 50.0).cursor.stale_since == 50
    waiting = plan_tick(landing, ledger, earlier, STALE, RunHistory(), 100.0)
    assert waiting.cursor.stale_since == 100.0
    late = 100.0 + MAX_ALERT_WAIT.total_seconds()
    alerts_busy = RunHistory(busy={"daily_alerts_job": "r-2"})
    overdue = plan_tick(landing, ledger, waiting.cursor, STALE, alerts_busy, late)
    assert [r.job_name for r in overdue.requests] == ["ingest_job"]  # an alerts run is waited for
    assert overdue.cursor.stale_since == 100.0
    assert (
        plan_tick(landing, ledger, overdue.cursor, {}, RunHistory(), late).cursor.stale_since == 0
    )


def test_with_workers_each_stale_day_is_its_own_run(monkeypatch) -> None:
    stale = dict.fromkeys(["2021-09-10", "2021-09-11", "2021-09-12", "2021-09-14"], "missing")
    states = dict.fromkeys(stale, "s1")
    one_machine, _ = plan_alerts(stale, states, RunHistory(), 0.0, days_per_run())
    assert [r.days for r in one_machine] == [("2021-09-10", "2021-09-12"), ("2021-09-14",) * 2]
    assert backfill_policy() == BackfillPolicy.single_run()
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    spread, _ = plan_alerts(stale, states, RunHistory(), 0.0, days_per_run())
    assert [r.days for r in spread] == [(day, day) for day in stale]
    assert len({r.run_key for r in spread}) == len(stale)
    assert backfill_policy() == BackfillPolicy.multi_run(1)
