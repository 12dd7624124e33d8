"""The synthetic log generator: exact counts, determinism, real-data shapes and planted bursts."""

import csv
import datetime
import gzip
import io
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alert_pipeline import generate
from alert_pipeline.generate import GeneratedLogs, generate_logs
from alert_pipeline.schema import COLUMNS
from alert_pipeline.synthetic_population import FATAL_SHARE

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample_logs.csv"
REAL_SAMPLES = REPO.parent / "shared" / "real-samples"
SAMPLE_ARGS = {"rows": 8_000, "days": 3, "seed": 7, "header": "names", "one_file": SAMPLE.name}

COL = {name: i for i, name in enumerate(COLUMNS)}
FATAL = {"error", "fatal"}
UTC = datetime.UTC
SDK_FORMATS = {
    "DD/MM/YYYY HH:MM:SS": "%d/%m/%Y %H:%M:%S",
    "DD.MM.YYYY HH:MM:SS": "%d.%m.%Y %H:%M:%S",
    "DD/MM/YYYY hh:mm:ss AM": "%d/%m/%Y %I:%M:%S %p",
    "MM/DD/YYYY HH:MM:SS": "%m/%d/%Y %H:%M:%S",
}
MAX_CLOCK_SKEW_S = 8 * 3600 + 300 + 5  # wrong zone + minutes off + send delay

# Value shapes, checked against the real samples too so they stay anchored to real data.
SHAPES = {
    "error_code": r"-?\d+",
    "log_location": r"(/\w+)+/\d+",
    "mode": r"MobileSDK",
    "graphics": r"OpenGLES[23]|Vulkan",
    "session_id": r"\d+\.\d",
    "sdkv": r"\d+\.\d+\.\d+",
    "test_mode": r"True|False",
    "gdpr": r"True|False",
    "ccpa": r"True|False",
    "publisher_id": r"[0-9a-f]{24}",
    "game_id": r"[0-9a-f]{24}",
    "bundle_id": r"com(\.\w+)+",
    "appv": r"\d+\.\d+",
    "language": r"[a-z]{2}",
    "os": r"Android OS [\d.]+ / API-\d+ \(\S+\)",
    "adv_id": r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
    "country_code": r"[A-Z]{2}",
}


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("ascii")


def read_records(path: Path, header: bool = True) -> list[list[str]]:
    """Parse with a real CSV reader: quoted messages hold newlines, so lines are not records."""
    records = list(csv.reader(io.StringIO(read_text(path), newline="")))
    return records[1:] if header else records


def micros(record: list[str]) -> int:
    sec, usec = record[COL["date"]].split(".")
    return int(sec) * 1_000_000 + int(usec)


