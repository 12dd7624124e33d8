"""Dagster: the `incident_notifications` asset (who is paged about each day's incidents) and its
checks (the configuration can be used; no message is in the dead letters). Thin: the work is in
pipeline.notify_days and alert_pipeline/notifications/."""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetMaterialization,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from alert_pipeline.assets import per_day_results, rule_assets
from alert_pipeline.errors import PipelineError
from alert_pipeline.notifications.config import config_path, load_notifications
from alert_pipeline.notifications.outbox import open_outbox
from alert_pipeline.partitions import backfill_policy, daily_partitions
from alert_pipeline.pipeline import RULE_NAMES, notify_days
from alert_pipeline.report_pages import escape_markdown
from alert_pipeline.resources import AlertHome

CONFIG_CHECK = "notification_config"
DEAD_LETTERS_CHECK = "dead_letters"


@asset(
    partitions_def=daily_partitions,
    backfill_policy=backfill_policy(),
    deps=rule_assets,
    group_name="alerts",
    kinds={"sqlite"},
)
def incident_notifications(
    context: AssetExecutionContext, alert_home: AlertHome
) -> Iterator[MaterializeResult | AssetMaterialization]:
    """Who is paged about each incident of the day, recorded in the outbox: a new incident is
    paged once (`firing`), then `updated`, `resolved` or `withdrawn` as the data changes; an
    incident over for more than max_age_hours, or first seen by a backfill, is recorded without
    paging. What is due is delivered for a few seconds; notification_delivery_sensor sends the rest."""
    home = alert_home.home()
    backfill = "dagster/backfill" in context.run.tags
    decided, delivery, problem = notify_days(home, context.partition_keys, backfill)
    if problem:
        context.log.error(f"notifications held: {problem}")
    elif delivery is not None:
        context.log.info(delivery.text())
    totals: dict[str, int] = {}
    for decisions in decided.values():
        for key, n in decisions.as_metadata().items():
            totals[key] = totals.get(key, 0) + n
    delivered = {"backfill": backfill, "delivery": delivery.text() if delivery else problem}
    if delivery is not None:  # what this step sent and dead-lettered, and what is left queued
        delivered |= {
            "messages_sent": delivery.sent,
            "messages_queued": delivery.queued,
            "messages_dead": delivery.dead,
        }
    yield from per_day_results(
        context,
        {day: decisions.as_metadata() | delivered for day, decisions in decided.items()},
        summary=totals | delivered,
    )


@asset_check(asset=incident_notifications, name=CONFIG_CHECK, blocking=False)
def notification_config_check(alert_home: AlertHome) -> AssetCheckResult:
    """notifications.yaml can be used (or there is none): a broken one holds every page."""
    home = alert_home.home()
    try:
        config = load_notifications(home, RULE_NAMES)
    except PipelineError as error:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            metadata={"error": MetadataValue.text(str(error))},
        )
    return AssetCheckResult(
        passed=True,
        metadata={
            "channels": MetadataValue.text(", ".join(c.name for c in config.channels) or "none"),
            "path": MetadataValue.path(str(config_path(home))),
        },
    )


@asset_check(asset=incident_notifications, name=DEAD_LETTERS_CHECK, blocking=False)
def dead_letters_check(alert_home: AlertHome) -> AssetCheckResult:
    """No message is in the dead letters (refused by its receiver, or still failing after the
    retry budget): a page nobody got."""
    with open_outbox(alert_home.home()) as outbox:
        dead = outbox.dead_letters()
    rows = [
        f"| {escape_markdown(d['channel'])} | {d['incident']} | {d['status']} | "
        f"{d['partition']} | {escape_markdown(d['error'])} |"
        for d in dead[-50:]
    ]
    table = "\n".join(["| channel | incident | status | day | error |", "|---|---|---|---|---|"])
    return AssetCheckResult(
        passed=not dead,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "dead_letters": len(dead),
            "latest": MetadataValue.md("\n".join([table, *rows]) if dead else "none"),
        },
    )
