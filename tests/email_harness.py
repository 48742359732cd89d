"""One email executor with storage and a virtual clock, driven the way the worker drives it:
the harness the Gmail, Graph and SMTP/IMAP mailbox tests share."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import attrs

from seqengine._model import Action, ActionKind, Lead, Platform
from seqengine._outcomes import ExecuteAction
from seqengine.runtime._clock import VirtualClock
from seqengine.runtime._executor import ExecContext
from seqengine.storage.memory import MemoryStorage
from seqengine_email import EmailExecutor


@attrs.define
class MailWorld:
    """``send``/``replied``/``reconcile`` one action of account ``acc-1`` at a time."""

    executor: EmailExecutor
    storage: MemoryStorage
    clock: VirtualClock

    step_id: ClassVar[str] = "s"  # the step the requests come from
    reconcile_content: ClassVar[str] = "S\n\nB"  # what a reconciled send had written
    first_names: ClassVar[bool] = False  # give leads a first name (their id)

    @property
    def ctx(self) -> ExecContext:
        return ExecContext(storage=self.storage, clock=self.clock)

    def lead(self, lead_id: str, email: str | None) -> Lead:
        first = lead_id if self.first_names else None
        lead = Lead(id=lead_id, name=lead_id.title(), first_name=first, email=email)
        self.storage.put_lead(lead)
        return lead

    def request(
        self, lead: Lead, key: str, kind: ActionKind = ActionKind.EMAIL, *, tries: int = 0
    ) -> ExecuteAction:
        action = Action(
            id=key,
            sequence_id="seq",
            step_id=self.step_id,
            lead_id=lead.id,
            account_id="acc-1",
            kind=kind,
            platform=Platform.EMAIL,
            scheduled_at=self.clock.now(),
            tries=tries,
        )
        stored = self.storage.get_lead(lead.id) or lead
        condition = "replied" if kind is ActionKind.CONDITION else None
        return ExecuteAction(action=action, lead=stored, idempotency_key=key, condition=condition)

    def send(self, lead: Lead, key: str, content: str = "Hello\n\nHi there", **kw: Any) -> Any:
        return asyncio.run(self.executor.execute(self.request(lead, key, **kw), content, self.ctx))

    def replied(self, lead: Lead, key: str) -> Any:
        self.clock.advance(timedelta(hours=72))
        req = self.request(lead, key, ActionKind.CONDITION)
        return asyncio.run(self.executor.execute(req, None, self.ctx))

    def reconcile(self, lead: Lead, key: str, content: str | None = None) -> Any:
        text = self.reconcile_content if content is None else content
        return asyncio.run(self.executor.reconcile(self.request(lead, key), text, self.ctx))


@attrs.frozen
class TlsPair:
    """A self-signed certificate for 127.0.0.1: the servers' and the clients' SSL contexts."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def self_signed(folder: Path) -> TlsPair:
    """Make a certificate for 127.0.0.1 with the ``openssl`` command (a real key and cert)."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return TlsPair(server, client)
