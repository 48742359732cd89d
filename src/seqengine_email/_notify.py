"""Telling a person that an account was paused (R-ERR-2), by email."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from seqengine import ConfigError, ExecutorError
from seqengine_email._address import normalize_address
from seqengine_email._config import EmailConfig, SmtpConfig
from seqengine_email._errors import MailboxError
from seqengine_email._gmail import GmailMailbox, GmailPaths
from seqengine_email._graph import GraphMailbox
from seqengine_email._mailbox import MailboxClient
from seqengine_email._mime import build_message, message_id_for
from seqengine_email._smtp import SmtpMailbox

__all__ = ["EmailNotifier"]

log = logging.getLogger("seqengine.email")


def _address(value: str, what: str) -> str:
    norm = normalize_address(value)
    if norm is None:
        msg = f"{what} {value!r} is not an email address; give one like 'ops@example.com'"
        raise ConfigError(msg)
    return norm


class EmailNotifier:
    """A :class:`~seqengine.runtime.Notifier` that emails the account's owner.

    Args:
        to: one address for every account, or ``{account id: address}`` (accounts not in
            the mapping are not notified, which is logged).
        mailbox: the mailbox to send from (any :class:`MailboxClient`), or
        smtp: an SMTP table to send from.
        clock: a callable returning the current time (default: UTC wall clock).
    """

    def __init__(
        self,
        to: str | Mapping[str, str],
        *,
        mailbox: MailboxClient | None = None,
        smtp: SmtpConfig | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if (mailbox is None) == (smtp is None):
            msg = "EmailNotifier needs exactly one of mailbox= or smtp= to send from"
            raise ConfigError(msg)
        if mailbox is None:
            assert smtp is not None
            mailbox = SmtpMailbox(smtp)
        self.mailbox: MailboxClient = mailbox
        if isinstance(to, str):
            self.to: str | dict[str, str] = _address(to, "notification address")
        else:
            self.to = {k: _address(v, f"notification address of {k}") for k, v in to.items()}
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sent: list[str] = []

    def __repr__(self) -> str:
        return f"EmailNotifier(from={self.mailbox.address!r})"

    @classmethod
    def from_workspace(cls, workspace: Any, **kwargs: Any) -> EmailNotifier | None:
        """The notifier ``[notifications] email_to`` asks for, sending from the first account
        mailbox found (SMTP preferred, then Gmail, then Outlook); None without ``email_to``.

        Raises:
            ConfigError: ``email_to`` is set but no account has a mailbox to send from.
        """
        to = getattr(workspace, "notifications_email_to", None)
        if not to:
            return None
        for acc in getattr(workspace, "accounts", ()):
            mail = acc.channel("email", EmailConfig)
            if mail is None:
                continue
            token_url = mail.settings.token_url
            if mail.smtp is not None:
                box = SmtpMailbox(mail.smtp, token_url=token_url)
                return cls(to, mailbox=box, **kwargs)
            if mail.gmail is not None:
                paths = GmailPaths(token_url=token_url)
                return cls(to, mailbox=GmailMailbox(mail.gmail, paths=paths), **kwargs)
            if mail.outlook is not None:
                return cls(to, mailbox=GraphMailbox(mail.outlook), **kwargs)
        msg = (
            f"{getattr(workspace, 'path', 'workspace')}: [notifications] email_to is set but no "
            "account has a mailbox to send from; add [accounts.email.smtp] to one account"
        )
        raise ConfigError(msg)

    async def notify(self, account_id: str, subject: str, body: str) -> None:
        """Email the owner of ``account_id``.

        Raises:
            ExecutorError: the mailbox refused or could not be reached (the worker logs it).
        """
        to = self.to if isinstance(self.to, str) else self.to.get(account_id)
        if to is None:
            log.warning("no notification address for account %s; not notified", account_id)
            return
        now = self.clock()
        sender = self.mailbox.address
        domain = (normalize_address(sender) or "x@seqengine").rpartition("@")[2]
        mid = message_id_for(f"notify:{account_id}:{subject}:{now.isoformat()}", domain)
        message = build_message(
            sender=sender,
            recipient=to,
            subject=subject,
            body=body,
            message_id=mid,
            date=now,
            headers={"Auto-Submitted": "auto-generated"},
        )
        try:
            await self.mailbox.send(message, thread_id=None)
        except MailboxError as exc:
            msg = f"could not email the notification for account {account_id} to {to}: {exc.reason}"
            raise ExecutorError(msg) from None
        self.sent.append(mid)
