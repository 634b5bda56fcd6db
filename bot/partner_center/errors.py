"""Partner Center errors: one family, each with a message a billing agent understands.

``str(error)`` is ``error.user_message``: safe to show in chat and to log. The
technical details (HTTP status, Partner Center error code, request and
correlation ids) sit in attributes and in ``detail``; none of them is a secret.
"""

from __future__ import annotations


class PartnerCenterError(Exception):
    """Base of every error the Partner Center client raises; callers catch this one."""

    def __init__(
        self,
        user_message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        description: str | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.status = status
        self.code = code
        self.description = description
        self.request_id = request_id
        self.correlation_id = correlation_id

    def __str__(self) -> str:
        return self.user_message

    @property
    def detail(self) -> str:
        """One line for the log: the message plus the ids Microsoft support asks for."""
        parts = [self.user_message]
        if self.status is not None:
            parts.append(f"http={self.status}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"MS-RequestId={self.request_id}")
        if self.correlation_id:
            parts.append(f"MS-CorrelationId={self.correlation_id}")
        return " ".join(parts)


class PartnerCenterNotConfigured(PartnerCenterError):
    """Credentials are missing: the caller should use manual mode."""


class PartnerCenterInputError(PartnerCenterError):
    """The caller passed a value Partner Center would reject (checked before any call)."""


class PartnerCenterAuthError(PartnerCenterError):
    """Sign-in failed or Partner Center refused our credentials (token errors, 401, 403)."""


class PartnerCenterNotFound(PartnerCenterError):
    """404: no such service request / subscription."""


class PartnerCenterRejected(PartnerCenterError):
    """Partner Center refused the request (400 and other 4xx); ``description`` says why."""


class PartnerCenterConflict(PartnerCenterError):
    """412: the resource kept changing under us, even after a fresh read."""


class PartnerCenterUnavailable(PartnerCenterError):
    """Timeouts, 5xx and throttling that outlasted our retries.

    ``outcome_unknown`` is true when a write may have reached Partner Center
    (an attempt timed out or the connection broke after sending). For a
    service request create, retrying with the same ``request_id`` is safe.
    """

    def __init__(
        self,
        user_message: str,
        *,
        outcome_unknown: bool = False,
        status: int | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(
            user_message, status=status, request_id=request_id, correlation_id=correlation_id
        )
        self.outcome_unknown = outcome_unknown


class PartnerCenterProtocolError(PartnerCenterError):
    """Partner Center answered 2xx with something we could not read."""
