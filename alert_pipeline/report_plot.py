"""The PNG plot of a day's fatal events per minute, with each rule's incidents shaded. Drawn
once per day by the report step and embedded both in the HTML page and in the Markdown the
Dagster UI shows; a module of its own because only the plot needs matplotlib.
"""

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from alert_pipeline.day_report import MINUTES_PER_DAY, DayReport, parse_partition
from alert_pipeline.rules import MICROS_PER_DAY, day_start_us

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
