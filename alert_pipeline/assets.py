"""Dagster assets: validated_logs → one asset per registered rule → alert_report, per UTC day.

The rules and the report write their own storage (see warehouse.py) and every asset returns
metadata, so they stay thin and a run may cover a range of days (single-run backfills);
`validated_logs` reads what `ingest_job` (jobs.py) stored.
"""

import warnings
from collections.abc import Iterator

import pydantic
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    BetaWarning,
    Config,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    TimeWindowPartitionMapping,
    asset,
    asset_check,
)

from alert_pipeline.day_report import DayReport, iso_utc
from alert_pipeline.home import UNDATED
from alert_pipeline.ingestion import pending_files
from alert_pipeline.ledger import DayCounts, day_counts, day_lock, read_ledger, undated_records
from alert_pipeline.partitions import backfill_policy, daily_partitions
from alert_pipeline.pipeline import detect_and_store, report_day
from alert_pipeline.registry import RULES
from alert_pipeline.report_pages import escape_markdown, render_markdown
from alert_pipeline.resources import AlertHome
from alert_pipeline.rules import (
    Incident,
    SlidingWindowRule,
    lookback_days,
)
from alert_pipeline.schema import ARROW_SCHEMA
from alert_pipeline.warehouse import (
    quarantine_reasons,
    quarantined_rows,
    severity_counts,
    stored_rows,
)

warnings.filterwarnings("ignore", category=BetaWarning)

RECONCILE_CHECK = "records_reconcile"
QUARANTINE_CHECK = "quarantine_share"
UNDATED_CHECK = "undated_records"
COLUMN_SCHEMA = TableSchema(
    columns=[TableColumn(field.name, str(field.type)) for field in ARROW_SCHEMA]
)


def per_day_results(
    context: AssetExecutionContext,
    days: dict[str, dict],
    summary: dict,
    check_results: list[AssetCheckResult] | None = None,
) -> Iterator[MaterializeResult | AssetMaterialization]:
    """Each day's partition shows its own metadata, also when one run covers a range of days
    (sensor runs, backfills): then the run's summary comes first and each day's materialization
    after it, so the day's own is the latest the UI shows."""
    if len(days) == 1:
        (metadata,) = days.values()
        yield MaterializeResult(metadata=metadata, check_results=check_results or [])
        return
    yield MaterializeResult(metadata=summary, check_results=check_results or [])
    for day, metadata in days.items():
        yield AssetMaterialization(asset_key=context.asset_key, partition=day, metadata=metadata)


def count_metadata(counts: DayCounts) -> dict[str, int]:
    """A day's record counts as `validated_logs` materializations show them."""
    return {
        "records_read": counts.read,
        "records_stored": counts.stored,
        "records_quarantined": counts.quarantined,
        "dagster/row_count": counts.stored,
    }


