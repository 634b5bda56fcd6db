"""The web page's routes: login, the web chat, the dashboard, the case page, CSV exports.

Every handler runs through :func:`page`, which finds the session (someone not
logged in gets a visitor session that is not stored, so anonymous requests
allocate nothing), refuses a POST without the session's CSRF token (403),
sends people who must log in to ``/login``, resolves the user through the
desk's directory (their role and tenant come from the config, exactly as in
chat) and adds the security headers. Chat input becomes a ``Channel.WEB``
:class:`Message` handled by :meth:`Runtime.handle`, like every other channel.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from adapters.web import receivables as recv
from adapters.web.auth import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    LoginThrottle,
    Session,
    Sessions,
    WebConfig,
    check_token,
    clear_cookie,
    csrf_ok,
    login_required,
    safe_next,
    set_cookie,
    tokens_configured,
)
from adapters.web.chart import age_chart_svg
from adapters.web.csvout import csv_response
from adapters.web.views import (
    SORT_LABELS,
    UNASSIGNED,
    Filters,
    Period,
    apply,
    audit_lines,
    awaiting,
    case_row,
    count_by,
    is_staff,
    kpis,
    open_requests,
    state_counts,
    visible_cases,
    visible_customers,
)
from bot.attachments import size_text
from bot.config import Settings
from bot.domain import Actor, Case, Customer, Role, User, parse_case_id, visible_attachments
from bot.i18n import _, current_locale, negotiate, use_locale
from bot.kernel.model import ActionRef, Channel, Message, Reply, SharedFile
from bot.kernel.runtime import mailbox_key
from bot.kernel.scheduler import loop_key
from bot.kernel.serialize import message_from_dict, reply_from_dict, reply_to_dict
from bot.policy import Action, allowed
from bot.storage import WEB_TABLES, StorageError, declare_tables
from conversations.cards import (
    attachment_path,
    case_card,
    local_time,
    role_label,
    sr_mode_label,
    sr_status_label,
    state_label,
    via_label,
)
from conversations.directory import tenant_key
from conversations.formengine import conversation_key
from conversations.runtime import Runtime
from conversations.text import plain

log = logging.getLogger(__name__)

declare_tables(*WEB_TABLES)  # each person's chat transcript (Store.web_chat)

MAX_ARCHIVED_FOR_KPIS = 5000
CHAT_KEEP = 200  # turns of a person's web chat kept (and shown again on every page load)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(slots=True)
class WebState:
    """What the web page needs of the running bot."""

    runtime: Runtime
    settings: Settings
    config: WebConfig
    sessions: Sessions
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


WEB = web.AppKey("web", WebState)


@dataclass(slots=True)
class Ctx:
    """One request's session and, once logged in, the user and how the desk sees them."""

    state: WebState
    session: Session
    must_login: bool
    user: User | None = None
    actor: Actor | None = None

    @property
    def staff(self) -> bool:
        return self.actor is not None and is_staff(self.actor)


Handler = Callable[[web.Request, Ctx], Awaitable[web.StreamResponse]]


def is_fetch(request: web.Request) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def page(*, need_user: bool = True) -> Callable[[Handler], Callable[[web.Request], Any]]:
    """Wrap a handler with the session, CSRF, login and security-header rules."""

    def wrap(handler: Handler) -> Callable[[web.Request], Any]:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.StreamResponse:
            state = request.app[WEB]
            cookie = request.cookies.get(COOKIE)
            session = state.sessions.get(cookie)
            fresh = False
            if session is None:
                if request.method == "POST" and not cookie:  # a form from no page of ours
                    return _finish(request, _expired(), None, False)
                # Not logged in: nothing is stored until a login succeeds.
                session, fresh = state.sessions.visitor(cookie)
            must_login = login_required(request, state.settings, state.config)
            if session.user and must_login and not session.authenticated:
                session.user = None  # a name was enough on loopback, not here
            if request.method == "POST":
                sent = request.headers.get(CSRF_HEADER)
                if not sent and request.content_type in (
                    "application/x-www-form-urlencoded",
                    "multipart/form-data",
                ):
                    sent = str((await request.post()).get(CSRF_FIELD) or "")
                if not csrf_ok(session, sent):
                    return _finish(request, _expired(), session, fresh)
            ctx = Ctx(state, session, must_login)
            accept = negotiate(request.headers.get("Accept-Language"))
            response: web.StreamResponse
            if need_user:
                if not session.user:
                    if is_fetch(request) or request.method == "POST":
                        response = web.Response(status=401, text=_("Please log in again."))
                    else:
                        target = safe_next(request.path_qs)
                        response = redirect(f"/login?next={_quote(target)}")
                    return _finish(request, response, session, fresh)
                # The browser's language is the platform locale, as Slack's and Teams' are:
                # it counts unless the person chose one (`language`) or the config sets it.
                probe = _message(session.user, {"locale": accept} if accept else {})
                ctx.user, ctx.actor = await state.runtime.desk.directory.resolve(probe)
            locale = ctx.user.locale if ctx.user else accept
            with use_locale(locale):
                response = await handler(request, ctx)
            return _finish(request, response, session, fresh)

        return run

    return wrap


