"""The email channel executor: routing, sending, reconciling, the ``replied`` condition.

For every email action it picks the mailbox (R-EMAIL-1), skips with a reason when it cannot
or must not send (no or invalid address, mailbox not connected or inactive, bounced,
unsubscribed, already replied — R-EMAIL-2), polls that mailbox for replies and bounces first,
then sends a message whose ``Message-ID`` comes from the action's idempotency key. A send
that may or may not have left (timeout, 5xx) is settled by searching the Sent folder before
anything is sent again; ``reconcile`` does the same after a crash.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Mapping
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import attrs
import httpx

from seqengine import (
    ActionKind,
    Completed,
    ConfigError,
    CriticalError,
    ExecuteAction,
    Lead,
    LeadStatus,
    MailboxKind,
    MinorError,
    Outcome,
    Platform,
    RetryLater,
    Skipped,
    Unknown,
)
from seqengine.runtime import AccountConfig, ExecContext, SystemClock, Workspace
from seqengine.storage import Records
from seqengine_email._address import normalize_address, route_mailbox
from seqengine_email._config import EmailConfig, EmailSettings
from seqengine_email._errors import ERROR_RULES, ErrorRule, MailboxError, Reaction
from seqengine_email._gmail import GmailMailbox, GmailPaths
from seqengine_email._graph import GraphMailbox, GraphPaths
from seqengine_email._mailbox import Lookup, MailboxClient, SentMessage
from seqengine_email._mime import Unsubscribe, build_message, message_id_for, split_content
from seqengine_email._poll import ConversationIndex, MailboxPoller, SentRecord, outbound_message
from seqengine_email._smtp import SmtpMailbox
from seqengine_email._unsubscribe import record_unsubscribe

__all__ = ["EmailExecutor"]

log = logging.getLogger("seqengine.email")


@attrs.frozen
class _Route:
    account_id: str
    kind: MailboxKind
    address: str
    poller: MailboxPoller

    @property
    def client(self) -> MailboxClient:
        return self.poller.client


def _accounts(
    workspace: Workspace | None,
    accounts: Mapping[str, EmailConfig] | Iterable[AccountConfig] | None,
) -> dict[str, EmailConfig]:
    out: dict[str, EmailConfig] = {}
    for acc in workspace.accounts if workspace is not None else ():
        if (mail := acc.channel("email", EmailConfig)) is not None:
            out[acc.id] = mail
    if isinstance(accounts, Mapping):
        out.update(accounts)
    elif accounts is not None:
        for acc in accounts:
            if (mail := acc.channel("email", EmailConfig)) is not None:
                out[acc.id] = mail
    return out


def _unsubscribe(
    settings: EmailSettings,
    url: str | None,
    mailto: bool | str | None,
    secret: str | None,
) -> Unsubscribe:
    """One account's unsubscribe headers: keyword arguments win over its settings."""
    if secret is None and settings.unsubscribe_secret is not None:
        try:
            secret = settings.unsubscribe_secret.reveal()
        except ConfigError as exc:
            msg = (
                f"{exc}: unsubscribe_url uses {{token}}, signed with this key; set it to a "
                "long random string (the unsubscribe endpoint checks links with the same key)"
            )
            raise ConfigError(msg) from None
    return Unsubscribe(
        url=url if url is not None else settings.unsubscribe_url,
        mailto=mailto if mailto is not None else settings.unsubscribe_mailto,
        secret=secret,
    )


