"""The daily alert report: one JSON document, a Markdown summary, an HTML page and a PNG plot.

Pure functions over a `DayReport` (no Dagster here), so the asset only gathers data and writes.
Values that come from log records (group values such as `bundle_id`, quarantine reasons) are
untrusted: Markdown output escapes them with `escape_markdown`, HTML output with `html.escape`.
"""

import base64
import datetime as dt
import html
import io
import json
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from alert_pipeline.atomic import write_atomic
from alert_pipeline.objects import synced_file
from alert_pipeline.rules import MICROS_PER_DAY, Incident, day_start_us

MINUTES_PER_DAY = 1440
MICROS_PER_MINUTE = 60_000_000
REPORT_NAME = "alert_report"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _empty_reasons() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, eq=False)
class DayReport:
    """Everything the report of one UTC day shows; validated so that renderers can trust it.

    `eq=False`: the numpy array makes field-wise equality ambiguous; compare documents instead.
    """

    partition: str
    stored: int
    quarantined: int
    incidents: tuple[Incident, ...]
    fatal_per_minute: np.ndarray
    quarantine_reasons: Mapping[str, int] = field(default_factory=_empty_reasons)
    built_from: str = ""  # digest of the inputs (see freshness.py)
    # Who was paged about the day's incidents, and dead letters (notifications/outbox.py: day)
    notifications: Mapping[str, object] = field(default_factory=_empty_reasons)

    def __post_init__(self) -> None:
        day = parse_partition(self.partition)
        for name in ("stored", "quarantined"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        incidents = tuple(self.incidents)
        for incident in incidents:
            if incident.day != day:
                # An incident belongs to the day of its start and is reported once.
                raise ValueError(
                    f"incident {incident.incident_id} starts on {incident.day}, not {day}"
                )
        object.__setattr__(self, "incidents", incidents)
        counts = np.asarray(self.fatal_per_minute)
        if counts.shape != (MINUTES_PER_DAY,) or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(
                f"fatal_per_minute must be {MINUTES_PER_DAY} integers, "
                f"got shape {counts.shape} of {counts.dtype}"
            )
        if (counts < 0).any():
            raise ValueError("fatal_per_minute must not be negative")
        counts = counts.astype(np.int64, copy=True)
        counts.flags.writeable = False  # frozen means frozen: no one mutates the shown data
        object.__setattr__(self, "fatal_per_minute", counts)
        reasons = {str(k): int(v) for k, v in dict(self.quarantine_reasons).items()}
        object.__setattr__(self, "quarantine_reasons", MappingProxyType(reasons))
        object.__setattr__(self, "notifications", MappingProxyType(dict(self.notifications)))


def parse_partition(partition: str) -> dt.date:
    """The day of a "YYYY-MM-DD" partition key; strict, because it also names a folder."""
    try:
        day = dt.date.fromisoformat(partition)
    except (TypeError, ValueError):
        day = None
    if day is None or day.isoformat() != partition:
        raise ValueError(f"partition must be a YYYY-MM-DD date, got {partition!r}")
    return day


def iso_utc(time_us: int) -> str:
    """Exact ISO 8601 UTC time from integer µs (no float rounding), always 6 digits and "Z"."""
    t = _EPOCH + dt.timedelta(microseconds=int(time_us))
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
        f"T{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{t.microsecond:06d}Z"
    )


