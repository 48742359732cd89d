"""seqengine_email: the email channel (R-EMAIL) over Gmail, Microsoft Graph and SMTP/IMAP.

``EmailExecutor`` is registered as the ``email`` executor (entry point
``seqengine.executors``); ``EmailNotifier`` emails an account's owner when it is paused;
``asgi_app``/``wsgi_app``/``handle_unsubscribe`` serve RFC 8058 one-click unsubscribe links.
See ``docs/channels/email.md``.
"""

from seqengine_email._address import normalize_address, route_mailbox
from seqengine_email._config import (
    EmailConfig,
    EmailSettings,
    GmailConfig,
    OutlookConfig,
    SmtpConfig,
)
from seqengine_email._dsn import Bounce, parse_dsn
from seqengine_email._errors import ERROR_RULES, ErrorRule, MailboxError, Reaction
from seqengine_email._executor import EmailExecutor
from seqengine_email._gmail import GmailMailbox, GmailPaths
from seqengine_email._graph import GraphMailbox, GraphPaths
from seqengine_email._mailbox import (
    FetchResult,
    Inbound,
    Lookup,
    MailboxClient,
    SentLookup,
    SentMessage,
)
from seqengine_email._mime import Unsubscribe, build_message, message_id_for
from seqengine_email._notify import EmailNotifier
from seqengine_email._poll import ConversationIndex, MailboxPoller, PollResult
from seqengine_email._smtp import SmtpMailbox
from seqengine_email._unsubscribe import (
    UnsubscribeResponse,
    asgi_app,
    handle_unsubscribe,
    make_token,
    read_token,
    record_unsubscribe,
    wsgi_app,
)

__all__ = [
    "ERROR_RULES",
    "Bounce",
    "ConversationIndex",
    "EmailConfig",
    "EmailExecutor",
    "EmailNotifier",
    "EmailSettings",
    "ErrorRule",
    "FetchResult",
    "GmailConfig",
    "GmailMailbox",
    "GmailPaths",
    "GraphMailbox",
    "GraphPaths",
    "Inbound",
    "Lookup",
    "MailboxClient",
    "MailboxError",
    "MailboxPoller",
    "OutlookConfig",
    "PollResult",
    "Reaction",
    "SentLookup",
    "SentMessage",
    "SmtpConfig",
    "SmtpMailbox",
    "Unsubscribe",
    "UnsubscribeResponse",
    "asgi_app",
    "build_message",
    "handle_unsubscribe",
    "make_token",
    "message_id_for",
    "normalize_address",
    "parse_dsn",
    "read_token",
    "record_unsubscribe",
    "route_mailbox",
    "wsgi_app",
]
