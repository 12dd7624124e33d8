"""The report for people: the Markdown summary (files and the Dagster UI) and the self-contained
HTML page. Values that come from log records (group values such as `bundle_id`, quarantine
reasons, dead letters' errors) are untrusted: Markdown output escapes them with
`escape_markdown`, HTML output with `html.escape`, so nothing from a record adds markup.
"""

import base64
import html
import string
from collections import Counter

import numpy as np

from alert_pipeline.day_report import DayReport, iso_utc, sorted_incidents, sorted_reasons
from alert_pipeline.rules import Incident

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
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
        lines += [f"| {escape_markdown(r)} | {n} |" for r, n in sorted_reasons(report)]
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
            f'<tr><td>{e(r)}</td><td class="n">{n}</td></tr>' for r, n in sorted_reasons(report)
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