def _datetime_us(moment: dt.datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive datetime is usually local time in disguise; refuse to guess.
        raise ValueError("generated_at must be timezone-aware")
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


def _group_text(incident: Incident) -> str:
    return incident.group if incident.group is not None else ""


def sorted_incidents(incidents: Iterable[Incident]) -> list[Incident]:
    """Incidents by start, then rule, then group ("" for none): the order of every output.

    Further fields only break exact ties, so the order never depends on the input order.
    """
    return sorted(
        incidents,
        key=lambda i: (
            i.start_us,
            i.rule,
            _group_text(i),
            i.group is not None,
            i.group_by or "",
            i.end_us,
            i.last_breach_us,
            i.peak_count,
            i.event_count,
            i.threshold,
            i.window_us,
        ),
    )


DEAD_LETTER_COLUMNS = ("channel", "incident", "status", "attempts", "error")


def _notifications_summary(report: DayReport) -> str | None:
    """One line on who was paged about the day's incidents (None when nothing was decided)."""
    incidents = report.notifications.get("incidents") or {}
    dead = report.notifications.get("dead_letters") or []
    if not incidents and not dead:
        return None
    paged = Counter(i["state"] for i in incidents.values() if i["paged"])
    quiet = Counter(i["reason"] for i in incidents.values() if not i["paged"])
    parts = [
        f"{sum(paged.values())} incidents paged"
        + (f" ({', '.join(f'{n} {s}' for s, n in sorted(paged.items()))})" if paged else ""),
        f"{sum(quiet.values())} recorded without paging"
        + (f" ({', '.join(f'{r}: {n}' for r, n in sorted(quiet.items()))})" if quiet else ""),
        f"{len(dead)} dead letters",
    ]
    return "; ".join(parts) + "."


def _dead_letter_rows(report: DayReport) -> list[list[str]]:
    return [
        [str(d[c]) for c in DEAD_LETTER_COLUMNS]
        for d in report.notifications.get("dead_letters") or []
    ]


def _sorted_reasons(report: DayReport) -> list[tuple[str, int]]:
    """Most frequent reason first, then by name, so every output lists them the same way."""
    return sorted(report.quarantine_reasons.items(), key=lambda item: (-item[1], item[0]))


def _group_document(incident: Incident) -> dict[str, str | None]:
    """{} for all traffic; otherwise {group_by: value} (value None if the group was null)."""
    return {} if incident.group_by is None else {incident.group_by: incident.group}


def incident_document(incident: Incident) -> dict[str, object]:
    """An incident as the report's JSON (and the notifications) show it."""
    return {
        "incident_id": incident.incident_id,
        "rule": incident.rule,
        "group": _group_document(incident),
        "start": iso_utc(incident.start_us),
        "end": iso_utc(incident.end_us),
        "peak_count": int(incident.peak_count),
        "event_count": int(incident.event_count),
        "threshold": int(incident.threshold),
        "window_seconds": incident.window_us / 1_000_000,
    }


def report_document(report: DayReport, generated_at: dt.datetime | None = None) -> dict:
    """The machine-readable report; key order is fixed so that the JSON text is deterministic."""
    moment = generated_at if generated_at is not None else dt.datetime.now(dt.UTC)
    return {
        "partition": report.partition,
        "records": {"stored": report.stored, "quarantined": report.quarantined},
        "incidents": [incident_document(i) for i in sorted_incidents(report.incidents)],
        "quarantine_reasons": dict(_sorted_reasons(report)),
        "notifications": dict(report.notifications),
        "generated_at": iso_utc(_datetime_us(moment)),
        "built_from": report.built_from,
    }


def report_path(reports_dir: Path, day: str) -> Path:
    return Path(reports_dir) / day / f"{REPORT_NAME}.json"


def read_report_document(reports_dir: Path, day: str) -> dict | None:
    """The JSON report of a day, or None when there is none (yet)."""
    path = synced_file(report_path(reports_dir, day))
    return json.loads(path.read_text()) if path.exists() else None


def report_json(document: Mapping) -> str:
    """The JSON text written to disk: insertion order kept, indent 2, UTF-8, trailing newline."""
    return json.dumps(document, sort_keys=False, indent=2, ensure_ascii=False) + "\n"


# Markdown: "&", "<", ">" and "|" become entities (HTML and table cells); every other ASCII
# punctuation character gets a backslash, which CommonMark allows for all of them and which
# also defuses GFM extras (strikethrough "~", autolinks "www." / "http:", math "$"). Anything
# not printable (newlines, tabs, controls, bidi overrides, lone surrogates) becomes a space.
_MARKDOWN_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;"}
_MARKDOWN_BACKSLASHED = frozenset(string.punctuation) - _MARKDOWN_ENTITIES.keys()


def _escape_markdown_char(ch: str) -> str:
    if ch in _MARKDOWN_ENTITIES:
        return _MARKDOWN_ENTITIES[ch]
    if ch in _MARKDOWN_BACKSLASHED:
        return "\\" + ch
    if ch == " " or ch.isprintable():
        return ch
    return " "


def escape_markdown(text: str) -> str:
    """Text shown literally in Markdown, even inside a table cell: it cannot add markup or rows."""
    return "".join(_escape_markdown_char(ch) for ch in str(text))


def _counts_by_rule(report: DayReport) -> list[tuple[str, int]]:
    return sorted(Counter(i.rule for i in report.incidents).items())


def _peak_minute(report: DayReport) -> tuple[int, str]:
    """The largest per-minute count and the minute ("HH:MM") it first happens at."""
    minute = int(np.argmax(report.fatal_per_minute))
    return int(report.fatal_per_minute[minute]), f"{minute // 60:02d}:{minute % 60:02d}"


def _summary_parts(report: DayReport) -> tuple[str, str, str]:
    """Records, fatal events and incident count, as plain text (no record-derived values)."""
    records = f"{report.stored} records stored, {report.quarantined} quarantined"
    peak, at = _peak_minute(report)
    total = int(report.fatal_per_minute.sum())
    fatal = f"{total} fatal events" + (f", peak {peak} per minute at {at} UTC" if total else "")
    n = len(report.incidents)
    return records, fatal, f"{n} incident" + ("" if n == 1 else "s")


def _markdown_group(incident: Incident) -> str:
    if incident.group_by is None:
        return "all traffic"
    value = "*null*" if incident.group is None else escape_markdown(incident.group)
    return f"{escape_markdown(incident.group_by)}: {value}"


def render_markdown(report: DayReport, plot_png: bytes | None = None) -> str:
    """The human summary (files and the Dagster UI); `plot_png` embeds the plot as a data URI."""
    records, fatal, count = _summary_parts(report)
    per_rule = ", ".join(f"{escape_markdown(r)}: {n}" for r, n in _counts_by_rule(report))
    lines = [
        f"# Alert report {report.partition} (UTC)",
        "",
        f"{records}; {fatal}; **{count}**" + (f" ({per_rule})" if per_rule else "") + ".",
        "",
    ]
    if plot_png is not None:
        lines += [f"![Fatal events per minute]({_png_data_uri(plot_png)})", ""]
    lines += ["## Incidents", ""]
    if report.incidents:
        lines += [
            "| start (UTC) | end (UTC) | rule | group | peak | events | id |",
            "|---|---|---|---|---:|---:|---|",
        ]
        for i in sorted_incidents(report.incidents):
            cells = [
                iso_utc(i.start_us),
                iso_utc(i.end_us),
                escape_markdown(i.rule),
                _markdown_group(i),
                str(i.peak_count),
                str(i.event_count),
                f"`{i.incident_id}`",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append("No incidents.")
    if report.quarantine_reasons:
        lines += ["", "## Quarantine reasons", "", "| reason | records |", "|---|---:|"]
        lines += [f"| {escape_markdown(r)} | {n} |" for r, n in _sorted_reasons(report)]
    summary = _notifications_summary(report)
    if summary:
        lines += ["", "## Notifications", "", summary]
        if _dead_letter_rows(report):
            lines += ["", "| " + " | ".join(DEAD_LETTER_COLUMNS) + " |", "|---|---|---|---:|---|"]
            lines += [
                "| " + " | ".join(escape_markdown(cell) for cell in row) + " |"
                for row in _dead_letter_rows(report)
            ]
    return "\n".join(lines) + "\n"


MIN_SHADE_HOURS = 0.1  # 6 minutes, a few pixels: a one-minute incident would be invisible


def _shaded_hours(report: DayReport, rule: str) -> list[tuple[float, float]]:
    """The union of a rule's incidents in hours of the day, clipped to the day.

    Merged so that overlapping incidents of many groups do not stack into an opaque block.
    """
    day_start = day_start_us(parse_partition(report.partition))
    spans = sorted(
        (
            (i.start_us - day_start) / 3_600_000_000,
            min(i.end_us - day_start, MICROS_PER_DAY) / 3_600_000_000,
        )
        for i in report.incidents
        if i.rule == rule
    )
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        end = max(end, min(start + MIN_SHADE_HOURS, 24.0))
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def plot_fatal_per_minute(report: DayReport) -> bytes:
    """A small PNG (it goes into Dagster metadata as base64): counts per minute, incidents shaded.

    Uses `Figure` and the Agg canvas directly: no pyplot global state, safe in threads.
    """
    fig = Figure(figsize=(8, 3), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    counts = report.fatal_per_minute
    # Steps as one line and one filled polygon: `stairs` patches cost twice as much to draw.
    hours = np.repeat(np.arange(MINUTES_PER_DAY + 1) / 60, 2)[1:-1]
    heights = np.repeat(counts, 2)
    ax.plot(hours, heights, color="black", lw=0.8, zorder=3)
    ax.fill_between(hours, heights, color="0.6", lw=0, zorder=2)
    rules = sorted({i.rule for i in report.incidents})
    colours = {rule: f"C{n % 10}" for n, rule in enumerate(rules)}
    for rule in rules:
        for start_h, end_h in _shaded_hours(report, rule):
            ax.axvspan(start_h, end_h, color=colours[rule], alpha=0.3, lw=0)
    ax.set_xlim(0, 24)
    ax.set_xticks(range(0, 25, 3))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(1, int(counts.max())) * 1.35)  # headroom for the legend
    ax.set_xlabel("hour of day (UTC)")
    ax.set_ylabel("fatal events / min")
    ax.set_title(f"Fatal events per minute, {report.partition} (UTC)")
    if rules:
        # Explicit handles and labels: a name starting with "_" is not dropped, "$" is no math.
        handles = [Patch(color=colours[rule], alpha=0.3, lw=0) for rule in rules]
        legend = ax.legend(
            handles, rules, loc="upper center", ncols=min(len(rules), 3), fontsize="small"
        )
        for text in legend.get_texts():
            text.set_parse_math(False)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.9)  # tight_layout draws twice
    buffer = io.BytesIO()
    # No "Software" chunk: the bytes then do not change with the matplotlib version string.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _png_data_uri(plot_png: bytes) -> str:
    if not plot_png.startswith(PNG_MAGIC):
        raise ValueError("plot_png is not a PNG image")
    return "data:image/png;base64," + base64.b64encode(plot_png).decode("ascii")


def _html_group(incident: Incident) -> str:
    if incident.group_by is None:
        return "all traffic"
    value = "<em>null</em>" if incident.group is None else html.escape(incident.group)
    return f"{html.escape(incident.group_by)}: {value}"


_HTML_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}"
    "td.n{text-align:right}code{font-size:.9em}"
)


