"""A fake Microsoft Graph mailbox on loopback (real HTTP), in the shapes of CHANNELS.md.

Routes (under ``/v1.0``): ``POST /me/messages`` (a draft from base64 MIME, ``Content-Type:
text/plain``) → 201 ``{id, conversationId, internetMessageId, isDraft}``;
``POST /me/messages/{id}/send`` → 202; ``GET /me/messages?$filter=internetMessageId eq '…'``;
``DELETE /me/messages/{id}`` → 204; ``GET /me/messages/{id}/$value`` (MIME);
``GET /me/mailFolders/inbox/messages/delta`` with ``@odata.nextLink`` pages (``Prefer:
odata.maxpagesize``) and a final ``@odata.deltaLink`` (``$deltatoken``); an expired token
answers 410. Sent mail goes through :func:`fakes.imap_server.auto_responses`; answers land in
the inbox in the original's conversation.
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from fakes.gmail_api import FakeHttp, Reply
from fakes.imap_server import auto_responses, message_id, parse_raw


def _err(status: int, code: str, message: str) -> Reply:
    return status, {"error": {"code": code, "message": message}}, {}


class FakeGraph(FakeHttp):
    """One Outlook mailbox."""

    PREFIX = "/v1.0"

    def __init__(self, address: str = "sales@outlook.com", token: str = "graph-token") -> None:
        super().__init__()
        self.address = address
        self.tokens = {token}
        self.messages: dict[str, dict[str, Any]] = {}
        self.seq = 0  # change counter for delta tokens
        self.min_token = 0

    @property
    def api_url(self) -> str:
        return self.base_url + self.PREFIX

    # -- test helpers ----------------------------------------------------------------------
    def sent(self) -> list[bytes]:
        return [m["mime"] for m in self.messages.values() if m["folder"] == "sentitems"]

    def drafts(self) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["folder"] == "drafts"]

    def deliver(self, raw: bytes, conversation: str | None = None) -> str:
        with self.lock:
            return self._add(raw, "inbox", conversation or self._conversation_for(raw))

    def expire_delta(self) -> None:
        """Invalidate every delta token handed out so far (the next use answers 410)."""
        with self.lock:
            self.min_token = self.seq + 1

    # -- internals -------------------------------------------------------------------------
    def _conversation_for(self, raw: bytes) -> str | None:
        msg = parse_raw(raw)
        refs = re.findall(r"<[^>]+>", f"{msg.get('In-Reply-To', '')} {msg.get('References', '')}")
        for stored in self.messages.values():
            if stored["internetMessageId"] in refs:
                return str(stored["conversationId"])
        return None

    def _add(self, raw: bytes, folder: str, conversation: str | None) -> str:
        self.seq += 1
        mid = f"AAMk{uuid.uuid4().hex[:16]}"
        msg = parse_raw(raw)
        sender = re.findall(r"[\w.+-]+@[\w.-]+", str(msg.get("From", "")))
        self.messages[mid] = {
            "id": mid,
            "conversationId": conversation or f"AAQk{uuid.uuid4().hex[:16]}",
            "internetMessageId": message_id(raw) or f"<{mid}@outlook.fake>",
            "isDraft": folder == "drafts",
            "folder": folder,
            "mime": raw,
            "subject": str(msg.get("Subject", "")),
            "from": {"emailAddress": {"address": sender[0] if sender else ""}},
            "seq": self.seq,
            "receivedDateTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return mid

    def _view(self, m: dict[str, Any]) -> dict[str, Any]:
        return {
            k: m[k]
            for k in (
                "id",
                "conversationId",
                "internetMessageId",
                "isDraft",
                "subject",
                "from",
                "receivedDateTime",
            )
        }

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, headers: Any
    ) -> Reply:
        auth = headers.get("Authorization") or ""
        if not (auth.startswith("Bearer ") and auth[7:] in self.tokens):
            return _err(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        if not path.startswith(self.PREFIX):
            return _err(404, "ResourceNotFound", "no such path")
        rest = path[len(self.PREFIX) :]
        q = {k: v[-1] for k, v in query.items()}
        if method == "POST" and rest == "/me/messages":
            if headers.get("Content-Type", "").split(";")[0] != "text/plain":
                return _err(400, "ErrorMimeContentInvalid", "this fake takes MIME drafts only")
            try:
                raw = base64.b64decode(body, validate=True)
            except ValueError:
                return _err(400, "ErrorMimeContentInvalidBase64String", "invalid base64")
            if not parse_raw(raw).get("To"):
                return _err(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
            mid = self._add(raw, "drafts", self._conversation_for(raw))
            return 201, self._view(self.messages[mid]), {}
        if method == "POST" and (m := re.fullmatch(r"/me/messages/([^/]+)/send", rest)):
            stored = self.messages.get(m.group(1))
            if stored is None or not stored["isDraft"]:
                return _err(404, "ErrorItemNotFound", "The specified object was not found.")
            self.seq += 1
            stored.update(folder="sentitems", isDraft=False, seq=self.seq)
            for answer in auto_responses(stored["mime"]):
                self._add(answer, "inbox", stored["conversationId"])
            return 202, None, {}
        if method == "GET" and rest == "/me/messages":
            flt = q.get("$filter", "")
            match = re.fullmatch(r"internetMessageId eq '((?:[^']|'')*)'", flt)
            if match is None:
                return _err(400, "ErrorInvalidUrlQueryFilter", f"fake cannot filter {flt!r}")
            wanted = match.group(1).replace("''", "'")
            found = [
                self._view(v) for v in self.messages.values() if v["internetMessageId"] == wanted
            ]
            return 200, {"value": found}, {}
        if method == "DELETE" and (m := re.fullmatch(r"/me/messages/([^/]+)", rest)):
            if self.messages.pop(m.group(1), None) is None:
                return _err(404, "ErrorItemNotFound", "The specified object was not found.")
            return 204, None, {}
        if method == "GET" and (m := re.fullmatch(r"/me/messages/([^/]+)/\$value", rest)):
            stored = self.messages.get(m.group(1))
            if stored is None:
                return _err(404, "ErrorItemNotFound", "The specified object was not found.")
            return 200, stored["mime"], {}
        if method == "GET" and rest == "/me/mailFolders/inbox/messages/delta":
            return self._delta(q, headers)
        return _err(404, "ResourceNotFound", f"no route {method} {rest}")

    def _delta(self, q: dict[str, str], headers: Any) -> Reply:
        since = 0
        if "$deltatoken" in q:
            since = int(q["$deltatoken"])
            if since < self.min_token:
                return _err(410, "SyncStateNotFound", "The sync state is no longer valid.")
        elif "$skiptoken" not in q:
            flt = q.get("$filter")
            if flt is not None and not re.fullmatch(r"receivedDateTime ge \S+Z", flt):
                return _err(400, "ErrorInvalidUrlQueryFilter", f"fake cannot filter {flt!r}")
        skip = int(q.get("$skiptoken", "0").split(".")[0]) if "$skiptoken" in q else 0
        if "$skiptoken" in q:
            since = int(q["$skiptoken"].split(".")[1])
        prefer = headers.get("Prefer") or ""
        size = int(m.group(1)) if (m := re.search(r"odata.maxpagesize=(\d+)", prefer)) else 10
        items = sorted(
            (v for v in self.messages.values() if v["folder"] == "inbox" and v["seq"] > since),
            key=lambda v: v["seq"],
        )
        page = items[skip : skip + size]
        base = self.api_url + "/me/mailFolders/inbox/messages/delta"
        out: dict[str, Any] = {"value": [self._view(v) for v in page]}
        if skip + size < len(items):
            out["@odata.nextLink"] = f"{base}?$skiptoken={skip + size}.{since}"
        else:
            out["@odata.deltaLink"] = f"{base}?$deltatoken={self.seq}"
        return 200, out, {}
