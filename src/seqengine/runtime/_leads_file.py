"""The leads file (CONTRACT.md): CSV parsing, and assigning leads to sequences and accounts.

The leads file is forgiving by row and strict by file: a malformed row is reported with its line
number and skipped, while a missing file or header is a :class:`~seqengine.ConfigError`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

import attrs

from seqengine._exceptions import ConfigError
from seqengine._model import Lead, LeadStatus, LinkedInProfile, XProfile, email_address

__all__ = ["LeadRow", "LeadsFile", "assign", "load_leads", "parse_leads"]


@attrs.frozen
class LeadRow:
    """One loaded row: the lead, where the row asks it to go, and the row's line number."""

    lead: Lead
    sequence_id: str | None
    account_id: str | None
    line: int


@attrs.frozen
class LeadsFile:
    """The rows that loaded and one ``FILE:LINE: problem`` message per skipped row."""

    rows: list[LeadRow] = attrs.field(factory=list)
    errors: list[str] = attrs.field(factory=list)


_PROFILE_COLUMNS: Final = (
    "name",
    "first_name",
    "company",
    "company_size",
    "location",
    "bio",
    "followers",
)
_KNOWN_COLUMNS: Final = frozenset(
    {
        "id",
        "sequence_id",
        "account_id",
        *_PROFILE_COLUMNS,
        "email",
        "x_user_id",
        "x_username",
        "linkedin_public_id",
        "linkedin_urn",
        "status",
        "crm_stage",
        "competitor",
        "blacklisted",
    }
)
_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0", ""})
_LINKEDIN_URL: Final = re.compile(r"linkedin\.com/in/([^/?#\s]+)", re.IGNORECASE)


