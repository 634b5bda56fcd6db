"""The web page: the local chat in a browser and the billing lead's dashboard.

``mount(app, runtime, settings)`` is called by :func:`bot.app.server.build_app`
like the other channel adapters: it adds the routes (``/`` the web chat,
``/dashboard``, ``/cases/BILL-n``, CSV exports, ``/login``) and returns
whether the channel is on and why. Pages are rendered on the server with
aiohttp-jinja2 from ``templates/``; ``static/`` holds one stylesheet and one
small script. No build step, nothing from a CDN.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from adapters.web.auth import COOKIE, Sessions, WebConfig, tokens_configured
from adapters.web.pages import WEB, WebState, add_routes
from adapters.web.render import template_filters, template_globals
from bot.config import Settings
from bot.domain import Role
from bot.locality import is_loopback
from conversations.runtime import Runtime


def mount(app: web.Application, runtime: Runtime, settings: Settings) -> dict[str, Any]:
    """Add the web page's routes; the config's ``[web]`` table is checked here (fails fast)."""
    config = WebConfig.from_settings(settings)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("adapters.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(template_globals())
    env.filters.update(template_filters())
    app[WEB] = WebState(runtime, settings, config, Sessions())
    add_routes(app)
    return {"on": True, "why": _why(settings, config)}


def lead_logged_in(request: web.Request) -> bool:
    """Whether the request carries the session of a lead who logged in with a web token.

    ``/healthz`` shows its detail (paths, URLs, case counts) to such a lead on any
    bind; everyone else who is not local sees only status and storage health.
    """
    state = request.app.get(WEB)
    if state is None:
        return False
    session = state.sessions.get(request.cookies.get(COOKIE))
    if session is None or not session.authenticated or not session.user:
        return False
    cfg = state.settings.user_by_name(session.user)
    return cfg is not None and cfg.role == Role.LEAD


def _why(settings: Settings, config: WebConfig) -> str:
    url = f"http://{settings.host}:{settings.port}/"
    open_here = config.require_login is False or (
        config.require_login is None and is_loopback(settings.host)
    )
    if open_here:
        return f"{url} — open on loopback (a name is enough)"
    if tokens_configured(settings):
        return f"{url} — login with each user's web token"
    return f"{url} — login needed, but no user has web_token_sha256 in the config"
