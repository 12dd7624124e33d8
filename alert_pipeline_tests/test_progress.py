"""Progress: a bar on a terminal (a real pseudo-terminal), plain periodic lines elsewhere (the
CLI's stderr, the Dagster run log), nothing for short work."""

import os
import pty
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance

from alert_pipeline.cli import main
from alert_pipeline.jobs import ingest_job
from alert_pipeline.progress import Progress
from alert_pipeline.resources import AlertHome
from alert_pipeline_tests.helpers import epoch, record, write_csv

REPO = Path(__file__).resolve().parents[1]
DAY = "2021-09-14"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_every_interval_and_when_a_file_is_done_and_never_twice() -> None:
    clock, lines = Clock(), []
    progress = Progress("ingesting", emit=lines.append, every_seconds=10, clock=clock)
    progress.start_file("a.csv", 2_000_000, 1, 2)
    clock.now += 5
    progress.update(500_000, 1000)
    progress.finish_file()
    assert lines == []  # short work says nothing
    progress.start_file("b.csv", 4_000_000, 2, 2)
    clock.now += 5  # 10 s since the start
    progress.update(1_000_000, 1000)
    progress.update(1_000_000, 0)  # not yet 10 s later: nothing
    clock.now += 10
    progress.update(2_000_000, 2000)
    progress.update(2_000_000, 0)
    progress.finish_file()
    progress.finish_file()
    assert lines == [
        "ingesting b.csv: 25 % (1.0 MB of 4.0 MB), file 2 of 2, 200 records/s",
        "ingesting b.csv: 50 % (2.0 MB of 4.0 MB), file 2 of 2, 200 records/s",
        "ingesting b.csv: 100 % (4.0 MB of 4.0 MB), file 2 of 2, 200 records/s",
    ]


def test_a_terminal_gets_one_bar_redrawn_in_place(tmp_path) -> None:
    leader, follower = pty.openpty()
    done = subprocess.Popen(
        [sys.executable, "-m", "alert_pipeline.cli", "generate", "--rows", "200000"]
        + ["--days", "2", "--out", str(tmp_path / "out")],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    while chunk := _read(leader):
        output += chunk
    assert done.wait() == 0
    text = output.decode()
    assert "\r\x1b[K[" in text and "generating logs_2021-09-10.csv: (" in text
    assert "file 2 of 2" in text and "] generating" in text
    assert "\r\n" in text.split("wrote 200000 records")[0][-4:]  # the bar ends its line


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal closed with the process
        return b""


def test_the_cli_and_the_dagster_log_say_how_far_ingestion_is(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALERT_PIPELINE_PROGRESS_SECONDS", "0")
    home = tmp_path / "home"
    write_csv(home / "incoming" / "one.csv", [record(date=epoch(DAY, n)) for n in range(50)])
    assert main(["run", "--home", str(home)]) == 0
    err = capsys.readouterr().err
    assert "ingesting one.csv: 100 % (" in err and "file 1 of 1" in err and "records/s" in err

    write_csv(home / "incoming" / "two.csv", [record(date=epoch(DAY, n)) for n in range(9)])
    with DagsterInstance.ephemeral() as instance:
        result = ingest_job.execute_in_process(
            instance=instance,
            resources={"alert_home": AlertHome(path=str(home), settle_seconds=0)},
        )
        messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(m.startswith("ingesting two.csv: 100 % (") for m in messages), messages