def render_html(report: DayReport, plot_png: bytes) -> str:
    """A self-contained page (inline CSS, image as data URI); a CSP forbids scripts anyway."""
    e = html.escape
    records, fatal, count = _summary_parts(report)
    per_rule = ", ".join(f"{e(r)}: {n}" for r, n in _counts_by_rule(report))
    title = f"Alert report {report.partition} (UTC)"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{e(title)}</title>",
        f"<style>{_HTML_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{e(title)}</h1>",
        f"<p>{e(records)}; {e(fatal)}; <strong>{e(count)}</strong>"
        + (f" ({per_rule})" if per_rule else "")
        + ".</p>",
        f'<img src="{_png_data_uri(plot_png)}" alt="Fatal events per minute" '
        'width="640" height="240">',
        "<h2>Incidents</h2>",
    ]
    if report.incidents:
        parts += [
            "<table>",
            "<thead><tr><th>start (UTC)</th><th>end (UTC)</th><th>rule</th><th>group</th>"
            "<th>peak</th><th>events</th><th>id</th></tr></thead>",
            "<tbody>",
        ]
        for i in sorted_incidents(report.incidents):
            parts.append(
                f"<tr><td>{e(iso_utc(i.start_us))}</td><td>{e(iso_utc(i.end_us))}</td>"
                f"<td>{e(i.rule)}</td><td>{_html_group(i)}</td>"
                f'<td class="n">{i.peak_count}</td><td class="n">{i.event_count}</td>'
                f"<td><code>{e(i.incident_id)}</code></td></tr>"
            )
        parts += ["</tbody>", "</table>"]
    else:
        parts.append("<p>No incidents.</p>")
    if report.quarantine_reasons:
        parts += [
            "<h2>Quarantine reasons</h2>",
            "<table>",
            "<thead><tr><th>reason</th><th>records</th></tr></thead>",
            "<tbody>",
        ]
        parts += [
            f'<tr><td>{e(r)}</td><td class="n">{n}</td></tr>' for r, n in _sorted_reasons(report)
        ]
        parts += ["</tbody>", "</table>"]
    summary = _notifications_summary(report)
    if summary:
        parts += ["<h2>Notifications</h2>", f"<p>{e(summary)}</p>"]
        if _dead_letter_rows(report):
            header = "".join(f"<th>{c}</th>" for c in DEAD_LETTER_COLUMNS)
            parts += ["<table>", f"<thead><tr>{header}</tr></thead>", "<tbody>"]
            parts += [
                "<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>"
                for row in _dead_letter_rows(report)
            ]
            parts += ["</tbody>", "</table>"]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_report(
    report: DayReport,
    reports_dir: Path,
    generated_at: dt.datetime | None = None,
    plot_png: bytes | None = None,
) -> dict[str, Path]:
    """Write reports_dir/YYYY-MM-DD/alert_report.{md,html,json}; same bytes on re-runs.

    `plot_png` saves drawing the plot again when the caller has it. Only the JSON's
    "generated_at" changes between runs. The JSON is written last, so its
    presence means the Markdown and HTML of the same run are in place too.
    """
    day_dir = Path(reports_dir) / report.partition  # partition is validated: no path tricks
    day_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: day_dir / f"{REPORT_NAME}.{ext}" for ext in ("md", "html", "json")}
    write_atomic(paths["md"], render_markdown(report))
    write_atomic(paths["html"], render_html(report, plot_png or plot_fatal_per_minute(report)))
    write_atomic(paths["json"], report_json(report_document(report, generated_at)))
    return {"json": paths["json"], "md": paths["md"], "html": paths["html"]}
