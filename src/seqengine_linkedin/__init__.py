"""seqengine_linkedin: the LinkedIn channel — Like, Comment, Connection Request, Withdraw, DM
and the Replied / Connection Accepted / Has Profile conditions.

Install with ``pip install "seqengine[linkedin]"``; the worker finds
:class:`LinkedInExecutor` through the ``seqengine.executors`` entry point ``linkedin``. The
transport sits behind the :class:`LinkedInGateway` protocol: :class:`VoyagerGateway` (the web
client's internal endpoints, session cookie) and :class:`OfficialGateway` (the official REST
API for reactions and comments) ship; ``[accounts.linkedin] api`` picks one per account.
See ``docs/channels/linkedin.md``.
"""

from seqengine_linkedin._accounts import APIS, LinkedInAccount, build_gateway
from seqengine_linkedin._config import LinkedInConfig
from seqengine_linkedin._errors import (
    AlreadyPendingError,
    AuthFailedError,
    BotDetectedError,
    CommentsDisabledError,
    InvitationQuotaError,
    LinkedInError,
    NotFoundError,
    RateLimitedError,
    RequestRejectedError,
    TransientError,
)
from seqengine_linkedin._executor import (
    GatewayFactory,
    LinkedInExecutor,
    classify_error,
    origin_token,
)
from seqengine_linkedin._gateway import (
    Conversation,
    Invitation,
    LinkedInGateway,
    Message,
    Post,
    PostComment,
    Profile,
    member_id_of,
)
from seqengine_linkedin._http import raise_for_status
from seqengine_linkedin._official import (
    DEFAULT_REST_URL,
    DEFAULT_VERSION,
    OFFICIAL_ENDPOINTS,
    OfficialGateway,
)
from seqengine_linkedin._posts import rank_posts
from seqengine_linkedin._voyager import DEFAULT_VOYAGER_URL, VOYAGER_ENDPOINTS, VoyagerGateway

__all__ = [
    "APIS",
    "DEFAULT_REST_URL",
    "DEFAULT_VERSION",
    "DEFAULT_VOYAGER_URL",
    "OFFICIAL_ENDPOINTS",
    "VOYAGER_ENDPOINTS",
    "AlreadyPendingError",
    "AuthFailedError",
    "BotDetectedError",
    "CommentsDisabledError",
    "Conversation",
    "GatewayFactory",
    "Invitation",
    "InvitationQuotaError",
    "LinkedInAccount",
    "LinkedInConfig",
    "LinkedInError",
    "LinkedInExecutor",
    "LinkedInGateway",
    "Message",
    "NotFoundError",
    "OfficialGateway",
    "Post",
    "PostComment",
    "Profile",
    "RateLimitedError",
    "RequestRejectedError",
    "TransientError",
    "VoyagerGateway",
    "build_gateway",
    "classify_error",
    "member_id_of",
    "origin_token",
    "raise_for_status",
    "rank_posts",
]
