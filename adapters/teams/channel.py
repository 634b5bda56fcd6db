"""The thin I/O part of the Teams channel: botbuilder's CloudAdapter on the bot's own app.

``POST /api/messages`` checks the body before the SDK sees it (415 for a
wrong content type, 400 for bad JSON or an activity without ``type``; the SDK
itself would answer 500), then lets the SDK authenticate it
(``BotFrameworkAuthentication.authenticate_request``: with
``MICROSOFT_APP_ID`` set it verifies the request's JWT, none or a bad one →
401, signing keys that cannot be fetched now → 503; see ``auth``). Without
an app id (local, Emulator mode) nothing is authenticated, so a request must
be local (``bot.locality.is_local``, else 403) and name a loopback
``serviceUrl`` (else 400), and no answer ever goes to any other service URL.
The route *records* what the activity asks for in the runtime's durable request queue
(deduplicated by activity id) and answers at once, well inside Teams' 15
seconds. No turn runs in the request: ``CloudAdapter.process`` would build a
connector client and a user-token client for a turn that only records, which
cost far more than the rest of the request. The request worker then runs the
desk and posts the answers with ``continue_conversation``, on outbound clients
made once and reused (see :class:`_Authentication`), with connect and read
timeouts and their token fetched off the event loop.

Answers of one activity are kept in a small durable outbox until all were
sent, so a retry after a failed send re-sends them and never runs the desk a
second time. A double click on a card button is recognised by its click key
(who, which card, which button for which case stage) and changes nothing.

Conversation references are stored for every user and conversation seen, so
direct messages (assignments, reminders) work after a restart; a proactive
send answered 403 or 404 marks the reference dead and reports ``False``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
)
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    ClaimsIdentity,
    ConnectorFactory,
    JwtTokenValidation,
    UserTokenClient,
)
from msrest.exceptions import DeserializationError, HttpOperationError

from adapters.teams import render, translate
from adapters.teams.auth import (
    KEYS_RETRY,
    TIMEOUTS,
    BotConfiguration,
    KeysUnavailable,
    OffLoopCredentialFactory,
    OffLoopCredentials,
    install_signing_keys,
    openid_metadata_url,
)
from bot.config import Settings
from bot.domain import Role, User, format_case_id, parse_case_id
from bot.i18n import _
from bot.kernel.model import ActionRef, Channel, Message, Reply
from bot.kernel.runtime import unique_id
from bot.locality import is_local, is_loopback_url
from bot.storage import StorageError, VersionConflict
from conversations.clicks import Click, judge_click
from conversations.formengine import conversation_key
from conversations.runtime import Runtime
from conversations.sharing import CustomerConversations, answer_privately

log = logging.getLogger(__name__)

CHANNEL = "teams"
CLICK_WINDOW = timedelta(seconds=30)
DEAD_STATUSES = (HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND)
HANDLED_TYPES = ("message", "conversationUpdate", "installationUpdate")
MAX_CLIENTS = 32  # outbound clients kept (one per app id, service URL and audience)
LOCAL_ONLY = (
    "local (Emulator) mode: MICROSOFT_APP_ID is not set, so requests are not authenticated "
    "and /api/messages answers only local requests: from loopback, to a loopback Host, with "
    "no proxy (forwarding) header"
)
LOOPBACK_SERVICE_URL = (
    "local (Emulator) mode: MICROSOFT_APP_ID is not set, so answers go only to a serviceUrl "
    "on this machine (loopback)"
)


class ServiceUrlRefused(PermissionError):
    """Local mode and a service URL not on loopback: nothing is sent (and never will be)."""


class _Authentication(ConfigurationBotFrameworkAuthentication):
    """The SDK's authentication, with its outbound clients made once and reused.

    ``CloudAdapter`` asks for a new ``ConnectorClient`` and ``UserTokenClient``
    for every proactive send, and making one costs about 5 ms of CPU (msrest
    builds its retry settings from scratch each time): more than everything
    else the bot does for a message. Here one client per (app id, service URL,
    audience) serves every send; they are closed when the server stops. Tokens
    are still fetched and refreshed by each client's credentials (MSAL), but in
    a worker thread (``auth.OffLoopCredentials``), and each client has connect
    and read timeouts. In local mode no client is made for a service URL off
    loopback (:class:`ServiceUrlRefused`).
    """

    def __init__(self, configuration: BotConfiguration, *, loopback_only: bool) -> None:
        super().__init__(configuration, credentials_factory=OffLoopCredentialFactory(configuration))
        self.loopback_only = loopback_only  # local mode: answers only to a loopback serviceUrl
        self.connectors: dict[tuple[str, str, str], ConnectorClient] = {}
        self._token_clients: dict[str, UserTokenClient] = {}

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        inner = super().create_connector_factory(claims_identity)
        return _ReusedConnectors(inner, self, _app_id(claims_identity))

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        key = _app_id(claims_identity)
        client = self._token_clients.get(key)
        if client is None:
            client = await super().create_user_token_client(claims_identity)
            self._token_clients[key] = client
        return client

    def reuses(self, client: object) -> bool:
        return any(c is client for c in self.connectors.values())

    async def keep(self, key: tuple[str, str, str], client: ConnectorClient) -> ConnectorClient:
        """Keep ``client`` for ``key``, unless another was kept meanwhile (then use that)."""
        kept = self.connectors.setdefault(key, client)
        if kept is not client:
            await _close(client)
        while len(self.connectors) > MAX_CLIENTS:
            oldest = next(iter(self.connectors))
            await _close(self.connectors.pop(oldest))
        return kept

    async def close(self) -> None:
        clients, self.connectors = list(self.connectors.values()), {}
        for client in clients:
            await _close(client)


class _ReusedConnectors(ConnectorFactory):
    """A connector factory that hands out the kept client for a service URL."""

    def __init__(self, inner: ConnectorFactory, auth: _Authentication, app_id: str) -> None:
        self._inner = inner
        self._auth = auth
        self._app_id = app_id

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        # Every outbound call (answers, DMs, new chats, member look-ups) gets its client here.
        if self._auth.loopback_only and not is_loopback_url(service_url):
            raise ServiceUrlRefused(f"{LOOPBACK_SERVICE_URL}; refused {service_url}")
        key = (self._app_id, service_url, audience or "")
        client = self._auth.connectors.get(key)
        if client is None:
            made = await self._inner.create(service_url, audience)
            # msrest's default is 100 s for connect and read alike; requests takes the pair.
            made.config.connection.timeout = TIMEOUTS
            client = await self._auth.keep(key, made)
        credentials = client.config.credentials
        if isinstance(credentials, OffLoopCredentials):
            await credentials.prepare()
        return client


def _app_id(claims_identity: ClaimsIdentity | None) -> str:
    claims = claims_identity.claims if claims_identity is not None else None
    return str(JwtTokenValidation.get_app_id_from_claims(claims or {}) or "")


async def _close(client: ConnectorClient) -> None:
    try:
        await client.__aexit__(None, None, None)
    except Exception:  # noqa: BLE001 - closing is best effort
        log.debug("closing a connector client failed", exc_info=True)


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@dataclass(slots=True)
class _Sent:
    """What one send produced (for logs and tests)."""

    posted: int = 0
    updated: int = 0
    ids: list[str] = field(default_factory=list)


class TeamsChannel:
    """Everything Teams-specific that needs I/O: the route, the queued work, the DMs."""

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.store = runtime.store
        self.app_id = settings.teams_app_id or None
        # No app id: the local (Emulator) mode, which status() allows only on loopback.
        self.local_mode = not self.app_id
        configuration = BotConfiguration(settings, openid_metadata_url())
        install_signing_keys(
            configuration.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
            configuration.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
        )
        self.auth = _Authentication(configuration, loopback_only=self.local_mode)
        self.adapter = CloudAdapter(self.auth)
        runtime.closers.append(self.auth.close)
        self.customer_conversations = CustomerConversations(settings.customers)

    # ------------------------------------------------------------ HTTP
    async def messages(self, request: web.Request) -> web.StreamResponse:
        """``POST /api/messages``: check the body, let the SDK authenticate, record, answer."""
        if self.local_mode and not is_local(request):
            # Unauthenticated: loopback alone is not enough (DNS rebinding, a local proxy).
            return _json_error(403, LOCAL_ONLY)
        if request.content_type != "application/json":
            return _json_error(415, "send the activity as application/json")
        try:
            body = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _json_error(400, "the body is not valid JSON")
        activity, problem = _parse_activity(body)
        if activity is None:
            return _json_error(400, problem or "not an activity")
        if self.local_mode and not is_loopback_url(activity.service_url):
            # Refused before it is queued: the answers would go to whatever URL a sender named.
            return _json_error(400, LOOPBACK_SERVICE_URL)
        try:
            # None when absent: the SDK's "no header" test is ``is None`` (local mode's path).
            authorization = request.headers.get("Authorization") or None
            await self.auth.authenticate_request(activity, authorization)
        except KeysUnavailable as exc:
            log.warning("Teams request not checked: %s", exc)
            return web.json_response(
                {"error": "the Bot Framework's signing keys cannot be fetched now; retry"},
                status=503,
                headers={"Retry-After": str(int(KEYS_RETRY))},  # a failed fetch waits as long
            )
        except Exception as exc:  # noqa: BLE001 - PermissionError, or a malformed JWT's error
            log.warning("Teams request rejected: %s: %s", type(exc).__name__, exc)
            return _json_error(401, "the request's token could not be verified")
        try:
            await self.record(body)
        except Exception:  # noqa: BLE001 - the Bot Connector retries on a 5xx
            log.exception("could not record a Teams activity")
            return _json_error(503, "the billing desk could not record this; retry")
        # What CloudAdapter.process answers for a turn that sent nothing.
        if body.get("deliveryMode") == "expectReplies":
            return web.json_response({"activities": []})
        if body.get("type") == "invoke":
            return web.Response(status=HTTPStatus.NOT_IMPLEMENTED)
        return web.Response(status=HTTPStatus.CREATED)

    # ------------------------------------------------------------ recording
    async def record(self, body: dict[str, Any]) -> None:
        """Record the activity durably (deduplicated) and return: the work runs after."""
        kind = body.get("type")
        if kind not in HANDLED_TYPES:
            return  # typing, reactions, invokes we do not use: nothing to do
        if kind == "message" and translate.to_message(body) is None:
            return  # a channel message not addressed to the bot
        conv = translate.base_conversation(str((body.get("conversation") or {}).get("id", "")))
        activity_id = body.get("id")
        dedupe = translate.activity_dedupe_key(conv, activity_id) if activity_id else None
        payload = {"kind": kind, "activity": body, "key": dedupe or unique_id()}
        fresh = await self.runtime.enqueue(CHANNEL, payload, dedupe)
        if not fresh:
            log.info("Teams activity %s was delivered again; already recorded", activity_id)

    # ------------------------------------------------------------ queued work
    async def work(self, payload: dict[str, Any]) -> None:
        """The runtime's request handler for Teams items."""
        body: dict[str, Any] = payload["activity"]
        kind = payload.get("kind")
        if kind == "message":
            await self._message(body, payload["key"])
        elif kind in ("conversationUpdate", "installationUpdate"):
            await self._membership(body, payload["key"])

    async def _message(self, body: dict[str, Any], key: str) -> None:
        await self._remember_sender(body)
        outbox_key = f"teams-outbox|{key}"
        state = await self.store.get_conversation(outbox_key)
        if state is None:
            msg = translate.to_message(body)
            if msg is None:
                return
            outgoing = await self._answer(body, msg, key)
            state = {
                "items": [
                    {"activity": o.activity, "replace": o.replace, "case": o.case_id}
                    for o in outgoing
                ],
                "sent": 0,
            }
            await self.store.save_conversation(outbox_key, state)
        await self._flush(outbox_key, state, body)

    async def _answer(self, body: dict[str, Any], msg: Message, key: str) -> list[render.Outgoing]:
        """Run the desk for one message and render its answers."""
        if msg.mentions:
            msg.mentions = await self._resolve_mentions(body, msg.mentions)
        if msg.action is not None and not await self._first_click(body, msg, key):
            return []
        # The desk records this id with the change it makes: if a crash comes between that
        # commit and the outbox's, the redone item answers "already done" instead of redoing.
        msg.id = key
        if msg.action is None and msg.form_id is None:
            msg.thread_case = await self._card_replied_to(msg)
        result = await self.runtime.handle(msg)
        if any(r.form is not None for r in result.replies):
            # The card replaces the desk's field-by-field form in this chat; otherwise the
            # next typed command would be taken as the answer to a question never shown.
            await self.store.save_conversation(conversation_key(msg), None)
        private, sender = await self._private_answer(msg)
        if private:
            return await self._answer_privately(msg, sender, result.replies)
        return render.render_replies(
            result.replies,
            from_card=msg.action is not None or msg.form_id is not None,
            form_submitted=msg.form_id is not None,
        )

    async def _private_answer(self, msg: Message) -> tuple[bool, User | None]:
        """Must the answer stay private (:func:`conversations.sharing.answer_privately`)? And
        the sender's stored record (None: unknown, which counts as staff there)."""
        where = (
            msg.conversation,
            translate.base_conversation(msg.conversation),
            msg.reference.get("channel_id"),
        )
        if not self.customer_conversations.shared(Channel.TEAMS, where, direct=msg.is_direct):
            return False, None
        sender = await self.store.user_by_identity(CHANNEL, msg.user)
        return answer_privately(sender, shared=True), sender

    async def _answer_privately(
        self, msg: Message, sender: User | None, replies: list[Reply]
    ) -> list[render.Outgoing]:
        """Staff answers (internal notes, other customers) go to the personal chat, never the
        shared channel; the channel only learns where the answer went, or (for a sender
        without a personal chat) that it cannot be shown there."""
        if replies and await self._dm_sender(msg, sender, replies):
            text = _("This channel is shared with a customer: I answered you in our personal chat.")
        elif sender is not None:
            text = _(
                "This channel is shared with a customer, so I answer the billing team only in "
                "our personal chat. Please write to me there."
            )
        else:
            text = _(
                "This channel is shared with a customer, so I cannot show this answer here. "
                "Please write to me in our personal chat."
            )
        return render.render_replies([Reply(text=text)], from_card=False)

    async def _first_click(self, body: dict[str, Any], msg: Message, key: str) -> bool:
        """False for a repeated click that has nothing new to show (:func:`judge_click`).

        The click key is claimed durably by the first activity carrying it (a
        retry of that same activity may claim it again), for ``CLICK_WINDOW``.
        A repeat whose card is out of date still goes to the desk, which
        answers "already done" with the current card and changes nothing.
        """
        click = translate.click_key(body)
        if click is None:
            return True
        now = self.runtime.clock.now()
        current = self.store.event(click)
        live = current is not None and current.get("expires", "") > now.isoformat()
        if live and current is not None and current.get("by") != key:
            stage = await self._case_stage(msg.action)
            verdict = judge_click(msg.action, claimed=True, stage=stage)
            if verdict is Click.MOVED_ON:
                log.info("repeated click %s on an out-of-date card: answered already done", click)
                return True
            log.info("repeated click %s ignored: nothing new to show", click)
            return False
        version = current.get("version", 0) if current else None
        doc = {
            "expires": (now + CLICK_WINDOW).isoformat(),
            "by": key,
            "version": (version or 0) + 1,
        }
        try:
            await self.store.commit([self.store.event_record_op(click, doc, expect=version)])
        except VersionConflict:
            return False
        return True

    async def _case_stage(self, action: ActionRef | None) -> int | None:
        """The clicked case's current stage; None when the click names no case there is."""
        number = parse_case_id(action.case_id or "") if action else None
        case = await self.store.get_case(number) if number else None
        return case.stage if case else None

    async def _flush(self, outbox_key: str, state: dict[str, Any], body: dict[str, Any]) -> None:
        """Send what is left in the outbox, recording progress after each activity."""
        reference = translate.reference_of(body)
        reply_to = body.get("id")
        card_id = body.get("replyToId")
        items = state["items"]
        while state["sent"] < len(items):
            item = items[state["sent"]]
            try:
                sent = await self.send(
                    reference,
                    [render.Outgoing(item["activity"], item["replace"])],
                    reply_to=reply_to,
                    update_id=card_id,
                )
                shown = sent.ids[:1] or ([card_id] if sent.updated and card_id else [])
                if item.get("case") and shown:
                    await self._remember_card(body, str(item["case"]), str(shown[0]))
            except ServiceUrlRefused as exc:
                # Recorded before the edge refused such URLs: it would be refused every time.
                log.warning("Teams answers in %s not sent: %s", reference.get("serviceUrl"), exc)
                break
            except HttpOperationError as exc:
                status = _status(exc)
                if status is None or status == 429 or status >= 500:
                    raise  # Teams is busy or down: the request queue retries, the outbox remembers
                # 4xx: the bot was removed from the conversation, or Teams refused this
                # activity; sending it again would get the same answer.
                log.warning(
                    "Teams refused an answer in %s (HTTP %s); not retried",
                    reference["conversation"].get("id"),
                    status,
                )
            state["sent"] += 1
            if state["sent"] < len(items):
                await self.store.save_conversation(outbox_key, state)
        await self.store.save_conversation(outbox_key, None)

    # ------------------------------------------------------------ case cards and replies
    @staticmethod
    def _card_key(conversation_id: str, activity_id: str) -> str:
        return f"{translate.base_conversation(conversation_id)}|{activity_id}"

    async def _remember_card(self, body: dict[str, Any], case_id: str, activity_id: str) -> None:
        """A case card shown as ``activity_id``: a reply to it adds to the case."""
        number = parse_case_id(case_id)
        conversation = str((body.get("conversation") or {}).get("id") or "")
        if number is None or not conversation:
            return
        try:
            await self.store.save_card_message(
                CHANNEL, self._card_key(conversation, activity_id), number
            )
        except StorageError as exc:  # the card is out; only replies to it lose their case
            log.warning("could not remember card %s of %s: %s", activity_id, case_id, exc)

    async def _card_replied_to(self, msg: Message) -> str | None:
        """The case whose card this message replies to (``replyToId``, or the thread's root
        in a channel: ``…;messageid=ID``), or None."""
        candidates = [msg.reference.get("reply_to_id")]
        if ";messageid=" in msg.conversation:
            candidates.append(msg.conversation.split(";messageid=", 1)[1])
        for activity_id in candidates:
            if isinstance(activity_id, str) and activity_id:
                key = self._card_key(msg.conversation, activity_id)
                number = await self.store.card_message_case(CHANNEL, key)
                if number is not None:
                    return format_case_id(number)
        return None

    # ------------------------------------------------------------ sending
    async def send(
        self,
        reference: dict[str, Any],
        outgoing: list[render.Outgoing],
        *,
        reply_to: str | None = None,
        update_id: str | None = None,
    ) -> _Sent:
        """Post (or update) activities in a conversation through ``continue_conversation``.

        ``reply_to`` threads the answer to the message it answers; a proactive
        message has none. ``update_id`` is the card to update for an item
        marked ``replace``; when the update fails the item is posted instead.
        """
        sent = _Sent()
        ref = ConversationReference().deserialize(reference)

        async def fix_reply_to(
            context: TurnContext, activities: list[Activity], next_send: Callable[[], Any]
        ) -> Any:
            # continue_conversation would thread every message to its made-up event id.
            for activity in activities:
                activity.reply_to_id = reply_to
            return await next_send()

        async def callback(context: TurnContext) -> None:
            context.on_send_activities(fix_reply_to)
            try:
                for item in outgoing:
                    activity = Activity().deserialize(item.activity)
                    if item.replace and update_id:
                        activity.id = update_id
                        try:
                            await context.update_activity(activity)
                            sent.updated += 1
                            continue
                        except HttpOperationError as exc:
                            if _status(exc) not in (400, 403, 404):
                                raise
                            log.warning("could not update card %s (%s)", update_id, _status(exc))
                            activity.id = None
                    response = await context.send_activity(activity)
                    sent.posted += 1
                    if response is not None and response.id:
                        sent.ids.append(response.id)
            finally:
                await _close_connector(context, self.adapter)

        await self.adapter.continue_conversation(ref, callback, self.app_id)
        return sent

    # ------------------------------------------------------------ DMs
    async def deliver(self, user: User, replies: list[Reply]) -> bool:
        """The runtime's deliverer: a direct message to ``user``; False when it cannot go out."""
        doc_key, doc = await self._reference_doc(user)
        return await self._send_dm(user.id, doc_key, doc, replies)

    async def _dm_sender(self, msg: Message, sender: User | None, replies: list[Reply]) -> bool:
        """Send ``replies`` to the sender of ``msg`` in the personal chat; False if it cannot go.

        A sender without a stored record is found by the conversation reference kept
        for them when their message came in (:meth:`_remember_sender`).
        """
        if sender is not None:
            return await self.deliver(sender, replies)
        doc_key = await self._user_key(msg.user)
        doc = (await self.store.references(doc_key)).get(CHANNEL)
        return await self._send_dm(doc_key, doc_key, doc, replies)

    async def _send_dm(
        self, who: str, doc_key: str, doc: dict[str, Any] | None, replies: list[Reply]
    ) -> bool:
        if doc is None or doc.get("dead"):
            return False
        dm = doc.get("dm")
        outgoing = render.render_replies(replies, from_card=False)
        try:
            if dm is None:
                dm = await self._open_dm(doc_key, doc)
                if dm is None:
                    return False
            await self.send(dm, outgoing)
        except ServiceUrlRefused as exc:
            log.warning("Teams DM to %s not sent: %s", who, exc)
            return False
        except HttpOperationError as exc:
            status = _status(exc)
            if status in DEAD_STATUSES:
                await self._mark_dead(doc_key, doc, f"HTTP {status}")
                log.warning(
                    "Teams DM to %s failed with %s: the bot was blocked or removed; "
                    "reference marked dead",
                    who,
                    status,
                )
                return False
            log.error("Teams DM to %s failed with HTTP %s", who, status)
            return False
        return True

    async def _reference_doc(self, user: User) -> tuple[str, dict[str, Any] | None]:
        doc = (await self.store.references(user.id)).get(CHANNEL)
        if doc is not None:
            return user.id, doc
        external = user.identities.get(CHANNEL)
        if external:
            other = translate.user_id_of(external)
            doc = (await self.store.references(other)).get(CHANNEL)
            if doc is not None:
                return other, doc
        return user.id, None

    async def _open_dm(self, doc_key: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Start a 1:1 chat with someone met only in a channel (the app must be installed)."""
        member = doc.get("member") or {}
        service_url = doc.get("service_url")
        if not member.get("id") or not service_url or not doc.get("bot"):
            return None
        created: dict[str, Any] = {}
        tenant = doc.get("tenant")
        params = ConversationParameters(
            is_group=False,
            bot=ChannelAccount(id=doc["bot"].get("id"), name=doc["bot"].get("name")),
            members=[ChannelAccount(id=member["id"], name=member.get("name"))],
            tenant_id=tenant,
            channel_data={"tenant": {"id": tenant}} if tenant else None,
        )

        async def callback(context: TurnContext) -> None:
            created["id"] = context.activity.conversation.id
            await _close_connector(context, self.adapter)

        await self.adapter.create_conversation(
            self.app_id, callback, params, "msteams", service_url, None
        )
        if not created.get("id"):
            return None
        dm = {
            "user": {
                "id": member["id"],
                "name": member.get("name"),
                "aadObjectId": member.get("aad"),
            },
            "bot": doc["bot"],
            "conversation": {
                "id": created["id"],
                "conversationType": "personal",
                "tenantId": tenant,
            },
            "channelId": "msteams",
            "serviceUrl": service_url,
        }
        await self.store.save_reference(doc_key, CHANNEL, {**doc, "dm": dm})
        return dm

    async def _mark_dead(self, key: str, doc: dict[str, Any], why: str) -> None:
        dead = {
            **doc,
            "dead": True,
            "dead_reason": why,
            "dead_at": self.runtime.clock.now().isoformat(),
        }
        await self.store.save_reference(key, CHANNEL, dead)

    # ------------------------------------------------------------ references
    async def _user_key(self, aad: str) -> str:
        """The desk's user id for a Teams user (the same rule as the directory)."""
        known = await self.store.user_by_identity(CHANNEL, aad)
        if known is not None:
            return known.id
        for cfg in self.settings.users:
            if cfg.teams == aad:
                return cfg.name
        return translate.user_id_of(aad)

    async def _remember_member(
        self,
        body: dict[str, Any],
        member: dict[str, Any],
        *,
        personal: bool,
    ) -> None:
        """Store (or refresh) what is needed to DM ``member`` later."""
        aad = str(member.get("aadObjectId") or member.get("id") or "")
        if not aad:
            return
        key = await self._user_key(aad)
        current = (await self.store.references(key)).get(CHANNEL) or {}
        reference = translate.reference_of(body)
        doc = {
            **current,
            "member": {"id": member.get("id"), "name": member.get("name"), "aad": aad},
            "bot": reference["bot"],
            "tenant": translate.tenant_of(body),
            "service_url": reference["serviceUrl"],
        }
        if personal:
            doc["dm"] = {**reference, "user": dict(member)}
            doc.pop("dead", None)
            doc.pop("dead_reason", None)
            doc.pop("dead_at", None)
        if doc != current:
            await self.store.save_reference(key, CHANNEL, doc)

    async def _remember_conversation(self, body: dict[str, Any]) -> None:
        reference = translate.reference_of(body)
        conv = translate.base_conversation(str(reference["conversation"].get("id", "")))
        if not conv:
            return
        channel_data = body.get("channelData")
        team = channel_data.get("team") if isinstance(channel_data, dict) else None
        reference["conversation"] = {**reference["conversation"], "id": conv}
        doc = {
            "reference": reference,
            "type": translate.conversation_type(body),
            "team": team.get("id") if isinstance(team, dict) else None,  # any JSON may come
            "tenant": translate.tenant_of(body),
        }
        key = f"conversation:{conv}"
        if (await self.store.references(key)).get(CHANNEL) != doc:
            await self.store.save_reference(key, CHANNEL, doc)

    async def _remember_sender(self, body: dict[str, Any]) -> None:
        sender = body.get("from") or {}
        personal = translate.conversation_type(body) == "personal"
        await self._remember_member(body, sender, personal=personal)
        await self._remember_conversation(body)

    async def _membership(self, body: dict[str, Any], key: str) -> None:
        """``conversationUpdate`` / ``installationUpdate``: references, and a hello on install."""
        personal = translate.conversation_type(body) == "personal"
        bot_id = (body.get("recipient") or {}).get("id")
        await self._remember_conversation(body)
        sender = body.get("from") or {}
        if body.get("type") == "installationUpdate":
            action = str(body.get("action") or "")
            if action.startswith("remove"):
                aad = translate.sender_id(body)
                doc_key = await self._user_key(aad)
                doc = (await self.store.references(doc_key)).get(CHANNEL)
                if personal and doc is not None:
                    await self._mark_dead(doc_key, doc, "app uninstalled")
                return
            if sender.get("id"):
                await self._remember_member(body, sender, personal=personal)
            return
        added = [m for m in body.get("membersAdded") or [] if isinstance(m, dict)]
        for member in added:
            if member.get("id") and member.get("id") != bot_id:
                await self._remember_member(body, member, personal=personal)
        if personal and sender.get("id") and sender.get("id") != bot_id:
            await self._remember_member(body, sender, personal=True)
        bot_added = any(m.get("id") == bot_id for m in added)
        if bot_added and not personal:
            # What an admin needs to map a shared channel to a customer (customers[].teams_…).
            conv = translate.base_conversation(str((body.get("conversation") or {}).get("id")))
            log.info(
                "Teams: added to %s %s of tenant %s (map it in customers[].teams_conversations)",
                translate.conversation_type(body),
                conv,
                translate.tenant_of(body),
            )
        if personal and bot_added and sender.get("id"):
            await self._welcome(body, key)

    async def _welcome(self, body: dict[str, Any], key: str) -> None:
        """The bot was added to someone's personal scope: say what it can do."""
        msg = Message(
            channel=Channel.TEAMS,
            user=translate.sender_id(body),
            conversation=str((body.get("conversation") or {}).get("id", "")),
            text="help",
            user_name=str((body.get("from") or {}).get("name") or ""),
            tenant=translate.tenant_of(body),
            time_zone=translate.time_zone(body),
            locale=body.get("locale"),
        )
        outbox_key = f"teams-outbox|{key}"
        state = await self.store.get_conversation(outbox_key)
        if state is None:
            result = await self.runtime.handle(msg)
            outgoing = render.render_replies(result.replies, from_card=False)
            state = {
                "items": [{"activity": o.activity, "replace": False} for o in outgoing],
                "sent": 0,
            }
            await self.store.save_conversation(outbox_key, state)
        await self._flush(outbox_key, state, {**body, "id": None, "replyToId": None})

    async def _resolve_mentions(
        self, body: dict[str, Any], mentions: dict[str, str]
    ) -> dict[str, str]:
        """Mentioned people as AAD object ids (Teams mentions carry the ``29:…`` id only)."""
        pending = {k: v for k, v in mentions.items() if not translate.is_guid(v)}
        if not pending:
            return mentions
        resolved = dict(mentions)
        reference = translate.reference_of(body)
        conv = translate.base_conversation(str(reference["conversation"].get("id", "")))
        reference["conversation"] = {**reference["conversation"], "id": conv}
        members: dict[str, dict[str, Any]] = {}

        async def callback(context: TurnContext) -> None:
            # TeamsInfo reads the team from channelData, which a continuation activity lacks.
            context.activity.channel_data = dict(body.get("channelData") or {})
            try:
                for name, member_id in pending.items():
                    try:
                        member = await TeamsInfo.get_member(context, member_id)
                    except (HttpOperationError, DeserializationError, ValueError, TypeError) as exc:
                        log.warning("could not look up the mentioned %s: %s", member_id, exc)
                        continue
                    if member.aad_object_id:
                        resolved[name] = member.aad_object_id
                        members[member.aad_object_id] = {
                            "id": member.id,
                            "name": member.name,
                            "aadObjectId": member.aad_object_id,
                            "tenantId": getattr(member, "tenant_id", None),
                        }
            finally:
                await _close_connector(context, self.adapter)

        try:
            await self.adapter.continue_conversation(
                ConversationReference().deserialize(reference), callback, self.app_id
            )
        except ServiceUrlRefused as exc:
            log.warning("mentions not looked up: %s", exc)
            return mentions
        for member in members.values():
            # Someone mentioned (an assignee) can get a DM even before they talk to the bot.
            await self._remember_member(body, member, personal=False)
            await self._introduce(member)
        return resolved

    async def _introduce(self, member: dict[str, Any]) -> None:
        """A mentioned person the desk has not met: known by their Teams name, not ``@Maria_L…``.

        Same rule as the directory for an unknown person of the workspace
        (``default_role``); configured people are left to the directory.
        """
        aad = str(member.get("aadObjectId") or "")
        if not aad or await self.store.user_by_identity(CHANNEL, aad) is not None:
            return
        if any(cfg.teams == aad for cfg in self.settings.users):
            return
        # Someone of another tenant (a customer's contact) gets no role: never an assignee.
        partner = self.settings.teams_partner_tenant_id
        tenant = member.get("tenantId")
        foreign = bool(partner and tenant and tenant != partner)
        await self.store.save_user(
            User(
                id=translate.user_id_of(aad),
                display_name=str(member.get("name") or aad),
                role=Role.NONE if foreign else self.settings.default_role,
                time_zone=self.settings.time_zone,
                identities={CHANNEL: aad},
            )
        )


async def _close_connector(context: TurnContext, adapter: CloudAdapter) -> None:
    client = context.turn_state.get(adapter.BOT_CONNECTOR_CLIENT_KEY)
    auth = adapter.bot_framework_authentication
    if client is not None and not (isinstance(auth, _Authentication) and auth.reuses(client)):
        await _close(client)


MAX_URL_IDS = 2048  # URL-encoded characters of conversation id + activity id


def _parse_activity(body: Any) -> tuple[Activity | None, str | None]:
    """The activity in a JSON body, or None and why the SDK could not take it."""
    if not isinstance(body, dict):
        return None, "the body must be a JSON object (an activity)"
    kind = body.get("type")
    if not isinstance(kind, str) or not kind.strip():
        return None, "the activity has no type"
    service_url = body.get("serviceUrl")
    if not isinstance(service_url, str) or not service_url.startswith(("https://", "http://")):
        return None, "the activity has no serviceUrl"
    for key in ("conversation", "from", "recipient"):
        if key in body and not isinstance(body[key], dict):
            return None, f"the activity's {key} must be an object"
    conversation_id = (body.get("conversation") or {}).get("id")
    if not isinstance(conversation_id, str):
        return None, "the activity has no conversation id"
    activity_id = body.get("id")
    ids = quote(conversation_id, safe="") + quote(
        activity_id if isinstance(activity_id, str) else ""
    )
    if len(ids) > MAX_URL_IDS:
        # Both go into the reply's URL; Teams' own are a few hundred characters at most. A
        # longer pair could never be answered (servers refuse such request lines).
        return None, "the activity's id or conversation id is too long"
    try:
        return Activity().deserialize(body), None
    except (DeserializationError, ValueError, TypeError, AttributeError) as exc:
        return None, f"not a valid activity: {exc}"


__all__ = ["BotConfiguration", "ServiceUrlRefused", "TeamsChannel"]
