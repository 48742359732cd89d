"""Flow building, validation, files and diagrams (R-MATRIX, R-FLOW, R-CONNECT-1/3, CONTRACT)."""

from __future__ import annotations

import copy
import json
import math
import pathlib
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from seqengine import (
    END,
    Account,
    ActionKind,
    ConditionKind,
    ConfigError,
    FlowError,
    FlowFileError,
    Platform,
    SeqEngineError,
    Sequence,
    Step,
    dump_sequence_json,
    dump_sequence_toml,
    load_sequence,
    parse_sequence,
    sequence_from_dict,
    sequence_to_dict,
    to_mermaid,
)
from seqengine._flow import CONDITIONS, SUPPORTED
from strategies_core import VALID_PAIRS, sequences

EXAMPLES = sorted((pathlib.Path(__file__).parent.parent / "examples").glob("*.toml"))

#: The spec's matrix (R-MATRIX), written out by hand so the code's table is checked against it.
SPEC_MATRIX = {
    ("like", "x"): True,
    ("like", "linkedin"): True,
    ("like", "email"): False,
    ("comment", "x"): False,
    ("comment", "linkedin"): True,
    ("comment", "email"): False,
    ("follow", "x"): True,
    ("follow", "linkedin"): False,
    ("follow", "email"): False,
    ("dm", "x"): True,
    ("dm", "linkedin"): True,
    ("dm", "email"): False,
    ("email", "x"): False,
    ("email", "linkedin"): False,
    ("email", "email"): True,
    ("connection_request", "x"): False,
    ("connection_request", "linkedin"): True,
    ("connection_request", "email"): False,
    ("condition", "x"): True,
    ("condition", "linkedin"): True,
    ("condition", "email"): True,
}

#: R-COND-1 condition types by platform (email: only "replied" makes sense).
SPEC_CONDITIONS = {
    ("replied", "x"): True,
    ("replied", "linkedin"): True,
    ("replied", "email"): True,
    ("followed_back", "x"): True,
    ("followed_back", "linkedin"): False,
    ("followed_back", "email"): False,
    ("connection_accepted", "x"): False,
    ("connection_accepted", "linkedin"): True,
    ("connection_accepted", "email"): False,
    ("has_profile", "x"): True,
    ("has_profile", "linkedin"): True,
    ("has_profile", "email"): False,
}


def _fields_for(action: ActionKind, platform: Platform) -> dict[str, Any]:
    """Everything besides action/platform a step of this kind needs to be valid."""
    if action is ActionKind.DM:
        return {"template": "Hi {{first_name}}"}
    if action is ActionKind.EMAIL:
        return {"subject": "Hello", "body": "Hi {{first_name}}"}
    if action is ActionKind.CONDITION:
        kind = next(c for c in ConditionKind if platform in CONDITIONS[c])
        return {"condition": kind, "if_true": END, "if_false": END}
    return {}


def _single(step: Step, **kw: Any) -> Sequence:
    return Sequence(id="s", steps=[step], **kw)


def _like(sid: str, **kw: Any) -> Step:
    return Step(id=sid, action="like", platform="x", **kw)


def _file(steps: list[dict[str, Any]], **head: Any) -> dict[str, Any]:
    return {"sequence": {"id": "s", **head}, "steps": steps}


# --- R-MATRIX-1 ------------------------------------------------------------------------------


def test_r_matrix_1_code_table_matches_the_spec() -> None:
    for (action, platform), allowed in SPEC_MATRIX.items():
        assert (Platform(platform) in SUPPORTED[ActionKind(action)]) is allowed, (action, platform)
    for (cond, platform), allowed in SPEC_CONDITIONS.items():
        assert (Platform(platform) in CONDITIONS[ConditionKind(cond)]) is allowed, (cond, platform)


@pytest.mark.parametrize(("action", "platform"), sorted(SPEC_MATRIX))
def test_r_matrix_1_every_action_platform_pair(action: str, platform: str) -> None:
    kind, plat = ActionKind(action), Platform(platform)
    step = Step(id="the-step", action=kind, platform=plat, **_fields_for(kind, plat))
    if SPEC_MATRIX[(action, platform)]:
        seq = _single(step)
        assert seq.step("the-step").platform is plat
        return
    with pytest.raises(FlowError) as info:
        _single(step)
    message = str(info.value)
    assert "the-step" in message
    assert repr(action) in message
    assert repr(platform) in message
    assert info.value.step_id == "the-step"