class EmailExecutor:
    """Sends email steps and answers the ``replied`` condition on email (R-EMAIL).

    Args:
        workspace: a loaded workspace; its accounts' ``[accounts.email.*]`` tables are the
            mailboxes (this is how ``seqengine run`` builds the executor).
        accounts: more mailboxes: ``{account id: EmailConfig}`` or ``AccountConfig`` values.
        transport: an ``httpx`` transport for the Gmail and Graph clients (tests, proxies).
        mailboxes: your own :class:`MailboxClient` per ``(account id, kind)``; they replace
            the built-in ones (e.g. a different provider behind the same protocol).
        unsubscribe_url: an https URL template for ``List-Unsubscribe`` (RFC 8058 one-click),
            with ``{token}`` (signed with ``unsubscribe_secret``; see
            :func:`seqengine_email.handle_unsubscribe`), ``{lead_id}``, ``{account_id}`` or
            ``{address}``. Default: each account's ``unsubscribe_url`` setting.
        unsubscribe_secret: the key that signs ``{token}`` (default: the settings').
        unsubscribe_mailto: also offer ``mailto:<mailbox>?subject=unsubscribe`` (``True``),
            a ``mailto:`` to another address (a string), or none (``False``); mails to one of
            our mailboxes are picked up by the poller and unsubscribe the sender. Default:
            the settings' ``unsubscribe_mailto`` (``True``).
        suppressed: addresses never to email, added to the accounts' ``suppression_file``
            addresses; all are put on storage's suppression list before the first email.
        poll_interval: seconds (of the worker's clock) between two polls of one mailbox
            (default: each account's ``poll_interval_minutes``, 1 minute).
        resync_days: how far back a poll without a cursor (first poll, expired cursor) looks.
        attempts: tries per provider call for transient errors (tenacity, bounded); a send
            is retried only while it certainly has not left.
        backoff: base seconds of the exponential backoff between tries.
        timeout: seconds per provider call.
        error_rules: rules tried before :data:`ERROR_RULES`.
        gmail_paths: Gmail paths and token URL (an account's ``token_url`` setting wins);
            graph_paths: Graph paths.
        smtp_server_saves_sent: SMTP servers file submitted mail in Sent (see SmtpMailbox;
            default: each SMTP table's ``server_saves_sent``).
        ssl_context: TLS settings for SMTP and IMAP (e.g. a private CA); default: the
            system's trusted certificates.
    """

    platforms = frozenset({Platform.EMAIL})

    def __init__(
        self,
        workspace: Workspace | None = None,
        *,
        accounts: Mapping[str, EmailConfig] | Iterable[AccountConfig] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        mailboxes: Mapping[tuple[str, MailboxKind | str], MailboxClient] | None = None,
        unsubscribe_url: str | None = None,
        unsubscribe_mailto: bool | str | None = None,
        unsubscribe_secret: str | None = None,
        suppressed: Iterable[str] = (),
        poll_interval: float | None = None,
        resync_days: int = 30,
        attempts: int = 3,
        backoff: float = 1.0,
        timeout: float = 30.0,
        error_rules: Iterable[ErrorRule] = (),
        gmail_paths: GmailPaths | None = None,
        graph_paths: GraphPaths | None = None,
        smtp_server_saves_sent: bool | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.rules = (*error_rules, *ERROR_RULES)
        self.index = ConversationIndex()
        self._clock: Any = None
        self.configs = _accounts(workspace, accounts)
        self.settings: dict[str, EmailSettings] = {
            account_id: cfg.settings for account_id, cfg in self.configs.items()
        }
        found = workspace.channel_defaults.get("email") if workspace is not None else None
        defaults = found if isinstance(found, EmailSettings) else EmailSettings()
        self.unsubscribe = _unsubscribe(
            defaults, unsubscribe_url, unsubscribe_mailto, unsubscribe_secret
        )
        self._unsubscribes = {
            account_id: _unsubscribe(s, unsubscribe_url, unsubscribe_mailto, unsubscribe_secret)
            for account_id, s in self.settings.items()
        }
        self._suppressed: set[str] = set()
        for address in (*suppressed, *(a for s in self.settings.values() for a in s.suppressed)):
            norm = normalize_address(address)
            if norm is not None:
                self._suppressed.add(norm)
        self._loaded_into: list[Any] = []
        common: dict[str, Any] = {
            "timeout": timeout,
            "attempts": attempts,
            "backoff": backoff,
            "rules": self.rules,
        }
        clients: dict[tuple[str, MailboxKind], MailboxClient] = {}
        for account_id, cfg in self.configs.items():
            token_url = (
                cfg.settings.token_url
                if "token_url" in cfg.settings.explicit or gmail_paths is None
                else gmail_paths.token_url
            )
            if cfg.gmail is not None:
                paths = attrs.evolve(gmail_paths or GmailPaths(), token_url=token_url)
                clients[(account_id, MailboxKind.GMAIL)] = GmailMailbox(
                    cfg.gmail, paths=paths, transport=transport, **common
                )
            if cfg.outlook is not None:
                clients[(account_id, MailboxKind.OUTLOOK)] = GraphMailbox(
                    cfg.outlook, paths=graph_paths, transport=transport, **common
                )
            if cfg.smtp is not None:
                saves = (
                    cfg.smtp.server_saves_sent
                    if smtp_server_saves_sent is None
                    else smtp_server_saves_sent
                )
                clients[(account_id, MailboxKind.SMTP)] = SmtpMailbox(
                    cfg.smtp,
                    server_saves_sent=saves,
                    token_url=token_url,
                    ssl_context=ssl_context,
                    **common,
                )
        for (account_id, kind), client in (mailboxes or {}).items():
            clients[(account_id, MailboxKind(kind))] = client
        self.pollers: dict[tuple[str, MailboxKind], MailboxPoller] = {
            key: MailboxPoller(
                key[0],
                client,
                self.index,
                clock=self._now,
                suppress=self._suppress_from_poll,
                interval=poll_interval
                if poll_interval is not None
                else self.settings.get(key[0], EmailSettings()).poll_interval,
                resync_days=resync_days,
                virtual=self._virtual,
            )
            for key, client in clients.items()
        }

    def __repr__(self) -> str:
        boxes = ", ".join(f"{a}/{k.value}" for a, k in sorted(self.pollers))
        return f"EmailExecutor(mailboxes=[{boxes}])"

    # -- time ------------------------------------------------------------------------------
    def _now(self) -> datetime:
        if self._clock is None:  # used outside a worker (e.g. a host polling by hand)
            self._clock = SystemClock()
        now: datetime = self._clock.now()
        return now

    def _virtual(self) -> bool:
        return bool(getattr(self._clock, "virtual", False))

    # -- suppression -----------------------------------------------------------------------
    def suppress(self, address: str, reason: str = "unsubscribed", storage: Any = None) -> None:
        """Never email ``address`` again (also in ``storage`` when it keeps a suppression list)."""
        norm = normalize_address(address)
        if norm is None:
            return
        self._suppressed.add(norm)
        store = getattr(storage, "suppress", None)
        if callable(store):
            store(norm, reason)

    def is_suppressed(self, address: str, storage: Any = None) -> bool:
        """Whether ``address`` is on the suppression list (ours or the storage's)."""
        norm = normalize_address(address)
        if norm is None:
            return False
        if norm in self._suppressed:
            return True
        check = getattr(storage, "is_suppressed", None)
        return bool(check(norm)) if callable(check) else False

    def load_suppressions(self, storage: Records) -> int:
        """Put the configured suppression list (``suppressed`` and the accounts'
        ``suppression_file``) on ``storage``'s suppression list; done once per storage before
        its first email action. Returns how many addresses were written."""
        if any(s is storage for s in self._loaded_into):
            return 0
        self._loaded_into.append(storage)
        store = getattr(storage, "suppress", None)
        if not callable(store):
            return 0
        for address in sorted(self._suppressed):
            store(address, "suppression_file")
        if self._suppressed:
            log.info("%d addresses on the suppression list", len(self._suppressed))
        return len(self._suppressed)

    def _suppress_from_poll(self, storage: Records, address: str, reason: str) -> None:
        log.info("suppressing an address after an unsubscribe request (%s)", reason)
        norm = normalize_address(address)
        if norm is None:
            return
        self._suppressed.add(norm)
        leads = self.index.leads_for(norm)
        if not leads:
            record_unsubscribe(storage, norm, None, reason)
        for lead_id in sorted(leads):
            record_unsubscribe(storage, norm, lead_id, reason)

    # -- routing ---------------------------------------------------------------------------
    def _route(self, lead: Lead, account_id: str, storage: Records) -> _Route | Skipped:
        if lead.bounced:
            return Skipped(f"bounced: lead {lead.id}'s address bounced before (R-EMAIL-2)")
        raw = (lead.email or "").strip()
        if not raw:
            return Skipped(f"no_email: lead {lead.id} has no email address")
        address = normalize_address(raw)
        if address is None:
            return Skipped(f"invalid_email: lead {lead.id}'s email {raw!r} is not a valid address")
        account = storage.get_account(account_id)
        cfg = self.configs.get(account_id)
        primary = account.primary_mailbox if account is not None else None
        if primary is None and cfg is not None:
            primary = cfg.primary
        kind = route_mailbox(address, primary)
        domain = address.rpartition("@")[2]
        if kind is None:
            return Skipped(
                f"mailbox_unavailable: account {account_id} has no primary mailbox for @{domain}; "
                "connect one ([accounts.email] primary = …)"
            )
        if account is not None:
            connected = {m.kind: m for m in account.mailboxes}
            box = connected.get(kind)
            if box is None:
                return Skipped(
                    f"mailbox_unavailable: account {account_id} has no {kind.value} mailbox "
                    f"connected (needed for @{domain})"
                )
            if not box.active:
                return Skipped(
                    f"mailbox_unavailable: the {kind.value} mailbox {box.address} of account "
                    f"{account_id} is not active"
                )
        poller = self.pollers.get((account_id, kind))
        if poller is None:
            return Skipped(
                f"mailbox_unavailable: no credentials for the {kind.value} mailbox of account "
                f"{account_id}; add [accounts.email.{kind.value}] to the workspace"
            )
        return _Route(account_id, kind, address, poller)

    def _message_id(self, key: str, route: _Route) -> str:
        domain = normalize_address(route.client.address)
        return message_id_for(key, domain.rpartition("@")[2] if domain else "seqengine")

    # -- the executor protocol -------------------------------------------------------------
    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        """Send the email, or evaluate the ``replied`` condition."""
        self._clock = ctx.clock
        self.load_suppressions(ctx.storage)
        kind = request.action.kind
        if kind is ActionKind.CONDITION:
            return await self._condition(request, ctx)
        if kind is not ActionKind.EMAIL:
            return MinorError(f"unsupported_action: the email executor cannot run {kind.value}")
        return await self._send(request, content, ctx)

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        """After a crash: is our Message-ID in the Sent folder? Found → Completed; confirmed
        absent → RetryLater (the send never happened); cannot tell → None."""
        self._clock = ctx.clock
        self.load_suppressions(ctx.storage)
        action = request.action
        if action.kind is ActionKind.CONDITION:
            return await self._condition(request, ctx)  # a read: doing it again is safe
        if action.kind is not ActionKind.EMAIL:
            return None
        lead = ctx.storage.get_lead(request.lead.id) or request.lead
        route = self._route(attrs.evolve(lead, bounced=False), action.account_id, ctx.storage)
        if isinstance(route, Skipped):
            return None
        mid = self._message_id(request.idempotency_key, route)
        look = await route.client.find_sent(mid)
        if look.state is Lookup.FOUND:
            sent = SentMessage(look.provider_id or mid, look.thread_id)
            return self._record(ctx, route, lead, mid, sent, content)
        if look.state is Lookup.ABSENT and route.client.absence_is_conclusive:
            return RetryLater(
                f"not_sent: {mid} is not in {route.client.address}'s Sent folder; "
                "sending it now is the first send"
            )
        log.warning("cannot tell whether %s was sent: %s", mid, look.reason or "no Sent search")
        return None

    # -- sending ---------------------------------------------------------------------------
    async def _send(self, request: ExecuteAction, content: str | None, ctx: ExecContext) -> Outcome:
        action = request.action
        storage = ctx.storage
        lead = storage.get_lead(request.lead.id) or request.lead
        route = self._route(lead, action.account_id, storage)
        if isinstance(route, Skipped):
            return route
        # Replies and bounces that arrived since the last poll decide whether to send at all.
        polled = await route.poller.poll(storage)
        blocked = route.poller.take_blocked()
        if blocked is not None:
            return blocked
        if isinstance(polled.failure, CriticalError):
            return polled.failure
        lead = storage.get_lead(lead.id) or lead
        if lead.status is LeadStatus.REPLIED:
            return Skipped(f"replied: lead {lead.id} replied before this email went out")
        if lead.is_terminal:
            return Skipped(f"lead_terminal: lead {lead.id} is {lead.status.value}")
        if lead.bounced:
            return Skipped(f"bounced: lead {lead.id}'s address bounced before (R-EMAIL-2)")
        if self.is_suppressed(route.address, storage):
            return Skipped(f"unsubscribed: lead {lead.id}'s address is on the suppression list")
        if content is None or not content.strip():
            return MinorError("no_content: the email step rendered no subject and body")
        subject, body = split_content(content)
        mid = self._message_id(request.idempotency_key, route)
        client = route.client
        conclusive = client.absence_is_conclusive
        if action.tries > 0 or action.reason is not None:
            # Seen before (a retry, a reschedule): an earlier attempt may have gone out.
            look = await client.find_sent(mid)
            if look.state is Lookup.FOUND:
                sent = SentMessage(look.provider_id or mid, look.thread_id)
                return self._record(ctx, route, lead, mid, sent, content)
            if look.state is Lookup.UNKNOWN and conclusive:
                return RetryLater(f"cannot check the Sent folder before resending: {look.reason}")
        message = self._build(request, route, lead, subject, body, mid)
        previous = self.index.last(route.account_id, lead.id, route.kind)
        thread = previous.thread_id if previous is not None else None
        try:
            sent = await client.send(message, thread_id=thread)
        except MailboxError as exc:
            if exc.sent_unknown:
                return await self._settle(ctx, route, lead, mid, content, exc.reason)
            if exc.reaction is Reaction.HARD_BOUNCE:
                storage.record_bounce(lead.id, exc.reason)
            log.info("email %s to lead %s not sent: %s", mid, lead.id, exc.reason)
            return exc.outcome(ctx.clock.now())
        log.info("sent %s to lead %s from %s", mid, lead.id, client.address)
        return self._record(ctx, route, lead, mid, sent, content)

    async def _settle(
        self,
        ctx: ExecContext,
        route: _Route,
        lead: Lead,
        mid: str,
        content: str | None,
        reason: str,
    ) -> Outcome:
        """A send that may have left: only the Sent folder can say. Found → Completed. Not
        found is not trusted yet (a sent copy can take a moment to be filed and indexed): the
        action is retried later, and that attempt searches again before sending."""
        look = await route.client.find_sent(mid)
        if look.state is Lookup.FOUND:
            sent = SentMessage(look.provider_id or mid, look.thread_id)
            log.info("sent %s to lead %s (found in Sent after: %s)", mid, lead.id, reason)
            return self._record(ctx, route, lead, mid, sent, content)
        if route.client.absence_is_conclusive:
            return RetryLater(f"{reason}; searching Sent again before any resend")
        return Unknown(
            f"{reason}; {route.client.address} cannot show whether it was sent "
            "(no Sent folder search); check the mailbox and resolve by hand"
        )

    def _build(
        self,
        request: ExecuteAction,
        route: _Route,
        lead: Lead,
        subject: str,
        body: str,
        mid: str,
    ) -> EmailMessage:
        previous = self.index.last(route.account_id, lead.id, route.kind)
        refs = (previous.message_id,) if previous is not None else ()
        unsubscribe = self._unsubscribes.get(route.account_id, self.unsubscribe)
        headers = unsubscribe.headers(
            lead_id=lead.id,
            account_id=route.account_id,
            address=route.address,
            mailbox=route.client.address,
        )
        return build_message(
            sender=route.client.address,
            recipient=route.address,
            recipient_name=lead.name,
            subject=subject,
            body=body,
            message_id=mid,
            date=self._now(),
            headers=headers,
            in_reply_to=refs[0] if refs else None,
            references=refs,
        )

    def _record(
        self,
        ctx: ExecContext,
        route: _Route,
        lead: Lead,
        mid: str,
        sent: SentMessage,
        content: str | None,
    ) -> Completed:
        record = SentRecord(
            message_id=mid,
            account_id=route.account_id,
            lead_id=lead.id,
            kind=route.kind,
            thread_id=sent.thread_id,
            address=route.address,
        )
        self.index.add(record)
        subject, body = split_content(content or "")
        ctx.storage.add_inbox_message(outbound_message(record, subject, body, ctx.clock.now()))
        facts = {"mailbox": route.client.address, "message_id": mid}
        if sent.thread_id:
            facts["thread_id"] = sent.thread_id
        return Completed(provider_id=sent.provider_id or mid, content=content, facts=facts)

    # -- the replied condition -------------------------------------------------------------
    async def _condition(self, request: ExecuteAction, ctx: ExecContext) -> Outcome:
        condition = request.condition or "replied"
        if condition != "replied":
            return MinorError(
                f"unsupported_condition: email steps can check 'replied', not {condition!r}"
            )
        action, storage = request.action, ctx.storage
        failures: list[Outcome] = []
        for (account_id, _kind), poller in self.pollers.items():
            if account_id != action.account_id:
                continue
            polled = await poller.poll(storage)
            blocked = poller.take_blocked()
            if blocked is not None:
                return blocked
            if polled.failure is not None:
                failures.append(polled.failure)
        lead = storage.get_lead(request.lead.id) or request.lead
        replied = lead.status is LeadStatus.REPLIED or any(
            m.sender == "lead" for m in storage.inbox(lead_id=lead.id, platform=Platform.EMAIL)
        )
        if replied:
            return Completed(result=True)
        critical = next((f for f in failures if isinstance(f, CriticalError)), None)
        if critical is not None:
            return critical
        if failures:
            reasons = "; ".join(getattr(f, "reason", "") for f in failures)
            return RetryLater(f"could not read the mailbox to check for a reply: {reasons}")
        return Completed(result=False)

    async def aclose(self) -> None:
        """Close the HTTP clients of the running loop."""
        for poller in self.pollers.values():
            closer = getattr(poller.client, "aclose", None)
            if closer is not None:
                await closer()
