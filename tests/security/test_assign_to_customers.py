"""A case can never be handed to a customer's contact, even one the desk has not met yet.

Assigning by @mention to someone unknown creates them with ``default_role``
(a colleague from the partner's own workspace or tenant can take a case
before they ever wrote to the bot). Found here: the same happened to a
mentioned contact of a *customer's* workspace or tenant, who then owned the
case and got its reminders, with internal notes and service request. The
adapters now introduce an unmet mentioned person of another workspace or
tenant without a role, so ``assign`` refuses them.
"""

from __future__ import annotations

from bot.domain import Role, State
from tests.security.drivers import slack_driver, teams_driver
from tests.security.matrix import PEOPLE, seed_case, settle_jobs

LEAD = next(p for p in PEOPLE if p.key == "lead")


async def test_slack_assign_to_a_customer_workspace_user_is_refused() -> None:
    async with slack_driver() as slack:
        case = await seed_case(slack.runtime, State.IN_PROGRESS)
        await settle_jobs(slack.runtime)
        shown = await slack.send(LEAD, f"assign {case.id} <@UCARL|carl>")
        assert "not on the billing team" in shown.text, shown.text
        after = await slack.runtime.store.get_case(case.number)
        assert after is not None and after.owner == case.owner
        carl = await slack.runtime.store.user_by_identity("slack", "UCARL")
        assert carl is not None and carl.role == Role.NONE
        # A colleague of the partner's own workspace, never met: still assignable.
        shown = await slack.send(LEAD, f"assign {case.id} <@UBOB|bob>")
        assert "now belongs to" in shown.text, shown.text
        # The assign form's user picker sends the same mention.
        other = await seed_case(slack.runtime, State.IN_PROGRESS)
        ctx = {"case": other.id, "stage": str(other.stage)}
        shown = await slack.submit(LEAD, "assign", {"user": "<@UFABI>"}, ctx)
        assert "not on the billing team" in shown.text, shown.text


async def test_teams_assign_to_a_customer_tenant_user_is_refused() -> None:
    from tests.teams.conftest import CAROL, MARIA, PARTNER_TENANT, Teams

    async with teams_driver() as teams:
        for who, tenant in ((CAROL, CAROL.tenant), (MARIA, PARTNER_TENANT)):
            teams.connector.members[who.id] = {**who.account(), "tenantId": tenant}
        case = await seed_case(teams.runtime, State.IN_PROGRESS)
        await settle_jobs(teams.runtime)
        lena, _conv, _type = teams.people["lead"]
        builder = Teams(teams.connector)
        for who in (CAROL, MARIA):
            mention = {"type": "mention", "text": f"<at>{who.name}</at>",
                       "mentioned": {"id": who.id, "name": who.name}}  # fmt: skip
            activity = builder.activity(
                lena, text=f"assign {case.id} <at>{who.name}</at>", entities=[mention]
            )
            shown = await teams._post(activity)
            expected = "not on the billing team" if who is CAROL else "now belongs to"
            assert expected in shown.text, shown.text
        carol = await teams.runtime.store.user_by_identity("teams", CAROL.aad)
        assert carol is not None and carol.role == Role.NONE
