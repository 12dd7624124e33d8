"""The midnight contract end to end: data split at arbitrary points into files of every header
variant, fed in shuffled order over several runs, gives daily reports whose union equals the
incidents computed over all the data at once — each incident exactly once."""

import csv
import gzip
import io
import json
import random
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from alert_pipeline.cli import run_pipeline
from alert_pipeline.generate import generate_logs
from alert_pipeline.report import iso_utc
from alert_pipeline.rules import RULES, Events
from alert_pipeline.schema import COLUMNS


def read_records(path: Path) -> list[list[str]]:
    """Records of a generated file, parsed independently of the loader (Python's csv module)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        records = [r for r in csv.reader(handle) if r]
    return records[1:] if records and records[0][0] in ("error_code", "0") else records


def one_shot(records: list[list[str]]) -> set[tuple]:
    """Incidents over all records at once, with exact times from the decimal text."""
    position = {name: i for i, name in enumerate(COLUMNS)}
    found = set()
    for rule in RULES:
        fatal = [r for r in records if r[position["severity"]].strip().lower() in rule.severities]
        times = np.array(
            [int(Decimal(r[position["date"]]) * 1_000_000) for r in fatal], dtype=np.int64
        )
        groups = (
            np.array([r[position[rule.group_by]] for r in fatal], dtype=object)
            if rule.group_by
            else None
        )
        for i in rule.detect(Events(times, groups)):
            found.add(
                (
                    i.rule,
                    i.group,
                    iso_utc(i.start_us),
                    iso_utc(i.end_us),
                    i.peak_count,
                    i.event_count,
                )
            )
    return found


def write_split(records: list[list[str]], folder: Path, rng: random.Random) -> list[Path]:
    """Cut the records at random points into files with random header variants and compression."""
    cuts = sorted(rng.sample(range(1, len(records)), 7))
    paths = []
    for n, (start, end) in enumerate(zip([0, *cuts], [*cuts, len(records)], strict=True)):
        variant = rng.choice(["names", "shuffled", "positional", "none"])
        order = list(COLUMNS)
        if variant == "shuffled":
            rng.shuffle(order)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        if variant in ("names", "shuffled"):
            writer.writerow(order)
        elif variant == "positional":
            writer.writerow(range(len(COLUMNS)))
        index = [COLUMNS.index(name) for name in order]
        writer.writerows([r[i] for i in index] for r in records[start:end])
        suffix = ".csv.gz" if rng.random() < 0.3 else ".csv"
        path = folder / f"part-{n:02d}{suffix}"
        data = text.getvalue().encode()
        path.write_bytes(gzip.compress(data, mtime=0) if suffix.endswith(".gz") else data)
        paths.append(path)
    return paths


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
        run_pipeline(home)

    reported = [
        (
            i["rule"],
            i["group"].get("bundle_id"),
            i["start"],
            i["end"],
            i["peak_count"],
            i["event_count"],
        )
        for path in sorted(home.glob("reports/*/alert_report.json"))
        for i in json.loads(path.read_text())["incidents"]
    ]
    assert len(reported) == len(set(reported)), "an incident was reported twice"
    assert set(reported) == expected
    stored = sum(
        json.loads(p.read_text())["records"]["stored"]
        for p in home.glob("reports/*/alert_report.json")
    )
    assert stored == len(records)
