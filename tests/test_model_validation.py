"""Steps, sequences and leads built in Python are checked as the files are (issue 14 item 5):
the same ``SeqEngineError`` subclass, the same message, one email rule."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqengine import (
    ConfigError,
    FlowError,
    FlowFileError,
    Lead,
    SeqEngineError,
    Sequence,
    Step,
    parse_sequence,
    sequence_from_dict,
)
from seqengine.runtime import parse_leads


def _from_file(steps: list[Any]) -> Sequence:
    text = json.dumps({"sequence": {"id": "s"}, "steps": steps})
    return parse_sequence(text, fmt="json")


def _error(call: Any) -> tuple[type[BaseException], str] | None:
    try:
        call()
    except SeqEngineError as exc:
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        (
            "action",
            "poke",
            "action = 'poke' is not valid; use like | comment | follow | dm | email | "
            "connection_request | condition",
        ),
        ("platform", "twitter", "platform = 'twitter' is not valid; use x | linkedin | email"),
        ("delay_hours", "2", "delay_hours must be a number, got '2'"),
        ("max_attempts", 1.5, "max_attempts must be a whole number, got 1.5"),
        ("next", 3, "next must be a string, got 3"),
    ],
)
def test_a_bad_step_field_says_the_same_in_python_and_in_a_file(
    field: str, value: Any, words: str
) -> None:
    fields: dict[str, Any] = {"id": "a", "action": "like", "platform": "x", field: value}
    in_python = _error(lambda: Step(**fields))
    in_file = _error(lambda: _from_file([fields]))
    assert in_python == in_file == (FlowFileError, f"step 'a': {words}")


def test_sequence_takes_step_tables_like_a_file() -> None:
    table = {"id": "a", "action": "like", "platform": "x", "next": "b"}
    other = {"id": "b", "action": "follow", "platform": "x", "delay_hours": 24}
    built = Sequence(id="s", steps=[table, other])
    assert built == _from_file([table, other])
    assert built.step("b") == Step(id="b", action="follow", platform="x", delay_hours=24)


@pytest.mark.parametrize(
    "steps",
    [
        [{"id": "a", "action": "like", "platform": "twitter"}],
        [{"id": "a", "action": "like"}],
        [{"action": "like", "platform": "x"}],
        [{"id": "a", "action": "like", "platform": "x", "colour": "red"}],
        ["like"],
        [{"id": "a", "action": "dm", "platform": "x"}],  # a FlowError from the whole flow
    ],
)
def test_a_bad_step_table_in_a_sequence_says_what_the_file_says(steps: list[Any]) -> None:
    in_python = _error(lambda: Sequence(id="s", steps=steps))
    in_file = _error(lambda: _from_file(steps))
    assert in_python is not None and in_python == in_file
    assert issubclass(in_python[0], FlowError)


def test_steps_that_are_not_a_list_are_a_flow_file_error() -> None:
    with pytest.raises(FlowFileError, match="steps must be a list of Step objects"):
        Sequence(id="s", steps={"id": "a", "action": "like", "platform": "x"})  # type: ignore[arg-type]


def _csv_error(email: str) -> tuple[list[str], str | None]:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([["id", "email"], ["l1", email]])
    result = parse_leads(out.getvalue(), source="leads.csv")
    return result.errors, result.rows[0].lead.email if result.rows else None


def test_lead_email_is_checked_as_the_leads_file_checks_it() -> None:
    with pytest.raises(ConfigError) as caught:
        Lead(id="l1", email="not-an-email")
    errors, _ = _csv_error("not-an-email")
    assert errors == [f"leads.csv:2: {caught.value}"]
    assert str(caught.value) == "email 'not-an-email' is not an email address"
    assert Lead(id="l1", email="  Ann@GMAIL.Com ").email == "Ann@gmail.com"
    assert Lead(id="l1", email="   ").email is None
    with pytest.raises(ConfigError, match="email must be text"):
        Lead(id="l1", email=42)  # type: ignore[arg-type]


_EMAILISH = st.text(alphabet=st.sampled_from("ab@. \tXY-_+é"), max_size=12)


@settings(max_examples=150, deadline=None)
@given(email=_EMAILISH)
def test_python_and_csv_agree_on_every_email(email: str) -> None:
    """Accepted by both with the same stored value, or refused by both with the same words."""
    errors, stored = _csv_error(email)
    try:
        lead = Lead(id="l1", email=email)
    except ConfigError as exc:
        assert errors == [f"leads.csv:2: {exc}"]
    else:
        assert errors == []
        assert stored == lead.email


_FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 30),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["like", "dm", "x", "linkedin", "replied", "twitter", "end", "b", ""]),
)


@settings(max_examples=200, deadline=None)
@given(
    action=st.sampled_from(["like", "follow", "dm", "condition", "poke", 3]),
    platform=st.sampled_from(["x", "linkedin", "email", "twitter", None]),
    extra=st.dictionaries(
        st.sampled_from(
            ["delay_hours", "max_attempts", "next", "template", "condition", "if_true", "note"]
        ),
        _FIELD_VALUES,
        max_size=3,
    ),
)
def test_python_and_file_agree_on_generated_steps(
    action: Any, platform: Any, extra: dict[str, Any]
) -> None:
    """Whatever the fields: the same sequence, or the same error class and message."""
    table = {"id": "a", "action": action, "platform": platform, **extra}
    from_python = _outcome(lambda: Sequence(id="s", steps=[table]))
    from_file = _outcome(
        lambda: sequence_from_dict({"sequence": {"id": "s"}, "steps": [dict(table)]})
    )
    assert from_python == from_file


def _outcome(call: Any) -> Any:
    try:
        return call()
    except SeqEngineError as exc:
        return type(exc), str(exc)
