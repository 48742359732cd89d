"""Email building blocks: addresses and routing (R-EMAIL-1), messages, DSNs (RFC 3464)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fakes.imap_server import make_auto_reply, make_dsn, make_reply
from seqengine import ConfigError
from seqengine._model import MailboxKind
from seqengine_email import (
    Unsubscribe,
    build_message,
    message_id_for,
    normalize_address,
    parse_dsn,
    route_mailbox,
)
from seqengine_email._mime import (
    as_bytes,
    is_auto_reply,
    parse_message,
    referenced_ids,
    reply_text,
    sender_address,
    split_content,
)

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Bob.Smith@Example.COM ", "bob.smith@example.com"),
        ("mailto:ann@example.org", "ann@example.org"),
        ("ann+tag@sub.example.co.uk", "ann+tag@sub.example.co.uk"),
        ("jö@bücher.de", None),  # a non-ASCII local part needs SMTPUTF8
        ("jo@bücher.de", "jo@xn--bcher-kva.de"),
        ("no-at-sign", None),
        ("a@b", None),
        ("a..b@example.com", None),
        ("a@example.com\r\nBcc: x@evil.com", None),
        ("Bob <bob@example.com>", None),
        ("a@1.2.3.4", None),
        ("", None),
        (None, None),
    ],
)
def test_addresses_are_normalised_or_refused(raw: str | None, expected: str | None) -> None:
    assert normalize_address(raw) == expected


@pytest.mark.parametrize(
    ("address", "primary", "expected"),
    [
        ("a@gmail.com", MailboxKind.SMTP, MailboxKind.GMAIL),
        ("a@outlook.com", MailboxKind.SMTP, MailboxKind.OUTLOOK),
        ("a@hotmail.com", MailboxKind.GMAIL, MailboxKind.OUTLOOK),
        ("a@LIVE.com", MailboxKind.GMAIL, MailboxKind.OUTLOOK),
        ("a@company.com", MailboxKind.GMAIL, MailboxKind.GMAIL),
        ("a@company.com", MailboxKind.SMTP, MailboxKind.SMTP),
        ("a@googlemail.com", MailboxKind.OUTLOOK, MailboxKind.OUTLOOK),
        ("a@company.com", None, None),
    ],
)
def test_routing_by_recipient_domain(
    address: str, primary: MailboxKind | None, expected: MailboxKind | None
) -> None:
    assert route_mailbox(address, primary) is expected


def test_message_id_is_derived_from_the_key() -> None:
    mid = message_id_for("seq:lead-1:intro", "seller.test")
    assert mid == message_id_for("seq:lead-1:intro", "seller.test")
    assert mid != message_id_for("seq:lead-2:intro", "seller.test")
    assert mid.startswith("<") and mid.endswith("@seller.test>")
    assert len(mid.split("@")[0]) == 33  # "<" and 32 hex digits


def test_content_splits_into_subject_and_body() -> None:
    assert split_content("Hi Ann\n\nLine 1\n\nLine 2") == ("Hi Ann", "Line 1\n\nLine 2")
    assert split_content("Only a subject") == ("Only a subject", "")


def test_built_message_has_headers_and_one_click_unsubscribe() -> None:
    unsub = Unsubscribe(url="https://example.com/u/{lead_id}?a={account_id}")
    msg = build_message(
        sender="sales@seller.test",
        recipient="ann@example.com",
        recipient_name="Ann\r\nBcc: evil@example.com",
        subject="Hello\nthere",
        body="Grüße, Ann — ünïcödé\n",
        message_id="<abc@seller.test>",
        date=NOW,
        headers=unsub.headers(
            lead_id="lead 1",
            account_id="acc-1",
            address="ann@example.com",
            mailbox="sales@seller.test",
        ),
        in_reply_to="<prev@seller.test>",
        references=("<prev@seller.test>",),
    )
    raw = as_bytes(msg)
    assert raw.isascii()  # quoted-printable: no 8BITMIME needed
    assert b"\r\n" in raw
    parsed = parse_message(raw)
    assert parsed["Message-ID"] == "<abc@seller.test>"
    assert parsed["Subject"] == "Hello there"
    assert "Bcc" not in parsed  # a line break in a name cannot add a header
    assert parsed["List-Unsubscribe"] == (
        "<https://example.com/u/lead%201?a=acc-1>, <mailto:sales@seller.test?subject=unsubscribe>"
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["In-Reply-To"] == "<prev@seller.test>"
    assert parsed.get_content().replace("\r\n", "\n") == "Grüße, Ann — ünïcödé\n"


def test_unsubscribe_without_https_has_no_one_click() -> None:
    headers = Unsubscribe().headers(
        lead_id="l", account_id="a", address="x@example.com", mailbox="me@seller.test"
    )
    assert headers == {"List-Unsubscribe": "<mailto:me@seller.test?subject=unsubscribe>"}
    assert (
        Unsubscribe(mailto=False).headers(
            lead_id="l", account_id="a", address="x@example.com", mailbox="m@s.test"
        )
        == {}
    )


@pytest.mark.parametrize("url", ["ftp://x/{lead_id}", "https://x/{nope}", "https://x/{0}"])
def test_bad_unsubscribe_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="unsubscribe_url"):
        Unsubscribe(url=url)


def _original() -> bytes:
    return as_bytes(
        build_message(
            sender="sales@seller.test",
            recipient="bob@example.com",
            subject="Quick question",
            body="Hi Bob",
            message_id="<orig@seller.test>",
            date=NOW,
        )
    )


def test_dsn_hard_bounce_is_parsed() -> None:
    bounces = parse_dsn(parse_message(make_dsn(_original())))
    assert bounces is not None and len(bounces) == 1
    bounce = bounces[0]
    assert bounce.recipient == "bob@example.com"
    assert bounce.status == "5.1.1"
    assert bounce.original_message_id == "<orig@seller.test>"
    assert bounce.hard and not bounce.sender_blocked
    assert "5.1.1" in bounce.detail


def test_dsn_soft_and_blocked_are_not_hard_bounces() -> None:
    soft = parse_dsn(parse_message(make_dsn(_original(), status="4.4.1")))
    assert soft is not None and not soft[0].hard
    blocked = parse_dsn(
        parse_message(make_dsn(_original(), status="5.1.8", diagnostic="smtp; 550 5.1.8 no"))
    )
    assert blocked is not None and blocked[0].sender_blocked and not blocked[0].hard


def test_delayed_report_and_plain_mail_are_not_bounces() -> None:
    delayed = make_dsn(_original()).replace(b"Action: failed", b"Action: delayed")
    assert parse_dsn(parse_message(delayed)) == []
    assert parse_dsn(parse_message(make_reply(_original()))) is None


def test_dsn_with_the_original_message_attached() -> None:
    raw = make_dsn(_original()).replace(b"text/rfc822-headers", b"message/rfc822")
    bounces = parse_dsn(parse_message(raw))
    assert bounces is not None and bounces[0].original_message_id == "<orig@seller.test>"


def test_reply_is_threaded_and_its_new_text_extracted() -> None:
    reply = parse_message(make_reply(_original(), text="Yes, Tuesday works."))
    assert referenced_ids(reply) == ["<orig@seller.test>"]
    assert sender_address(reply) == "bob@example.com"
    assert reply_text(reply) == "Yes, Tuesday works."
    assert not is_auto_reply(reply)
    assert is_auto_reply(parse_message(make_auto_reply(_original())))


def test_garbage_never_crashes_the_reader() -> None:
    msg = parse_message(b"\x00\xff garbage without headers")
    assert referenced_ids(msg) == []
    assert sender_address(msg) is None
    assert parse_dsn(msg) is None
    assert isinstance(reply_text(msg), str)