def utc_day(us: int) -> datetime.date:
    return datetime.datetime.fromtimestamp(us // 1_000_000, UTC).date()


def is_fatal(record: list[str]) -> bool:
    return record[COL["severity"]].strip().lower() in FATAL


def breaches(times_us: list[int], window_s: int) -> list[tuple[int, int]]:
    """Incidents by the rule in docs: 11 events with first and last less than W apart."""
    t = np.sort(np.asarray(times_us, dtype=np.int64))
    window = window_s * 1_000_000
    out: list[tuple[int, int]] = []
    if len(t) <= 10:
        return out
    for i in np.flatnonzero(t[10:] - t[:-10] < window) + 10:
        if out and t[i] - out[-1][1] < window:
            out[-1] = (out[-1][0], int(t[i]))
        else:
            out.append((int(t[i]), int(t[i])))
    return out


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> GeneratedLogs:
    return generate_logs(tmp_path_factory.mktemp("logs"), 6_000, 3, 11)


@pytest.fixture(scope="module")
def records(logs: GeneratedLogs) -> list[list[str]]:
    return [r for f in logs.files for r in read_records(f)]


def test_per_day_files_and_exact_record_count(logs: GeneratedLogs) -> None:
    assert [f.name for f in logs.files] == [
        "logs_2021-09-10.csv",
        "logs_2021-09-11.csv",
        "logs_2021-09-12.csv",
    ]
    assert sorted(logs.files[0].parent.iterdir()) == logs.files  # no temp files left behind
    assert logs.rows == 6_000
    assert sum(len(read_records(f)) for f in logs.files) == 6_000


def test_every_record_has_24_fields(records: list[list[str]]) -> None:
    assert {len(r) for r in records} == {24}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = generate_logs(tmp_path / "a", 2_000, 2, 5)
    b = generate_logs(tmp_path / "b", 2_000, 2, 5)
    c = generate_logs(tmp_path / "c", 2_000, 2, 6)
    assert a.planted == b.planted
    for fa, fb, fc in zip(a.files, b.files, c.files, strict=True):
        assert fa.read_bytes() == fb.read_bytes()
        assert fa.read_bytes() != fc.read_bytes()


@pytest.mark.parametrize(
    ("header", "first_line"),
    [("names", ",".join(COLUMNS)), ("positional", ",".join(map(str, range(24)))), ("none", None)],
)
def test_header_variants(tmp_path: Path, header: str, first_line: str | None) -> None:
    result = generate_logs(tmp_path, 500, 1, 3, header=header)  # type: ignore[arg-type]
    (path,) = result.files
    text = path.read_text()
    records = read_records(path, header=first_line is not None)
    assert len(records) == 500
    if first_line is None:
        assert re.fullmatch(r"\d{10}\.\d{6}", records[0][COL["date"]])
    else:
        assert text.split("\n", 1)[0] == first_line


def test_gzip_output_holds_the_same_bytes(tmp_path: Path) -> None:
    plain = generate_logs(tmp_path / "plain", 1_500, 2, 4)
    zipped = generate_logs(tmp_path / "gz", 1_500, 2, 4, compress=True)
    assert [f.name for f in zipped.files] == [f.name + ".gz" for f in plain.files]
    for fp, fz in zip(plain.files, zipped.files, strict=True):
        with gzip.open(fz, "rb") as stream:
            assert stream.read() == fp.read_bytes()
    assert (
        zipped.files[0].read_bytes()
        == generate_logs(tmp_path / "gz2", 1_500, 2, 4, compress=True).files[0].read_bytes()
    )


def test_one_file_holds_all_days_in_time_order(tmp_path: Path) -> None:
    result = generate_logs(tmp_path, 3_000, 3, 9, one_file="all.csv", header="positional")
    assert result.files == [tmp_path / "all.csv"]
    records = read_records(result.files[0])
    assert len(records) == 3_000
    days = [utc_day(micros(r)) for r in records]
    assert days == sorted(days)
    assert set(days) == {datetime.date(2021, 9, 10) + datetime.timedelta(days=i) for i in range(3)}


def test_dates_exact_and_each_file_holds_only_its_day(logs: GeneratedLogs) -> None:
    for path in logs.files:
        day = datetime.date.fromisoformat(path.name.removeprefix("logs_").removesuffix(".csv"))
        for record in read_records(path):
            assert re.fullmatch(r"\d{10}\.\d{6}", record[COL["date"]])
            assert utc_day(micros(record)) == day


def test_time_order_has_only_light_local_disorder(logs: GeneratedLogs) -> None:
    for path in logs.files:
        t = np.array([micros(r) for r in read_records(path)])
        descents = np.mean(t[1:] < t[:-1])
        assert 0.005 < descents < 0.05
        # Only neighbours are swapped: nothing is older than the record two places before it.
        assert (np.maximum.accumulate(t)[:-2] <= t[2:]).all()


def test_values_have_the_shapes_of_the_real_data(records: list[list[str]]) -> None:
    for name, pattern in SHAPES.items():
        bad = {r[COL[name]] for r in records if not re.fullmatch(pattern, r[COL[name]])}
        assert not bad, (name, sorted(bad)[:3])
    for name in ("test_mode", "gdpr", "ccpa"):
        assert {r[COL[name]] for r in records} == {"True", "False"}
    assert len({r[COL["bundle_id"]] for r in records}) >= 25
    codes = [int(r[COL["error_code"]]) for r in records]
    assert 0.7 < codes.count(0) / len(codes) < 1.0


def test_shape_patterns_match_the_real_samples() -> None:
    if not REAL_SAMPLES.is_dir():
        pytest.skip(f"real samples not found at {REAL_SAMPLES}")
    real = read_records(REAL_SAMPLES / "all_logs_no_header.csv", header=False)
    real += read_records(REAL_SAMPLES / "example_positional_header.csv")
    for name, pattern in SHAPES.items():
        assert all(re.fullmatch(pattern, r[COL[name]]) for r in real), name


def test_severity_mostly_non_fatal_with_a_fatal_background(
    records: list[list[str]], logs: GeneratedLogs
) -> None:
    severities = {r[COL["severity"]] for r in records}
    assert {"Info", "Warning", "Debug", "Error"} <= severities
    assert severities & {"fatal", "FATAL"}
    planted = sum(b.events for b in logs.planted) / len(records)
    background = sum(map(is_fatal, records)) / len(records) - planted
    assert FATAL_SHARE / 2 < background < FATAL_SHARE * 1.5


def test_sdk_dates_mix_locale_formats_and_follow_the_device_clock(
    records: list[list[str]],
) -> None:
    seen: set[str] = set()
    for record in records:
        t = micros(record) / 1e6
        matches = []
        for name, fmt in SDK_FORMATS.items():
            try:
                local = datetime.datetime.strptime(record[COL["sdk_date"]], fmt)
            except ValueError:
                continue
            if abs(local.replace(tzinfo=UTC).timestamp() - t) <= MAX_CLOCK_SKEW_S:
                matches.append(name)
        assert matches, record[COL["sdk_date"]]
        if len(matches) == 1:
            seen.add(matches[0])
    assert seen == set(SDK_FORMATS)


def test_quoted_multiline_messages_occur(records: list[list[str]], logs: GeneratedLogs) -> None:
    messages = [r[COL["error_message"]] for r in records]
    assert any("\n" in m and '"' in m for m in messages)
    assert any("," in m for m in messages)
    text = read_text(logs.files[0])
    assert '""' in text
    assert text.count("\n") > len(read_records(logs.files[0])) + 1


def test_bursts_planted_every_day_and_across_midnight(logs: GeneratedLogs) -> None:
    kinds = [b.kind for b in logs.planted]
    assert kinds.count("global") == 3
    assert kinds.count("bundle") == 3
    assert kinds.count("midnight") == 1
    for burst in logs.planted:
        assert burst.events > 10
        assert (burst.bundle_id is not None) == (burst.kind == "bundle")
        if burst.kind != "bundle":
            assert burst.end_epoch - burst.start_epoch < 60


def test_midnight_burst_needs_both_days(logs: GeneratedLogs) -> None:
    (burst,) = [b for b in logs.planted if b.kind == "midnight"]
    midnight = datetime.datetime(2021, 9, 11, tzinfo=UTC).timestamp() * 1_000_000
    lo, hi = burst.start_epoch * 1e6, burst.end_epoch * 1e6
    per_day = []
    for path in logs.files[:2]:
        per_day.append([micros(r) for r in read_records(path) if is_fatal(r)])
        in_burst = [t for t in per_day[-1] if lo <= t <= hi]
        assert 1 <= len(in_burst) <= 10
    before, after = per_day
    assert all(t < midnight for t in before) and all(t >= midnight for t in after)
    assert not any(lo <= s <= hi + 60e6 for s, _ in breaches(before, 60))
    assert not any(lo - 60e6 <= s <= hi for s, _ in breaches(after, 60))
    together = [t for t in before + after if lo <= t <= hi]
    assert len(together) >= burst.events > 10
    assert max(together) - min(together) < 60e6
    assert any(lo <= s <= hi for s, _ in breaches(before + after, 60))


def test_sample_file_is_current_and_only_planted_bursts_breach(tmp_path: Path) -> None:
    result = generate_logs(tmp_path, **SAMPLE_ARGS)  # type: ignore[arg-type]
    assert SAMPLE.read_bytes() == result.files[0].read_bytes(), "regenerate data/sample_logs.csv"
    fatal_all: list[int] = []
    fatal_by_bundle: dict[str, list[int]] = defaultdict(list)
    records = read_records(result.files[0])
    assert len(records) == SAMPLE_ARGS["rows"]
    for record in records:
        if is_fatal(record):
            fatal_all.append(micros(record))
            fatal_by_bundle[record[COL["bundle_id"]]].append(micros(record))

    def planted_at(kinds: set[str], start_us: int, bundle: str | None = None) -> bool:
        return any(
            b.kind in kinds
            and b.bundle_id == bundle
            and b.start_epoch * 1e6 <= start_us <= b.end_epoch * 1e6
            for b in result.planted
        )

    incidents = breaches(fatal_all, 60)
    assert len(incidents) == sum(b.kind != "bundle" for b in result.planted)
    assert all(planted_at({"global", "midnight"}, start) for start, _ in incidents)
    per_bundle = [
        (bundle, start)
        for bundle, times in fatal_by_bundle.items()
        for start, _ in breaches(times, 3600)
    ]
    assert len(per_bundle) == sum(b.kind == "bundle" for b in result.planted)
    assert all(planted_at({"bundle"}, start, bundle) for bundle, start in per_bundle)


def test_too_few_rows_plants_fewer_bursts(tmp_path: Path) -> None:
    result = generate_logs(tmp_path, 60, 2, 1)
    assert sum(len(read_records(f)) for f in result.files) == 60
    assert 0 < len(result.planted) < 5
    assert sum(b.events for b in result.planted) <= 30
    assert all(b.events > 10 for b in result.planted)
    empty = generate_logs(tmp_path / "empty", 0, 2, 1)
    assert empty.planted == []
    assert [f.read_text() for f in empty.files] == [",".join(COLUMNS) + "\n"] * 2


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> object:
        yield memoryview(b"partial,")
        raise RuntimeError("disk full")

    monkeypatch.setattr(generate, "_day_chunks", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_logs(tmp_path, 100, 1, 1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rows": -1},
        {"days": 0},
        {"header": "yes"},
        {"one_file": "sub/x.csv"},
        {"start_day": datetime.date(1999, 1, 1)},
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"out": tmp_path, "rows": 10, "days": 1, "seed": 1} | kwargs
    with pytest.raises(ValueError):
        generate_logs(**args)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(0, 400),
    days=st.integers(1, 4),
    seed=st.integers(0, 2**32),
    start=st.dates(datetime.date(2015, 1, 1), datetime.date(2030, 12, 31)),
)
def test_any_size_gives_exact_counts_routed_by_day(
    tmp_path_factory: pytest.TempPathFactory,
    rows: int,
    days: int,
    seed: int,
    start: datetime.date,
) -> None:
    result = generate_logs(tmp_path_factory.mktemp("h"), rows, days, seed, start_day=start)
    assert len(result.files) == days
    total = 0
    for offset, path in enumerate(result.files):
        records = read_records(path)
        total += len(records)
        assert all(utc_day(micros(r)) == start + datetime.timedelta(days=offset) for r in records)
        assert all(len(r) == 24 for r in records)
    assert total == rows
    assert sum(b.events for b in result.planted) <= rows
