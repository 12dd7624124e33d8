"""The midnight contract end to end: data split at arbitrary points into files of every header
variant, fed in shuffled order over several runs, gives daily reports whose union equals the
incidents computed over all the data at once — each incident exactly once."""

import json
import random
from decimal import Decimal
from pathlib import Path

import pytest

from alert_pipeline.generate import generate_logs
from alert_pipeline.home import Home
from alert_pipeline.runner import run_pipeline
from alert_pipeline.schema import COLUMNS
from alert_pipeline_tests.helpers import one_shot, read_records, reported_incidents, write_split


@pytest.mark.parametrize("seed", [11, 29])
def test_shuffled_arrival_gives_the_one_shot_incidents(tmp_path: Path, seed: int) -> None:
    generated = generate_logs(tmp_path / "gen", rows=4000, days=3, seed=seed, one_file="all.csv")
    records = read_records(generated.files[0])
    expected = one_shot(records)
    assert expected, "the generator plants bursts"

    rng = random.Random(seed)
    rng.shuffle(records)
    records.sort(key=lambda r: Decimal(r[COLUMNS.index("date")]) + Decimal(rng.random() * 30))
    staging = tmp_path / "staging"
    staging.mkdir()
    files = write_split(records, staging, rng)
    rng.shuffle(files)
    home = tmp_path / "home"
    (home / "incoming").mkdir(parents=True)
    for batch in (files[:3], files[3:5], files[5:]):
        for path in batch:
            path.rename(home / "incoming" / path.name)
        run_pipeline(Home(home))

    reported = reported_incidents(home)
    assert len(reported) == len(set(reported)), "an incident was reported twice"
    assert set(reported) == expected
    stored = sum(
        json.loads(p.read_text())["records"]["stored"]
        for p in home.glob("reports/*/alert_report.json")
    )
    assert stored == len(records)