def load_leads(
    path: str,
    *,
    sequences: Collection[str] | None = None,
    accounts: Collection[str] | None = None,
) -> LeadsFile:
    """Load a leads CSV (UTF-8, with or without BOM, header row first).

    ``sequences``/``accounts``, when given, are the ids a row's ``sequence_id``/``account_id``
    may name; a row naming another is reported and skipped.

    Raises:
        ConfigError: the file cannot be read, is not UTF-8, or has no usable header.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        msg = f"{name}: cannot read the leads file ({exc.strerror or exc})"
        raise ConfigError(msg) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        msg = f"{name}:{line}: not UTF-8 text; save the file as CSV UTF-8"
        raise ConfigError(msg) from None
    return parse_leads(text, source=name, sequences=sequences, accounts=accounts)


def parse_leads(
    text: str,
    *,
    source: str = "leads.csv",
    sequences: Collection[str] | None = None,
    accounts: Collection[str] | None = None,
) -> LeadsFile:
    """Parse leads CSV text; see :func:`load_leads`.

    Raises:
        ConfigError: no header row, no ``id`` column, or a column named twice.
    """
    text = text.removeprefix("\ufeff")
    known_sequences = _id_set(sequences)
    known_accounts = _id_set(accounts)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = _records(reader)

    header_line, header = _header(records, source)
    result = LeadsFile()
    first_line: dict[str, int] = {}
    for line, row, problem in records:
        if problem is not None:
            result.errors.append(f"{source}:{line}: {problem}")
            continue
        if not any(field.strip() for field in row):
            continue
        if len(row) != len(header):
            result.errors.append(
                f"{source}:{line}: has {len(row)} fields, the header (line {header_line}) "
                f"has {len(header)}; quote values that contain commas"
            )
            continue
        values = {name: value for name, value in zip(header, row, strict=True) if name}
        problems: list[str] = []
        built = _lead_row(values, line, problems, known_sequences, known_accounts)
        if built is not None and built.lead.id in first_line:
            problems.append(
                f"duplicate id {built.lead.id!r} (first on line {first_line[built.lead.id]})"
            )
        if problems or built is None:
            result.errors.append(f"{source}:{line}: {'; '.join(problems)}")
            continue
        first_line[built.lead.id] = line
        result.rows.append(built)
    return result


def _id_set(ids: Collection[str] | None) -> frozenset[str] | None:
    if ids is None:
        return None
    return frozenset([ids] if isinstance(ids, str) else ids)


_Record = tuple[int, list[str], str | None]


def _records(reader: Any) -> Iterable[_Record]:
    """(first line, fields, problem) per CSV record; a record the CSV reader rejects comes
    back with its problem, and reading goes on at the next line."""
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "end of data" in str(exc):
                yield (
                    start,
                    [],
                    "a quoted field is never closed (its quote runs to the end of the file)",
                )
                return
            yield start, [], f"not valid CSV ({exc}); quote fields that contain quotes"
            continue
        yield start, row, None


def _header(records: Iterable[_Record], source: str) -> tuple[int, list[str]]:
    it = iter(records)
    for line, row, problem in it:
        if problem is not None:
            msg = f"{source}:{line}: the header row is not valid CSV ({problem})"
            raise ConfigError(msg)
        if not any(field.strip() for field in row):
            continue
        names = [_column(field) for field in row]
        seen: set[str] = set()
        for name in names:
            if name and name in seen:
                msg = f"{source}:{line}: column {name!r} appears twice in the header"
                raise ConfigError(msg)
            seen.add(name)
        if "id" not in seen:
            found = ", ".join(n for n in names if n) or "none"
            msg = (
                f"{source}:{line}: the header has no 'id' column (found: {found}); the first "
                "row must name the columns, e.g. id,name,email"
            )
            raise ConfigError(msg)
        return line, names
    msg = f"{source}: empty file; a leads file needs a header row, e.g. id,name,email"
    raise ConfigError(msg)


def _column(name: str) -> str:
    name = name.strip()
    return name.lower() if name.lower() in _KNOWN_COLUMNS else name


def _lead_row(
    values: Mapping[str, str],
    line: int,
    problems: list[str],
    known_sequences: frozenset[str] | None,
    known_accounts: frozenset[str] | None,
) -> LeadRow | None:
    def text(column: str) -> str:
        return values.get(column, "").strip()

    def optional(column: str) -> str | None:
        return text(column) or None

    lead_id = text("id")
    if not lead_id:
        problems.append("id is empty; every lead needs a unique id")
    sequence_id = optional("sequence_id")
    account_id = optional("account_id")
    for column, value, known in (
        ("sequence_id", sequence_id, known_sequences),
        ("account_id", account_id, known_accounts),
    ):
        if value is not None and known is not None and value not in known:
            problems.append(f"{column} {value!r} is not {_one_of(known)}")
    flags: dict[str, bool] = {}
    for column in ("competitor", "blacklisted"):
        raw = text(column).lower()
        if raw not in _TRUE and raw not in _FALSE:
            problems.append(
                f"{column} must be true or false (or yes/no, 1/0), got {text(column)!r}"
            )
        flags[column] = raw in _TRUE
    status = LeadStatus.NEW
    raw_status = text("status").lower().replace(" ", "_").replace("-", "_")
    if raw_status:
        try:
            status = LeadStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in LeadStatus)
            problems.append(f"status {text('status')!r} is not one of {allowed}")
    email = _email_address(text("email"), problems)
    x_user_id, x_username = optional("x_user_id"), optional("x_username")
    if x_username is not None:
        x_username = x_username.removeprefix("@") or None
    public_id = optional("linkedin_public_id")
    if public_id is not None and (match := _LINKEDIN_URL.search(public_id)):
        public_id = match.group(1)
    urn = optional("linkedin_urn")
    enrichment = {
        column: value.strip()
        for column, value in values.items()
        if column not in _KNOWN_COLUMNS and value.strip()
    }
    if problems:
        return None
    try:
        lead = Lead(
            id=lead_id,
            name=text("name"),
            first_name=text("first_name"),
            company=text("company"),
            company_size=text("company_size"),
            location=text("location"),
            bio=text("bio"),
            followers=text("followers"),
            email=email,
            x=XProfile(user_id=x_user_id, username=x_username) if x_user_id or x_username else None,
            linkedin=LinkedInProfile(public_id=public_id, urn=urn) if public_id or urn else None,
            status=status,
            crm_stage=optional("crm_stage"),
            competitor=flags["competitor"],
            blacklisted=flags["blacklisted"],
            enrichment=enrichment,
        )
    except (ConfigError, ValueError, TypeError) as exc:
        problems.append(str(exc))
        return None
    return LeadRow(lead=lead, sequence_id=sequence_id, account_id=account_id, line=line)


def _one_of(ids: frozenset[str]) -> str:
    if not ids:
        return "known (there are none)"
    shown = sorted(ids)
    listed = ", ".join(shown[:10]) + (", …" if len(shown) > 10 else "")
    return f"one of {listed}"


def _email_address(raw: str, problems: list[str]) -> str | None:
    # The one email rule, shared with leads built in Python (seqengine._model.email_address).
    try:
        return email_address(raw)
    except ConfigError as exc:
        problems.append(str(exc))
        return None


# --------------------------------------------------------------------------------------------
# Assignment


def assign(
    rows: Iterable[LeadRow],
    sequence_ids: Collection[str],
    account_ids: Collection[str],
) -> list[tuple[Lead, str, str]]:
    """Who goes where: ``(lead, sequence id, account id)`` per enrolment.

    A lead goes to its row's ``sequence_id``, or else to every sequence (in the given order);
    it is worked by its row's ``account_id``, or else by the next account round-robin, counted
    over the rows without one, in row order — so the same file always spreads the same way.

    Raises:
        ConfigError: a row names an unknown sequence or account, or leads need an account and
            there is none.
    """
    sequences = list(sequence_ids)
    accounts = list(account_ids)
    known_sequences, known_accounts = frozenset(sequences), frozenset(accounts)
    out: list[tuple[Lead, str, str]] = []
    spread = 0
    for row in rows:
        if row.sequence_id is not None and row.sequence_id not in known_sequences:
            known = _one_of(known_sequences)
            msg = f"line {row.line}: sequence_id {row.sequence_id!r} is not {known}"
            raise ConfigError(msg)
        if row.account_id is not None:
            if row.account_id not in known_accounts:
                known = _one_of(known_accounts)
                msg = f"line {row.line}: account_id {row.account_id!r} is not {known}"
                raise ConfigError(msg)
            account = row.account_id
        else:
            if not accounts:
                msg = f"line {row.line}: lead {row.lead.id!r} needs an account, and there is none"
                raise ConfigError(msg)
            account = accounts[spread % len(accounts)]
            spread += 1
        targets = [row.sequence_id] if row.sequence_id is not None else sequences
        out.extend((row.lead, sequence, account) for sequence in targets)
    return out