@pytest.mark.parametrize(("action", "platform"), sorted(SPEC_MATRIX))
def test_r_matrix_1_every_pair_when_loaded_from_a_file(action: str, platform: str) -> None:
    kind, plat = ActionKind(action), Platform(platform)
    raw = {"id": "the-step", "action": action, "platform": platform}
    raw |= {k: v.value if hasattr(v, "value") else v for k, v in _fields_for(kind, plat).items()}
    text = json.dumps(_file([raw]))
    if SPEC_MATRIX[(action, platform)]:
        assert parse_sequence(text, fmt="json").steps[0].action is kind
        return
    with pytest.raises(FlowError) as info:
        parse_sequence(text, fmt="json", source="flow.json")
    message = str(info.value)
    for word in ("flow.json", "the-step", action, platform):
        assert word in message


@pytest.mark.parametrize(("cond", "platform"), sorted(SPEC_CONDITIONS))
def test_r_cond_1_condition_types_by_platform(cond: str, platform: str) -> None:
    step = Step(
        id="c", action="condition", platform=platform, condition=cond, if_true=END, if_false=END
    )
    if SPEC_CONDITIONS[(cond, platform)]:
        assert _single(step).step("c").condition is ConditionKind(cond)
    else:
        with pytest.raises(FlowError, match=rf"'{cond}'.*'{platform}'"):
            _single(step)


def test_r_matrix_1_every_problem_is_reported() -> None:
    steps = [
        Step(id="a", action="follow", platform="linkedin", next="b"),
        Step(id="b", action="comment", platform="x"),
    ]
    with pytest.raises(FlowError) as info:
        Sequence(id="s", steps=steps)
    assert len(info.value.problems) == 2
    assert info.value.step_id == "a"


# --- R-FLOW ----------------------------------------------------------------------------------


def test_r_flow_2_condition_without_branches_rejected() -> None:
    step = Step(id="c", action="condition", platform="x", condition="replied")
    with pytest.raises(FlowError, match="TRUE and a FALSE branch"):
        _single(step)


def test_r_flow_2_absent_branch_means_end() -> None:
    seq = Sequence(
        id="s",
        steps=[
            Step(id="c", action="condition", platform="x", condition="replied", if_true="d"),
            Step(id="d", action="dm", platform="x", template="hi"),
        ],
    )
    assert seq.step("c").successors() == ("d",)


def test_r_flow_2_condition_with_next_rejected() -> None:
    step = Step(
        id="c", action="condition", platform="x", condition="replied", if_true=END, next=END
    )
    with pytest.raises(FlowError, match="not next"):
        _single(step)


def test_r_flow_2_branches_on_a_non_condition_rejected() -> None:
    with pytest.raises(FlowError, match="if_true/if_false belong to condition"):
        _single(_like("a", if_true=END))


def test_r_flow_4_withdraw_step_rejected() -> None:
    step = Step(id="w", action="withdraw_connection", platform="linkedin")
    with pytest.raises(FlowError, match="R-FLOW-4") as info:
        _single(step)
    assert info.value.step_id == "w"


def test_r_flow_4_withdraw_step_rejected_in_a_file() -> None:
    raw = _file([{"id": "w", "action": "withdraw_connection", "platform": "linkedin"}])
    with pytest.raises(FlowError, match="auto_withdraw_after_days"):
        sequence_from_dict(raw)


def test_r_flow_5_dangling_edge_rejected() -> None:
    with pytest.raises(FlowError, match="'nowhere', which does not exist") as info:
        _single(_like("a", next="nowhere"))
    assert info.value.step_id == "a"


def test_r_flow_5_dangling_condition_branch_rejected() -> None:
    step = Step(
        id="c", action="condition", platform="x", condition="replied", if_true=END, if_false="x"
    )
    with pytest.raises(FlowError, match="'x', which does not exist"):
        _single(step)


def test_r_flow_5_unreachable_step_rejected() -> None:
    with pytest.raises(FlowError, match="unreachable") as info:
        Sequence(id="s", steps=[_like("a"), _like("island")])
    assert info.value.step_id == "island"


def test_r_flow_5_cycle_rejected() -> None:
    steps = [_like("a", next="b"), _like("b", next="c"), _like("c", next="a")]
    with pytest.raises(FlowError, match="cycle"):
        Sequence(id="s", steps=steps)