@asset(
    partitions_def=daily_partitions,
    backfill_policy=backfill_policy(),
    check_specs=[
        AssetCheckSpec(
            RECONCILE_CHECK,
            asset="validated_logs",
            blocking=True,
            description="records read = records stored + records quarantined, and the Parquet "
            "files hold exactly the rows the ledger says",
        ),
        AssetCheckSpec(
            QUARANTINE_CHECK,
            asset="validated_logs",
            description="the share of quarantined records stays under ALERT_PIPELINE_MAX_QUARANTINED_SHARE",
        ),
    ],
    group_name="ingestion",
    kinds={"parquet"},
    metadata={"dagster/column_schema": COLUMN_SCHEMA},
)
def validated_logs(
    context: AssetExecutionContext, alert_home: AlertHome
) -> Iterator[MaterializeResult | AssetMaterialization]:
    """Typed, validated log records of each UTC day, as Parquet; bad records go to quarantine.

    Landing files are ingested by `ingest_job` (one step per file, launched by the landing-folder
    sensor), which records a materialization of each day a file wrote. Materializing a day here
    reconciles and describes what is stored for it and never writes any day's data: a file holds
    records of several days, so ingesting it for one day would write the others.
    """
    home = alert_home.home()
    waiting = [name for _, name in pending_files(home)]
    if waiting:
        context.log.warning(
            f"{len(waiting)} landing file(s) not ingested yet ({', '.join(waiting[:5])}"
            f"{', …' if len(waiting) > 5 else ''}): this run covers what is stored; the "
            "landing-folder sensor ingests them, or launch ingest_job"
        )
    days, described, problems = {}, {}, []
    for day in context.partition_keys:
        with day_lock(home, [day]):  # no ingestion swaps a file in meanwhile
            counts = days[day] = day_counts(home, day)
            in_parquet, in_quarantine = stored_rows(home, day), quarantined_rows(home, day)
            described[day] = {
                "severity_counts": MetadataValue.json(severity_counts(home, day)),
                "quarantined_by_column": MetadataValue.json(quarantine_reasons(home, day)),
            }
        if counts.read != counts.stored + counts.quarantined:
            problems.append(f"{day}: read {counts.read} ≠ stored + quarantined")
        if (in_parquet, in_quarantine) != (counts.stored, counts.quarantined):
            problems.append(
                f"{day}: files hold {in_parquet} stored / {in_quarantine} quarantined, "
                f"ledger says {counts.stored} / {counts.quarantined}"
            )
    read = sum(c.read for c in days.values())
    stored = sum(c.stored for c in days.values())
    quarantined = sum(c.quarantined for c in days.values())
    share = quarantined / read if read else 0.0
    table = "\n".join(
        ["| day | read | stored | quarantined |", "|---|---:|---:|---:|"]
        + [f"| {d} | {c.read} | {c.stored} | {c.quarantined} |" for d, c in days.items()]
    )
    totals = {
        "records_read": read,
        "records_stored": stored,
        "records_quarantined": quarantined,
        "landing_files_waiting": len(waiting),
    }
    per_day = {
        day: {
            **count_metadata(counts),
            **described[day],
            "path": MetadataValue.path(str(home.day_dir(day))),
            "landing_files_waiting": len(waiting),
        }
        for day, counts in days.items()
    }
    yield from per_day_results(
        context,
        per_day,
        summary={**totals, "days": MetadataValue.md(table)},
        check_results=[
            AssetCheckResult(
                check_name=RECONCILE_CHECK,
                passed=not problems,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    **totals,
                    "problems": MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
                },
            ),
            AssetCheckResult(
                check_name=QUARANTINE_CHECK,
                passed=share <= alert_home.max_quarantined_share,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "quarantined_share": share,
                    "max_quarantined_share": alert_home.max_quarantined_share,
                },
            ),
        ],
    )


@asset_check(asset=validated_logs, name=UNDATED_CHECK, blocking=False)
def undated_records_check(alert_home: AlertHome) -> AssetCheckResult:
    """No landing file has more than ALERT_PIPELINE_MAX_QUARANTINED_SHARE of its records without
    a usable date: those are in quarantine/day=undated and on no day's report (e.g. a producer
    that switched `date` to another format). Not partitioned: it covers every file."""
    home = alert_home.home()
    files = undated_records(read_ledger(home))
    limit = alert_home.max_quarantined_share
    over = {name: (n, read) for name, (n, read) in files.items() if n > limit * read}
    table = "\n".join(
        ["| file | undated | read |", "|---|---:|---:|"]
        + [
            f"| {escape_markdown(name)} | {n} | {read} |"
            for name, (n, read) in sorted(over.items())
        ]
    )
    return AssetCheckResult(
        passed=not over,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "undated_records": sum(n for n, _ in files.values()),
            "files_over_the_limit": len(over),
            "files": MetadataValue.md(table if over else "none"),
            "path": MetadataValue.path(str(home.quarantine_dir(UNDATED))),
        },
    )


def incidents_markdown(incidents: list[Incident]) -> str:
    """An escaped Markdown table: group values come from log records."""
    if not incidents:
        return "No incidents."
    lines = ["| start | end | group | peak | events | id |", "|---|---|---|---:|---:|---|"]
    lines += [
        f"| {iso_utc(i.start_us)} | {iso_utc(i.end_us)} | "
        f"{escape_markdown(i.group) if i.group is not None else '—'} | "
        f"{i.peak_count} | {i.event_count} | {i.incident_id} |"
        for i in incidents
    ]
    return "\n".join(lines)


