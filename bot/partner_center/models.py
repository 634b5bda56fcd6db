"""Plain values the Partner Center client returns, parsed from the documented REST shapes.

Partner Center answers in camelCase (``id``, ``status``, ``supportTopicId``)
while its docs write requests in PascalCase (``Title``, ``Severity``); its JSON
binder is case-insensitive, so we read fields case-insensitively too and keep
the untouched payload in ``raw``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["unknown", "critical", "moderate", "minimal"]
SEVERITIES: tuple[str, ...] = ("unknown", "critical", "moderate", "minimal")

# ServiceRequestStatus in Partner Center.
SR_STATUSES: tuple[str, ...] = ("none", "open", "closed", "attention_needed")

SubscriptionStatus = Literal["suspended", "active"]


def field_ci(data: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """``data[name]`` matching the key case-insensitively (``Id`` finds ``id``)."""
    if name in data:
        return data[name]
    wanted = name.casefold()
    for key, value in data.items():
        if key.casefold() == wanted:
            return value
    return default


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class ServiceRequestContact:
    """``PrimaryContact`` of a new service request (who Microsoft should talk to)."""

    first_name: str
    last_name: str
    email: str
    phone_number: str | None = None

    def to_api(self) -> dict[str, str]:
        out = {"FirstName": self.first_name, "LastName": self.last_name, "Email": self.email}
        if self.phone_number:
            out["PhoneNumber"] = self.phone_number
        return out


@dataclass(frozen=True, slots=True)
class ServiceRequestNote:
    text: str
    created_by: str | None = None
    created_date: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceRequestInfo:
    """A Partner Center service request as the API returned it."""

    id: str
    status: str
    title: str | None = None
    description: str | None = None
    severity: str | None = None
    support_topic_id: str | None = None
    support_topic_name: str | None = None
    created_date: str | None = None
    last_modified_date: str | None = None
    notes: tuple[ServiceRequestNote, ...] = ()
    # The MS-RequestId this client used to create it (create_service_request only).
    request_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(
        cls, data: Mapping[str, Any], *, request_id: str | None = None
    ) -> ServiceRequestInfo:
        notes = []
        for note in field_ci(data, "Notes") or ():
            if isinstance(note, Mapping):
                notes.append(
                    ServiceRequestNote(
                        text=str(field_ci(note, "Text", "")),
                        created_by=_str_or_none(field_ci(note, "CreatedByName")),
                        created_date=_str_or_none(field_ci(note, "CreatedDate")),
                    )
                )
        return cls(
            id=str(field_ci(data, "Id", "")),
            status=str(field_ci(data, "Status") or "none"),
            title=_str_or_none(field_ci(data, "Title")),
            description=_str_or_none(field_ci(data, "Description")),
            severity=_str_or_none(field_ci(data, "Severity")),
            support_topic_id=_str_or_none(field_ci(data, "SupportTopicId")),
            support_topic_name=_str_or_none(field_ci(data, "SupportTopicName")),
            created_date=_str_or_none(field_ci(data, "CreatedDate")),
            last_modified_date=_str_or_none(field_ci(data, "LastModifiedDate")),
            notes=tuple(notes),
            request_id=request_id,
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class SupportTopic:
    """One entry of ``GET /v1/servicerequests/supporttopics``."""

    id: str
    name: str
    description: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> SupportTopic:
        return cls(
            id=str(field_ci(data, "Id", "")),
            name=str(field_ci(data, "Name", "")),
            description=str(field_ci(data, "Description") or ""),
        )


@dataclass(frozen=True, slots=True)
class SubscriptionStatusChange:
    """What ``set_subscription_status`` did.

    ``changed`` is false when the subscription already had the wanted status
    (no PATCH was sent); ``message`` says so in words for the billing agent.
    """

    customer_tenant_id: str
    subscription_id: str
    previous_status: str
    status: str
    changed: bool
    message: str
    resource: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    etag: str | None = None
