"""A browser-like client for the web page's aiohttp tests: session cookie, CSRF token, forms."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from aiohttp.test_utils import TestClient

from bot.config import CustomerConfig, UserConfig
from bot.domain import Role
from tests.harness import TENANT_A, TENANT_B, make_settings

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
TOKENS = {"lena": "lena-secret-token", "alice": "alice-secret-token", "carol": "carol-secret"}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def web_settings(**overrides: Any) -> Any:
    """The harness's people, with web tokens, and the desk's two customers."""
    users = (
        UserConfig(
            name="lena",
            role=Role.LEAD,
            display_name="Lena Lead",
            web_token_sha256=digest(TOKENS["lena"]),
        ),
        UserConfig(
            name="alice",
            role=Role.AGENT,
            display_name="Alice Agent",
            web_token_sha256=digest(TOKENS["alice"]).upper(),  # hex case does not matter
        ),
        UserConfig(name="bob", role=Role.AGENT, display_name="Bob Agent"),
        UserConfig(
            name="carol",
            role=Role.CUSTOMER,
            customer="Contoso",
            web_token_sha256=digest(TOKENS["carol"]),
        ),
        UserConfig(name="nora", role=Role.NONE),
    )
    customers = (
        CustomerConfig(name="Contoso", tenant_id=TENANT_A, owner="lena"),
        CustomerConfig(name="Fabrikam", tenant_id=TENANT_B, owner="lena"),
    )
    return make_settings(**{"users": users, "customers": customers, **overrides})


class Browser:
    """One browser: its cookie jar is the test client's, its CSRF token the last page's."""

    def __init__(self, client: TestClient) -> None:  # type: ignore[type-arg]
        self.client = client
        self.csrf = ""

    async def get(self, path: str, status: int = 200, **kw: Any) -> str:
        resp = await self.client.get(path, allow_redirects=False, **kw)
        text = await resp.text()
        assert resp.status == status, (resp.status, text[:500])
        found = _CSRF.search(text)
        if found:
            self.csrf = found.group(1)
        return text

    async def login(self, name: str, token: str | None = None, status: int = 303) -> str:
        await self.get("/login")
        data = {"csrf": self.csrf, "name": name, "next": "/"}
        if token is not None:
            data["token"] = token
        resp = await self.client.post("/login", data=data, allow_redirects=False)
        text = await resp.text()
        assert resp.status == status, (resp.status, text[:500])
        if status == 303:
            await self.get("/")
        return text

    async def post(
        self, path: str, data: dict[str, str], *, fetch: bool = True, status: int = 200
    ) -> str:
        headers = {"X-Requested-With": "fetch"} if fetch else {}
        resp = await self.client.post(
            path, data={"csrf": self.csrf, **data}, headers=headers, allow_redirects=False
        )
        text = await resp.text()
        assert resp.status == status, (resp.status, text[:800])
        return text

    async def say(self, text: str) -> str:
        return await self.post("/chat/send", {"text": text})

    async def click(self, action: str) -> str:
        return await self.post("/chat/send", {"action": action})

    async def submit(
        self, form_id: str, values: dict[str, str], context: dict[str, str] | None = None
    ) -> str:
        data = {"form_id": form_id}
        data.update({f"f_{k}": v for k, v in values.items()})
        data.update({f"ctx_{k}": v for k, v in (context or {}).items()})
        return await self.post("/chat/send", data)


def button(html: str, name: str, case: str) -> str:
    """The value a card's button posts, e.g. ``take|BILL-1|1``."""
    found = re.findall(rf'name="action" value="({name}\|{case}\|\d+[^"]*)"', html)
    assert found, f"no {name} button for {case} in:\n{html[:3000]}"
    return found[-1]


def form_context(html: str, form_id: str) -> dict[str, str]:
    """The hidden context fields of the last form ``form_id`` in ``html``."""
    start = html.rindex(f'data-form-id="{form_id}"')
    end = html.index("</form>", start)
    return dict(re.findall(r'name="ctx_([a-z_]+)" value="([^"]*)"', html[start:end]))
