"""A home in an S3-compatible object store (a real SeaweedFS on 127.0.0.1): `alert-pipeline run
--home s3://…` with only the standard AWS variables set gives what a local home gives; objects
appear whole; the store or the run killed mid-run ends in a clear failure, then a clean re-run."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from dagster import instance_for_test

from alert_pipeline.api import load_logs
from alert_pipeline.errors import PipelineError
from alert_pipeline.generate import generate_logs
from alert_pipeline.home import Home
from alert_pipeline.objects import CACHE_ENV, synced
from alert_pipeline.runner import run_pipeline
from alert_pipeline_tests.helpers import incidents, reports, write_csv
from alert_pipeline_tests.object_store import BUCKET, SeaweedFS
from alert_pipeline_tests.stack import REPO, poll_until
from alert_pipeline_tests.test_bad_input import contents
from alert_pipeline_tests.test_sensors import Landing, alerts_ranges, day_records, ingested_files


def land(store: SeaweedFS, prefix: str, folder: Path, rows: int) -> Home:
    """Generated files (and one that is not CSV at all) in the store's landing folder, and run in a
    local home: the reference."""
    reference = Home(folder / "reference").create()
    for seed in range(3):
        generate_logs(reference.incoming, rows=rows, days=2, seed=seed, one_file=f"part-{seed}.csv")
    (reference.incoming / "garbage.csv").write_bytes(b"\x00\x01binary, not a log\n" * 10)
    for path in sorted(reference.incoming.iterdir()):
        store.upload(path, f"{BUCKET}/{prefix}/incoming/{path.name}")
    run_pipeline(reference)
    return reference


def cli_run(store: SeaweedFS, uri: str, cache: Path) -> subprocess.Popen:
    env = os.environ | store.env() | {CACHE_ENV: str(cache)}
    env.pop("ALERT_PIPELINE_STATE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "alert_pipeline.cli", "run", "--home", uri],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finished(run: subprocess.Popen) -> tuple[int, str, str]:
    out, err = run.communicate(timeout=600)
    return run.returncode, out, err


def home_in(store: SeaweedFS, uri: str, cache: Path, monkeypatch) -> Home:
    """The object home as this process sees it, its cache mirroring every object."""
    for name, value in (store.env() | {CACHE_ENV: str(cache)}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALERT_PIPELINE_STATE_URL", raising=False)
    home = Home(uri)
    synced(home.root)
    return home


def assert_same_results(home: Home, reference: Home) -> None:
    assert contents(home) == contents(reference)
    assert reports(home.reports) == reports(reference.reports)
    assert reports(reference.reports)  # there is something to compare
    assert incidents(home) == incidents(reference)


def test_a_home_in_an_object_store_gives_what_a_local_home_gives(
    seaweedfs: SeaweedFS, tmp_path: Path, monkeypatch
) -> None:
    reference = land(seaweedfs, "whole", tmp_path, 20_000)
    uri = f"s3://{BUCKET}/whole"

    code, out, err = finished(cli_run(seaweedfs, uri, tmp_path / "cache-1"))
    assert code == 3, (out, err)  # done, but garbage.csv added no records
    assert "files: 3 ingested, 1 rejected" in out, out

    keys = seaweedfs.keys(f"{BUCKET}/whole")
    assert not [key for key in keys if "/." in f"/{key}"]  # no temp or hidden objects
    assert "quarantine/files/garbage.csv" in keys and "incoming/garbage.csv" not in keys
    assert {f"incoming/part-{n}.csv" for n in range(3)} <= set(keys)  # landing files stay
    home = home_in(seaweedfs, uri, tmp_path / "cache-2", monkeypatch)  # a machine of its own
    assert_same_results(home, reference)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "notebook"))
    from_store = load_logs(uri, days="2021-09-11", quarantined=True)
    expected = load_logs(reference.root, days="2021-09-11", quarantined=True)
    assert len(from_store.records) > 0
    pd.testing.assert_frame_equal(from_store.records, expected.records)
    pd.testing.assert_frame_equal(from_store.quarantined, expected.quarantined)
    fetched = [p.name for p in (tmp_path / "notebook").rglob("*.parquet")]
    assert fetched and all("2021-09-10" not in str(p) for p in (tmp_path / "notebook").rglob("*"))

    code, out, err = finished(cli_run(seaweedfs, uri, tmp_path / "cache-3"))
    assert code == 0 and "every day is up to date" in out, (out, err)
    assert seaweedfs.keys(f"{BUCKET}/whole") == keys
    assert_same_results(home_in(seaweedfs, uri, tmp_path / "cache-2", monkeypatch), reference)


@pytest.mark.parametrize("killed", ["store", "run"])
def test_killed_mid_run_then_a_clean_rerun(
    seaweedfs: SeaweedFS, tmp_path: Path, monkeypatch, killed: str
) -> None:
    """SIGKILL of the object store (then started again) or of the run's processes while the
    files are being ingested: the run fails saying what failed, no partial object is left, and
    a re-run gives the reference results."""
    prefix = f"killed-{killed}"
    reference = land(seaweedfs, prefix, tmp_path, 300_000)
    uri, cache = f"s3://{BUCKET}/{prefix}", tmp_path / "cache"
    run = cli_run(seaweedfs, uri, cache)

    def ingesting() -> tuple[bool, object]:
        stored = [
            k for k in seaweedfs.keys(f"{BUCKET}/{prefix}") if k.startswith("warehouse/valid")
        ]
        return bool(stored) or run.poll() is not None, stored

    poll_until("the first day part in the store", 120, ingesting, seaweedfs.tail)
    assert run.poll() is None, run.communicate()
    if killed == "store":
        seaweedfs.stop(signal.SIGKILL)
        code, out, err = finished(run)
        seaweedfs.start()
        assert code == 1, (out, err)
        assert f"object store {uri} at {seaweedfs.endpoint}: cannot" in err, err
    else:
        os.killpg(run.pid, signal.SIGKILL)
        finished(run)

    keys = seaweedfs.keys(f"{BUCKET}/{prefix}")
    assert not [key for key in keys if "/." in f"/{key}"]
    code, out, err = finished(cli_run(seaweedfs, uri, cache))
    assert code == 0, (out, err)  # garbage.csv, first in order, was rejected before the kill
    assert_same_results(home_in(seaweedfs, uri, tmp_path / "elsewhere", monkeypatch), reference)


def test_the_sensor_sees_landing_objects_and_their_new_versions(
    seaweedfs: SeaweedFS, tmp_path: Path, monkeypatch
) -> None:
    uri = f"s3://{BUCKET}/sensor"
    home = home_in(seaweedfs, uri, tmp_path / "cache", monkeypatch)

    def land_a(day: str, records: int) -> None:
        written = write_csv(tmp_path / "written" / "a.csv", day_records(day, records))
        seaweedfs.upload(written, f"{BUCKET}/sensor/incoming/a.csv")

    with instance_for_test() as instance:
        landing = Landing(tmp_path / "unused", instance, location=uri)
        land_a("2021-09-10", 4)
        first = landing.settle()
        assert ingested_files(first) == ["a.csv"]
        assert alerts_ranges(first) == [("2021-09-10", "2021-09-10")]
        assert landing.settle() == []  # nothing new: the listing's versions are in the ledger
        land_a("2021-09-11", 2)
        second = landing.settle()
    assert ingested_files(second) == ["a.csv"]
    assert alerts_ranges(second) == [("2021-09-10", "2021-09-11")]
    days = reports(synced(home.reports))
    assert {day: days[day]["records"]["stored"] for day in days} == {
        "2021-09-10": 0,
        "2021-09-11": 2,
    }


def test_a_home_in_an_object_store_is_named_by_its_uri_and_needs_a_bucket(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    home = Home("s3://bucket/some/prefix/")
    assert home.location == "s3://bucket/some/prefix"  # the ledger's and the locks' key
    assert home.root.parent == tmp_path and home.root.name.startswith("bucket-")
    assert Home(tmp_path / "local").location == str(tmp_path / "local")
    with pytest.raises(PipelineError, match="needs a bucket"):
        Home("s3://")
