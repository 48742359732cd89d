"""Server time of every console page with 100,000 leads and 1,000,000 actions.

Run: ``python bench/console.py [--leads N] [--actions-per-lead K] [--backend sqlite|postgres]``
(PostgreSQL from ``SEQENGINE_TEST_POSTGRES_URL``, in a scratch schema dropped afterwards).

The data is written with bulk SQL (``executemany`` in one transaction on SQLite, ``COPY`` on
PostgreSQL) in the backends' own row format: two sequences, four accounts, N leads each
enrolled in one sequence, K actions per lead (all done but the last, which waits), 0.5% of
leads with an unknown outcome, a 20,000-message inbox and 60 days of counters. Then the
console is created (its read indexes built, timed apart), and each page is requested in-process
(Starlette's TestClient) several times; the median wall time per page is printed.

Target: every page <= 300 ms on both backends.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from seqengine import Account, Sequence, Step
from seqengine._model import Action, ActionKind, Enrollment, Lead, Platform
from seqengine.storage._protocol import InboxMessage

TARGET_MS = 300.0
REPEATS = 5
LEADS = [100_000]  # set from --leads: inbox messages name existing leads
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
KINDS = [
    ("like", ActionKind.LIKE, Platform.X),
    ("follow", ActionKind.FOLLOW, Platform.X),
    ("dm", ActionKind.DM, Platform.X),
    ("email", ActionKind.EMAIL, Platform.EMAIL),
    ("connect", ActionKind.CONNECTION_REQUEST, Platform.LINKEDIN),
]


def sequences() -> list[Sequence]:
    """Two flows of five steps each."""
    out = []
    for sid, zone in (("outreach-a", "Europe/Berlin"), ("outreach-b", "America/New_York")):
        steps = []
        for i, (name, kind, platform) in enumerate(KINDS):
            nxt = KINDS[i + 1][0] if i + 1 < len(KINDS) else None
            extra: dict[str, Any] = {}
            if kind is ActionKind.DM:
                extra["template"] = "Hi {{first_name}}"
            if kind is ActionKind.EMAIL:
                extra = {"subject": "Hello", "body": "Hi {{first_name}}"}
            steps.append(Step(name, kind, platform, delay_hours=24 if i else 0, next=nxt, **extra))
        out.append(Sequence(sid, steps, name=sid.title(), timezone=zone, daily_action_limit=400))
    return out


def rows(
    leads: int, per_lead: int, ts: Callable[[datetime], str]
) -> Iterator[tuple[str, Any, Any, list[Any]]]:
    """(table, key, values) rows in plain-JSON form, shared by both backends' writers."""
    seqs = sequences()
    zero = datetime(2026, 1, 1, tzinfo=UTC)
    lead = json.loads(json.dumps({"id": "x", "name": "x", "status": "active"}))
    for n in range(leads):
        lid = f"lead-{n:06d}"
        seq = seqs[n % 2]
        status = "replied" if n % 20 == 0 else "active"
        body_lead = dict(lead, id=lid, name=f"Lead {n}", first_name=f"L{n}", status=status)
        acc = f"acc-{n % 4}"
        acts = []
        for k in range(per_lead):
            name, kind, platform = KINDS[k % len(KINDS)]
            at = zero + timedelta(minutes=(n * per_lead + k) % 86_400)
            last = k == per_lead - 1
            unknown = last and n % 200 == 7
            status_a = "failed" if unknown else ("pending" if last else "completed")
            aid = f"{seq.id}:{lid}:{name}:{k}"
            acts.append(
                {
                    "id": aid,
                    "sequence_id": seq.id,
                    "step_id": name,
                    "lead_id": lid,
                    "account_id": acc,
                    "kind": kind.value,
                    "platform": platform.value,
                    "scheduled_at": ts(at),
                    "status": status_a,
                    "attempt": 1,
                    "reason": "unknown_outcome: the connection dropped" if unknown else None,
                    "result": None,
                    "content": f"Hi L{n}, step {k}" if status_a != "pending" else None,
                    "started_at": None if status_a == "pending" else ts(at),
                    "finished_at": ts(at) if status_a == "completed" else None,
                    "created_at": ts(at),
                    "provider_id": None,
                    "facts": {},
                    "tries": 0,
                    "manual": False,
                }
            )
        pending = [acts[-1]["id"]] if acts and acts[-1]["status"] == "pending" else []
        enr = {
            "sequence_id": seq.id,
            "lead_id": lid,
            "account_id": acc,
            "status": "active" if pending else "stopped",
            "enrolled_at": ts(zero),
            "pending": pending,
            "generation": 0,
            "reason": None,
            "resume": [],
            "context": [],
        }
        yield ("lead", lid, body_lead, [])
        yield ("enrollment", (seq.id, lid), enr, acts)


