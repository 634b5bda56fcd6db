"""Slack I/O: slack-bolt's ``AsyncApp`` on the bot's aiohttp app, and the Web API client.

Inbound (``POST /slack/events``): bolt verifies the signature (401 on a
missing, wrong or stale one), then each listener records the request in the
runtime's durable request queue *before* it acks (``process_before_response=True``,
so bolt answers only after the listener returned). The work runs after the
ack in :meth:`SlackChannel.work`: the desk handles the message, and the
replies are queued again as a ``deliver`` item, so a crash never runs the
desk twice for one request. Only a modal submission is answered in the
request itself, because Slack wants its ``response_action: errors`` there.

Outbound: one :class:`AsyncWebClient` (one shared aiohttp session, closed on
shutdown) with ``AsyncRateLimitErrorRetryHandler`` for 429s; other Web API
errors are logged and the user is told where Slack allows it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack import translate as t
from bot.config import Settings
from bot.domain import Role, User, format_case_id, parse_case_id
from bot.i18n import _, normalize_locale, use_locale
from bot.kernel.model import ActionRef, Channel, Form, Message, Reply
from bot.kernel.runtime import unique_id
from bot.kernel.serialize import reply_from_dict, reply_to_dict
from bot.outbound import READ_SECONDS, client_timeout
from bot.storage import StorageError
from conversations.clicks import Click, judge_click
from conversations.formengine import conversation_key
from conversations.runtime import Runtime
from conversations.sharing import CustomerConversations, answer_privately
from conversations.text import plain

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
PROFILE_TTL = 3600.0  # seconds a users.info answer is trusted
PROFILE_WAIT_IN_REQUEST = 0.8  # seconds a modal submission may wait for users.info
RATE_LIMIT_RETRIES = 3
UNVERIFIED_TEAM = "unverified"  # a sender's workspace when neither Slack payload nor API said
# chat.postMessage errors after which the answer goes to the user privately instead.
NOT_POSTABLE = {
    "not_in_channel",
    "channel_not_found",
    "is_archived",
    "restricted_action",
    "cannot_reply_to_message",
}

# chat.update errors after which the clicked message's response_url replaces it instead.
NOT_UPDATABLE = {
    "cant_update_message",
    "message_not_found",
    "channel_not_found",
    "not_in_channel",
    "edit_window_closed",
}


@dataclass(frozen=True, slots=True)
class Profile:
    """What users.info tells about a Slack user."""

    name: str
    tz: str | None
    team: str | None
    locale: str | None
    is_bot: bool = False


class ResponseUrlError(Exception):
    """A ``response_url`` answered something other than 200."""


class SlackChannel:
    """The Slack channel: bolt app, request worker, deliverer and Web API calls."""

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        base_url = settings.slack_api_url or DEFAULT_API_URL
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.session: aiohttp.ClientSession | None = None
        self.client = AsyncWebClient(
            token=settings.slack_bot_token,
            base_url=base_url,
            retry_handlers=self._retry_handlers(),
            # slack_sdk sets one total timeout per call (it replaces the session's): bounded
            # by the read timeout, so a Web API that never answers costs 15 s, not 30.
            timeout=int(READ_SECONDS),
        )
        self.bolt = AsyncApp(
            client=self.client,
            signing_secret=settings.slack_signing_secret,
            process_before_response=True,  # record in the request queue, then ack
            request_verification_enabled=True,
        )
        self._signing_key = (settings.slack_signing_secret or "").encode()
        self._profiles: dict[str, tuple[float, Profile | None]] = {}
        self._customer_conversations = CustomerConversations(settings.customers)
        self._telling: set[asyncio.Task[None]] = set()  # notes sent after an ack
        self.bolt.command(re.compile(r"^/"))(self._on_command)
        self.bolt.action(re.compile(r".*"))(self._on_action)
        self.bolt.view(re.compile(r".*"))(self._on_view)
        self.bolt.event(re.compile(r".*"))(self._on_event)
        self.bolt.error(self._on_error)

    @staticmethod
    def _retry_handlers() -> list[Any]:
        return [
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ]

    # ---- lifecycle -------------------------------------------------------
    async def _ensure_session(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(timeout=client_timeout())
            self.client.session = self.session
        return self.session

    async def on_startup(self, app: web.Application) -> None:
        await self._ensure_session()

    async def on_cleanup(self, app: web.Application) -> None:
        if self.session is not None and not self.session.closed:
            await self.session.close()
        self.session = None
        self.client.session = None

    # ---- HTTP ------------------------------------------------------------
    async def http(self, request: web.Request) -> web.Response:
        """``POST /slack/events``: events, the slash command and interactivity."""
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not timestamp.isdigit() or not request.headers.get("X-Slack-Signature"):
            # bolt would answer 401 too; a non-numeric timestamp would make it fail with 500.
            return web.json_response({"error": "invalid request"}, status=401)
        raw = await request.read()
        why = self._signature_problem(raw, timestamp, request.headers["X-Slack-Signature"])
        if why is not None:
            # The reason only: bolt would log the whole body (Slack's verification token, a
            # response_url, whatever an attacker sent) at INFO. It never sees this request.
            log.info("refused a Slack request: %s", why)
            return web.json_response({"error": "invalid request"}, status=401)
        await self._ensure_session()
        acked = await self._ack_directly(request, raw)
        if acked is not None:
            return acked
        try:
            bolt_request = await to_bolt_request(request)
        except UnicodeDecodeError:
            return web.json_response({"error": "the body is not UTF-8"}, status=400)
        except (ValueError, LookupError, AttributeError, TypeError):  # bolt reads it at once
            return web.json_response({"error": "the body is not a Slack payload"}, status=400)
        if not isinstance(bolt_request.body, dict):
            return web.json_response({"error": "the body is not a Slack payload"}, status=400)
        retry = request.headers.get("X-Slack-Retry-Num")
        if retry:
            log.info("Slack retry %s (%s)", retry, request.headers.get("X-Slack-Retry-Reason", ""))
        try:
            response = await self.bolt.async_dispatch(bolt_request)
        except Exception as exc:
            if not _raised_in_bolt(exc):
                raise
            # bolt's error handler itself read the bad field again (e.g. ``actions[0]``).
            log.warning("refusing a Slack payload of an unexpected shape: %r", exc)
            return web.json_response({"error": "the body is not a Slack payload"}, status=400)
        return await to_aiohttp_response(response)

    async def _on_error(self, error: Exception, response: BoltResponse | None) -> None:
        """bolt's error handler: a payload bolt itself cannot read is a 400, not a 500.

        bolt reads documented fields blindly while matching (``actions[0]``, an
        event that is not an object): that is the sender's fault, and a 500 would
        only make Slack send it again. Errors raised in our own code stay 500s.
        """
        if response is not None and _raised_in_bolt(error):
            log.warning("refusing a Slack payload of an unexpected shape: %r", error)
            response.status = 400
            response.body = '{"error": "the body is not a Slack payload"}'
            response.headers["content-type"] = ["application/json;charset=utf-8"]
            return
        log.error("handling a Slack request failed", exc_info=error)

    def _signature_problem(self, raw: bytes, timestamp: str, signature: str) -> str | None:
        """Why the request's signature is refused; None if it is Slack's.

        Slack's v0 scheme over the body's bytes (what bolt's verifier computes,
        without decoding the body first: a signed body that is not UTF-8 is
        then refused with 400 on bolt's path, not 500).
        """
        if abs(time.time() - int(timestamp)) > 60 * 5:
            return "the request timestamp is more than 5 minutes away from now"
        basestring = b"v0:" + timestamp.encode() + b":" + raw
        expected = "v0=" + hmac.new(self._signing_key, basestring, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return None
        return "the signature does not match the body (wrong signing secret or altered body)"

    async def _ack_directly(self, request: web.Request, raw_body: bytes) -> web.Response | None:
        """The ack of a slash command or a button click: verify, record, answer; else None.

        Acknowledging these needs nothing of bolt's dispatch (a request object,
        the middleware chain, listener matching, a context with its own Web API
        client), which costs more than recording the request durably; and the
        work after the ack never goes through bolt. The signature was checked
        by :meth:`http` (Slack's v0 scheme over the bytes, before parsing), the
        body parsed as bolt's own parser parses it (:func:`translate.parse_form`,
        in C where it can), and the same queued request recorded as by the
        listeners below. Everything else (events, modal submissions, ``ssl_check``,
        a payload of an unexpected shape) takes bolt's path: None.
        """
        if request.content_type != "application/x-www-form-urlencoded":
            return None
        try:
            raw = raw_body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        try:
            body = t.parse_form(raw)
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        if isinstance(body.get("command"), str) and "ssl_check" not in body:
            text = await self._record_command(body)
            return web.json_response({"text": text}) if text else web.Response()
        if body.get("type") == "block_actions" and _plain_click(body):
            await self._record_action(body)
            return web.Response()
        return None

    # ---- listeners: record, then ack ---------------------------------------
    async def _enqueue(
        self, item: dict[str, Any], dedupe: str | None, *, request_body: bool = True
    ) -> bool:
        """Queue ``item``; ``request_body``: it holds only the request's body as parsed.

        Such an item (the body parsed from the form or JSON, never changed after
        this) is handed over to the store rather than copied: the copy was a
        seventh of an ack's CPU.
        """
        item = {"id": unique_id(), **item}
        return await self.runtime.enqueue("slack", item, dedupe=dedupe, handed_over=request_body)

    async def _queue_delivery(
        self,
        origin: t.Origin,
        replies: list[Reply],
        dedupe: str | None,
        *,
        keep_text_form: bool = False,
    ) -> bool:
        """Queue the sending of ``replies`` (a queued request of its own: never sent twice)."""
        item = {
            "kind": "deliver",
            "origin": origin.to_dict(),
            "replies": [reply_to_dict(r) for r in replies],
            "private_only": await self._private_only(origin),
            "keep_text_form": keep_text_form,
        }
        return await self._enqueue(item, dedupe, request_body=False)

    async def _on_command(self, body: dict[str, Any], ack: AsyncAck) -> None:
        text = await self._record_command(body)
        await (ack(text=text) if text else ack())

    async def _record_command(self, body: dict[str, Any]) -> str | None:
        """Record a slash command in the request queue; the ack's text when it could not be."""
        trigger = body.get("trigger_id")
        try:
            await self._enqueue(
                {"kind": "command", "body": t.redact(body)},
                dedupe=f"slack:command:{trigger}" if trigger else None,
            )
        except StorageError:
            log.exception("could not record a slash command")
            return _storage_down()
        return None

    async def _on_event(
        self, body: dict[str, Any], ack: AsyncAck, context: AsyncBoltContext
    ) -> None:
        bot = context.bot_user_id
        parsed = t.event_to_message(body, bot)
        if parsed is None or not await self._for_us(parsed[1]):
            await ack()  # not for us (edits, joins, other bots, other threads): acked, ignored
            return
        # A storage error propagates: bolt answers 500 and Slack retries the event later.
        queued = await self._enqueue(
            {"kind": "event", "body": t.redact(body), "bot": bot}, t.event_dedupe_key(body)
        )
        if not queued:
            log.info("event %s was already recorded; ignoring the retry", body.get("event_id"))
        await ack()

    async def _on_action(self, body: dict[str, Any], ack: AsyncAck) -> None:
        await self._record_action(body)
        await ack()

    async def _record_action(self, body: dict[str, Any]) -> None:
        """Record a click in the request queue (a storage error is told after the ack)."""
        key = t.click_dedupe_key(body)
        stored = t.redact(body)
        message = stored.get("message")
        if isinstance(message, dict):
            # Slack sends the clicked message whole (every block of the card); only its ts
            # is read after the ack, so only that goes into the request queue.
            stored["message"] = {"ts": message.get("ts")}
        item: dict[str, Any] = {"kind": "action", "body": stored, "dedupe": key}
        try:
            if not await self._enqueue(item, key):
                # A second click: queued without its key; the worker answers "already done".
                await self._enqueue({**item, "duplicate": True}, None)
        except StorageError:
            log.exception("could not record a click")
            self._tell_storage_down(body.get("response_url"))

    def _tell_storage_down(self, response_url: Any) -> None:
        """A click that could not be recorded: say so privately, after the ack (best effort)."""
        if not isinstance(response_url, str) or not response_url:
            return
        payload = {"response_type": "ephemeral", "replace_original": False}

        async def tell() -> None:
            try:
                await self._respond(response_url, {**payload, "text": _storage_down()})
            except Exception as exc:  # noqa: BLE001 - the click changed nothing either way
                log.warning("could not say that storage is down: %s", exc)

        task = asyncio.create_task(tell())
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    async def _on_view(self, body: dict[str, Any], ack: AsyncAck) -> None:
        """A modal submission: validated and done here, so errors go back on the fields."""
        parsed = t.view_to_message(body)
        if parsed is None:
            await ack()
            return
        msg, origin = parsed
        view_id = (body.get("view") or {}).get("id")
        if view_id:
            msg.id = f"slack-view:{view_id}"  # one modal is applied once, however often submitted
        await self._enrich(msg, wait=PROFILE_WAIT_IN_REQUEST)
        await self._introduce_mentioned(msg, wait=PROFILE_WAIT_IN_REQUEST)
        result = await self.runtime.desk.handle(msg)
        bad = next((r.form for r in result.replies if r.form is not None and r.form.errors), None)
        if bad is not None:
            await ack(response_action="errors", errors=t.form_errors(bad, body.get("view")))
            return
        if result.replies and all(
            r.kind == "error" and r.card is None and r.form is None for r in result.replies
        ):
            title_obj = (body.get("view") or {}).get("title")
            shown = title_obj.get("text") if isinstance(title_obj, dict) else None
            title = plain(shown if isinstance(shown, str) else "") or "Billing"
            text = "\n".join(r.text for r in result.replies)
            # Pushed on top of the form: "Back" returns to it with everything still filled in.
            await ack(response_action="push", view=t.notice_view(title, text))
            return
        try:
            await self._queue_delivery(origin, result.replies, None)
        except StorageError:
            log.exception("could not queue the answer to a modal submission")
        await ack()

    # ---- the work after the ack ------------------------------------------
    async def work(self, item: dict[str, Any]) -> None:
        """Inbox handler: do what a recorded Slack request asked for."""
        kind = item.get("kind")
        if kind == "deliver":
            await self._deliver(item)
            return
        marker = t.handled_key(item.get("id"))
        if self.runtime.store.was_seen(marker):
            return  # the desk already handled it; its answer is queued
        body = item.get("body") or {}
        if kind == "command":
            parsed: tuple[Message, t.Origin] | None = t.command_to_message(body)
        elif kind == "event":
            parsed = t.event_to_message(body, item.get("bot"))
        elif kind == "action":
            parsed = t.action_to_message(body)
        else:
            log.warning("unknown Slack queued request %r", kind)
            return
        if parsed is None:
            return
        msg, origin = parsed
        thread = t.card_thread(origin)
        if thread is not None:
            number = await self.runtime.store.card_message_case("slack", thread)
            if number is None:
                return  # recorded as a card's thread, but no longer known: nothing to do
            msg.thread_case = format_case_id(number)
        msg.id = f"slack:{item.get('id')}"  # redone after a crash: the desk answers "already done"
        await self._enrich(msg)
        await self._introduce_mentioned(msg)
        keep_text_form = False
        if msg.action is not None and msg.action.name == t.OPEN_FORM:
            replies = await self._open_form_click(msg, origin)
            keep_text_form = True
        else:
            action = msg.action
            stage_before, version_before = await self._case_marks(action)
            # The click's key was claimed (or found claimed: "duplicate") when it was recorded.
            click = judge_click(action, claimed=bool(item.get("duplicate")), stage=stage_before)
            if click is Click.NOTHING_NEW:
                return  # e.g. a second click while the first opened a form: nothing to show
            result = await self.runtime.handle(msg)
            replies = result.replies
            _stage, version_after = await self._case_marks(action)
            if item.get("dedupe") and not item.get("duplicate") and version_after == version_before:
                # The click changed nothing (it opened a form, or was refused): it may come again.
                await self.runtime.store.commit(
                    [self.runtime.store.forget_event_op(item["dedupe"])]
                )
        if kind == "event" and origin.is_direct:
            await self._remember_dm(origin)
        await self._queue_delivery(origin, replies, marker, keep_text_form=keep_text_form)

    async def _for_us(self, origin: t.Origin) -> bool:
        """A thread reply is for the bot only in the thread of a case card it posted."""
        thread = t.card_thread(origin)
        if thread is None:
            return True
        return await self.runtime.store.card_message_case("slack", thread) is not None

    async def _case_marks(self, action: ActionRef | None) -> tuple[int | None, int | None]:
        """The clicked case's (stage, write counter ``version``): did a click change it?"""
        number = parse_case_id(action.case_id or "") if action else None
        case = await self.runtime.store.get_case(number) if number else None
        return (case.stage, case.version) if case else (None, None)

    async def _open_form_click(self, msg: Message, origin: t.Origin) -> list[Reply]:
        """ "Open form" in a DM or mention: the stored form, or the command that makes it."""
        action = msg.action
        assert action is not None
        form_id = action.value or "ask"
        stored = await self.runtime.store.get_conversation(
            t.form_store_key(origin, form_id, action.case_id)
        )
        if stored and stored.get("form"):
            form = reply_from_dict({"form": stored["form"]}).form
            if form is not None:
                return [Reply(form=form, kind="form")]
        text = f"{form_id} {action.case_id or ''}".strip()
        retyped = Message(
            channel=msg.channel,
            user=msg.user,
            conversation=msg.conversation,
            text=text,
            user_name=msg.user_name,
            is_direct=msg.is_direct,
            tenant=msg.tenant,
            time_zone=msg.time_zone,
            locale=msg.locale,
            reference=msg.reference,
        )
        return (await self.runtime.handle(retyped)).replies

    async def _deliver(self, item: dict[str, Any]) -> None:
        origin = t.Origin.from_dict(item.get("origin") or {})
        replies = [reply_from_dict(r) for r in item.get("replies") or []]
        user = await self.runtime.store.user_by_identity("slack", origin.user)
        with use_locale(user.locale if user else None):  # "Open form", "Cancel", error notes
            steps = t.plan(replies, origin, private_only=bool(item.get("private_only")))
            for step in steps:
                await self._run(step, origin, keep_text_form=bool(item.get("keep_text_form")))
        self.runtime.kick()  # notifications the change made due go out now

    # ---- steps -------------------------------------------------------------
    async def _run(self, step: t.Step, origin: t.Origin, *, keep_text_form: bool) -> None:
        await self._store_forms(step.forms, origin)
        try:
            if step.op == "modal":
                assert step.form is not None
                if await self._open_modal(step.form, origin):
                    if not keep_text_form:
                        await self._clear_text_form(origin)
                    return
                if step.fallback is not None:
                    await self._private(step.fallback, origin)
                return
            if step.op == "post":
                posted = await self._post_visible(step.payload, origin)
                if posted is not None:
                    await self._remember_card(step, *posted)
            elif step.op == "update":
                await self._update(step.payload, origin)
                if origin.channel and origin.message_ts and not origin.is_ephemeral:
                    await self._remember_card(step, origin.channel, origin.message_ts)
            else:
                await self._private(step.payload, origin)
        except (SlackApiError, SlackClientError, ResponseUrlError) as exc:
            log.error("Slack refused %s for %s: %s", step.op, origin.user, _error(exc))
            await self._tell(origin, _error(exc))

    async def _open_modal(self, form: Form, origin: t.Origin) -> bool:
        if not origin.trigger_id:
            return False
        view = t.modal_view(form, t.modal_metadata(form, origin))
        try:
            await self.client.views_open(trigger_id=origin.trigger_id, view=view)
        except SlackApiError as exc:
            # e.g. expired_trigger_id when the work came too late: the button path still works.
            log.warning("views.open failed (%s); answering with an Open form button", _error(exc))
            return False
        return True

    async def _remember_card(self, step: t.Step, channel: str, ts: str) -> None:
        """A case card now shown as message ``ts``: a reply in its thread adds to the case."""
        number = parse_case_id(step.case_id or "")
        if number is not None:
            await self.runtime.store.save_card_message("slack", f"{channel}:{ts}", number)

    async def _post_visible(
        self, payload: dict[str, Any], origin: t.Origin
    ) -> tuple[str, str] | None:
        """Post ``payload`` in the channel (in the thread the request came from, if any);
        (channel, ts) of the message, or None when it went another way."""
        if origin.thread_ts:
            payload = {**payload, "thread_ts": origin.thread_ts}
        try:
            sent = await self.client.chat_postMessage(channel=origin.channel or "", **payload)
            channel, ts = sent.get("channel"), sent.get("ts")
            if isinstance(channel, str) and isinstance(ts, str) and channel and ts:
                return channel, ts
            return None
        except SlackApiError as exc:
            error = _error(exc)
            if error not in NOT_POSTABLE:
                raise
            log.warning("chat.postMessage in %s failed (%s)", origin.channel, error)
        if origin.response_url:
            # Not a member of the channel: a slash command's response_url can still post there.
            await self._respond(origin.response_url, {**payload, "response_type": "in_channel"})
            return None
        note = _("I could not post in this channel ({error}); here it is just for you.").format(
            error=error
        )
        await self._private(_with_note(payload, note), origin)
        return None

    async def _update(self, payload: dict[str, Any], origin: t.Origin) -> None:
        if origin.is_ephemeral:
            if origin.response_url:
                await self._respond(origin.response_url, {**payload, "replace_original": True})
            else:
                await self._private(payload, origin)
            return
        try:
            await self.client.chat_update(
                channel=origin.channel or "", ts=origin.message_ts or "", **payload
            )
        except SlackApiError as exc:
            if not origin.response_url or _error(exc) not in NOT_UPDATABLE:
                raise
            # e.g. a card posted through a response_url: that URL can still replace it.
            log.warning("chat.update failed (%s); replacing through the response_url", _error(exc))
            await self._respond(origin.response_url, {**payload, "replace_original": True})

    async def _private(self, payload: dict[str, Any], origin: t.Origin) -> None:
        """Show ``payload`` to the user only: ephemeral, or the DM the request came from."""
        if origin.source == "command" and origin.response_url:
            await self._respond(origin.response_url, {**payload, "response_type": "ephemeral"})
        elif origin.is_direct and origin.channel and origin.source != "command":
            await self.client.chat_postMessage(channel=origin.channel, **payload)
        elif origin.response_url:
            await self._respond(
                origin.response_url,
                {**payload, "response_type": "ephemeral", "replace_original": False},
            )
        elif origin.channel:
            if origin.thread_ts:  # an answer to a thread reply shows in that thread
                payload = {**payload, "thread_ts": origin.thread_ts}
            await self.client.chat_postEphemeral(
                channel=origin.channel, user=origin.user, **payload
            )
        else:
            channel = await self._dm_channel_for(origin.user)
            await self.client.chat_postMessage(channel=channel, **payload)

    async def _respond(self, url: str, body: dict[str, Any]) -> None:
        session = await self._ensure_session()
        webhook = AsyncWebhookClient(url, session=session, retry_handlers=self._retry_handlers())
        response = await webhook.send_dict(body)
        if response.status_code != 200:
            raise ResponseUrlError(f"response_url answered {response.status_code}")

    async def _tell(self, origin: t.Origin, error: str) -> None:
        """Best effort: tell the user that Slack refused to show the answer."""
        text = t.mrkdwn(
            _(
                "Sorry, Slack refused to show my answer ({error}). What you asked for was "
                "handled: `/billing list` shows where things stand."
            ).format(error=error)
        )
        payload: dict[str, Any] = {"text": text}
        if origin.channel and not origin.is_direct:
            try:
                await self.client.chat_postEphemeral(
                    channel=origin.channel, user=origin.user, **payload
                )
                return
            except (SlackApiError, SlackClientError) as exc:
                log.warning("could not tell %s in %s: %s", origin.user, origin.channel, _error(exc))
        try:
            await self._dm(origin.user, payload)
        except (SlackApiError, SlackClientError) as exc:
            log.warning("could not tell %s about a Slack error: %s", origin.user, _error(exc))

    async def _dm(self, slack_user: str, payload: dict[str, Any]) -> None:
        channel = await self._dm_channel_for(slack_user)
        await self.client.chat_postMessage(channel=channel, **payload)

    # ---- DMs and references ----------------------------------------------
    async def _dm_channel_for(self, slack_user: str) -> str:
        user = await self.runtime.store.user_by_identity("slack", slack_user)
        if user is not None:
            return await self._dm_channel(user, slack_user)
        opened = await self.client.conversations_open(users=slack_user)
        return str(opened["channel"]["id"])

    async def _dm_channel(self, user: User, slack_user: str) -> str:
        refs = await self.runtime.store.references(user.id)
        ref = refs.get("slack") or {}
        if ref.get("channel") and ref.get("user") == slack_user:
            return str(ref["channel"])
        opened = await self.client.conversations_open(users=slack_user)
        channel = str(opened["channel"]["id"])
        profile = await self.profile(slack_user)
        await self.runtime.store.save_reference(
            user.id,
            "slack",
            {
                "team": (profile.team if profile else None) or self.settings.slack_team_id,
                "user": slack_user,
                "channel": channel,
            },
        )
        return channel

    async def _remember_dm(self, origin: t.Origin) -> None:
        """A DM to the bot: keep (team, user, DM channel) so a DM can be sent any time."""
        user = await self.runtime.store.user_by_identity("slack", origin.user)
        if user is None or not origin.channel:
            return
        ref = {"team": origin.team, "user": origin.user, "channel": origin.channel}
        if (await self.runtime.store.references(user.id)).get("slack") != ref:
            await self.runtime.store.save_reference(user.id, "slack", ref)

    async def deliver(self, user: User, replies: list[Reply]) -> bool:
        """The runtime's deliverer: a notification as a DM (conversations.open + postMessage)."""
        slack_user = user.identities.get("slack")
        if not slack_user:
            return False
        await self._ensure_session()
        try:
            channel = await self._dm_channel(user, slack_user)
            await self.client.chat_postMessage(channel=channel, **t.message_payload(replies))
        except (SlackApiError, SlackClientError) as exc:
            log.error("could not DM %s on Slack: %s", user.id, _error(exc))
            return False
        return True

    # ---- forms -------------------------------------------------------------
    async def _store_forms(self, forms: list[Form], origin: t.Origin) -> None:
        """Keep the forms behind "Open form" buttons, so a click opens exactly that form."""
        for form in forms:
            key = t.form_store_key(origin, form.form_id, form.context.get("case"))
            await self.runtime.store.save_conversation(key, {"form": asdict(form)})

    async def _clear_text_form(self, origin: t.Origin) -> None:
        """The modal replaces the desk's field-by-field form in this conversation.

        Otherwise the next slash command in the channel would be taken as an
        answer to a question the user never saw.
        """
        probe = Message(channel=Channel.SLACK, user=origin.user, conversation=origin.conversation)
        await self.runtime.store.save_conversation(conversation_key(probe), None)

    # ---- users -------------------------------------------------------------
    async def profile(self, slack_user: str, *, wait: float | None = None) -> Profile | None:
        """users.info, cached for an hour; None when Slack does not say."""
        now = time.monotonic()
        cached = self._profiles.get(slack_user)
        if cached and cached[0] > now:
            return cached[1]
        await self._ensure_session()
        try:
            call = self.client.users_info(user=slack_user, include_locale=True)
            answer = await (asyncio.wait_for(call, wait) if wait else call)
        except (SlackApiError, SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            # Optional: without it the user keeps the name and time zone stored before.
            log.warning("users.info for %s failed: %s", slack_user, _error(exc))
            self._profiles[slack_user] = (now + 60, None)
            return None
        info = answer.get("user") or {}
        prof = info.get("profile") or {}
        profile = Profile(
            name=str(
                prof.get("display_name") or prof.get("real_name") or info.get("real_name") or ""
            )
            or str(info.get("name") or ""),
            tz=info.get("tz"),
            team=info.get("team_id") or prof.get("team"),
            locale=info.get("locale"),
            is_bot=bool(info.get("is_bot")),
        )
        self._profiles[slack_user] = (now + PROFILE_TTL, profile)
        return profile

    async def _enrich(self, msg: Message, *, wait: float | None = None) -> None:
        """Name, time zone and workspace of the sender, from users.info (cached)."""
        profile = await self.profile(msg.user, wait=wait)
        if profile is None:
            if msg.tenant is None:
                # Nobody vouched for the user's workspace: never take them for partner staff.
                msg.tenant = UNVERIFIED_TEAM
            return
        msg.user_name = profile.name or msg.user_name
        msg.time_zone = profile.tz or msg.time_zone
        msg.tenant = profile.team or msg.tenant
        if profile.locale:
            msg.locale = normalize_locale(profile.locale)

    async def _introduce_mentioned(self, msg: Message, *, wait: float | None = None) -> None:
        """Mentioned people of another workspace, not met yet, are stored without a role.

        ``assign BILL-7 @someone`` makes an unknown person of the partner's own
        workspace an assignee with ``default_role``; a customer's contact must
        never be one (the owner gets reminders with internal notes).
        """
        partner = self.settings.slack_team_id
        if not partner:
            return
        texts = [msg.text, *(msg.form_values or {}).values()]
        mentioned = {uid for text in texts for uid in t.MENTION.findall(text)}
        mentioned |= set(msg.mentions.values())
        for uid in sorted(mentioned):
            if any(cfg.slack == uid for cfg in self.settings.users):
                continue
            if await self.runtime.store.user_by_identity("slack", uid) is not None:
                continue
            profile = await self.profile(uid, wait=wait)
            if profile is None or not profile.team or profile.team == partner:
                continue
            await self.runtime.store.save_user(
                User(
                    id=f"slack:{uid}",
                    display_name=profile.name or uid,
                    role=Role.NONE,
                    time_zone=self.settings.time_zone,
                    identities={"slack": uid},
                )
            )

    async def _private_only(self, origin: t.Origin) -> bool:
        """Staff in a channel shared with a customer: answers (internal notes) stay ephemeral.

        The rule is :func:`conversations.sharing.answer_privately`'s, as on every channel.
        """
        where = (origin.channel,)
        if not self._customer_conversations.shared(Channel.SLACK, where, direct=origin.is_direct):
            return False
        sender = await self.runtime.store.user_by_identity("slack", origin.user)
        return answer_privately(sender, shared=True)


def _raised_in_bolt(error: BaseException) -> bool:
    """A shape error raised inside slack_bolt, with none of our own code below bolt's."""
    if not isinstance(error, LookupError | TypeError | AttributeError | ValueError):
        return False
    inside = False
    tb = error.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith("slack_bolt"):
            inside = True
        elif inside and module.startswith(("adapters.", "bot.", "conversations.")):
            return False  # our listener (or something it called) raised it
        tb = tb.tb_next
    return inside


def _plain_click(body: dict[str, Any]) -> bool:
    """A ``block_actions`` payload shaped as Slack documents it (else bolt's path judges it)."""
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        return False
    first = actions[0]
    if not isinstance(first.get("action_id"), str) or not isinstance(first.get("value", ""), str):
        return False
    return all(
        isinstance(body.get(part) or {}, dict)
        for part in ("user", "container", "channel", "message")
    )


def _error(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        data = exc.response.data  # not a dict when Slack (or a proxy) answered with no JSON
        error = data.get("error") if isinstance(data, dict) else None
        return str(error or exc.response.status_code)
    return str(exc) or type(exc).__name__


def _storage_down() -> str:
    return _(
        "The billing desk's storage is not writable right now, so I did nothing. "
        "Please try again in a minute."
    )


def _with_note(payload: dict[str, Any], note: str) -> dict[str, Any]:
    block = {"type": "context", "elements": [{"type": "mrkdwn", "text": t.mrkdwn(note)}]}
    return {**payload, "blocks": [block, *payload.get("blocks", [])][: t.MAX_BLOCKS]}


__all__ = ["Profile", "SlackChannel"]
