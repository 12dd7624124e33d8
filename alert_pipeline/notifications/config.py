"""notifications.yaml: where incidents are paged. Read and checked as a whole, one-line errors.

The file lives in the home (`$ALERT_PIPELINE_HOME/notifications.yaml`, or the path in
`ALERT_PIPELINE_NOTIFICATIONS`). No file: no notifications. Secrets are never in the file: it names
environment variables (`url_env`, `secret_env`, `token_env`, `password_env`, `routing_key_env`),
read when the file is loaded, so that a missing one is a configuration error, not a failed send.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alert_pipeline.errors import PipelineError
from alert_pipeline.home import Home
from alert_pipeline.objects import synced_file

CONFIG_NAME = "notifications.yaml"
CONFIG_ENV = "ALERT_PIPELINE_NOTIFICATIONS"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SLACK_API_URL = "https://slack.com/api"


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    rules: list[str] | None = None  # only these rules; default all
    digest: bool = False  # one message per run listing the incidents recorded but not paged


class _Webhook(_Channel):
    type: Literal["webhook"]
    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = None  # HMAC-SHA256 of the body in X-Alert-Pipeline-Signature


class _Slack(_Channel):
    type: Literal["slack"]
    url: str | None = None  # incoming webhook; or, with a bot token, chat.postMessage/update
    url_env: str | None = None
    token_env: str | None = None
    channel: str | None = None  # the Slack channel to post to with a bot token
    api_url: str = SLACK_API_URL


class _Email(_Channel):
    type: Literal["email"]
    host: str
    port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    ca_file: str | None = None  # a CA bundle to trust besides the system's (a private CA)
    username: str | None = None
    password_env: str | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)


class _PagerDuty(_Channel):
    type: Literal["pagerduty"]
    routing_key_env: str
    url: str = PAGERDUTY_EVENTS_URL


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_age_hours: float = Field(48, gt=0)
    retry_budget_hours: float = Field(24, gt=0)
    retry_first_seconds: float = Field(1, gt=0)  # doubled each failed attempt, up to 30 min
    channels: list[Annotated[_Webhook | _Slack | _Email | _PagerDuty, Field(discriminator="type")]]


@dataclass(frozen=True)
class Channel:
    """One channel, checked, with its secrets read from the environment."""

    name: str
    type: str
    rules: frozenset[str] | None = None
    digest: bool = False
    url: str | None = None  # webhook, Slack incoming webhook, PagerDuty events endpoint
    secret: str | None = None  # webhook signing secret
    token: str | None = None  # Slack bot token
    slack_channel: str | None = None
    api_url: str = SLACK_API_URL
    routing_key: str | None = None
    smtp: dict = field(default_factory=dict)  # host, port, security, username, password, from, to

    def wants(self, rule: str) -> bool:
        return self.rules is None or rule in self.rules


@dataclass(frozen=True)
class Notifications:
    channels: tuple[Channel, ...]
    max_age_hours: float = 48
    retry_budget_hours: float = 24
    retry_first_seconds: float = 1.0
    source: Path | None = None

    def channel(self, name: str) -> Channel:
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise PipelineError(f"{self.source}: no channel named {name!r}")


NO_NOTIFICATIONS = Notifications(channels=())


def config_path(home: Home) -> Path:
    return Path(os.environ.get(CONFIG_ENV) or synced_file(home.root / CONFIG_NAME))


def load_notifications(home: Home, known_rules: set[str]) -> Notifications:
    """The configuration, or NO_NOTIFICATIONS when there is no file; PipelineError naming the
    file, the channel and the key when it cannot be used."""
    path = config_path(home)
    if not path.exists():
        return NO_NOTIFICATIONS
    try:
        document = yaml.safe_load(path.read_text()) or {}
        parsed = _File.model_validate(document)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise PipelineError(f"{path}: not valid YAML{where}") from None
    except ValidationError as error:
        raise PipelineError(f"{path}: {_first_problem(error, document)}") from None
    names = [c.name for c in parsed.channels]
    for name in names:
        if names.count(name) > 1:
            raise PipelineError(f"{path}: channel {name!r}: name: used by two channels")
    channels = tuple(_resolve(path, c, known_rules) for c in parsed.channels)
    return Notifications(
        channels,
        parsed.max_age_hours,
        parsed.retry_budget_hours,
        parsed.retry_first_seconds,
        path,
    )


def max_age_hours(home: Home) -> float:
    """The file's max_age_hours even when a channel in it is wrong (what is paged at all must
    not change while a channel is being fixed); the default when it cannot be read."""
    default = _File.model_fields["max_age_hours"].default
    try:
        value = (yaml.safe_load(config_path(home).read_text()) or {}).get("max_age_hours")
        return float(value) if value is not None and float(value) > 0 else default
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
        return default


def _first_problem(error: ValidationError, document: object) -> str:
    problem = error.errors()[0]
    where = list(problem["loc"])
    if len(where) >= 2 and where[0] == "channels" and isinstance(where[1], int):
        channels = document.get("channels") if isinstance(document, dict) else None
        entry = channels[where[1]] if isinstance(channels, list) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        keys = [str(k) for k in where[2:] if k not in ("webhook", "slack", "email", "pagerduty")]
        label = f"channel {name!r}" if name else f"channels[{where[1]}]"
        return f"{label}: {'.'.join(keys) or 'type'}: {problem['msg']}"
    return f"{'.'.join(str(k) for k in where) or 'file'}: {problem['msg']}"


def _resolve(path: Path, entry: _Channel, known_rules: set[str]) -> Channel:
    def fail(key: str, why: str) -> PipelineError:
        return PipelineError(f"{path}: channel {entry.name!r}: {key}: {why}")

    def secret(key: str, required: bool = False) -> str | None:
        variable = getattr(entry, key)
        if variable is None:
            if required:
                raise fail(key, "missing: name the environment variable that holds it")
            return None
        value = os.environ.get(variable)
        if not value:
            raise fail(key, f"environment variable {variable} is not set")
        return value

    def url(key: str, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise fail(key, f"{value!r} is not an http(s) URL")
        return value

    unknown = sorted(set(entry.rules or ()) - known_rules)
    if unknown:
        raise fail("rules", f"no rule named {', '.join(unknown)}")
    common = {
        "name": entry.name,
        "type": entry.type,
        "rules": frozenset(entry.rules) if entry.rules is not None else None,
        "digest": entry.digest,
    }
    if isinstance(entry, _Webhook | _Slack):
        if entry.url is not None and entry.url_env is not None:
            raise fail("url", "give url or url_env, not both")
        target = url("url", entry.url) or url("url_env", secret("url_env"))
        if isinstance(entry, _Webhook):
            if target is None:
                raise fail("url", "missing: give url or url_env")
            return Channel(**common, url=target, secret=secret("secret_env"))
        token = secret("token_env")
        if token is None and target is None:
            raise fail("url", "missing: give an incoming webhook (url or url_env) or token_env")
        if token is not None and not entry.channel:
            raise fail("channel", "missing: the Slack channel to post to with token_env")
        api_url = url("api_url", entry.api_url) or SLACK_API_URL
        return Channel(
            **common, url=target, token=token, slack_channel=entry.channel, api_url=api_url
        )
    if isinstance(entry, _Email):
        smtp = {
            "host": entry.host,
            "port": entry.port,
            "security": entry.security,
            "ca_file": entry.ca_file,
            "username": entry.username,
            "password": secret("password_env", required=entry.username is not None),
            "from": entry.sender,
            "to": list(entry.to),
        }
        return Channel(**common, smtp=smtp)
    return Channel(**common, url=url("url", entry.url), routing_key=secret("routing_key_env"))
