"""The Gmail API mailbox: send raw RFC 5322, search Sent by Message-ID, poll history.

Paths follow the published Gmail discovery document (``gmail/v1/users/{userId}/…`` under
``https://gmail.googleapis.com``); they live in :class:`GmailPaths` so a staging server or a
changed API can be pointed at without code changes.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime
from email.message import EmailMessage

import attrs
import httpx

from seqengine import MailboxKind
from seqengine_email._config import GmailConfig
from seqengine_email._errors import ERROR_RULES, ErrorRule, MailboxError, Reaction
from seqengine_email._http import HttpApi, OAuthRefresh, SecretToken, TokenSource, json_object
from seqengine_email._mailbox import FetchResult, Inbound, Lookup, SentLookup, SentMessage
from seqengine_email._mime import as_bytes

__all__ = ["GmailMailbox", "GmailPaths"]


@attrs.frozen
class GmailPaths:
    """Gmail API paths (relative to the mailbox's ``base_url``) and the OAuth token URL."""

    send: str = "/gmail/v1/users/me/messages/send"
    messages: str = "/gmail/v1/users/me/messages"
    message: str = "/gmail/v1/users/me/messages/{id}"
    history: str = "/gmail/v1/users/me/history"
    profile: str = "/gmail/v1/users/me/profile"
    token_url: str = "https://oauth2.googleapis.com/token"


def b64url(data: bytes) -> str:
    """base64url without padding, as the Gmail API's ``raw`` field takes it."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64url(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class GmailMailbox:
    """A Gmail mailbox over the Gmail API (OAuth 2, refreshed once after a 401)."""

    kind = MailboxKind.GMAIL
    absence_is_conclusive = True  # Gmail files every message it sends under SENT

    def __init__(
        self,
        config: GmailConfig,
        *,
        paths: GmailPaths | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff: float = 1.0,
        rules: Iterable[ErrorRule] = ERROR_RULES,
        page_size: int = 100,
    ) -> None:
        self.address = config.address
        self.paths = paths or GmailPaths()
        token: TokenSource
        if config.refresh_token is not None and config.client_id is not None:
            token = OAuthRefresh(
                config.access_token,
                refresh_token=config.refresh_token,
                client_id=config.client_id,
                client_secret=config.client_secret,
                token_url=self.paths.token_url,
                what=f"Gmail mailbox {config.address}",
            )
        else:
            token = SecretToken(config.access_token)
        self.api = HttpApi(
            provider="gmail",
            base_url=config.base_url,
            token=token,
            transport=transport,
            timeout=timeout,
            attempts=attempts,
            backoff=backoff,
            rules=rules,
        )
        self.page_size = page_size
        self.history_id: str | None = None

    def __repr__(self) -> str:
        return f"GmailMailbox({self.address!r})"

    async def send(self, message: EmailMessage, *, thread_id: str | None) -> SentMessage:
        """``POST messages/send {"raw", "threadId"?}`` → ``{id, threadId}``."""
        body: dict[str, str] = {"raw": b64url(as_bytes(message))}
        if thread_id:
            body["threadId"] = thread_id
        resp = await self.api.call("POST", self.paths.send, json=body, send=True)
        data = json_object(resp)
        return SentMessage(provider_id=str(data.get("id", "")), thread_id=data.get("threadId"))

    async def find_sent(self, message_id: str) -> SentLookup:
        """``messages.list q=rfc822msgid:`` (spam and trash included: a deleted copy counts)."""
        params = {"q": f"rfc822msgid:{message_id}", "includeSpamTrash": "true"}
        try:
            resp = await self.api.call("GET", self.paths.messages, params=params)
        except MailboxError as exc:
            return SentLookup(Lookup.UNKNOWN, reason=exc.reason)
        found = json_object(resp).get("messages") or []
        if found and isinstance(found[0], dict):
            first = found[0]
            return SentLookup(Lookup.FOUND, str(first.get("id")), first.get("threadId"))
        return SentLookup(Lookup.ABSENT)

    async def fetch_new(self, since: datetime) -> FetchResult:
        """New INBOX messages via ``history.list``; without a cursor (first poll, or a 404 for
        an expired ``startHistoryId``) a full resync via ``messages.list``."""
        resynced = False
        refs: list[tuple[str, str | None]] | None = None
        if self.history_id is not None:
            refs = await self._history()
            if refs is None:
                resynced = True  # the cursor expired: Gmail keeps history about a week
        if refs is None:
            refs = await self._resync(since)
        seen: set[str] = set()
        out: list[Inbound] = []
        for mid, thread in refs:
            if mid in seen:
                continue
            seen.add(mid)
            resp = await self.api.call(
                "GET",
                self.paths.message.format(id=mid),
                params={"format": "raw"},
                expect=(200, 404),
            )
            if resp.status_code == 404:
                continue  # deleted since it arrived
            data = json_object(resp)
            raw = data.get("raw")
            if not isinstance(raw, str):
                continue
            out.append(Inbound(mid, unb64url(raw), data.get("threadId") or thread))
        return FetchResult(tuple(out), resynced)

    async def _history(self) -> list[tuple[str, str | None]] | None:
        refs: list[tuple[str, str | None]] = []
        token: str | None = None
        latest = self.history_id
        while True:
            params = {
                "startHistoryId": str(self.history_id),
                "historyTypes": "messageAdded",
                "labelId": "INBOX",
                "maxResults": str(self.page_size),
            }
            if token:
                params["pageToken"] = token
            resp = await self.api.call("GET", self.paths.history, params=params, expect=(200, 404))
            if resp.status_code == 404:
                self.history_id = None
                return None
            data = json_object(resp)
            for record in data.get("history") or []:
                for added in record.get("messagesAdded") or []:
                    msg = added.get("message") or {}
                    labels = msg.get("labelIds") or ["INBOX"]
                    if "INBOX" in labels and "SENT" not in labels and msg.get("id"):
                        refs.append((str(msg["id"]), msg.get("threadId")))
            latest = str(data.get("historyId") or latest)
            token = data.get("nextPageToken")
            if not token:
                break
        self.history_id = latest
        return refs

    async def _resync(self, since: datetime) -> list[tuple[str, str | None]]:
        # Take the cursor first: whatever arrives while we list is then in the next history.
        profile = await self.api.call("GET", self.paths.profile)
        history_id = json_object(profile).get("historyId")
        if history_id is None:
            msg = "gmail profile has no historyId; cannot follow the mailbox"
            raise MailboxError(Reaction.TRANSIENT, msg)
        refs: list[tuple[str, str | None]] = []
        token: str | None = None
        query = f"in:inbox after:{int(since.timestamp())}"
        while True:
            params = {"q": query, "maxResults": str(self.page_size)}
            if token:
                params["pageToken"] = token
            data = json_object(await self.api.call("GET", self.paths.messages, params=params))
            for msg in data.get("messages") or []:
                if isinstance(msg, dict) and msg.get("id"):
                    refs.append((str(msg["id"]), msg.get("threadId")))
            token = data.get("nextPageToken")
            if not token:
                break
        self.history_id = str(history_id)
        return refs

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop."""
        await self.api.aclose()