def _expired() -> web.Response:
    return web.Response(
        status=403,
        text=_(
            "This form has expired or did not come from this page. Reload the page and try again."
        ),
    )


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="")


def _finish(
    request: web.Request, response: web.StreamResponse, session: Session | None, fresh: bool
) -> web.StreamResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    # A new visitor gets its cookie, unless the handler set or cleared one (login, logout).
    if fresh and session and COOKIE not in response.cookies:
        set_cookie(request, response, session)
    return response


def _message(user: str, fields: dict[str, Any]) -> Message:
    payload = {"user": user, "conversation": f"web:{user}", **fields}
    return message_from_dict(payload, Channel.WEB)


def render(
    request: web.Request, ctx: Ctx, template: str, values: dict[str, Any], status: int = 200
) -> web.Response:
    flash = list(ctx.session.flash)
    ctx.session.flash.clear()
    base = {
        "me": ctx.user,
        "actor": ctx.actor,
        "staff": ctx.staff,
        "role": ctx.actor.role.value if ctx.actor else "",
        "csrf": ctx.session.csrf,
        "flash": flash,
        "must_login": ctx.must_login,
        "path": request.path,
        "_": _,
        # Stored values (enums, codes) as people read them, in the page's language.
        "state_label": state_label,
        "sr_status_label": sr_status_label,
        "sr_mode_label": sr_mode_label,
        "via_label": via_label,
        "role_label": role_label,
        "lang": "zh-CN" if current_locale() == "zh_CN" else "en",
        "known_customers": [],  # a form's customer suggestions, where a page may show a form
    }
    return aiohttp_jinja2.render_template(template, request, {**base, **values}, status=status)


def error_page(request: web.Request, ctx: Ctx, status: int, text: str) -> web.Response:
    return render(request, ctx, "error.html", {"status": status, "text": text}, status=status)


