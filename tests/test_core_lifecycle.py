"""The action lifecycle table (R-LIFE): legal moves, final states, the drawn diagram."""

from __future__ import annotations

import itertools

import pytest

from seqengine import TRANSITIONS, ActionStatus, IllegalTransition
from seqengine._lifecycle import FINAL, RUNNABLE, check_transition, is_legal, to_mermaid

S = ActionStatus

#: R-LIFE as the spec and the module's theory of operation describe it, written out by hand.
EXPECTED = {
    (S.PENDING, S.QUEUED),
    (S.PENDING, S.CANCELLED),
    (S.QUEUED, S.IN_PROGRESS),
    (S.QUEUED, S.SKIPPED),
    (S.QUEUED, S.CANCELLED),
    (S.QUEUED, S.DEFERRED),
    (S.QUEUED, S.PENDING),
    (S.IN_PROGRESS, S.COMPLETED),
    (S.IN_PROGRESS, S.SKIPPED),
    (S.IN_PROGRESS, S.FAILED),
    (S.IN_PROGRESS, S.CANCELLED),
    (S.IN_PROGRESS, S.PENDING),
    (S.DEFERRED, S.QUEUED),
    (S.DEFERRED, S.CANCELLED),
}
LEGAL = sorted((old, new) for old, targets in TRANSITIONS.items() for new in targets)
ILLEGAL = sorted(set(itertools.product(S, S)) - set(LEGAL))


def test_r_life_table_is_the_documented_one() -> None:
    assert set(LEGAL) == EXPECTED


def test_r_life_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize(("old", "new"), LEGAL)
def test_r_life_legal_transition_accepted(old: ActionStatus, new: ActionStatus) -> None:
    assert is_legal(old, new)
    check_transition(old, new, action_id="a1")


@pytest.mark.parametrize(("old", "new"), ILLEGAL)
def test_r_life_illegal_transition_raises(old: ActionStatus, new: ActionStatus) -> None:
    assert not is_legal(old, new)
    with pytest.raises(IllegalTransition) as info:
        check_transition(old, new, action_id="a1")
    message = str(info.value)
    assert "'a1'" in message
    assert f"from {old.value} to {new.value}" in message


def test_r_life_no_status_moves_to_itself() -> None:
    assert all(old not in targets for old, targets in TRANSITIONS.items())


@pytest.mark.parametrize("status", sorted(FINAL))
def test_r_life_final_states_have_no_exits(status: ActionStatus) -> None:
    assert TRANSITIONS[status] == {}
    for new in S:
        with pytest.raises(IllegalTransition, match="final state"):
            check_transition(status, new)


def test_r_life_final_states_are_the_four_ends() -> None:
    assert {S.COMPLETED, S.SKIPPED, S.FAILED, S.CANCELLED} == FINAL


def test_r_life_runnable_states_are_the_waiting_ones() -> None:
    assert {S.PENDING, S.QUEUED, S.DEFERRED} == RUNNABLE
    assert not RUNNABLE & FINAL


def test_r_life_every_status_reachable_from_pending_and_every_path_ends() -> None:
    seen, frontier = {S.PENDING}, [S.PENDING]
    while frontier:
        for new in TRANSITIONS[frontier.pop()]:
            if new not in seen:
                seen.add(new)
                frontier.append(new)
    assert seen == set(S)
    # Every non-final status can still reach a final one.
    for status in S:
        reach, todo = set(), [status]
        while todo:
            for new in TRANSITIONS[todo.pop()]:
                if new not in reach:
                    reach.add(new)
                    todo.append(new)
        assert status in FINAL or reach & FINAL


def test_r_life_every_transition_has_a_reason() -> None:
    for targets in TRANSITIONS.values():
        assert all(isinstance(why, str) and why.strip() for why in targets.values())


def test_r_life_mermaid_has_one_edge_per_transition() -> None:
    text = to_mermaid()
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    edges = [ln.strip() for ln in lines if "-->" in ln and "[*]" not in ln]
    assert len(edges) == len(LEGAL)
    drawn = set()
    for line in edges:
        pair, _, why = line.partition(":")
        old, _, new = pair.partition("-->")
        drawn.add((S(old.strip()), S(new.strip())))
        assert why.strip() == TRANSITIONS[S(old.strip())][S(new.strip())]
    assert drawn == set(LEGAL)


def test_r_life_mermaid_marks_start_and_final_states() -> None:
    lines = [ln.strip() for ln in to_mermaid().splitlines()]
    assert "[*] --> pending" in lines
    ends = {ln.split("-->")[0].strip() for ln in lines if ln.endswith("--> [*]")}
    assert ends == {s.value for s in FINAL}
