"""Configuration: one validated place, read from ``BOT_CONFIG`` (TOML) and the environment.

No config file is needed to start. A bad file fails fast with a message
that names the key and what is wrong with it. Secrets come from the
environment only and are never logged (``Settings.redacted()``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain import Role, User
from bot.i18n import normalize_locale


class ConfigError(Exception):
    """The config file or environment is invalid; the text says how to fix it."""


@dataclass(frozen=True, slots=True)
class UserConfig:
    name: str
    role: Role = Role.AGENT
    display_name: str | None = None
    slack: str | None = None  # Slack user id (U…)
    teams: str | None = None  # AAD object id
    time_zone: str | None = None
    locale: str | None = None
    working_hours: tuple[str, str] | None = None
    web_token_sha256: str | None = None
    customer: str | None = None  # for role = customer: the customer this contact belongs to


def configured_user(cfg: UserConfig, default_time_zone: str) -> User:
    """The stored form of a person of the config file: their id is their configured name."""
    return User(
        id=cfg.name,
        display_name=cfg.display_name or cfg.name,
        role=cfg.role,
        time_zone=cfg.time_zone or default_time_zone,
        locale=normalize_locale(cfg.locale),
        identities={c: x for c, x in (("slack", cfg.slack), ("teams", cfg.teams)) if x},
    )


def with_config(user: User, cfg: UserConfig) -> User:
    """A stored person with what the config file says of them now (a copy; ``user`` is kept).

    The config wins over what was stored before it (a first chat without config, a
    platform's profile): the role, and the display name, time zone and language it sets,
    and the channel identities. One exception: a language the person chose themselves
    (``language``) wins over the configured one. The tenant a customer contact speaks
    for comes from the customer it names (conversations.directory sets it).
    """
    identities = dict(user.identities)
    identities.update({c: x for c, x in (("slack", cfg.slack), ("teams", cfg.teams)) if x})
    return replace(
        user,
        role=cfg.role,
        display_name=cfg.display_name or user.display_name,
        time_zone=cfg.time_zone or user.time_zone,
        locale=(
            normalize_locale(cfg.locale) if cfg.locale and not user.locale_explicit else user.locale
        ),
        identities=identities,
    )


@dataclass(frozen=True, slots=True)
class CustomerConfig:
    name: str
    tenant_id: str | None = None
    owner: str | None = None
    slack_channels: tuple[str, ...] = ()
    teams_conversations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReminderPolicy:
    """The close-the-loop and first-response policy numbers (``[reminders]`` in the config)."""

    repeat_every_hours: float = 4.0  # N: repeat the close-the-loop DM every N working hours
    escalate_after: int = 3  # K: after K unanswered reminders, ping the lead too
    first_response_hours: float = 4.0  # M: a case nobody took within M working hours pings the lead
    idle_days: float = 3.0  # D: an owned case with no activity for D working days pings its owner
    working_hours: tuple[str, str] = ("09:00", "17:00")
    working_days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    escalation_target: str | None = None  # a user name; default: every lead
    claim_timeout_minutes: float = 5.0  # a claim left by a crash is retried after this
    max_delivery_attempts: int = 5  # then the lead is told the person is unreachable


COLLECTION_ACTIONS = ("remind", "warn", "suspend")


@dataclass(frozen=True, slots=True)
class CollectionsStage:
    """One step of the collections policy: at ``days`` past due, ``action`` is due."""

    days: int
    action: str  # remind | warn | suspend


@dataclass(frozen=True, slots=True)
class CollectionsPolicy:
    """The collections policy (``[collections]`` in the config): stages and the daily run."""

    stages: tuple[CollectionsStage, ...] = (
        CollectionsStage(1, "remind"),
        CollectionsStage(15, "warn"),
        CollectionsStage(30, "suspend"),
    )
    run_at: str = "09:00"  # the daily run, in the desk's time zone ([desk] time_zone)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bot reads from its config file and environment."""

    config_path: Path | None = None
    db_path: str = "./data/billing-bot.json"
    host: str = "127.0.0.1"
    port: int = 3978
    # How long a replica's claim on a queued request holds (BOT_CLAIM_LEASE_SECONDS): longer
    # than any one item's work, so a slow replica is not robbed of it; a dead replica's items
    # are taken over after it (docs/architecture.md, "Replicas").
    claim_lease_seconds: float = 60.0
    default_role: Role = Role.AGENT
    time_zone: str = "UTC"
    users: tuple[UserConfig, ...] = ()
    customers: tuple[CustomerConfig, ...] = ()
    slack_team_id: str | None = None
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_api_url: str | None = None
    teams_app_id: str | None = None
    teams_app_password: str | None = None
    teams_app_type: str | None = None
    teams_app_tenant_id: str | None = None
    teams_partner_tenant_id: str | None = None
    partner_center_url: str = "https://api.partnercenter.microsoft.com"
    partner_center_login_url: str = "https://login.microsoftonline.com"
    partner_center_tenant_id: str | None = None
    partner_center_client_id: str | None = None
    partner_center_client_secret: str | None = None
    partner_center_refresh_token: str | None = None
    # [partner_center]: how often an escalated case's service request is read (API mode),
    # and after how long the owner is asked to check it in the portal (manual mode).
    partner_center_poll_minutes: float = 60.0
    partner_center_manual_check_hours: float = 24.0
    reminders: ReminderPolicy = field(default_factory=ReminderPolicy)
    collections: CollectionsPolicy = field(default_factory=CollectionsPolicy)
    # [attachments] max_bytes: the largest file the terminal or the web page may attach.
    attachment_max_bytes: int = 10 * 2**20
    raw: dict[str, Any] = field(default_factory=dict)

    def user_by_name(self, name: str) -> UserConfig | None:
        wanted = name.casefold()
        for user in self.users:
            if user.name.casefold() == wanted:
                return user
        return None

    def redacted(self) -> dict[str, Any]:
        """Settings safe to print: secrets replaced by whether they are set."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if any(s in name for s in ("token", "secret", "password")):
                value = "set" if value else "not set"
            out[name] = value if not isinstance(value, Path) else str(value)
        out.pop("raw", None)
        return out


def _str(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key} must be a string, not {type(value).__name__}")
    return value


def _zone(value: str, where: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f'{where}: "{value}" is not a time zone name (use e.g. Europe/Berlin)'
        ) from exc
    return value


def _role(value: Any, where: str) -> Role:
    try:
        return Role(str(value))
    except ValueError as exc:
        raise ConfigError(f"{where}: role must be one of agent, lead, customer, none") from exc


def _users(items: Any) -> tuple[UserConfig, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ConfigError("[[users]] must be an array of tables")
    out = []
    for i, item in enumerate(items):
        where = f"users[{i}]"
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{where} needs a name")
        hours = item.get("working_hours")
        if hours is not None and (
            not isinstance(hours, list)
            or len(hours) != 2
            or not all(isinstance(h, str) for h in hours)
        ):
            raise ConfigError(f'{where}.working_hours must look like ["09:00", "17:00"]')
        tz = _str(item, "time_zone", where)
        out.append(
            UserConfig(
                name=str(item["name"]),
                role=_role(item.get("role", "agent"), where),
                display_name=_str(item, "display_name", where),
                slack=_str(item, "slack", where),
                teams=_str(item, "teams", where),
                time_zone=_zone(tz, where) if tz else None,
                locale=_str(item, "locale", where),
                working_hours=(hours[0], hours[1]) if hours else None,
                web_token_sha256=_str(item, "web_token_sha256", where),
                customer=_str(item, "customer", where),
            )
        )
    return tuple(out)


def _customers(items: Any) -> tuple[CustomerConfig, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ConfigError("[[customers]] must be an array of tables")
    out = []
    for i, item in enumerate(items):
        where = f"customers[{i}]"
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{where} needs a name")
        out.append(
            CustomerConfig(
                name=str(item["name"]),
                tenant_id=_str(item, "tenant_id", where),
                owner=_str(item, "owner", where),
                slack_channels=tuple(item.get("slack_channels", ())),
                teams_conversations=tuple(item.get("teams_conversations", ())),
            )
        )
    return tuple(out)


def _reminders(data: Any) -> ReminderPolicy:
    if data is None:
        return ReminderPolicy()
    if not isinstance(data, dict):
        raise ConfigError("[reminders] must be a table")
    default = ReminderPolicy()
    numbers: dict[str, Any] = {}
    for key in ("repeat_every_hours", "first_response_hours", "idle_days", "claim_timeout_minutes"):
        value = data.get(key, getattr(default, key))
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"reminders.{key} must be a positive number")
        numbers[key] = float(value)
    for key in ("escalate_after", "max_delivery_attempts"):
        value = data.get(key, getattr(default, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"reminders.{key} must be a whole number of at least 1")
        numbers[key] = value
    hours = data.get("working_hours", list(default.working_hours))
    if not (isinstance(hours, list) and len(hours) == 2 and all(isinstance(h, str) for h in hours)):
        raise ConfigError('reminders.working_hours must look like ["09:00", "17:00"]')
    days = data.get("working_days", list(default.working_days))
    if not (
        isinstance(days, list) and days and all(isinstance(d, int) and 0 <= d <= 6 for d in days)
    ):
        raise ConfigError("reminders.working_days must list weekday numbers, Monday = 0")
    target = data.get("escalation_target")
    if target is not None and not isinstance(target, str):
        raise ConfigError("reminders.escalation_target must be a user name")
    return ReminderPolicy(
        working_hours=(hours[0], hours[1]),
        working_days=tuple(days),
        escalation_target=target,
        **numbers,
    )


def _partner_center(data: Any) -> dict[str, float]:
    """``[partner_center]`` numbers (the credentials come from the environment only)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("[partner_center] must be a table")
    out: dict[str, float] = {}
    for key in ("poll_minutes", "manual_check_hours"):
        if key in data:
            value = data[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"partner_center.{key} must be a positive number")
            out[f"partner_center_{key}"] = float(value)
    return out


def _attachment_max_bytes(data: Any) -> int:
    """``[attachments] max_bytes``: the largest upload (default 10 MiB, at most 64 MiB)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("[attachments] must be a table")
    value = data.get("max_bytes", 10 * 2**20)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64 * 2**20:
        raise ConfigError("attachments.max_bytes must be a whole number of bytes, 1 to 67108864")
    return value


def _collections(data: Any) -> CollectionsPolicy:
    """``[collections]``: stages by days past due (ascending) and the daily run time."""
    if data is None:
        return CollectionsPolicy()
    if not isinstance(data, dict):
        raise ConfigError("[collections] must be a table")
    default = CollectionsPolicy()
    run_at = data.get("run_at", default.run_at)
    try:
        if not isinstance(run_at, str):
            raise ValueError
        dt_time.fromisoformat(run_at)
    except ValueError:
        raise ConfigError('collections.run_at must be a time of day like "09:00"') from None
    items = data.get("stages")
    if items is None:
        return CollectionsPolicy(run_at=run_at)
    if not isinstance(items, list) or not items:
        raise ConfigError(
            'collections.stages must be a list like [{ days = 1, action = "remind" }, ...]'
        )
    stages: list[CollectionsStage] = []
    for i, item in enumerate(items):
        where = f"collections.stages[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f'{where} must be a table like {{ days = 15, action = "warn" }}')
        days, action = item.get("days"), item.get("action")
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise ConfigError(f"{where}.days must be a whole number of days past due, at least 1")
        if action not in COLLECTION_ACTIONS:
            raise ConfigError(f"{where}.action must be one of {', '.join(COLLECTION_ACTIONS)}")
        if stages and days <= stages[-1].days:
            raise ConfigError(f"{where}.days must be more than the stage before it")
        if stages and stages[-1].action == "suspend":
            raise ConfigError(f"{where}: the suspend stage must be the last one")
        stages.append(CollectionsStage(days, str(action)))
    if any(s.action == "warn" for s in stages) and stages[-1].action != "suspend":
        raise ConfigError(
            "collections.stages: a warn stage names the suspension date, so end with a "
            "suspend stage"
        )
    return CollectionsPolicy(stages=tuple(stages), run_at=run_at)


def load_settings(env: dict[str, str] | None = None, *, config_path: str | None = None) -> Settings:
    """Read ``BOT_CONFIG`` (default ``./billing-bot.toml``, optional) and the environment."""
    env = dict(os.environ if env is None else env)
    explicit = config_path or env.get("BOT_CONFIG")
    path = Path(explicit or "billing-bot.toml")
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    elif explicit:
        raise ConfigError(f"config file {path} does not exist (BOT_CONFIG)")
    desk = data.get("desk", {})
    slack = data.get("slack", {})
    teams = data.get("teams", {})
    if not all(isinstance(d, dict) for d in (desk, slack, teams)):
        raise ConfigError("[desk], [slack] and [teams] must be tables")
    port_text = env.get("PORT", "3978")
    try:
        port = int(port_text)
    except ValueError as exc:
        raise ConfigError(f"PORT must be a number, not {port_text!r}") from exc
    lease_text = env.get("BOT_CLAIM_LEASE_SECONDS", "60")
    try:
        lease = float(lease_text)
    except ValueError:
        lease = 0.0
    if not 0 < lease < 86400:
        raise ConfigError(
            f"BOT_CLAIM_LEASE_SECONDS must be a number of seconds above 0, not {lease_text!r}"
        )
    tz = desk.get("time_zone", "UTC")
    return Settings(
        config_path=path if path.exists() else None,
        db_path=env.get("BOT_DB", "./data/billing-bot.json"),
        host=env.get("HOST", "127.0.0.1"),
        port=port,
        claim_lease_seconds=lease,
        default_role=_role(desk.get("default_role", "agent"), "desk.default_role"),
        time_zone=_zone(str(tz), "desk.time_zone"),
        users=_users(data.get("users")),
        customers=_customers(data.get("customers")),
        slack_team_id=_str(slack, "team_id", "slack"),
        slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
        slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
        slack_api_url=env.get("SLACK_API_URL") or None,
        teams_app_id=env.get("MICROSOFT_APP_ID") or None,
        teams_app_password=env.get("MICROSOFT_APP_PASSWORD") or None,
        teams_app_type=env.get("MICROSOFT_APP_TYPE") or None,
        teams_app_tenant_id=env.get("MICROSOFT_APP_TENANT_ID") or None,
        teams_partner_tenant_id=_str(teams, "tenant_id", "teams"),
        partner_center_url=env.get("PARTNER_CENTER_URL", "https://api.partnercenter.microsoft.com"),
        partner_center_login_url=env.get(
            "PARTNER_CENTER_LOGIN_URL", "https://login.microsoftonline.com"
        ),
        partner_center_tenant_id=env.get("PARTNER_CENTER_TENANT_ID") or None,
        partner_center_client_id=env.get("PARTNER_CENTER_CLIENT_ID") or None,
        partner_center_client_secret=env.get("PARTNER_CENTER_CLIENT_SECRET") or None,
        partner_center_refresh_token=env.get("PARTNER_CENTER_REFRESH_TOKEN") or None,
        reminders=_reminders(data.get("reminders")),
        collections=_collections(data.get("collections")),
        **_partner_center(data.get("partner_center")),
        attachment_max_bytes=_attachment_max_bytes(data.get("attachments")),
        raw=data,
    )
