"""The daily report: exact JSON shape, deterministic and atomic files, safe Markdown and HTML."""

import datetime as dt
import html
import json
import os
import random
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alert_pipeline.day_report import DayReport, iso_utc, sorted_incidents
from alert_pipeline.report import report_document, report_json, write_report
from alert_pipeline.report_pages import PNG_MAGIC, escape_markdown, render_html, render_markdown
from alert_pipeline.report_plot import plot_fatal_per_minute
from alert_pipeline.rules import MICROS_PER_DAY, Incident, day_start_us
from alert_pipeline.warehouse import fatal_counts_per_minute

DAY = "2021-09-11"
DAY_START = day_start_us(dt.date(2021, 9, 11))
MINUTE = 60_000_000
HOUR = 60 * MINUTE
PER_MINUTE = "fatal_errors_per_minute"
PER_BUNDLE = "fatal_errors_per_bundle_per_hour"
GENERATED = dt.datetime(2021, 9, 12, 3, 0, 0, 123456, tzinfo=dt.UTC)
INJECTION = '<script>alert(1)</script> a|b =HYPERLINK("x")\nnext line'

INCIDENT_KEYS = {
    "incident_id",
    "rule",
    "group",
    "start",
    "end",
    "peak_count",
    "event_count",
    "threshold",
    "window_seconds",
}


def incident(
    rule: str = PER_MINUTE,
    group: str | None = None,
    start_us: int = DAY_START + 10 * HOUR,
    window_us: int = MINUTE,
) -> Incident:
    return Incident(
        rule=rule,
        group_by=None if group is None else "bundle_id",
        group=group,
        start_us=start_us,
        end_us=start_us + window_us,
        peak_count=11,
        event_count=12,
        threshold=10,
        window_us=window_us,
        last_breach_us=start_us,
    )


def day_report(incidents=(), reasons=None, counts=None) -> DayReport:
    if counts is None:
        counts = np.zeros(1440, dtype=np.int64)
        counts[600:605] = [3, 11, 12, 4, 1]
    return DayReport(
        partition=DAY,
        stored=1000,
        quarantined=7,
        incidents=tuple(incidents),
        fatal_per_minute=counts,
        quarantine_reasons=reasons if reasons is not None else {"unparseable date": 7},
    )


def mixed_report() -> DayReport:
    return day_report(
        [
            incident(PER_BUNDLE, "com.b", DAY_START + 5 * HOUR, HOUR),
            incident(PER_MINUTE, None, DAY_START + 5 * HOUR),
            incident(PER_BUNDLE, "com.a", DAY_START + 5 * HOUR, HOUR),
            incident(PER_MINUTE, None, DAY_START + 2 * HOUR),
        ]
    )


def injection_report() -> DayReport:
    return day_report(
        [incident(PER_BUNDLE, INJECTION, DAY_START + HOUR, HOUR)],
        reasons={INJECTION: 3, "a|b": 1},
    )


# --- times -------------------------------------------------------------------------------------


def test_iso_utc_has_microseconds_and_z():
    assert iso_utc(1631357704376562) == "2021-09-11T10:55:04.376562Z"
    assert iso_utc(0) == "1970-01-01T00:00:00.000000Z"
    assert iso_utc(DAY_START) == "2021-09-11T00:00:00.000000Z"
    assert iso_utc(np.int64(1631357704000001)) == "2021-09-11T10:55:04.000001Z"
    assert iso_utc(-1) == "1969-12-31T23:59:59.999999Z"


@given(st.integers(min_value=-(10**15), max_value=4 * 10**15))
def test_iso_utc_is_exact(time_us):
    text = iso_utc(time_us)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert (parsed - epoch) // dt.timedelta(microseconds=1) == time_us


# --- JSON document -----------------------------------------------------------------------------