def test_r_flow_5_cycle_through_a_condition_rejected() -> None:
    steps = [
        _like("a", next="c"),
        Step(id="c", action="condition", platform="x", condition="replied", if_false="a"),
    ]
    with pytest.raises(FlowError, match="cycle"):
        Sequence(id="s", steps=steps)


def test_r_flow_5_self_loop_rejected() -> None:
    with pytest.raises(FlowError, match="cycle"):
        _single(_like("a", next="a"))


def test_r_flow_5_cycle_off_the_start_path_rejected() -> None:
    steps = [_like("a", next="b"), _like("b", next="c"), _like("c", next="b")]
    with pytest.raises(FlowError, match="cycle"):
        Sequence(id="s", steps=steps)


def test_r_flow_5_diamond_is_not_a_cycle() -> None:
    steps = [
        Step(
            id="c", action="condition", platform="x", condition="replied", if_true="a", if_false="b"
        ),
        _like("a", next="d"),
        _like("b", next="d"),
        _like("d"),
    ]
    assert Sequence(id="s", steps=steps).start_step.id == "c"


def test_r_flow_5_no_steps_rejected() -> None:
    with pytest.raises(FlowError, match="no steps"):
        Sequence(id="s", steps=[])
    with pytest.raises(FlowFileError, match="no \\[\\[steps\\]\\]"):
        parse_sequence('[sequence]\nid = "s"\n')


def test_r_flow_5_bad_start_rejected() -> None:
    with pytest.raises(FlowError, match="start = 'zz' names no step"):
        Sequence(id="s", steps=[_like("a")], start="zz")


def test_r_flow_5_start_elsewhere_makes_first_step_unreachable() -> None:
    with pytest.raises(FlowError, match=r"step 'a': is unreachable"):
        Sequence(id="s", steps=[_like("a"), _like("b")], start="b")


def test_r_flow_duplicate_step_ids_rejected() -> None:
    with pytest.raises(FlowError, match="share this id"):
        Sequence(id="s", steps=[_like("a", next="a2"), _like("a2"), _like("a")])


@pytest.mark.parametrize("bad", ["end", "", "has space", "é", "a\n", "x\ny"])
def test_r_flow_bad_step_ids_rejected(bad: str) -> None:
    with pytest.raises(FlowError, match="step id must use"):
        _single(_like(bad))


@pytest.mark.parametrize("bad", ["", "Upper", "has space", "s\n", "a.b"])
def test_r_flow_bad_sequence_ids_rejected(bad: str) -> None:
    with pytest.raises(FlowError, match="sequence id"):
        Sequence(id=bad, steps=[_like("a")])


@pytest.mark.parametrize("limit", [0, 10_001, -1, True, 2.5, "50", None])
def test_r_check_9_daily_action_limit_must_be_a_whole_number(limit: Any) -> None:
    with pytest.raises(FlowError, match="daily_action_limit") as info:
        Sequence(id="s", steps=[_like("a")], daily_action_limit=limit)
    assert repr(limit) in str(info.value)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "localtime", "../../etc/passwd", "\x00"])
def test_r_time_2_bad_time_zone_rejected(zone: str) -> None:
    with pytest.raises(FlowError, match="IANA"):
        Sequence(id="s", steps=[_like("a")], timezone=zone)


@pytest.mark.parametrize("delay", [-1, 24 * 365 + 1, math.inf, math.nan, True])
def test_r_flow_1_bad_delay_rejected(delay: Any) -> None:
    with pytest.raises(FlowError, match="delay_hours"):
        _single(_like("a", delay_hours=delay))


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_attempts", 0), ("max_attempts", 101), ("retry_interval_hours", 0)],
)
def test_r_cond_2_bad_retry_settings_rejected(field: str, value: Any) -> None:
    step = Step(
        id="c", action="condition", platform="x", condition="replied", if_true=END, **{field: value}
    )
    with pytest.raises(FlowError, match=field):
        _single(step)


def test_r_dm_and_email_steps_need_their_text() -> None:
    with pytest.raises(FlowError, match="needs a template"):
        _single(Step(id="d", action="dm", platform="x", template="  "))
    with pytest.raises(FlowError, match="needs a subject") as info:
        _single(Step(id="e", action="email", platform="email", body="b"))
    assert info.value.step_id == "e"