def rule_config_class(rule: SlidingWindowRule) -> type[Config]:
    """The typed run config of a rule's asset, defaulting to the registered settings (so the
    launchpad shows them)."""
    return pydantic.create_model(
        "".join(part.title() for part in rule.name.split("_")) + "Config",
        __base__=Config,
        threshold=(
            int,
            pydantic.Field(rule.threshold, ge=1, description="more than this many events …"),
        ),
        window_seconds=(
            float,
            pydantic.Field(float(rule.window_seconds), gt=0, description="… in less than this"),
        ),
        severities=(
            list[str],
            pydantic.Field(sorted(rule.severities), description="severities that count"),
        ),
    )


def build_rule_asset(rule: SlidingWindowRule) -> AssetsDefinition:
    """One daily asset per registered rule; threshold, window and severities are run config."""
    rule_config = rule_config_class(rule)

    @asset(
        name=rule.name,
        description=rule.description or None,
        partitions_def=daily_partitions,
        backfill_policy=backfill_policy(),
        deps=[
            AssetDep(
                validated_logs,
                partition_mapping=TimeWindowPartitionMapping(
                    start_offset=-lookback_days(rule),
                    end_offset=1,
                    allow_nonexistent_upstream_partitions=True,
                ),
            )
        ],
        group_name="alerts",
        kinds={"python"},
    )
    def _rule_asset(
        context: AssetExecutionContext, config: rule_config, alert_home: AlertHome
    ) -> Iterator[MaterializeResult | AssetMaterialization]:
        configured = rule.with_overrides(
            threshold=config.threshold,
            window_seconds=config.window_seconds,
            severities=frozenset(config.severities),
        )
        home = alert_home.home()
        found = {day: detect_and_store(home, configured, day) for day in context.partition_keys}
        settings = {
            "threshold": configured.threshold,
            "window_seconds": configured.window_seconds,
            "group_by": configured.group_by or "—",
        }
        everything = [incident for incidents in found.values() for incident in incidents]
        yield from per_day_results(
            context,
            {
                day: {
                    "incident_count": len(incidents),
                    **settings,
                    "incidents": MetadataValue.md(incidents_markdown(incidents)),
                }
                for day, incidents in found.items()
            },
            summary={
                "incident_count": len(everything),
                **settings,
                "incidents": MetadataValue.md(incidents_markdown(everything)),
            },
        )

    return _rule_asset


rule_assets = [build_rule_asset(rule) for rule in RULES]


@asset(
    partitions_def=daily_partitions,
    backfill_policy=backfill_policy(),
    # incident_notifications (notification_assets.py, built on the rule assets above) comes first:
    # the report shows who was paged
    deps=[validated_logs, *rule_assets, AssetKey("incident_notifications")],
    group_name="alerts",
    kinds={"json", "html"},
)
def alert_report(
    context: AssetExecutionContext, alert_home: AlertHome
) -> Iterator[MaterializeResult | AssetMaterialization]:
    """The day's incidents of every rule, record counts and a plot, as JSON, Markdown and HTML."""
    home = alert_home.home()
    reports = [report_day(home, day) for day in context.partition_keys]

    def counts(day_reports: list[DayReport]) -> dict:
        metadata = {
            "incident_count": sum(len(r.incidents) for r in day_reports),
            "records_stored": sum(r.stored for r in day_reports),
            "records_quarantined": sum(r.quarantined for r in day_reports),
        }
        for rule in RULES:
            metadata[f"incidents_{rule.name}"] = sum(
                1 for r in day_reports for i in r.incidents if i.rule == rule.name
            )
        return metadata

    per_day = {}
    for report, plot in reports:
        folder = home.reports / report.partition
        per_day[report.partition] = {
            **counts([report]),
            "report": MetadataValue.md(render_markdown(report, plot)),
            "json_path": MetadataValue.path(str(folder / "alert_report.json")),
            "html_path": MetadataValue.path(str(folder / "alert_report.html")),
        }
    yield from per_day_results(context, per_day, summary=counts([report for report, _ in reports]))