def test_document_shape_keys_and_types():
    doc = report_document(mixed_report(), generated_at=GENERATED)
    assert list(doc) == [
        "partition",
        "records",
        "incidents",
        "quarantine_reasons",
        "notifications",
        "generated_at",
        "built_from",
    ]
    assert doc["partition"] == DAY
    assert doc["records"] == {"stored": 1000, "quarantined": 7}
    assert all(type(v) is int for v in doc["records"].values())
    assert doc["quarantine_reasons"] == {"unparseable date": 7}
    assert doc["generated_at"] == "2021-09-12T03:00:00.123456Z"
    assert len(doc["incidents"]) == 4
    for item in doc["incidents"]:
        assert set(item) == INCIDENT_KEYS
        assert re.fullmatch(r"[0-9a-f]{16}", item["incident_id"])
        for key in ("start", "end"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", item[key])
        for key in ("peak_count", "event_count", "threshold"):
            assert type(item[key]) is int
        assert type(item["window_seconds"]) is float
        assert isinstance(item["group"], dict)
    assert json.loads(report_json(doc)) == doc


def test_document_values_of_one_incident():
    one = incident(PER_BUNDLE, "com.example.app", 1631357704376562, HOUR)
    report = day_report([one])
    (item,) = report_document(report, generated_at=GENERATED)["incidents"]
    assert item == {
        "incident_id": one.incident_id,
        "rule": PER_BUNDLE,
        "group": {"bundle_id": "com.example.app"},
        "start": "2021-09-11T10:55:04.376562Z",
        "end": "2021-09-11T11:55:04.376562Z",
        "peak_count": 11,
        "event_count": 12,
        "threshold": 10,
        "window_seconds": 3600.0,
    }


def test_ungrouped_incident_has_empty_group():
    doc = report_document(day_report([incident(PER_MINUTE)]), generated_at=GENERATED)
    assert doc["incidents"][0]["group"] == {}
    assert doc["incidents"][0]["window_seconds"] == 60.0


def test_fractional_window_seconds():
    doc = report_document(day_report([incident(window_us=1_500_000)]), generated_at=GENERATED)
    assert doc["incidents"][0]["window_seconds"] == 1.5


def test_incidents_sorted_by_start_then_rule_then_group():
    items = report_document(mixed_report(), generated_at=GENERATED)["incidents"]
    assert [(i["start"][11:13], i["rule"], i["group"]) for i in items] == [
        ("02", PER_MINUTE, {}),
        ("05", PER_BUNDLE, {"bundle_id": "com.a"}),
        ("05", PER_BUNDLE, {"bundle_id": "com.b"}),
        ("05", PER_MINUTE, {}),
    ]


def test_sorted_incidents_does_not_depend_on_input_order():
    incidents = list(mixed_report().incidents) + [incident(PER_BUNDLE, "", DAY_START + 5 * HOUR)]
    expected = sorted_incidents(incidents)
    for seed in range(20):
        shuffled = incidents[:]
        random.Random(seed).shuffle(shuffled)
        assert sorted_incidents(shuffled) == expected
    # No group sorts as "": before any named group of the same rule and start.
    same_start = [incident(PER_BUNDLE, "a"), incident(PER_BUNDLE, None)]
    assert [i.group for i in sorted_incidents(same_start)] == [None, "a"]


def test_generated_at_defaults_to_now_and_must_be_aware():
    before = dt.datetime.now(dt.UTC)
    doc = report_document(day_report())
    stamp = dt.datetime.fromisoformat(doc["generated_at"].replace("Z", "+00:00"))
    assert before <= stamp <= dt.datetime.now(dt.UTC)
    with pytest.raises(ValueError, match="timezone"):
        report_document(day_report(), generated_at=dt.datetime(2021, 9, 12))
    tokyo = dt.datetime(2021, 9, 12, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    assert report_document(day_report(), tokyo)["generated_at"] == "2021-09-12T03:00:00.000000Z"


def test_json_text_is_deterministic_apart_from_generated_at():
    first = report_json(report_document(mixed_report(), generated_at=GENERATED))
    again = report_json(report_document(mixed_report(), generated_at=GENERATED))
    assert first == again
    assert first.endswith("}\n")
    assert '\n  "partition": "2021-09-11",\n' in first  # indent=2, fixed key order


# --- files -------------------------------------------------------------------------------------


def test_write_report_writes_three_files_in_the_day_folder(tmp_path):
    paths = write_report(mixed_report(), tmp_path / "reports", generated_at=GENERATED)
    day_dir = tmp_path / "reports" / DAY
    assert paths == {
        "json": day_dir / "alert_report.json",
        "md": day_dir / "alert_report.md",
        "html": day_dir / "alert_report.html",
    }
    assert sorted(p.name for p in day_dir.iterdir()) == [
        "alert_report.html",
        "alert_report.json",
        "alert_report.md",
    ]
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert doc == report_document(mixed_report(), generated_at=GENERATED)
    assert paths["md"].read_text(encoding="utf-8") == render_markdown(mixed_report())


def test_rewrite_is_idempotent_apart_from_generated_at(tmp_path):
    first = write_report(mixed_report(), tmp_path)
    before = {k: p.read_bytes() for k, p in first.items()}
    second = write_report(mixed_report(), tmp_path, generated_at=GENERATED)
    after = {k: p.read_bytes() for k, p in second.items()}
    assert after["md"] == before["md"]
    assert after["html"] == before["html"]
    old, new = json.loads(before["json"]), json.loads(after["json"])
    assert old.pop("generated_at") != new.pop("generated_at")
    assert old == new
    # Same generated_at: byte-identical JSON too.
    third = write_report(mixed_report(), tmp_path, generated_at=GENERATED)
    assert third["json"].read_bytes() == after["json"]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_report(mixed_report(), tmp_path)
    write_report(injection_report(), tmp_path)
    names = [p.name for p in (tmp_path / DAY).iterdir()]
    assert sorted(names) == ["alert_report.html", "alert_report.json", "alert_report.md"]


def test_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path, monkeypatch):
    paths = write_report(mixed_report(), tmp_path, generated_at=GENERATED)
    old_json = paths["json"].read_bytes()

    def failing_replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("disk full")
        return os.rename(src, dst)

    monkeypatch.setattr("alert_pipeline.atomic.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(day_report(), tmp_path)
    assert paths["json"].read_bytes() == old_json
    assert not [p for p in (tmp_path / DAY).iterdir() if p.name.endswith(".tmp")]


def test_lone_surrogate_does_not_break_the_write(tmp_path):
    # A reason decoded with errors="surrogateescape" must not fail the whole report.
    report = day_report(reasons={"bad\udcffbyte": 1})
    paths = write_report(report, tmp_path, generated_at=GENERATED)
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert doc["quarantine_reasons"] == {"bad\udcffbyte": 1}  # a \\u escape in the file
    assert "bad byte" in paths["md"].read_text(encoding="utf-8")


# --- plot --------------------------------------------------------------------------------------


def test_plot_is_a_small_png():
    png = plot_fatal_per_minute(mixed_report())
    assert png.startswith(PNG_MAGIC)
    assert len(png) < 100_000
    assert plot_fatal_per_minute(mixed_report()) == png  # deterministic, so HTML is too


def test_plot_of_a_busy_day_stays_small():
    counts = np.random.default_rng(1).poisson(40, 1440)
    incidents = [
        incident(PER_BUNDLE, f"com.app{n}", DAY_START + n * 7 * MINUTE, HOUR) for n in range(200)
    ]
    incidents.append(incident(PER_MINUTE, None, DAY_START + 23 * HOUR + 59 * MINUTE, 2 * HOUR))
    png = plot_fatal_per_minute(day_report(incidents, counts=counts))
    assert png.startswith(PNG_MAGIC)
    assert len(png) < 100_000


def test_plot_of_an_empty_day():
    png = plot_fatal_per_minute(day_report(counts=np.zeros(1440, dtype=int)))
    assert png.startswith(PNG_MAGIC)


# --- Markdown and HTML -------------------------------------------------------------------------


def test_markdown_summary_and_table():
    text = render_markdown(mixed_report())
    assert text.startswith("# Alert report 2021-09-11 (UTC)\n")
    assert "1000 records stored, 7 quarantined" in text
    assert "31 fatal events, peak 12 per minute at 10:02 UTC" in text
    assert "**4 incidents**" in text
    assert "fatal\\_errors\\_per\\_bundle\\_per\\_hour: 2, fatal\\_errors\\_per\\_minute: 2" in text
    rows = [line for line in text.splitlines() if line.startswith("| 2021-")]
    assert len(rows) == 4
    assert rows[0].startswith("| 2021-09-11T02:00:00.000000Z | 2021-09-11T02:01:00.000000Z |")
    assert "bundle\\_id: com\\.a" in rows[1]
    assert "unparseable date | 7" in text


def test_markdown_can_embed_the_plot():
    png = plot_fatal_per_minute(mixed_report())
    text = render_markdown(mixed_report(), plot_png=png)
    assert "![Fatal events per minute](data:image/png;base64,iVBORw0KGgo" in text


def test_empty_day_renders():
    report = day_report(reasons={}, counts=np.zeros(1440, dtype=np.int32))
    text = render_markdown(report)
    assert "No incidents." in text
    assert "**0 incidents**" in text
    assert "|" not in text  # no table at all
    page = render_html(report, plot_fatal_per_minute(report))
    assert "<p>No incidents.</p>" in page
    assert "<table>" not in page
    doc = report_document(report, generated_at=GENERATED)
    assert doc["incidents"] == [] and doc["quarantine_reasons"] == {}


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown_escapes_values_from_log_records():
    text = render_markdown(injection_report())
    assert "<script" not in text and "</script" not in text
    assert "&lt;script&gt;" in text
    assert '=HYPERLINK("x")' not in text
    assert '=HYPERLINK\\(\\"x\\"\\)' in text
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    header = table_lines[0]
    assert all(_unescaped_pipes(line) == _unescaped_pipes(header) for line in table_lines[:3])
    reason_lines = table_lines[3:]
    assert all(_unescaped_pipes(line) == 3 for line in reason_lines)
    # The newline in the value did not start a new line: one row per incident, one per reason.
    assert len([line for line in text.splitlines() if line.startswith("| 2021-")]) == 1
    assert "next line" not in [line.strip() for line in text.splitlines()]


def test_markdown_injection_renders_as_text():
    markdown_it = pytest.importorskip("markdown_it")
    rendered = (
        markdown_it.MarkdownIt("commonmark")
        .enable("table")
        .render(render_markdown(injection_report()))
    )
    assert "<script" not in rendered  # the commonmark preset passes raw HTML through
    cells = _table_cells(rendered)
    incident_rows = [row for row in cells if row and row[0].startswith("2021-")]
    assert len(incident_rows) == 1
    (row,) = incident_rows
    assert len(row) == 7
    assert row[3] == "bundle_id: " + INJECTION.replace("\n", " ")
    assert [INJECTION.replace("\n", " "), "3"] in cells
    assert ["a|b", "1"] in cells


class _Cells(HTMLParser):
    """Text of each <td>/<th>, row by row, with entities decoded."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _table_cells(page: str) -> list[list[str]]:
    parser = _Cells()
    parser.feed(page)
    return parser.rows


def test_html_escapes_values_from_log_records():
    report = injection_report()
    page = render_html(report, plot_fatal_per_minute(report))
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "=HYPERLINK(&quot;x&quot;)" in page
    parser = _Cells()
    parser.feed(page)
    assert "script" not in parser.tags
    incident_rows = [row for row in parser.rows if row and row[0].startswith("2021-")]
    assert incident_rows == [
        [
            "2021-09-11T01:00:00.000000Z",
            "2021-09-11T02:00:00.000000Z",
            PER_BUNDLE,
            "bundle_id: " + INJECTION,
            "11",
            "12",
            report.incidents[0].incident_id,
        ]
    ]
    assert [INJECTION, "3"] in parser.rows


def test_html_is_self_contained():
    report = mixed_report()
    png = plot_fatal_per_minute(report)
    page = render_html(report, png)
    assert page.startswith("<!DOCTYPE html>")
    assert 'src="data:image/png;base64,' in page
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(script|link|iframe)\b", page)
    assert "<title>Alert report 2021-09-11 (UTC)</title>" in page


def test_html_requires_a_png():
    with pytest.raises(ValueError, match="PNG"):
        render_html(mixed_report(), b"not a png")


# --- escape_markdown ---------------------------------------------------------------------------


def test_escape_markdown_examples():
    assert escape_markdown("com.example_app") == "com\\.example\\_app"
    assert escape_markdown("a|b") == "a&#124;b"
    assert escape_markdown("<b>&amp;</b>") == "&lt;b&gt;&amp;amp\\;&lt;\\/b&gt;"
    assert escape_markdown("x\r\ny\u2028z\x00") == "x  y z "
    assert escape_markdown("\\*[x](y)`#!+-{}") == "\\\\\\*\\[x\\]\\(y\\)\\`\\#\\!\\+\\-\\{\\}"
    assert escape_markdown("plain café 日本") == "plain café 日本"


def _shown(text: str) -> str:
    """What the reader should see: the text with non-printable characters as spaces."""
    return "".join(c if c == " " or c.isprintable() else " " for c in text)


@given(st.text())
def test_escape_markdown_output_has_no_raw_specials(text):
    out = escape_markdown(text)
    assert not set(out) & {"<", ">", "|", "\n", "\r"}
    assert len(out.splitlines()) <= 1
    # Every backslash escapes ASCII punctuation, and every "&" starts one of our entities.
    assert re.fullmatch(r"(?:[^\\&]|\\[!-/:-@\[-`{-~]|&(?:amp|lt|gt|#124);)*", out)


@given(st.text())
def test_escaped_text_renders_literally_in_a_table_cell(text):
    markdown_it = pytest.importorskip("markdown_it")
    source = f"| a | b |\n|---|---|\n| {escape_markdown(text)} | x |\n"
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(source)
    cells = _table_cells(rendered)
    assert len(cells) == 2
    assert cells[1] == [_shown(text).strip(" \t"), "x"]


# --- validation and helpers --------------------------------------------------------------------


@pytest.mark.parametrize("partition", ["2021-9-11", "../2021-09-11", "2021-09-11/x", "", "today"])
def test_partition_must_be_a_date(partition):
    with pytest.raises(ValueError, match="partition"):
        DayReport(partition, 0, 0, (), np.zeros(1440, dtype=int))


def test_report_rejects_bad_counts_and_foreign_incidents():
    with pytest.raises(ValueError, match="1440"):
        DayReport(DAY, 0, 0, (), np.zeros(1439, dtype=int))
    with pytest.raises(ValueError, match="1440"):
        DayReport(DAY, 0, 0, (), np.zeros(1440))  # floats
    with pytest.raises(ValueError, match="negative"):
        DayReport(DAY, 0, 0, (), np.full(1440, -1))
    with pytest.raises(ValueError, match="stored"):
        DayReport(DAY, -1, 0, (), np.zeros(1440, dtype=int))
    tomorrow = incident(start_us=DAY_START + MICROS_PER_DAY)
    with pytest.raises(ValueError, match="starts on 2021-09-12"):
        DayReport(DAY, 0, 0, (tomorrow,), np.zeros(1440, dtype=int))


def test_report_is_frozen_including_its_data():
    counts = np.zeros(1440, dtype=int)
    reasons = {"bad": 1}
    report = DayReport(DAY, 1, 1, [incident()], counts, reasons)
    counts[0] = 99
    reasons["bad"] = 5
    assert report.fatal_per_minute[0] == 0 and report.quarantine_reasons == {"bad": 1}
    assert isinstance(report.incidents, tuple)
    with pytest.raises(ValueError):
        report.fatal_per_minute[0] = 1
    with pytest.raises(TypeError):
        report.quarantine_reasons["bad"] = 2


def test_fatal_counts_per_minute():
    times = [
        DAY_START - 1,  # the previous day: ignored
        DAY_START,
        DAY_START + MINUTE - 1,
        DAY_START + MINUTE,
        DAY_START + MICROS_PER_DAY - 1,
        DAY_START + MICROS_PER_DAY,  # the next day: ignored
    ]
    counts = fatal_counts_per_minute(np.array(times), DAY)
    assert counts.shape == (1440,)
    assert counts[0] == 2 and counts[1] == 1 and counts[1439] == 1 and counts.sum() == 4
    assert fatal_counts_per_minute([], DAY).sum() == 0


def test_plain_strings_are_escaped_in_html_summary():
    report = day_report(reasons={"<i>x</i>": 1})
    page = render_html(report, plot_fatal_per_minute(report))
    assert "<i>x</i>" not in page and html.escape("<i>x</i>") in page


def test_report_path_cannot_escape_the_reports_dir(tmp_path):
    paths = write_report(day_report(), tmp_path / "r")
    assert all(Path(p).resolve().is_relative_to((tmp_path / "r").resolve()) for p in paths.values())


def test_shading_is_clipped_to_the_day_and_merged():
    from alert_pipeline.report_plot import _shaded_hours

    report = day_report(
        [
            incident(PER_BUNDLE, "a", DAY_START + 1 * HOUR, HOUR),
            incident(PER_BUNDLE, "b", DAY_START + 90 * MINUTE, HOUR),  # overlaps "a"
            incident(PER_BUNDLE, "c", DAY_START + 23 * HOUR, 3 * HOUR),  # runs past midnight
            incident(PER_MINUTE, None, DAY_START + 12 * HOUR),
        ]
    )
    assert _shaded_hours(report, PER_BUNDLE) == [(1.0, 2.5), (23.0, 24.0)]
    # A one-minute incident is drawn a little wider so that it stays visible.
    assert _shaded_hours(report, PER_MINUTE) == [(12.0, 12.1)]