def check_shapes() -> None:
    """The hand-written rows parse as the model's classes (else the bench measures nonsense)."""
    import cattrs

    conv = cattrs.Converter()
    conv.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    for kind, _key, body, acts in rows(2, 3, lambda d: d.isoformat()):
        if kind == "lead":
            conv.structure(body, Lead)
        else:
            conv.structure(body, Enrollment)
            for a in acts:
                conv.structure(a, Action)


def inbox_rows(n: int) -> Iterator[InboxMessage]:
    for i in range(n):
        yield InboxMessage(
            id=f"msg-{i}",
            platform=Platform.EMAIL,
            account_id=f"acc-{i % 4}",
            lead_id=f"lead-{(i * 7) % LEADS[0]:06d}",
            sender="lead",
            text=f"Thanks, message {i}",
            received_at=NOW - timedelta(minutes=i),
        )


# -- SQLite ----------------------------------------------------------------------------------
def fill_sqlite(path: str, leads: int, per_lead: int) -> Any:
    from seqengine.storage import sqlite as sq

    store = sq.SQLiteStorage(path, "bench", synchronous="OFF")
    for seq in sequences():
        store.put_sequence(seq)
    for i in range(4):
        store.put_account(Account(f"acc-{i}", timezone="Europe/Berlin"))
    conn = store._conn
    ws = "bench"
    conn.execute("BEGIN")
    seqno = 0
    lead_rows: list[Any] = []
    enr_rows: list[Any] = []
    act_rows: list[Any] = []

    def flush() -> None:
        conn.executemany("INSERT INTO leads (workspace, id, data) VALUES (?, ?, ?)", lead_rows)
        conn.executemany(
            "INSERT INTO enrollments (workspace, sequence_id, lead_id, data) VALUES (?, ?, ?, ?)",
            enr_rows,
        )
        conn.executemany(
            "INSERT INTO actions (workspace, id, seq, sequence_id, status, scheduled_at, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            act_rows,
        )
        lead_rows.clear()
        enr_rows.clear()
        act_rows.clear()

    for kind, key, body, acts in rows(leads, per_lead, sq._ts):
        if kind == "lead":
            lead_rows.append((ws, key, json.dumps(body)))
            continue
        enr_rows.append((ws, key[0], key[1], json.dumps(body)))
        for a in acts:
            seqno += 1
            act_rows.append(
                (
                    ws,
                    a["id"],
                    seqno,
                    a["sequence_id"],
                    a["status"],
                    a["scheduled_at"],
                    json.dumps(a),
                )
            )
        if len(act_rows) > 50_000:
            flush()
    flush()
    conn.execute("UPDATE workspaces SET next_seq = ? WHERE workspace = ?", (seqno + 1, ws))
    conn.executemany(
        "INSERT INTO inbox (workspace, id, seq, platform, account_id, lead_id, sender, text, "
        "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                ws,
                m.id,
                i,
                m.platform.value,
                m.account_id,
                m.lead_id,
                m.sender,
                m.text,
                sq._ts(m.received_at),
            )
            for i, m in enumerate(inbox_rows(20_000))
        ],
    )
    conn.executemany(
        "INSERT INTO counters (workspace, counter, day, used) VALUES (?, ?, ?, ?)",
        [
            (ws, counter, (NOW.date() - timedelta(days=d)).isoformat(), 100 + d)
            for d in range(60)
            for counter in ("sequence:outreach-a", "sequence:outreach-b", "connect:acc-0")
        ],
    )
    conn.execute("COMMIT")
    return store


