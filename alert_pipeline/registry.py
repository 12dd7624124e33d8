"""The registry of alert rules: one Dagster asset, one report section and one pager key per rule.

Three ways to add a rule: an entry in `BUILTIN_RULES` below; a `SlidingWindowRule` subclass
named by `class:` in a rules file; or a rules file entry with settings only. The rules file is
`$ALERT_PIPELINE_RULES`, else `rules.yaml` in the home; an entry with a built-in rule's name
replaces it. The registry is read once per process, when the pipeline's modules first ask for
`RULES` (the CLI names the home before that: `use_home`).
"""

import dataclasses
import functools
import importlib
import os
from pathlib import Path

import pydantic
import yaml

from alert_pipeline.errors import PipelineError
from alert_pipeline.objects import local_root, synced_file
from alert_pipeline.rules import SlidingWindowRule
from alert_pipeline.schema import COLUMNS

RULES_FILE = "rules.yaml"

BUILTIN_RULES: tuple[SlidingWindowRule, ...] = (
    SlidingWindowRule(
        name="fatal_errors_per_minute",
        threshold=10,
        window_seconds=60,
        description="More than 10 fatal errors in less than a minute, over all traffic.",
    ),
    SlidingWindowRule(
        name="fatal_errors_per_bundle_per_hour",
        threshold=10,
        window_seconds=3600,
        group_by="bundle_id",
        description="More than 10 fatal errors in less than an hour for one app (bundle_id).",
    ),
)

_home: Path | None = None
_loaded_from: list[Path | None] = []  # the rules file of this process, once read


def rules_file() -> Path | None:
    """The rules file in use: $ALERT_PIPELINE_RULES (which must exist), else the home's."""
    if os.environ.get("ALERT_PIPELINE_RULES"):
        path = Path(os.environ["ALERT_PIPELINE_RULES"])
        if not path.is_file():
            raise PipelineError(f"ALERT_PIPELINE_RULES={path}: no such file")
        return path.absolute()
    home = _home or local_root(os.environ.get("ALERT_PIPELINE_HOME") or "data")
    path = synced_file(home / RULES_FILE)
    return path.absolute() if path.is_file() else None


@functools.cache
def registered_rules() -> tuple[SlidingWindowRule, ...]:
    path = rules_file()
    _loaded_from.append(path)
    return load_rules(path) if path else BUILTIN_RULES


def use_home(root: Path) -> None:
    """Take the rules of this home (a CLI's --home); an error when this process already loaded
    other rules, rather than running with rules the home does not have."""
    global _home
    if not _loaded_from:
        _home = root
        return
    own = (root / RULES_FILE).absolute()
    if own.is_file() and _loaded_from[0] != own and not os.environ.get("ALERT_PIPELINE_RULES"):
        raise PipelineError(f"{own}: this process already loaded other rules; one home per process")


def load_rules(path: str | Path) -> tuple[SlidingWindowRule, ...]:
    """The rules the pipeline runs with this YAML file (a `rules:` list): the built-in ones, each
    replaced by an entry of the same name, then the other entries. PipelineError naming the line."""
    path = Path(path)
    try:
        root = yaml.compose(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise PipelineError(f"{path}{where}: not valid YAML") from None
    entries = _rule_nodes(path, root)
    rules = [_rule(path, node) for node in entries]
    seen: set[str] = set()
    for node, rule in zip(entries, rules, strict=True):
        if rule.name in seen:
            raise PipelineError(f"{path} line {node.start_mark.line + 1}: rule {rule.name!r} twice")
        seen.add(rule.name)
    by_name = {rule.name: rule for rule in BUILTIN_RULES} | {rule.name: rule for rule in rules}
    return tuple(by_name.values())


def _rule_nodes(path: Path, root: yaml.Node | None) -> list[yaml.MappingNode]:
    rules = None
    if isinstance(root, yaml.MappingNode):
        rules = next((v for k, v in root.value if k.value == "rules"), None)
    if not isinstance(rules, yaml.SequenceNode):
        line = root.start_mark.line + 1 if root is not None else 1
        raise PipelineError(f"{path} line {line}: expected `rules:` with a list of rules")
    for node in rules.value:
        if not isinstance(node, yaml.MappingNode):
            raise PipelineError(f"{path} line {node.start_mark.line + 1}: a rule is a mapping")
    return rules.value


def _rule(path: Path, node: yaml.MappingNode) -> SlidingWindowRule:
    """One entry: settings, and optionally `class: module:Name` (a SlidingWindowRule subclass)."""
    settings = yaml.safe_load(yaml.serialize(node))
    name = settings.get("name")

    def at(line: int) -> str:
        return f"{path} line {line + 1}" + (f" (rule {name!r})" if name else "")

    where = at(node.start_mark.line)
    cls = _rule_class(where, settings.pop("class", None))
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise PipelineError(
            f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    try:
        rule = pydantic.TypeAdapter(cls).validate_python(settings)
    except pydantic.ValidationError as error:
        problem = error.errors()[0]
        message = problem["msg"].removeprefix("Value error, ")
        if problem["loc"]:
            key = str(problem["loc"][0])
            lines = [k.start_mark.line for k, _ in node.value if k.value == key]
            where = at(lines[0]) if lines else where
            message = f"{key}: {message}"
        raise PipelineError(f"{where}: {message}") from None
    for column in [rule.group_by, *rule.reads]:
        if column is not None and column not in COLUMNS:
            raise PipelineError(f"{where}: {column!r} is not a column of the log records")
    return rule


def _rule_class(where: str, reference: object) -> type[SlidingWindowRule]:
    if reference is None:
        return SlidingWindowRule
    module_name, _, class_name = str(reference).partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise PipelineError(f"{where}: class {reference!r} cannot be imported: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, SlidingWindowRule)):
        raise PipelineError(f"{where}: class {reference!r} is not a SlidingWindowRule")
    return cls


def __getattr__(name: str) -> tuple[SlidingWindowRule, ...]:
    """`RULES`: the registered rules, loaded on first use."""
    if name == "RULES":
        return registered_rules()
    raise AttributeError(name)
