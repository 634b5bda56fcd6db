"""Partner Center: the REST client for service requests and subscription status.

The chat flows use only what is exported here. ``PartnerCenterClient.configured``
decides API mode; without credentials callers fall back to manual mode.
"""

from bot.partner_center.auth import APP_SCOPE, USER_SCOPE, AccessToken, TokenProvider
from bot.partner_center.client import PartnerCenterClient, is_guid, new_request_id
from bot.partner_center.errors import (
    PartnerCenterAuthError,
    PartnerCenterConflict,
    PartnerCenterError,
    PartnerCenterInputError,
    PartnerCenterNotConfigured,
    PartnerCenterNotFound,
    PartnerCenterProtocolError,
    PartnerCenterRejected,
    PartnerCenterUnavailable,
)
from bot.partner_center.models import (
    SEVERITIES,
    SR_STATUSES,
    ServiceRequestContact,
    ServiceRequestInfo,
    ServiceRequestNote,
    Severity,
    SubscriptionStatus,
    SubscriptionStatusChange,
    SupportTopic,
)

__all__ = [
    "APP_SCOPE",
    "SEVERITIES",
    "SR_STATUSES",
    "USER_SCOPE",
    "AccessToken",
    "PartnerCenterAuthError",
    "PartnerCenterClient",
    "PartnerCenterConflict",
    "PartnerCenterError",
    "PartnerCenterInputError",
    "PartnerCenterNotConfigured",
    "PartnerCenterNotFound",
    "PartnerCenterProtocolError",
    "PartnerCenterRejected",
    "PartnerCenterUnavailable",
    "ServiceRequestContact",
    "ServiceRequestInfo",
    "ServiceRequestNote",
    "Severity",
    "SubscriptionStatus",
    "SubscriptionStatusChange",
    "SupportTopic",
    "TokenProvider",
    "is_guid",
    "new_request_id",
]
