"""The authorization policy: generated role × action matrix, customer tenants, ownership."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain import Actor, Case, Category, DomainError, Kind, Role, State
from bot.policy import (
    CUSTOMER_CASE_ACTIONS,
    MATRIX,
    Action,
    Forbidden,
    allowed,
    can_see_internal,
    check,
)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
TENANT = "t-contoso"
OTHER_TENANT = "t-fabrikam"


def actor(role: Role, user_id: str = "u-me", tenant_id: str | None = None) -> Actor:
    if role == Role.CUSTOMER and tenant_id is None:
        tenant_id = TENANT
    return Actor(user_id=user_id, role=role, channel="slack", tenant_id=tenant_id)


def a_case(number: int = 7, owner: str | None = None) -> Case:
    case = Case.new(
        number,
        kind=Kind.QUESTION,
        customer_id="c-1",
        category=Category.INVOICE,
        description="why?",
        actor=actor(Role.AGENT, "u-creator"),
        now=T0,
    )
    case.owner = owner
    return case


GRID = [(role, action) for role in Role for action in Action]


def test_matrix_covers_every_role() -> None:
    assert set(MATRIX) == set(Role)


@pytest.mark.parametrize(("role", "action"), GRID, ids=lambda v: str(v))
def test_allowed_equals_matrix_membership(role: Role, action: Action) -> None:
    who = actor(role)
    expected = action in MATRIX[role]
    assert allowed(who, action) is expected
    if expected:
        check(who, action)
    else:
        with pytest.raises(Forbidden) as err:
            check(who, action)
        assert str(err.value).strip()
        assert isinstance(err.value, DomainError)


@pytest.mark.parametrize(
    ("role", "action"), [(r, a) for r, a in GRID if r != Role.CUSTOMER], ids=lambda v: str(v)
)
def test_non_customers_on_a_case_follow_the_matrix(role: Role, action: Action) -> None:
    """For everyone but customers an unowned case changes nothing: the matrix decides."""
    assert allowed(actor(role), action, a_case()) is (action in MATRIX[role])


def test_roles_are_nested() -> None:
    assert MATRIX[Role.NONE] <= MATRIX[Role.CUSTOMER] <= MATRIX[Role.AGENT] <= MATRIX[Role.LEAD]
    assert MATRIX[Role.LEAD] == frozenset(Action)


def test_role_none_may_only_ask_for_help() -> None:
    assert MATRIX[Role.NONE] == {Action.HELP}
    nobody = actor(Role.NONE)
    for action in Action:
        assert allowed(nobody, action) is (action == Action.HELP)
    with pytest.raises(Forbidden, match="only show `help`"):
        check(nobody, Action.STATUS)


def test_customer_actions_match_product_md() -> None:
    assert MATRIX[Role.CUSTOMER] == {
        Action.HELP,
        Action.RESOURCES,
        Action.ASK,
        Action.DISPUTE,
        Action.STATUS,
        Action.LIST,
        Action.LANGUAGE,
        Action.ADD,
        Action.WITHDRAW,
        Action.ATTACH,  # `attach BILL-n PATH`, or a file shared with a case in context
    }
    assert Action.VIEW_NOTES not in MATRIX[Role.CUSTOMER]


def test_agent_has_no_collections_power() -> None:
    assert {Action.SUSPEND, Action.REACTIVATE}.isdisjoint(MATRIX[Role.AGENT])
    assert MATRIX[Role.LEAD] - MATRIX[Role.AGENT] == {Action.SUSPEND, Action.REACTIVATE}


# ---- customers -------------------------------------------------------------------


@pytest.mark.parametrize("action", list(Action))
def test_customer_on_own_tenant_case_only_status_add_withdraw(action: Action) -> None:
    customer = actor(Role.CUSTOMER)
    ok = allowed(customer, action, a_case(), customer_tenant=TENANT)
    assert ok is (action in CUSTOMER_CASE_ACTIONS)
    assert CUSTOMER_CASE_ACTIONS == {Action.STATUS, Action.ADD, Action.WITHDRAW, Action.ATTACH}


def a_case_in(state: State, owner: str | None = None) -> Case:
    case = a_case(owner=owner)
    case.state = state
    return case


OPEN_STATES = {State.OPEN, State.IN_PROGRESS, State.ESCALATED, State.REOPENED}


@pytest.mark.parametrize("state", list(State), ids=str)
@pytest.mark.parametrize("action", [Action.ADD, Action.WITHDRAW], ids=str)
def test_customer_adds_to_and_withdraws_only_open_cases_of_their_tenant(
    action: Action, state: State
) -> None:
    """A customer: their own tenant's open cases only; another tenant's: as if it did not exist."""
    case = a_case_in(state)
    mine = allowed(actor(Role.CUSTOMER), action, case, customer_tenant=TENANT)
    assert mine is (state in OPEN_STATES)
    if state not in OPEN_STATES:
        with pytest.raises(Forbidden, match="can no longer be changed"):
            check(actor(Role.CUSTOMER), action, case, customer_tenant=TENANT)
    with pytest.raises(Forbidden, match="I can't find BILL-7"):
        check(actor(Role.CUSTOMER), action, case, customer_tenant=OTHER_TENANT)
    with pytest.raises(Forbidden, match="I can't find BILL-7"):
        check(actor(Role.CUSTOMER, tenant_id=OTHER_TENANT), action, case, customer_tenant=TENANT)
    # Staff may, on any case in any state (the domain decides what a state allows);
    # nobody without a role may.
    for role in (Role.AGENT, Role.LEAD):
        assert allowed(actor(role), action, case, customer_tenant=TENANT)
        assert allowed(actor(role), action, a_case_in(state, owner="u-bob"))
    assert not allowed(actor(Role.NONE), action, case, customer_tenant=TENANT)
    with pytest.raises(Forbidden, match="only show `help`"):
        check(actor(Role.NONE), action, case, customer_tenant=TENANT)


@pytest.mark.parametrize("action", list(Action))
def test_customer_never_reaches_another_tenants_case(action: Action) -> None:
    customer = actor(Role.CUSTOMER)
    assert not allowed(customer, action, a_case(), customer_tenant=OTHER_TENANT)


def test_refusal_on_another_tenants_case_does_not_leak() -> None:
    customer = actor(Role.CUSTOMER)
    texts = set()
    for case, tenant in [
        (a_case(7), OTHER_TENANT),
        (a_case(7, owner="u-lee"), "t-northwind"),
        (a_case(7), None),  # the case's customer has no tenant id yet
    ]:
        with pytest.raises(Forbidden) as err:
            check(customer, Action.STATUS, case, customer_tenant=tenant)
        texts.add(str(err.value))
    # always the same words a missing case would get
    assert texts == {"I can't find BILL-7."}
    for text in texts:
        assert OTHER_TENANT not in text and "c-1" not in text


def test_customer_without_a_tenant_sees_no_case() -> None:
    stranger = Actor(user_id="u-x", role=Role.CUSTOMER, channel="teams", tenant_id=None)
    with pytest.raises(Forbidden, match="I can't find BILL-9"):
        check(stranger, Action.STATUS, a_case(9), customer_tenant=None)
    with pytest.raises(Forbidden, match="I can't find BILL-9"):
        check(stranger, Action.STATUS, a_case(9), customer_tenant=TENANT)


def test_customer_refusal_for_staff_actions_points_to_their_commands() -> None:
    customer = actor(Role.CUSTOMER)
    with pytest.raises(Forbidden) as err:
        check(customer, Action.NOTE, a_case(), customer_tenant=TENANT)
    assert "billing team" in str(err.value)
    assert "`ask`" in str(err.value)


def test_attach_is_for_everyone_with_a_role_and_customers_on_their_own_cases_only() -> None:
    for role in (Role.AGENT, Role.LEAD):
        assert allowed(actor(role), Action.ATTACH, a_case(), customer_tenant=OTHER_TENANT)
    customer = actor(Role.CUSTOMER)
    assert allowed(customer, Action.ATTACH, a_case(), customer_tenant=TENANT)
    with pytest.raises(Forbidden, match="I can't find BILL-7"):
        check(customer, Action.ATTACH, a_case(7), customer_tenant=OTHER_TENANT)
    assert not allowed(actor(Role.NONE), Action.ATTACH)


def test_customer_may_ask_and_dispute_without_a_case() -> None:
    customer = actor(Role.CUSTOMER)
    for action in (Action.ASK, Action.DISPUTE, Action.LIST, Action.HELP):
        assert allowed(customer, action)


# ---- ownership ---------------------------------------------------------------------


@pytest.mark.parametrize("action", [Action.TAKE, Action.ASSIGN])
def test_agent_cannot_take_or_assign_someone_elses_case(action: Action) -> None:
    agent = actor(Role.AGENT, "u-ana")
    case = a_case(owner="u-bob")
    with pytest.raises(Forbidden) as err:
        check(agent, action, case)
    assert "BILL-7" in str(err.value)
    assert "lead" in str(err.value)


@pytest.mark.parametrize("action", [Action.TAKE, Action.ASSIGN])
@pytest.mark.parametrize("owner", [None, "u-ana"])
def test_agent_may_take_or_assign_own_or_unowned_case(action: Action, owner: str | None) -> None:
    assert allowed(actor(Role.AGENT, "u-ana"), action, a_case(owner=owner))


@pytest.mark.parametrize("action", [Action.TAKE, Action.ASSIGN])
@pytest.mark.parametrize("owner", [None, "u-lee", "u-bob"])
def test_lead_may_take_or_assign_any_case(action: Action, owner: str | None) -> None:
    assert allowed(actor(Role.LEAD, "u-lee"), action, a_case(owner=owner))


def test_ownership_texts() -> None:
    agent = actor(Role.AGENT, "u-ana")
    case = a_case(owner="u-bob")
    with pytest.raises(Forbidden, match="only a lead can reassign it"):
        check(agent, Action.ASSIGN, case)
    with pytest.raises(Forbidden, match="ask a lead to assign it to you"):
        check(agent, Action.TAKE, case)


@pytest.mark.parametrize(
    "action", [a for a in Action if a not in (Action.TAKE, Action.ASSIGN)], ids=str
)
def test_other_agent_actions_ignore_the_owner(action: Action) -> None:
    agent = actor(Role.AGENT, "u-ana")
    assert allowed(agent, action, a_case(owner="u-bob")) is (action in MATRIX[Role.AGENT])


# ---- suspend / reactivate ----------------------------------------------------------


@pytest.mark.parametrize("action", [Action.SUSPEND, Action.REACTIVATE])
@pytest.mark.parametrize("role", [Role.NONE, Role.CUSTOMER, Role.AGENT])
def test_only_a_lead_can_suspend(role: Role, action: Action) -> None:
    with pytest.raises(Forbidden) as err:
        check(actor(role), action)
    assert "only a lead can suspend" in str(err.value).lower()


@pytest.mark.parametrize("action", [Action.SUSPEND, Action.REACTIVATE])
def test_lead_can_suspend(action: Action) -> None:
    check(actor(Role.LEAD), action)


# ---- internal details ----------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_internal_details_are_staff_only(role: Role) -> None:
    assert can_see_internal(actor(role)) is (role in (Role.AGENT, Role.LEAD))
    assert can_see_internal(actor(role)) is (Action.VIEW_NOTES in MATRIX[role])
