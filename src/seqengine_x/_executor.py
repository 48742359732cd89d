"""The X channel executor: routes each action to its account's client and reports outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from seqengine import (
    ActionKind,
    ConfigError,
    ExecuteAction,
    Outcome,
    Platform,
    Skipped,
)
from seqengine.runtime import ExecContext, Workspace
from seqengine_x import _actions
from seqengine_x._client import TokenSink, XClient
from seqengine_x._config import XConfig
from seqengine_x._errors import XApiError
from seqengine_x._facts import XFacts

__all__ = ["XExecutor"]


class XExecutor:
    """Runs Like, Follow, DM and condition actions on X (API v2, OAuth 2 user tokens).

    Built by ``seqengine run`` through the ``x`` entry point with ``workspace=``; every
    ``[[accounts]]`` entry with an ``[accounts.x]`` table gets its own :class:`XClient`.

    Args:
        workspace: the loaded workspace (its accounts' X settings are used).
        accounts: account id → X settings, added to (and overriding) the workspace's.
        transport: an ``httpx.AsyncBaseTransport`` for every client (tests, notebooks).
        timeout: seconds per HTTP attempt.
        max_attempts: attempts per call on transient failures (timeouts, resets, 5xx).
        backoff: first retry wait in seconds, doubling, capped at ``max_backoff``.
        max_backoff: the longest wait between attempts.
        facts: X's paths, fields and error codes (:class:`XFacts`), to override.
        environ: where ``env:`` secrets are read (default ``os.environ``).
        token_sink: told ``(account_id, access_token, refresh_token)`` after a refresh.

    Raises:
        ConfigError: a number out of range.
    """

    platforms = frozenset({Platform.X})

    def __init__(
        self,
        workspace: Workspace | None = None,
        *,
        accounts: Mapping[str, XConfig] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 15.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        facts: XFacts | None = None,
        environ: Mapping[str, str] | None = None,
        token_sink: TokenSink | None = None,
    ) -> None:
        if type(max_attempts) is not int or not 1 <= max_attempts <= 10:
            msg = f"XExecutor: max_attempts must be a whole number 1..10, got {max_attempts!r}"
            raise ConfigError(msg)
        for name, value in (
            ("timeout", timeout),
            ("backoff", backoff),
            ("max_backoff", max_backoff),
        ):
            if not isinstance(value, int | float) or value < 0 or (name == "timeout" and not value):
                msg = f"XExecutor: {name} must be a positive number of seconds, got {value!r}"
                raise ConfigError(msg)
        configs: dict[str, XConfig] = {}
        if workspace is not None:
            for acc in workspace.accounts:
                if (x := acc.channel("x", XConfig)) is not None:
                    configs[acc.id] = x
        configs.update(accounts or {})
        self.facts = facts or XFacts()
        self._clients = {
            account_id: XClient(
                config,
                account_id=account_id,
                transport=transport,
                timeout=float(timeout),
                max_attempts=max_attempts,
                backoff=float(backoff),
                max_backoff=float(max_backoff),
                facts=self.facts,
                environ=environ,
                token_sink=token_sink,
            )
            for account_id, config in configs.items()
        }

    def __repr__(self) -> str:
        return f"XExecutor(accounts={sorted(self._clients)!r})"

    def client(self, account_id: str) -> XClient | None:
        """The client of one account, or None when it has no X settings."""
        return self._clients.get(account_id)

    async def aclose(self) -> None:
        """Close every client's connections on the running loop."""
        for client in self._clients.values():
            await client.aclose()

    def _bound(self, request: ExecuteAction, ctx: ExecContext) -> XClient | None:
        client = self._clients.get(request.action.account_id)
        if client is not None:
            client.clock = ctx.clock
        return client

    async def execute(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome:
        """Carry out a Like, Follow, DM or condition; X's answers become outcomes."""
        action = request.action
        client = self._bound(request, ctx)
        if client is None:
            return _no_account(action.account_id)
        try:
            if action.kind is ActionKind.LIKE:
                return await _actions.like(client, request, ctx)
            if action.kind is ActionKind.FOLLOW:
                return await _actions.follow(client, request, ctx)
            if action.kind is ActionKind.DM:
                return await _actions.dm(client, request, content, ctx)
            if action.kind is ActionKind.CONDITION:
                kind = _condition_kind(request, ctx)
                return await _actions.condition(client, request, kind, ctx)
        except _actions.Stop as stop:
            return stop.outcome
        except XApiError as exc:
            exc.reason = client.scrub(exc.reason)
            return exc.outcome
        return Skipped(f"unsupported_action: {action.kind.value} is not available on X")

    async def reconcile(
        self, request: ExecuteAction, content: str | None, ctx: ExecContext
    ) -> Outcome | None:
        """After a crash: did the attempt reach X? Conditions are simply read again.

        Returns the outcome X shows (our DM in the conversation, the follow, the like),
        ``RetryLater`` when X confirms it did not happen, None when X cannot tell.
        """
        action = request.action
        client = self._bound(request, ctx)
        if client is None:
            return _no_account(action.account_id)  # execute never called X for it either
        if action.kind is ActionKind.CONDITION:
            return await self.execute(request, content, ctx)
        try:
            if action.kind is ActionKind.DM:
                if not content:
                    return None  # nothing persisted to look for
                return await _actions.reconcile_dm(client, request, content)
            if action.kind is ActionKind.FOLLOW:
                return await _actions.reconcile_follow(client, request)
            if action.kind is ActionKind.LIKE:
                return await _actions.reconcile_like(client, request, ctx)
        except (XApiError, _actions.Stop):
            return None
        return None


def _no_account(account_id: str) -> Skipped:
    return Skipped(
        f"no_x_account: account {account_id} has no [accounts.x] settings; add user_id and "
        "access_token to the workspace file"
    )


def _condition_kind(request: ExecuteAction, ctx: ExecContext) -> str | None:
    """The condition to check; a reconciled request carries none, so read it from the step."""
    if request.condition:
        return request.condition
    seq: Any = ctx.storage.get_sequence(request.action.sequence_id)
    if seq is None or not seq.has_step(request.action.step_id):
        return None
    step = seq.step(request.action.step_id)
    return step.condition.value if step.condition is not None else None