# --- R-CONNECT -------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 15, 50, 99, 100])
def test_r_connect_1_limits_1_to_100_accepted(limit: int) -> None:
    assert Account(
        id="acc", connection_request_daily_limit=limit
    ).connection_request_daily_limit == (limit)


def test_r_connect_1_default_is_15() -> None:
    assert Account(id="acc").connection_request_daily_limit == 15


@pytest.mark.parametrize("limit", [0, 101, -5, True, False, 15.0, 2.5, "15", None])
def test_r_connect_1_other_limits_rejected(limit: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Account(id="acc", connection_request_daily_limit=limit)
    assert repr(limit) in str(info.value)
    assert "connection_request_daily_limit" in str(info.value)


@given(st.integers() | st.floats() | st.booleans() | st.text(max_size=5))
def test_r_connect_1_accepts_exactly_whole_numbers_1_to_100(value: Any) -> None:
    valid = type(value) is int and 1 <= value <= 100
    try:
        Account(id="acc", connection_request_daily_limit=value)
    except ConfigError as exc:
        assert not valid
        assert str(exc)
    else:
        assert valid


def test_r_connect_3_note_of_300_characters_accepted() -> None:
    step = Step(id="c", action="connection_request", platform="linkedin", note="x" * 300)
    assert _single(step).step("c").note == "x" * 300


def test_r_connect_3_note_over_300_characters_rejected() -> None:
    step = Step(id="c", action="connection_request", platform="linkedin", note="x" * 301)
    with pytest.raises(FlowError, match="300") as info:
        _single(step)
    assert info.value.step_id == "c"
    assert "301" in str(info.value)


def test_r_connect_3_placeholders_do_not_count_toward_the_note_limit() -> None:
    note = "{{first_name}} " + "x" * 285
    step = Step(id="c", action="connection_request", platform="linkedin", note=note)
    assert _single(step).step("c").note == note


@pytest.mark.parametrize("days", [0, 366, True, 1.5])
def test_r_connect_4_bad_auto_withdraw_rejected(days: Any) -> None:
    with pytest.raises(FlowError, match="auto_withdraw_after_days"):
        step = Step(
            id="c", action="connection_request", platform="linkedin", auto_withdraw_after_days=days
        )
        _single(step)


def test_r_connect_note_only_on_connection_requests() -> None:
    with pytest.raises(FlowError, match="belong to connection_request"):
        _single(_like("a", note="hi"))


# --- examples and files ----------------------------------------------------------------------


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_example_loads_and_validates(path: pathlib.Path) -> None:
    seq = load_sequence(str(path))
    assert seq.steps
    assert parse_sequence(dump_sequence_toml(seq)) == seq
    assert parse_sequence(dump_sequence_json(seq), fmt="json") == seq
    assert all(step.id in to_mermaid(seq) for step in seq.steps)


def test_r_flow_3_default_templates_match_the_spec() -> None:
    by_name = {p.stem: load_sequence(str(p)) for p in EXAMPLES}
    x = by_name["x-default"]
    assert [(s.action.value, s.platform.value) for s in x.steps] == [
        ("like", "x"),
        ("follow", "x"),
        ("dm", "x"),
    ]
    li = by_name["linkedin-default"]
    assert [s.action.value for s in li.steps] == ["connection_request", "condition", "dm"]
    assert li.step("accepted").condition is ConditionKind.CONNECTION_ACCEPTED


def test_load_sequence_missing_file_is_a_flow_file_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FlowFileError, match="cannot read"):
        load_sequence(str(tmp_path / "nope.toml"))


