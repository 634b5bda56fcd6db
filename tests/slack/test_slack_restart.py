"""Lose nothing: a request acked by a ``serve`` that then crashes is done after the restart."""

from __future__ import annotations

import asyncio
import urllib.parse
from pathlib import Path

import aiohttp

from tests.processes import Serve
from tests.slack.slackfake import SECRET, TOKEN, FakeSlack, load, sign


async def test_a_crash_after_the_ack_is_finished_on_restart(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    env = {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": f"{fake_slack.url}/api/",
    }
    db = tmp_path / "billing.json"
    fields = load("slash_command")
    fields.update(
        user_id="UANA",
        channel_id="CGENERAL",
        text="resources",
        response_url=fake_slack.response_url(),
    )
    form = urllib.parse.urlencode(fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(form)}
    release = fake_slack.hold("users.info")  # the work after the ack hangs here...
    first = Serve(db, **env)
    first.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{first.url}/slack/events", data=form, headers=headers) as r:
                assert r.status == 200  # acked: recorded durably before this answer
        for _ in range(200):
            if fake_slack.calls_to("users.info"):
                break
            await asyncio.sleep(0.02)
        assert fake_slack.calls_to("users.info"), "the work never started"
    finally:
        first.kill()  # ...and the process dies before answering the user
    assert not [c for c in fake_slack.calls if c.method == "response_url"]
    del fake_slack.holds["users.info"]
    release.set()
    second = Serve(db, **env)
    second.start()
    try:
        for _ in range(400):
            if [c for c in fake_slack.calls if c.method == "response_url"]:
                break
            await asyncio.sleep(0.02)
        answers = [c.args for c in fake_slack.calls if c.method == "response_url"]
        assert len(answers) == 1, answers
        assert "Microsoft resources" in answers[0]["text"]
    finally:
        code, err = second.stop()
    assert code == 0, err
