"""Who is talking: channel identities → users, roles and the customer tenant they speak for.

The rules of PRODUCT.md: configured users have their configured role; on
Slack and Teams an unlisted user of the partner's own workspace/tenant gets
``default_role``; a user of another workspace/tenant is a ``customer`` only
in a channel the config maps to a customer, else has no role; on the local
channel an unknown name is created as an agent.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from bot.config import Settings, UserConfig, configured_user, with_config
from bot.domain import Actor, Customer, Role, User, customer_key, utcnow
from bot.i18n import normalize_locale
from bot.kernel.model import Channel, Message
from bot.storage import StorageError, Store
from conversations.sharing import CustomerConversations

log = logging.getLogger(__name__)


def tenant_key(customer: Customer) -> str:
    """The tenant a customer's contacts act for (its tenant id, or its name until known)."""
    return customer.tenant_id or f"name:{customer.id}"


class Directory:
    """Resolves the sender of a message to a stored :class:`User` and an :class:`Actor`."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.conversations = CustomerConversations(settings.customers)

    def _config_for(self, channel: Channel, external_id: str) -> UserConfig | None:
        for cfg in self.settings.users:
            if (
                channel in (Channel.LOCAL, Channel.WEB)
                and cfg.name.casefold() == external_id.casefold()
            ):
                return cfg
            if channel == Channel.SLACK and cfg.slack == external_id:
                return cfg
            if channel == Channel.TEAMS and cfg.teams == external_id:
                return cfg
        return None

    async def customer_for_conversation(self, msg: Message) -> Customer | None:
        where = (msg.conversation, msg.reference.get("channel_id"))
        cfg = self.conversations.customer(msg.channel, where)
        if cfg is None:
            return None
        return await self.ensure_customer(cfg.name, tenant_id=cfg.tenant_id)

    async def ensure_customer(self, name: str, *, tenant_id: str | None = None) -> Customer:
        existing = await self.store.find_customer(name)
        if existing:
            return existing
        cfg = next(
            (c for c in self.settings.customers if customer_key(c.name) == customer_key(name)), None
        )
        customer = Customer(
            id=customer_key(name),
            name=cfg.name if cfg else name.strip(),
            tenant_id=tenant_id or (cfg.tenant_id if cfg else None),
            owner=(cfg.owner if cfg and cfg.owner else self.first_lead()),
            created_at=utcnow(),
        )
        await self.store.save_customer(customer)
        return customer

    async def find_customer(self, name: str) -> Customer | None:
        """A stored customer, or one the config names (stored on first mention)."""
        existing = await self.store.find_customer(name)
        if existing or not name.strip():
            return existing
        if any(customer_key(c.name) == customer_key(name) for c in self.settings.customers):
            return await self.ensure_customer(name)
        return None

    async def known_customers(self) -> list[Customer]:
        """Every customer the desk knows: the stored ones and those the config names.

        A configured customer is stored on first mention (:meth:`find_customer`); until
        then it is given here as it will be stored, without being stored.
        """
        stored = await self.store.customers()
        keys = {customer_key(c.name) for c in stored}
        named = [
            Customer(id=customer_key(c.name), name=c.name, tenant_id=c.tenant_id)
            for c in self.settings.customers
            if customer_key(c.name) not in keys
        ]
        return [*stored, *named]

    async def tenant_of(self, cfg: UserConfig) -> str | None:
        """The tenant a configured person speaks for: a customer contact's customer's."""
        if cfg.role == Role.CUSTOMER and cfg.customer:
            return tenant_key(await self.ensure_customer(cfg.customer))
        return None

    async def apply_config(self) -> list[str]:
        """At start: every stored person of the config file gets what it says of them now.

        Someone who chatted before the config named them (or before it changed) keeps
        no stale role, display name, time zone, language or tenant until they write
        again: reminders, escalations and forecasts read the stored record. A language
        the person chose themselves (``language``) stays. Returns who was changed.
        """
        changed: list[str] = []
        for cfg in self.settings.users:
            user = await self.store.get_user(cfg.name)
            if user is None:
                continue  # stored when first needed (configured_user)
            configured = replace(with_config(user, cfg), tenant_id=await self.tenant_of(cfg))
            if configured == user:
                continue
            try:
                await self.store.save_user(configured)
            except StorageError as exc:  # as in resolve: the next message tries again
                log.warning("could not store user %s: %s", user.id, exc)
                continue
            changed.append(user.id)
        if changed:
            log.info("the config changed %d stored users: %s", len(changed), ", ".join(changed))
        return changed

    def first_lead(self) -> str | None:
        for cfg in self.settings.users:
            if cfg.role == Role.LEAD:
                return cfg.name
        return None

    async def resolve(self, msg: Message) -> tuple[User, Actor]:
        cfg = self._config_for(msg.channel, msg.user)
        role: Role
        tenant: str | None = None
        if cfg is not None:
            user_id = cfg.name
            role = cfg.role
            tenant = await self.tenant_of(cfg)
        elif msg.channel in (Channel.LOCAL, Channel.WEB):
            user_id = msg.user
            role = Role.AGENT  # the person at the keyboard owns the machine
        else:
            user_id = f"{msg.channel.value}:{msg.user}"
            partner = (
                self.settings.slack_team_id
                if msg.channel == Channel.SLACK
                else self.settings.teams_partner_tenant_id
            )
            if partner is None or msg.tenant in (None, partner):
                role = self.settings.default_role
            else:
                customer = await self.customer_for_conversation(msg)
                if customer is not None:
                    role = Role.CUSTOMER
                    tenant = tenant_key(customer)
                else:
                    role = Role.NONE
        user = await self.store.get_user(user_id)
        changed = False
        if user is None:
            user = User(  # what the config sets for a configured person follows (with_config)
                id=user_id,
                display_name=msg.user_name or (cfg.name if cfg else msg.user),
                role=role,
                time_zone=msg.time_zone or self.settings.time_zone,
                locale=normalize_locale(msg.locale),
                tenant_id=tenant,
            )
            changed = True
        if cfg is not None:
            configured = with_config(user, cfg)
            if configured != user:
                user = configured
                changed = True
        if user.identities.get(msg.channel.value) != msg.user:
            user.identities[msg.channel.value] = msg.user
            changed = True
        if user.role != role or user.tenant_id != tenant:
            user = replace(user, role=role, tenant_id=tenant)
            changed = True
        platform_locale = normalize_locale(msg.locale) if msg.locale else None
        if (
            platform_locale
            and not user.locale_explicit
            and not (cfg and cfg.locale)
            and user.locale != platform_locale
        ):
            user.locale = platform_locale
            changed = True
        if msg.time_zone and not (cfg and cfg.time_zone) and user.time_zone != msg.time_zone:
            user.time_zone = msg.time_zone
            changed = True
        if msg.user_name and not (cfg and cfg.display_name) and user.display_name != msg.user_name:
            user.display_name = msg.user_name
            changed = True
        if changed:
            try:
                await self.store.save_user(user)
            except StorageError as exc:  # the user record is a cache: keep answering
                log.warning("could not store user %s: %s", user.id, exc)
        actor = Actor(
            user_id=user.id,
            role=role,
            channel=msg.channel.value,
            tenant_id=tenant,
            display_name=user.display_name,
        )
        return user, actor

    async def find_assignee(self, word: str, msg: Message) -> User | None:
        """A person named in ``assign``: an @mention id, a configured name, or a display name."""
        from conversations.commands import mention_id

        external = mention_id(word) or msg.mentions.get(word.lstrip("@"))
        if external:
            user = await self.store.user_by_identity(msg.channel.value, external)
            if user:
                return user
            cfg = self._config_for(msg.channel, external)
            if cfg:
                return await self._materialize(cfg)
            # Someone of the workspace we have not met yet: create them with the default role.
            user = User(
                id=f"{msg.channel.value}:{external}",
                display_name=word.lstrip("@") if not mention_id(word) else external,
                role=self.settings.default_role,
                time_zone=self.settings.time_zone,
                identities={msg.channel.value: external},
            )
            await self.store.save_user(user)
            return user
        return await self.find_person(word)

    async def find_person(self, name: str) -> User | None:
        """A person by name: one of the config (stored on first need), else a stored one."""
        name = name.strip().lstrip("@")
        cfg = self.settings.user_by_name(name)
        if cfg:
            return await self._materialize(cfg)
        return await self.store.find_user(name)

    async def _materialize(self, cfg: UserConfig) -> User:
        user = await self.store.get_user(cfg.name)
        if user:
            return user
        user = configured_user(cfg, self.settings.time_zone)
        await self.store.save_user(user)
        return user