def test_load_sequence_not_utf8(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfe[sequence]")
    with pytest.raises(FlowFileError, match="UTF-8"):
        load_sequence(str(path))


def test_load_sequence_json_by_extension(tmp_path: pathlib.Path) -> None:
    seq = load_sequence(str(EXAMPLES[0]))
    path = tmp_path / "flow.json"
    path.write_text(dump_sequence_json(seq), encoding="utf-8")
    assert load_sequence(str(path)) == seq


def test_file_errors_name_the_file_and_step() -> None:
    text = (
        '[sequence]\nid = "s"\n\n[[steps]]\nid = "a"\naction = "like"\nplatform = "x"\nnext = "b"\n'
    )
    with pytest.raises(FlowError) as info:
        parse_sequence(text, source="my.toml")
    assert "my.toml" in str(info.value)
    assert "'a'" in str(info.value)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"sequence": {"id": "s"}, "steps": [], "extra": 1}, "unknown top-level"),
        ({"steps": [{"id": "a", "action": "like", "platform": "x"}]}, "missing [sequence]"),
        (_file([{"id": "a", "action": "like", "platform": "x"}], colour="red"), "unknown key"),
        ({"sequence": {"name": "n"}, "steps": [{"id": "a"}]}, "needs id"),
        (_file([{"id": "a", "action": "like", "platform": "x", "colour": 1}]), "unknown key"),
        (_file([{"id": "a", "action": "like"}]), "missing platform"),
        (_file([{"id": "a", "action": "poke", "platform": "x"}]), "'poke' is not valid"),
        (_file([{"id": "a", "action": "like", "platform": "myspace"}]), "not valid"),
        (_file([{"id": 1, "action": "like", "platform": "x"}]), "needs id"),
        (_file([{"id": "a", "action": "like", "platform": "x", "delay_hours": "2"}]), "number"),
        (_file([{"id": "a", "action": "like", "platform": "x", "next": 3}]), "string"),
        (_file(["a"]), "must be a table"),
        (_file([{"id": "a", "action": "like", "platform": "x"}], id=5), "wrong type"),
        (_file([{"id": "a", "action": "like", "platform": "x"}], timezone=1), "wrong type"),
        (_file([{"id": "a", "action": "like", "platform": "x"}], activity_window=3), "table"),
        (
            _file([{"id": "a", "action": "like", "platform": "x"}], activity_window={"days": "m"}),
            "list",
        ),
        (
            _file(
                [{"id": "a", "action": "like", "platform": "x"}],
                activity_window={"days": ["funday"]},
            ),
            "not a day",
        ),
        (
            _file(
                [{"id": "a", "action": "like", "platform": "x"}],
                activity_window={"start": "25:00"},
            ),
            "not a time",
        ),
        (
            _file([{"id": "a", "action": "like", "platform": "x"}], settings={"language": 1}),
            "settings.language",
        ),
        (
            _file([{"id": "a", "action": "like", "platform": "x"}], settings={"nope": True}),
            "unknown key",
        ),
        (
            _file(
                [{"id": "a", "action": "like", "platform": "x"}],
                settings={"skip_posts_older_than_days": 0},
            ),
            "at least 1",
        ),
    ],
)
def test_malformed_files_raise_flow_file_errors(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(FlowError) as info:
        sequence_from_dict(data, source="f.toml")
    assert fragment in str(info.value)
    assert str(info.value).startswith("f.toml")


@pytest.mark.parametrize(
    "text",
    ["[sequence", "id = ", "[[steps]]\n[[steps]\n", "a = 1\na = 2", "\x00"],
)
def test_malformed_toml_text_is_a_flow_file_error(text: str) -> None:
    with pytest.raises(FlowFileError, match="not valid TOML"):
        parse_sequence(text)


def test_malformed_json_text_is_a_flow_file_error() -> None:
    with pytest.raises(FlowFileError, match="not valid JSON"):
        parse_sequence("{", fmt="json")


@pytest.mark.parametrize(
    "text", ["[" * 100_000, '{"a":' * 100_000], ids=["deep-array", "deep-object"]
)
def test_deeply_nested_json_is_a_flow_file_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(FlowFileError):
        parse_sequence(text, fmt="json")


def test_deeply_nested_toml_is_a_flow_file_error_not_a_recursion_error() -> None:
    with pytest.raises(FlowFileError):
        parse_sequence("a = " + "[" * 100_000)


@pytest.mark.parametrize("value", [["replied"], {"a": 1}, 3, None, True])
def test_wrong_type_for_an_enum_field_is_a_flow_file_error(value: Any) -> None:
    for key in ("action", "platform", "condition"):
        raw = {"id": "c", "action": "condition", "platform": "x", "condition": "replied"}
        raw["if_true"] = END
        raw[key] = value
        with pytest.raises(FlowFileError, match=key):
            sequence_from_dict(_file([raw]))


def test_huge_json_integer_delay_is_a_flow_error() -> None:
    text = json.dumps(_file([{"id": "a", "action": "like", "platform": "x"}]))
    text = text.replace('"platform": "x"', '"platform": "x", "delay_hours": ' + "9" * 400)
    with pytest.raises(FlowError, match="delay_hours"):
        parse_sequence(text, fmt="json")


# --- round trips and fuzzing -----------------------------------------------------------------

round_trip_settings = settings(max_examples=150, deadline=None)


@round_trip_settings
@given(sequences())
def test_round_trip_toml(seq: Sequence) -> None:
    assert parse_sequence(dump_sequence_toml(seq)) == seq


@round_trip_settings
@given(sequences())
def test_round_trip_json(seq: Sequence) -> None:
    assert parse_sequence(dump_sequence_json(seq), fmt="json") == seq


@round_trip_settings
@given(sequences())
def test_round_trip_dict(seq: Sequence) -> None:
    data = sequence_to_dict(seq)
    assert sequence_from_dict(copy.deepcopy(data)) == seq
    # The structure is plain data: it survives JSON untouched.
    assert json.loads(json.dumps(data)) == data


@settings(max_examples=100, deadline=None)
@given(sequences())
def test_to_mermaid_mentions_every_step_and_edge(seq: Sequence) -> None:
    text = to_mermaid(seq)
    assert text.startswith("flowchart TD")
    node_lines = [
        ln.strip() for ln in text.splitlines()[2:] if "-->" not in ln and "finish" not in ln
    ]
    nodes = {re.match(r"(s_\w+)", ln).group(1) for ln in node_lines if ln.startswith("s_")}  # type: ignore[union-attr]
    assert len(nodes) == len(seq.steps), "two steps were drawn as one node"
    for step in seq.steps:
        assert f"{step.id}: " in text
    edges = [ln for ln in text.splitlines() if "-->" in ln]
    expected = 1 + sum(2 if s.action is ActionKind.CONDITION else 1 for s in seq.steps)
    assert len(edges) == expected


def test_to_mermaid_distinguishes_similar_step_ids() -> None:
    seq = Sequence(id="s", steps=[_like("a-b", next="a_b"), _like("a_b")])
    text = to_mermaid(seq)
    lines = text.splitlines()
    nodes = [ln.split("[")[0].strip() for ln in lines if '["' in ln]
    assert len(set(nodes)) == 2
    assert not any(
        ln.split("-->")[0].strip() == ln.split("-->")[-1].strip() for ln in lines if "-->" in ln
    )


# Generated invalid flows: each mutation must be reported as a SeqEngineError with a message.


@st.composite
def broken_sequences(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid flow's file structure with one thing made wrong, and what was broken."""
    seq = draw(sequences(max_steps=4))
    data = sequence_to_dict(seq)
    steps = data["steps"]
    i = draw(st.integers(0, len(steps) - 1))
    kind = draw(
        st.sampled_from(
            [
                "platform",
                "dangling",
                "cycle",
                "limit",
                "timezone",
                "unknown_step_key",
                "unknown_head_key",
                "window",
                "withdraw",
                "duplicate",
                "attempts",
            ]
        )
    )
    step = steps[i]
    if kind == "platform":
        action = ActionKind(step["action"])
        bad = [p for p in Platform if p not in SUPPORTED[action]]
        assume(bad)
        step["platform"] = draw(st.sampled_from(bad)).value
    elif kind == "dangling":
        key = "if_true" if step["action"] == "condition" else "next"
        step[key] = "missing-step"
    elif kind == "cycle":
        key = "if_true" if step["action"] == "condition" else "next"
        step[key] = step["id"]
    elif kind == "limit":
        data["sequence"]["daily_action_limit"] = draw(
            st.integers(max_value=0) | st.integers(min_value=10_001) | st.floats() | st.booleans()
        )
    elif kind == "timezone":
        data["sequence"]["timezone"] = draw(
            st.sampled_from(["Mars/Base", "", "UTC+1", "localtime", "Europe/"])
        )
    elif kind == "unknown_step_key":
        step[draw(st.sampled_from(["colour", "Next", "delay", "steps"]))] = 1
    elif kind == "unknown_head_key":
        data["sequence"]["limits"] = 3
    elif kind == "window":
        data["sequence"]["activity_window"] = draw(
            st.sampled_from(
                [
                    {"days": []},
                    {"days": ["mon"], "start": "18:00", "end": "09:00"},
                    {"days": ["someday"]},
                    {"start": "9am"},
                    {"days": "mon"},
                ]
            )
        )
    elif kind == "withdraw":
        step["action"] = "withdraw_connection"
        step["platform"] = "linkedin"
    elif kind == "duplicate":
        steps.append(copy.deepcopy(step))
    elif kind == "attempts":
        step.update(action="condition", platform="x", condition="replied", if_true=END)
        step.pop("next", None)
        step["max_attempts"] = draw(st.integers(max_value=0) | st.integers(min_value=101))
    return data, kind


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(broken_sequences())
def test_generated_invalid_flows_raise_seqengine_errors(case: tuple[dict[str, Any], str]) -> None:
    data, _kind = case
    with pytest.raises(SeqEngineError) as info:
        sequence_from_dict(data, source="gen.toml")
    assert str(info.value).strip()
    # The same through both file formats.
    with pytest.raises(SeqEngineError):
        parse_sequence(json.dumps(data), fmt="json")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["end", "x", "linkedin", "email", "like", "condition", "replied", "mon"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated_dicts(draw: st.DrawFn) -> Any:
    """A valid flow's file structure with a few random edits anywhere in it."""
    data: Any = sequence_to_dict(draw(sequences(max_steps=4)))
    for _ in range(draw(st.integers(1, 4))):
        # Walk to a random container, then set, delete or add a key/element there.
        node = data
        path_len = draw(st.integers(0, 3))
        for _ in range(path_len):
            children = (
                list(node.values())
                if isinstance(node, dict)
                else node
                if isinstance(node, list)
                else []
            )
            children = [c for c in children if isinstance(c, dict | list)]
            if not children:
                break
            node = draw(st.sampled_from(children))
        op = draw(st.sampled_from(["set", "delete", "add"]))
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if op == "set":
                node[key] = draw(json_values)
            elif op == "delete":
                del node[key]
            else:
                node[draw(st.text(max_size=8))] = draw(json_values)
        elif isinstance(node, list) and node:
            idx = draw(st.integers(0, len(node) - 1))
            if op == "set":
                node[idx] = draw(json_values)
            elif op == "delete":
                del node[idx]
            else:
                node.append(draw(json_values))
    if draw(st.integers(0, 9)) == 0:
        data = draw(json_values)
    return data


def _loads_or_reports(call: Any) -> None:
    try:
        seq = call()
    except SeqEngineError as exc:
        assert str(exc).strip(), "an error without a message"
    else:
        assert isinstance(seq, Sequence)
        # Anything accepted must survive its own file format.
        assert parse_sequence(dump_sequence_toml(seq)) == seq


@settings(max_examples=400, deadline=None)
@given(mutated_dicts())
def test_fuzz_sequence_from_dict_never_crashes(data: Any) -> None:
    _loads_or_reports(lambda: sequence_from_dict(data))


@settings(max_examples=200, deadline=None)
@given(mutated_dicts())
def test_fuzz_parse_sequence_json_never_crashes(data: Any) -> None:
    try:
        text = json.dumps(data, allow_nan=True)
    except (ValueError, TypeError):  # pragma: no cover - the strategy only makes JSON data
        return
    _loads_or_reports(lambda: parse_sequence(text, fmt="json"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_parse_sequence_toml_with_arbitrary_text(text: str) -> None:
    _loads_or_reports(lambda: parse_sequence(text))
    _loads_or_reports(lambda: parse_sequence(text, fmt="json"))


@settings(max_examples=200, deadline=None)
@given(sequences(max_steps=4), st.data())
def test_fuzz_parse_sequence_with_edited_toml_text(seq: Sequence, data: st.DataObject) -> None:
    text = dump_sequence_toml(seq)
    lines = text.splitlines()
    i = data.draw(st.integers(0, len(lines) - 1))
    lines[i] = data.draw(
        st.sampled_from(
            [
                "",
                "x = 1",
                lines[i].replace('"', ""),
                lines[i] + "]",
                lines[i].split("=")[0] + "= [1, 2]",
                lines[i].split("=")[0] + "= {a = 1}",
                lines[i].split("=")[0] + '= "end"',
                lines[i].split("=")[0] + "= 1979-05-27T07:32:00Z",
                "[[steps]]",
                "[sequence.other]",
            ]
        )
        | st.text(max_size=20)
    )
    _loads_or_reports(lambda: parse_sequence("\n".join(lines)))


@given(st.sampled_from(VALID_PAIRS))
def test_valid_pairs_cover_the_matrix(pair: tuple[ActionKind, Platform]) -> None:
    assert SPEC_MATRIX[(pair[0].value, pair[1].value)]