# -- PostgreSQL ------------------------------------------------------------------------------
def fill_postgres(url: str, schema: str, leads: int, per_lead: int) -> Any:
    from psycopg.types.json import Jsonb

    from seqengine.storage import postgres as pg

    dsn, _ = pg.parse_url(url)
    pg.drop_schema(dsn, schema)
    pg.upgrade(dsn, schema)
    store = pg.PostgresStorage(dsn, "bench", schema=schema)
    for seq in sequences():
        store.put_sequence(seq)
    for i in range(4):
        store.put_account(Account(f"acc-{i}", timezone="Europe/Berlin"))
    ws = "bench"
    with store._tx("bench fill") as conn:
        cur = conn.cursor()
        with cur.copy(pg._q("COPY {s}.leads (ws, id, body) FROM STDIN", schema)) as copy_leads:
            for kind, key, body, _acts in rows(leads, per_lead, lambda d: d.isoformat()):
                if kind == "lead":
                    copy_leads.write_row((ws, key, Jsonb(body)))
        with cur.copy(
            pg._q("COPY {s}.enrollments (ws, sequence_id, lead_id, body) FROM STDIN", schema)
        ) as copy_enr:
            for kind, key, body, _acts in rows(leads, per_lead, lambda d: d.isoformat()):
                if kind == "enrollment":
                    copy_enr.write_row((ws, key[0], key[1], Jsonb(body)))
        with cur.copy(
            pg._q(
                "COPY {s}.actions (ws, id, sequence_id, status, scheduled_at, body) FROM STDIN",
                schema,
            )
        ) as copy_act:
            for _kind, _key, _body, acts in rows(leads, per_lead, lambda d: d.isoformat()):
                for a in acts:
                    copy_act.write_row(
                        (
                            ws,
                            a["id"],
                            a["sequence_id"],
                            a["status"],
                            datetime.fromisoformat(a["scheduled_at"]),
                            Jsonb(a),
                        )
                    )
        with cur.copy(
            pg._q(
                "COPY {s}.inbox (ws, id, lead_id, platform, received_at, body) FROM STDIN", schema
            )
        ) as copy_inbox:
            for m in inbox_rows(20_000):
                copy_inbox.write_row(
                    (ws, m.id, m.lead_id, m.platform.value, m.received_at, pg._dump(m))
                )
        cur.executemany(
            pg._q("INSERT INTO {s}.counters (ws, counter, day, n) VALUES (%s, %s, %s, %s)", schema),
            [
                (ws, counter, NOW.date() - timedelta(days=d), 100 + d)
                for d in range(60)
                for counter in ("sequence:outreach-a", "sequence:outreach-b", "connect:acc-0")
            ],
        )
    with store._conn("vacuum") as conn:
        for table in ("leads", "enrollments", "actions", "inbox"):
            conn.execute(pg._q("VACUUM ANALYZE {s}." + table, schema))
    return store


# -- timing ----------------------------------------------------------------------------------
def pages(leads: int, page_size: int) -> dict[str, str]:
    last = max(leads // 2 // page_size, 1)
    return {
        "overview": "/",
        "sequence (page 1)": "/sequences/outreach-a",
        f"sequence (page {last})": f"/sequences/outreach-a?page={last}",
        "lead timeline": f"/leads/lead-{leads // 2 + 1:06d}",
        "inbox (page 1)": "/inbox",
        "inbox (last page)": f"/inbox?page={20_000 // page_size}",
        "needs a person": "/attention",
        "needs a person (page 5)": "/attention?page=5",
    }


def measure(store: Any, leads: int) -> dict[str, float]:
    from starlette.testclient import TestClient

    from seqengine.console import create_app

    t0 = time.perf_counter()
    app = create_app(store, clock=lambda: NOW)
    print(f"  console setup (indexes, analyze): {time.perf_counter() - t0:.1f} s")
    client = TestClient(app, client=("127.0.0.1", 40000))
    out = {}
    for name, path in pages(leads, 50).items():
        times = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - t) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code}: {response.text[:300]}")
        out[name] = statistics.median(times)
    return out


def report(backend: str, results: dict[str, float]) -> bool:
    ok = True
    for name, ms in results.items():
        flag = "ok" if ms <= TARGET_MS else "OVER"
        ok &= ms <= TARGET_MS
        print(f"  {backend:10s} {name:28s} {ms:8.1f} ms  {flag}")
    return ok


def main() -> int:
    warnings.simplefilter("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--actions-per-lead", type=int, default=10)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    LEADS[0] = args.leads
    check_shapes()
    total = args.leads * args.actions_per_lead
    print(f"{args.leads:,} leads, {total:,} actions; target <= {TARGET_MS:.0f} ms per page")
    ok = True
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            store = fill_sqlite(os.path.join(tmp, "bench.db"), args.leads, args.actions_per_lead)
            print(f"SQLite: filled in {time.perf_counter() - t0:.0f} s")
            ok &= report("sqlite", measure(store, args.leads))
            store.close()
    if args.backend in ("postgres", "both"):
        url = os.environ.get("SEQENGINE_TEST_POSTGRES_URL")
        if not url:
            print("PostgreSQL: skipped (set SEQENGINE_TEST_POSTGRES_URL)")
        else:
            from seqengine.storage import postgres as pg

            schema = "console_bench"
            t0 = time.perf_counter()
            store = fill_postgres(url, schema, args.leads, args.actions_per_lead)
            print(f"PostgreSQL: filled in {time.perf_counter() - t0:.0f} s")
            try:
                ok &= report("postgres", measure(store, args.leads))
            finally:
                store.close()
                pg.drop_schema(pg.parse_url(url)[0], schema)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
