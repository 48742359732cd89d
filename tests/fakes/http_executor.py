"""An executor for X, LinkedIn and email that "sends" by POSTing to the counting fake.

It behaves as a careful real channel executor should around the never-send-twice promise:

- ``execute`` POSTs ``/send`` with the attempt's idempotency key. A clean answer is
  ``Completed``. If the call fails *after* the request may have left (a timeout, a dropped
  connection), it does not guess: it asks the platform (``GET /sent?key=``) like ``reconcile``
  does, and reports ``Unknown`` when the platform cannot tell either.
- ``reconcile`` (after a crash) asks ``GET /sent?key=``: received → ``Completed``; the
  platform has no record of it → ``RetryLater`` (safe: it never happened, sending it is the
  first send); the platform cannot be reached → None (the worker records an unknown outcome).
- Conditions only read, so they never reach ``/send``: their result is a stable hash of the
  lead, step and attempt (about one in three is true), and re-reading one after a crash is safe.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx

from seqengine._model import ActionKind, Platform
from seqengine._outcomes import Completed, ExecuteAction, Outcome, RetryLater, Unknown
from seqengine.runtime._executor import ExecContext

__all__ = ["HttpExecutor", "condition_result"]


def condition_result(lead_id: str, step_id: str, attempt: int) -> bool:
    """The fake world's answer to a condition: stable for (lead, step, attempt)."""
    digest = hashlib.sha256(f"{lead_id}|{step_id}|{attempt}".encode()).digest()
    return digest[0] % 3 == 0


class HttpExecutor:
    """Serves every platform through the counting fake at ``base_url``."""

    platforms = frozenset({Platform.X, Platform.LINKEDIN, Platform.EMAIL})

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.sent = 0
        self.reconciled: list[tuple[str, str]] = []  # (key, what reconcile concluded)
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    def _client(self) -> httpx.AsyncClient:
        """One client per event loop (a client's connections belong to the loop that made them)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # trust_env=False: no proxy from the environment may stand before 127.0.0.1.
            client = httpx.AsyncClient(
                base_url=self.base_url, timeout=self.timeout, trust_env=False
            )
            self._clients = {lp: c for lp, c in self._clients.items() if not lp.is_closed()}
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the running loop's client."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def _body(self, request: ExecuteAction) -> dict[str, Any]:
        a = request.action
        at = a.started_at.isoformat() if a.started_at is not None else None
        return {
            "key": request.idempotency_key,
            "action_id": a.id,
            "kind": a.kind.value,
            "platform": a.platform.value,
            "sequence_id": a.sequence_id,
            "lead_id": a.lead_id,
            "account_id": a.account_id,
            "attempt": a.attempt,
            "at": at,
        }

    async def _received(self, key: str) -> bool | None:
        """Whether the platform has the send with ``key``; None when it cannot be asked."""
        try:
            response = await self._client().get("/sent", params={"key": key})
            response.raise_for_status()
            return bool(response.json()["received"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        """Send the action to the fake (conditions are answered without a send)."""
        a = request.action
        if a.kind is ActionKind.CONDITION:
            return Completed(result=condition_result(a.lead_id, a.step_id, a.attempt))
        try:
            response = await self._client().post("/send", json=self._body(request))
        except httpx.ConnectError as exc:
            # The connection was refused: the request never left, so trying again is safe.
            return RetryLater(f"platform_unreachable: {exc}")
        except httpx.HTTPError:
            # It may have arrived: find out rather than guess.
            received = await self._received(request.idempotency_key)
            if received is None:
                return Unknown("the send timed out and the platform cannot say if it arrived")
            if not received:
                return RetryLater("the send failed before it reached the platform")
            return Completed(provider_id=f"fake-{request.idempotency_key}", content=content)
        if response.status_code != 200:
            return RetryLater(f"platform answered HTTP {response.status_code}")
        self.sent += 1
        return Completed(provider_id=f"fake-{response.json()['n']}", content=content)

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        """Did the interrupted attempt reach the fake?"""
        a = request.action
        if a.kind is ActionKind.CONDITION:
            self.reconciled.append((request.idempotency_key, "condition"))
            return Completed(result=condition_result(a.lead_id, a.step_id, a.attempt))
        received = await self._received(request.idempotency_key)
        verdict = "unknown" if received is None else "sent" if received else "not_sent"
        self.reconciled.append((request.idempotency_key, verdict))
        if received is None:
            return None
        if received:
            return Completed(provider_id=f"fake-{request.idempotency_key}", content=content)
        return RetryLater("not received: the platform has no send with this key")