# ---------------------------------------------------------------- login
@page(need_user=False)
async def login_form(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return _login_page(request, ctx, "", request.query.get("next", "/"), 200)


def _login_page(
    request: web.Request, ctx: Ctx, error: str, next_: str, status: int, name: str = ""
) -> web.Response:
    return render(
        request,
        ctx,
        "login.html",
        {
            "error": error,
            "next": safe_next(next_),
            "name": name,
            "tokens_configured": tokens_configured(ctx.state.settings),
        },
        status=status,
    )


@page(need_user=False)
async def login_submit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name") or "").strip()
    token = str(form.get("token") or "")
    next_ = safe_next(form.get("next"))
    sessions = ctx.state.sessions
    client = request.remote or "?"
    authenticated = False
    if token or ctx.must_login:
        # A right token always logs in at once: no lockout, whoever else failed before.
        cfg = check_token(ctx.state.settings, name, token)
        if cfg is None:
            if not await ctx.state.throttle.failed(name, client):
                # No log line each: a flood beyond the cap must not flood the log too.
                return _login_page(
                    request, ctx, _("Too many failed logins; wait a few minutes."), next_, 429, name
                )
            log.warning("failed web login for %r from %s", name[:64], client)
            return _login_page(
                request, ctx, _("That name and token do not match."), next_, 401, name
            )
        ctx.state.throttle.succeeded(name)
        user, authenticated = cfg.name, True
    else:
        if not name or len(name) > 64 or any(ord(c) < 32 for c in name):
            return _login_page(
                request, ctx, _("Type your name (at most 64 characters)."), next_, 400, name
            )
        user = name
    # A new session id at login (no session fixation), and a new CSRF token with it.
    sessions.drop(ctx.session)
    session = sessions.new(user=user, authenticated=authenticated)
    response = redirect(next_)
    set_cookie(request, response, session)
    return response


@page(need_user=False)
async def logout(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ctx.state.sessions.drop(ctx.session)
    response = redirect("/login")
    clear_cookie(response)
    return response


# ---------------------------------------------------------------- the web chat
def quick_commands(actor: Actor | None) -> list[tuple[str, str]]:
    """(label, command) shortcuts above the chat input, for the sender's role."""
    if actor is None or actor.role == Role.NONE:
        return [(_("Help"), "help")]
    common = [(_("Ask a question"), "ask"), (_("Open a dispute"), "dispute")]
    if actor.role == Role.CUSTOMER:
        return [*common, (_("Our cases"), "list"), (_("Help"), "help")]
    return [
        *common,
        (_("My cases"), "list mine"),
        (_("Unassigned"), "list unassigned"),
        (_("Awaiting customer"), "list awaiting-customer"),
        (_("Reminders"), "reminders"),
        (_("Help"), "help"),
    ]


async def _mailbox(ctx: Ctx) -> list[list[Reply]]:
    """The person's mailbox, newest delivery first; the replies of one delivery in their order."""
    assert ctx.user is not None
    stored = await ctx.state.runtime.store.get_conversation(mailbox_key(ctx.user.id))
    deliveries: list[list[Reply]] = []
    last: object = None
    for item in (stored or {}).get("items", []):
        try:
            reply = reply_from_dict(item)
        except (KeyError, TypeError, ValueError):
            log.warning("skipping an unreadable mailbox item of %s", ctx.user.id)
            continue
        batch = item.get("delivery")  # items stored before deliveries were marked: one each
        if batch is None or batch != last or not deliveries:
            deliveries.append([])
        deliveries[-1].append(reply)
        last = batch
    deliveries.reverse()
    return deliveries


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One turn of the web chat as the page shows it again: what was sent, what came back.

    ``stale[i]`` marks a reply whose case card has a newer card of the same case
    further down, or whose form was sent later: shown dimmed, without its buttons.
    """

    echo: str
    replies: list[Reply]
    stale: list[bool]


def _turn_doc(echo: str, replies: list[Reply], sent_form: str, now: datetime) -> dict[str, Any]:
    return {
        "at": now.isoformat(),
        "echo": echo,
        "form": sent_form,
        "replies": [reply_to_dict(r) for r in replies],
    }


def _form_key(form_id: str, context: dict[str, str]) -> str:
    """Which form a sent form answers: its id and its case (a resolve form per case)."""
    return f"{form_id}|{context.get('case', '')}"


def transcript(docs: list[dict[str, Any]]) -> list[ChatTurn]:
    """Stored turns → what the chat page shows (oldest first), with the stale replies marked."""
    turns: list[tuple[str, list[Reply], str]] = []
    for doc in docs:
        try:
            replies = [reply_from_dict(r) for r in doc.get("replies", [])]
        except (KeyError, TypeError, ValueError):
            log.warning("skipping an unreadable web chat turn")
            continue
        turns.append((str(doc.get("echo") or ""), replies, str(doc.get("form") or "")))
    cards_below: set[str] = set()
    forms_sent_below: set[str] = set()
    out: list[ChatTurn] = []
    for echo, replies, sent_form in reversed(turns):
        stale = []
        for reply in reversed(replies):
            if reply.card is not None:
                stale.append(reply.card.case_id in cards_below)
                cards_below.add(reply.card.case_id)
            elif reply.form is not None:
                stale.append(_form_key(reply.form.form_id, reply.form.context) in forms_sent_below)
            else:
                stale.append(False)
        stale.reverse()
        if sent_form:
            forms_sent_below.add(sent_form)
        out.append(ChatTurn(echo, replies, stale))
    out.reverse()
    return out


async def _known_customers(ctx: Ctx) -> list[str]:
    """The customer names the person may pick in a form (a customer contact: their own)."""
    if ctx.actor is None:
        return []
    customers = await ctx.state.runtime.desk.directory.known_customers()
    return [c.name for c in visible_customers(customers, ctx.actor)]


@page()
async def chat_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _chat(request, ctx)


async def _chat(request: web.Request, ctx: Ctx) -> web.Response:
    assert ctx.user is not None
    case = request.query.get("case", "")
    number = parse_case_id(case)
    return render(
        request,
        ctx,
        "chat.html",
        {
            "history": transcript(ctx.state.runtime.store.web_chat(ctx.user.id)),
            "inbox": await _mailbox(ctx),
            "quick": quick_commands(ctx.actor),
            "open_case": f"BILL-{number}" if number else "",
            "known_customers": await _known_customers(ctx),
        },
    )


@page()
async def chat_send(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    assert ctx.user is not None and ctx.session.user is not None
    form = await request.post()
    fields: dict[str, Any] = {}
    echo = ""
    sent_form = ""
    text = str(form.get("text") or "")
    action = str(form.get("action") or "")
    form_id = str(form.get("form_id") or "")
    if form_id:
        fields["form_id"] = form_id
        fields["form_values"] = {
            k[2:]: str(v) for k, v in form.items() if k.startswith("f_") and len(k) > 2
        }
        fields["form_context"] = {
            k[4:]: str(v) for k, v in form.items() if k.startswith("ctx_") and len(k) > 4
        }
        echo = str(form.get("form_title") or _("Form sent"))[:200]
        sent_form = _form_key(form_id, fields["form_context"])
    elif action:
        ref = ActionRef.from_value(action)
        fields["action"] = ref.to_dict()
        echo = str(form.get("label") or ref.as_text())[:200]
    elif text.strip():
        fields["text"] = text[:4000]
        echo = text[:4000]
    else:
        return web.Response(status=400, text=_("Type a command, or press a button."))
    try:
        msg = _message(ctx.session.user, fields)
    except ValueError as exc:
        return web.Response(status=400, text=str(exc))
    return await _answer(request, ctx, msg, echo, sent_form, form.get("next"))


async def _answer(
    request: web.Request,
    ctx: Ctx,
    msg: Message,
    echo: str,
    sent_form: str,
    next_: Any,
) -> web.Response:
    """The desk's answer to one chat message: kept in the chat history, shown (fetch or page)."""
    assert ctx.user is not None
    runtime = ctx.state.runtime
    result = await runtime.handle(msg)
    replies = result.replies
    if any(r.form is not None for r in replies):
        # The page shows the whole form: the desk's field-by-field state must not swallow
        # the next typed command as an answer (as Slack does once its modal is open).
        await runtime.store.save_conversation(conversation_key(msg), None)
    # The chat page shows the person's turns again after a reload, or coming back from the
    # dashboard: kept per person, on the server.
    try:
        await runtime.store.add_web_chat_turn(
            ctx.user.id, _turn_doc(echo, replies, sent_form, runtime.clock.now()), keep=CHAT_KEEP
        )
    except StorageError:  # the answer is done and counts more than its copy in the history
        log.exception("could not keep a web chat turn of %s", ctx.user.id)
    if is_fetch(request):
        values = {"replies": replies, "echo": echo, "known_customers": await _known_customers(ctx)}
        return render(request, ctx, "replies.html", values)
    if next_ and not any(r.form is not None for r in replies):
        for reply in replies:
            if reply.text:
                ctx.session.flash.append((reply.kind, plain(reply.text)))
        return redirect(safe_next(next_))
    return await _chat(request, ctx)


UPLOAD_PATH = "/chat/upload"


def upload_limit(settings: Settings) -> int:
    """The body of an upload: the largest file the config allows, a little over (so that a
    file just over it gets the desk's clear refusal), and the form's other fields."""
    return settings.attachment_max_bytes + 2**20


@page()
async def _chat_upload(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """A file from the chat page's file input (multipart, with the CSRF token like every POST),
    attached by the desk to the case the form names, or the case in context."""
    assert ctx.session.user is not None
    form = await request.post()
    upload = form.get("file")
    if not isinstance(upload, web.FileField) or not upload.filename:
        return web.Response(status=400, text=_("Choose a file to attach."))
    data = upload.file.read()
    case = str(form.get("case") or "").strip()[:40]
    number = parse_case_id(case)
    for_customer = str(form.get("for_customer") or "") in ("on", "1", "true")
    text = f"attach BILL-{number}" if number else "attach"
    msg = _message(ctx.session.user, {"text": text})
    msg.files = [SharedFile(name=upload.filename, data=data, for_customer=for_customer)]
    echo = _("Attach {name}").format(name=upload.filename[:200])
    if number:
        echo += f" → BILL-{number}"
    return await _answer(request, ctx, msg, echo, "", form.get("next"))


async def chat_upload(request: web.Request) -> web.StreamResponse:
    # The whole form is read (for its CSRF token) under the upload's own size limit.
    limit = upload_limit(request.app[WEB].settings)
    return await _chat_upload(request.clone(client_max_size=limit))


async def attachment_file(request: web.Request) -> web.StreamResponse:
    return await _attachment_file(request)


@page()
async def _attachment_file(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """A file kept in the store, to those who may see the case (a customer: their own
    tenant's, never an internal one); the same 404 for a missing file and a forbidden one."""
    assert ctx.actor is not None
    number = parse_case_id(request.match_info["case_id"])
    store = ctx.state.runtime.store
    case = await store.get_case(number) if number else None
    attachment = case.attachment(request.match_info["file_id"]) if case else None
    missing = web.Response(status=404, text=_("There is no such file."))
    if case is None or attachment is None or not attachment.stored:
        return missing
    customer = await store.get_customer(case.customer_id)
    tenant = tenant_key(customer) if customer else None
    if not allowed(ctx.actor, Action.STATUS, case, customer_tenant=tenant):
        return missing
    if attachment not in visible_attachments(case.attachments, internal=ctx.staff):
        return missing
    data = await store.file_bytes(attachment.id)
    if data is None:
        return missing
    name = attachment.name.replace('"', "").replace("\\", "")
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return web.Response(
        body=data,
        headers={
            "Content-Type": attachment.content_type,
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{_quote(name)}"
            ),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@page()
async def mailbox_fragment(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    values = {"inbox": await _mailbox(ctx), "known_customers": await _known_customers(ctx)}
    return render(request, ctx, "inbox.html", values)


@page()
async def mailbox_clear(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    assert ctx.user is not None
    await ctx.state.runtime.take_mailbox(ctx.user.id)
    if is_fetch(request):
        return render(request, ctx, "inbox.html", {"inbox": []})
    return redirect("/")


# ---------------------------------------------------------------- the dashboard
@dataclass(slots=True)
class DeskView:
    """The data one dashboard request works on, already limited to what the viewer may see."""

    customers: dict[str, Customer]
    names: dict[str, str]
    live: list[Case]
    now: datetime

    def reminders(self, runtime: Runtime) -> Callable[[int], int]:
        def count(number: int) -> int:
            job = runtime.store.job(loop_key(number))
            try:
                return int(job.get("count", 0)) if job else 0
            except (TypeError, ValueError):
                return 0

        return count


async def _load(ctx: Ctx) -> DeskView:
    assert ctx.actor is not None
    store = ctx.state.runtime.store
    customers = {c.id: c for c in await store.customers()}
    names = store.user_names()
    live = visible_cases(await store.live_cases(), customers, ctx.actor)
    return DeskView(customers, names, live, ctx.state.runtime.clock.now())


def _may_see_dashboard(ctx: Ctx) -> bool:
    return ctx.actor is not None and ctx.actor.role in (Role.AGENT, Role.LEAD, Role.CUSTOMER)


async def _period_cases(ctx: Ctx, data: DeskView, period: Period) -> list[Case]:
    """Live and archived cases that may have been created in ``period`` (for the KPIs)."""
    assert ctx.actor is not None
    store = ctx.state.runtime.store
    since = period.since.isoformat()
    own = None
    if not ctx.staff:
        own = {
            c.id for c in data.customers.values() if tenant_key(c) == (ctx.actor.tenant_id or "-")
        }
    picked = [
        s
        for s in store.archived_summaries()
        if s.updated_at >= since and (own is None or s.customer_id in own)
    ]
    picked.sort(key=lambda s: s.updated_at, reverse=True)
    archived = []
    for summary in picked[:MAX_ARCHIVED_FOR_KPIS]:
        case = await store.get_case(summary.number)
        if case is not None:
            archived.append(case)
    return data.live + visible_cases(archived, data.customers, ctx.actor)


@page()
async def dashboard(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    if not _may_see_dashboard(ctx):
        return error_page(request, ctx, 403, _("You have no role on the billing desk yet."))
    assert ctx.actor is not None
    data = await _load(ctx)
    f = Filters.from_query(request.query)
    cases = apply(data.live, f, data.customers)
    rows = [case_row(c, data.customers, data.names, data.now, internal=ctx.staff) for c in cases]
    around = apply(data.live, f.without_state(), data.customers)
    period = Period.from_query(request.query, data.now.date())
    values: dict[str, Any] = {
        "f": f,
        "sorts": [(key, _(label)) for key, label in SORT_LABELS.items()],
        "rows": rows,
        "total_live": len(data.live),
        "by_state": state_counts(around),
        "by_owner": count_by(
            apply(data.live, Filters("", "", f.customer, f.kind, f.q), data.customers),
            lambda c: c.owner or UNASSIGNED,
            lambda k: _("unassigned") if k == UNASSIGNED else data.names.get(k, k),
        ),
        "by_customer": count_by(
            apply(data.live, Filters(f.state, f.owner, "", f.kind, f.q), data.customers),
            lambda c: c.customer_id,
            lambda k: data.customers[k].name if k in data.customers else k,
        ),
        "owners": _owner_choices(data),
        "customers": sorted(
            {c.customer_id for c in data.live},
            key=lambda k: (data.customers[k].name if k in data.customers else k).casefold(),
        ),
        "customer_names": {k: c.name for k, c in data.customers.items()},
        "chart": age_chart_svg(_chart(cases, data)),
        "chart_table": _chart(cases, data),
        "kpi": kpis(await _period_cases(ctx, data, period), period),
        "query": f.query(),
        "period_query": {"from": period.start.isoformat(), "to": period.end.isoformat()},
        "tz": ctx.user.time_zone if ctx.user else "UTC",
        "local_time": local_time,
        "receivables_on": False,
    }
    if ctx.staff:
        values["awaiting"] = awaiting(
            apply(data.live, f.without_state(), data.customers),
            data.customers,
            data.names,
            data.reminders(ctx.state.runtime),
            data.now,
        )
        values["requests"] = open_requests(
            apply(data.live, f.without_state(), data.customers),
            data.customers,
            data.names,
            data.now,
        )
        store = ctx.state.runtime.store
        if recv.available(store):
            overdue = _overdue(ctx, data, f)
            values.update(receivables_on=True, overdue=overdue, stages=recv.stage_totals(overdue))
    return render(request, ctx, "dashboard.html", values)


def _chart(cases: list[Case], data: DeskView) -> Any:
    from adapters.web.views import age_chart

    return age_chart(cases, data.now)


def _owner_choices(data: DeskView) -> list[tuple[str, str]]:
    owners = {c.owner for c in data.live if c.owner}
    choices = sorted(((o, data.names.get(o, o)) for o in owners), key=lambda t: t[1].casefold())
    return [(UNASSIGNED, _("unassigned")), *choices]


def _overdue(ctx: Ctx, data: DeskView, f: Filters) -> list[recv.AccountRow]:
    rows = recv.overdue_accounts(
        ctx.state.runtime.store, ctx.state.settings, data.customers, data.now.date()
    )
    if f.customer:
        rows = [r for r in rows if r.customer_id == f.customer]
    if f.q:
        q = f.q.casefold()
        rows = [
            r
            for r in rows
            if q in r.customer.casefold() or any(q in i.casefold() for i in r.invoices)
        ]
    return rows


@page()
async def export_csv(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    if not _may_see_dashboard(ctx):
        return error_page(request, ctx, 403, _("You have no role on the billing desk yet."))
    which = request.match_info["list"]
    if which != "cases" and not ctx.staff:
        return error_page(request, ctx, 403, _("That list is for the billing team."))
    data = await _load(ctx)
    f = Filters.from_query(request.query)
    stamp = data.now.strftime("%Y%m%d-%H%M")
    if which == "cases":
        rows = [
            case_row(c, data.customers, data.names, data.now, internal=ctx.staff)
            for c in apply(data.live, f, data.customers)
        ]
        return csv_response(
            f"cases-{stamp}.csv",
            [
                "case", "kind", "customer", "state", "owner", "category", "invoice",
                "disputed", "created", "last activity", "age days", "description",
            ],
            (
                [
                    r.case_id, r.kind, r.customer, r.state, r.owner, r.category, r.invoice,
                    r.amount, r.created, r.updated, r.age_days, r.description,
                ]
                for r in rows
            ),
        )  # fmt: skip
    scope = apply(data.live, f.without_state(), data.customers)
    if which == "awaiting":
        waiting = awaiting(
            scope, data.customers, data.names, data.reminders(ctx.state.runtime), data.now
        )
        return csv_response(
            f"awaiting-customer-{stamp}.csv",
            ["case", "customer", "owner", "resolved", "hours since resolution",
             "reminders sent", "resolution"],
            ([r.case_id, r.customer, r.owner, r.resolved_at, r.hours, r.reminders, r.resolution]
             for r in waiting),
        )  # fmt: skip
    if which == "requests":
        reqs = open_requests(scope, data.customers, data.names, data.now)
        return csv_response(
            f"service-requests-{stamp}.csv",
            ["case", "customer", "owner", "request", "mode", "status", "filed", "age days",
             "title"],
            ([r.case_id, r.customer, r.owner, r.request_id, r.mode, r.status, r.filed_at,
              r.age_days, r.title] for r in reqs),
        )  # fmt: skip
    if which == "overdue" and recv.available(ctx.state.runtime.store):
        overdue = _overdue(ctx, data, f)
        return csv_response(
            f"overdue-accounts-{stamp}.csv",
            ["customer", "stage", "days overdue", "oldest due", "outstanding", "invoices",
             "suspended", "suspension date"],
            ([r.customer, r.stage_label, r.days, r.oldest_due, r.amount_text,
              " ".join(r.invoices), "yes" if r.suspended else "no", r.suspension_date]
             for r in overdue),
        )  # fmt: skip
    return error_page(request, ctx, 404, _("There is no such list."))


# ---------------------------------------------------------------- the case page
@page()
async def case_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    assert ctx.actor is not None and ctx.user is not None
    number = parse_case_id(request.match_info["case_id"])
    store = ctx.state.runtime.store
    case = await store.get_case(number) if number else None
    customer = await store.get_customer(case.customer_id) if case else None
    tenant = tenant_key(customer) if customer else None
    visible = case is not None and (
        ctx.staff
        or (
            ctx.actor.role == Role.CUSTOMER
            and ctx.actor.tenant_id is not None
            and tenant == ctx.actor.tenant_id
        )
    )
    if case is None or not visible:
        # The same answer for a missing case and another tenant's: nothing leaks.
        return error_page(
            request, ctx, 404, _("I can't find {case}.").format(case=request.match_info["case_id"])
        )
    names = store.user_names()
    now = ctx.state.runtime.clock.now()
    card = case_card(case, customer, ctx.actor, ctx.user.time_zone, names, now, tenant)
    values = {
        "case": case,
        "card": card,
        "trail": audit_lines(case, ctx.actor, names),
        "notes": case.notes if ctx.staff else [],
        "names": names,
        "sr": case.service_request if ctx.staff else None,
        "tz": ctx.user.time_zone,
        "local_time": local_time,
        "reminders": _reminders_of(ctx, case) if ctx.staff else None,
        "files": visible_attachments(case.attachments, internal=ctx.staff),
        "attachment_path": attachment_path,
        "size_text": size_text,
    }
    return render(request, ctx, "case.html", values)


def _reminders_of(ctx: Ctx, case: Case) -> int | None:
    job = ctx.state.runtime.store.job(loop_key(case.number))
    return int(job.get("count", 0)) if job else None


# ---------------------------------------------------------------- demo data over loopback
async def demo_data_route(request: web.Request) -> web.Response:
    """``billing-bot demo-data`` when a serve owns the store (loopback, JSON only)."""
    from adapters.web.demo import DemoRefused, fill_demo
    from bot.locality import LOCAL_ONLY, is_local

    if not is_local(request):
        return web.json_response({"error": LOCAL_ONLY}, status=403)
    if request.content_type != "application/json":
        return web.json_response({"error": "send application/json"}, status=415)
    state = request.app[WEB]
    try:
        summary = await fill_demo(state.runtime.store, state.settings, state.runtime.clock.now())
    except DemoRefused as exc:
        return web.json_response({"error": str(exc)}, status=409)
    state.runtime.kick()
    return web.json_response({"summary": summary})


def add_routes(app: web.Application) -> None:
    from pathlib import Path

    app.router.add_get("/", chat_page)
    app.router.add_get("/chat", chat_page)
    app.router.add_post("/chat/send", chat_send)
    app.router.add_post(UPLOAD_PATH, chat_upload)
    app.router.add_get("/cases/{case_id}/attachments/{file_id}", attachment_file)
    app.router.add_get("/chat/inbox", mailbox_fragment)
    app.router.add_post("/chat/inbox/clear", mailbox_clear)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get(r"/dashboard/{list:[a-z]+}.csv", export_csv)
    app.router.add_get("/cases/{case_id}", case_page)
    app.router.add_post("/local/demo-data", demo_data_route)
    app.router.add_static("/static/", Path(__file__).parent / "static", name="static")
