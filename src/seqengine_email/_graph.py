"""The Microsoft Graph (Outlook) mailbox: draft-then-send, Sent search, inbox delta.

A message is created as a draft from its MIME text (``POST /me/messages`` with a base64 body
and ``Content-Type: text/plain``), so our ``Message-ID`` and ``List-Unsubscribe`` headers
survive (a JSON draft may only carry ``X-`` headers), and its ``id`` and ``conversationId``
are known before ``POST /me/messages/{id}/send``. ``POST /me/sendMail`` returns no ids.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import attrs
import httpx

from seqengine import MailboxKind
from seqengine_email._address import normalize_address
from seqengine_email._config import OutlookConfig
from seqengine_email._errors import ERROR_RULES, ErrorRule, MailboxError, Reaction
from seqengine_email._http import HttpApi, SecretToken, json_object
from seqengine_email._mailbox import FetchResult, Inbound, Lookup, SentLookup, SentMessage
from seqengine_email._mime import as_bytes

__all__ = ["GraphMailbox", "GraphPaths"]


@attrs.frozen
class GraphPaths:
    """Graph paths, relative to the mailbox's ``base_url`` (``…/v1.0``)."""

    create: str = "/me/messages"
    send: str = "/me/messages/{id}/send"
    message: str = "/me/messages/{id}"
    mime: str = "/me/messages/{id}/$value"
    messages: str = "/me/messages"
    delta: str = "/me/mailFolders/inbox/messages/delta"


def _odata_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class GraphMailbox:
    """An Outlook / Microsoft 365 mailbox over Microsoft Graph."""

    kind = MailboxKind.OUTLOOK
    absence_is_conclusive = True  # Exchange files every sent message in Sent Items

    def __init__(
        self,
        config: OutlookConfig,
        *,
        paths: GraphPaths | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff: float = 1.0,
        rules: Iterable[ErrorRule] = ERROR_RULES,
        page_size: int = 50,
    ) -> None:
        self.address = config.address
        self.paths = paths or GraphPaths()
        self.api = HttpApi(
            provider="outlook",
            base_url=config.base_url,
            token=SecretToken(config.access_token),
            transport=transport,
            timeout=timeout,
            attempts=attempts,
            backoff=backoff,
            rules=rules,
        )
        self.page_size = page_size
        self.delta_link: str | None = None

    def __repr__(self) -> str:
        return f"GraphMailbox({self.address!r})"

    async def send(self, message: EmailMessage, *, thread_id: str | None) -> SentMessage:
        """Create a draft from MIME, then send it (202). ``thread_id`` is not needed: Exchange
        threads by ``In-Reply-To``/``References``, which the message carries."""
        mime = base64.b64encode(as_bytes(message))
        created = await self.api.call(
            "POST",
            self.paths.create,
            content=mime,
            headers={"Content-Type": "text/plain"},
            expect=(200, 201),
            send=True,
        )
        data = json_object(created)
        draft = str(data.get("id", ""))
        if not draft:
            msg = "outlook POST /me/messages returned no draft id"
            raise MailboxError(Reaction.TRANSIENT, msg)
        try:
            await self.api.call("POST", self.paths.send.format(id=draft), expect=(202,), send=True)
        except MailboxError as exc:
            if not exc.sent_unknown:
                await self._delete(draft)  # not sent: leave no stray draft behind
            raise
        return SentMessage(provider_id=draft, thread_id=data.get("conversationId"))

    async def _delete(self, message_id: str) -> None:
        # A stray draft is untidy, not harmful: it is never sent.
        with contextlib.suppress(MailboxError):
            await self.api.call(
                "DELETE", self.paths.message.format(id=message_id), expect=(204, 404)
            )

    async def find_sent(self, message_id: str) -> SentLookup:
        """``$filter=internetMessageId eq '<…>'``: a sent copy → FOUND; only a draft (a crash
        between create and send) → the draft is deleted and the answer is ABSENT."""
        params = {
            "$filter": f"internetMessageId eq {_odata_string(message_id)}",
            "$select": "id,conversationId,isDraft",
        }
        try:
            resp = await self.api.call("GET", self.paths.messages, params=params)
        except MailboxError as exc:
            return SentLookup(Lookup.UNKNOWN, reason=exc.reason)
        values = [v for v in json_object(resp).get("value") or [] if isinstance(v, dict)]
        for value in values:
            if not value.get("isDraft"):
                return SentLookup(Lookup.FOUND, str(value.get("id")), value.get("conversationId"))
        for value in values:
            await self._delete(str(value.get("id")))
        return SentLookup(Lookup.ABSENT)

    async def fetch_new(self, since: datetime) -> FetchResult:
        """Inbox delta: follow ``@odata.nextLink``, keep ``@odata.deltaLink``; a 410 (the delta
        token expired) restarts from scratch."""
        resynced = False
        items: list[dict[str, Any]] = []
        for _ in range(2):
            items.clear()
            gone = False
            if self.delta_link is not None:
                url, params = self.delta_link, None
            else:
                stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                url = self.paths.delta
                params = {
                    "$select": "id,conversationId,from,subject,internetMessageId",
                    "$filter": f"receivedDateTime ge {stamp}",
                }
            while True:
                resp = await self.api.call(
                    "GET",
                    url,
                    params=params,
                    headers={"Prefer": f"odata.maxpagesize={self.page_size}"},
                    expect=(200, 410),
                )
                if resp.status_code == 410:
                    gone = True
                    break
                data = json_object(resp)
                items.extend(v for v in data.get("value") or [] if isinstance(v, dict))
                params = None
                next_link = data.get("@odata.nextLink")
                if isinstance(next_link, str):
                    url = next_link
                    continue
                delta = data.get("@odata.deltaLink")
                self.delta_link = delta if isinstance(delta, str) else None
                break
            if not gone:
                break
            self.delta_link = None
            resynced = True
        me = normalize_address(self.address)
        out: list[Inbound] = []
        for item in items:
            if "@removed" in item or not item.get("id"):
                continue
            sender = ((item.get("from") or {}).get("emailAddress") or {}).get("address")
            if normalize_address(sender) == me:
                continue
            mid = str(item["id"])
            resp = await self.api.call("GET", self.paths.mime.format(id=mid), expect=(200, 404))
            if resp.status_code == 404:
                continue
            out.append(Inbound(mid, resp.content, item.get("conversationId")))
        return FetchResult(tuple(out), resynced)

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop."""
        await self.api.aclose()
