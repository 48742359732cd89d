"""The reducer's fast constructors and copies build exactly what the attrs classes build."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest

from seqengine import Action, ActionKind, ActionStatus, ExecuteAction, Lead, Platform
from seqengine._fast import maker, replace
from seqengine._model import Enrollment

AT = dt.datetime(2026, 3, 2, 13, 0, tzinfo=dt.UTC)
ACTION_ARGS: dict[str, Any] = dict(
    id="a1",
    sequence_id="s",
    step_id="dm",
    lead_id="l1",
    account_id="acc",
    kind=ActionKind.DM,
    platform=Platform.X,
    scheduled_at=AT,
    created_at=AT,
)


def test_maker_builds_what_init_builds_with_defaults_and_factories() -> None:
    made = maker(Action)(**ACTION_ARGS)
    assert made == Action(**ACTION_ARGS)
    assert type(made.facts) is type(Action(**ACTION_ARGS).facts)

    @attrs.frozen
    class Bag:
        items: list[int] = attrs.field(factory=list)

    assert maker(Bag)().items is not maker(Bag)().items, "factory defaults are made per call"
    ids = dict(sequence_id="s", lead_id="l1", account_id="acc", enrolled_at=AT)
    assert maker(Enrollment)(**ids) == Enrollment(**ids)


def test_maker_builds_an_execute_action_like_init() -> None:
    action, lead = Action(**ACTION_ARGS), Lead(id="l1")
    assert maker(ExecuteAction)(action=action, lead=lead, idempotency_key="a1") == ExecuteAction(
        action=action, lead=lead, idempotency_key="a1"
    )


def test_replace_copies_every_field_and_applies_changes() -> None:
    action = Action(**ACTION_ARGS)
    copied = replace(action, status=ActionStatus.QUEUED)
    assert copied == attrs.evolve(action, status=ActionStatus.QUEUED)
    assert replace(action) == action


def test_maker_refuses_a_class_it_cannot_build() -> None:
    @attrs.frozen
    class KwOnly:
        x: int = attrs.field(kw_only=True)

    with pytest.raises(TypeError, match=r"KwOnly\.x"):
        maker(KwOnly)


def test_copies_and_made_instances_are_ordinary_frozen_instances() -> None:
    for built in (replace(Action(**ACTION_ARGS), reason="x"), maker(Action)(**ACTION_ARGS)):
        assert type(built) is Action
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            built.reason = "changed"  # type: ignore[misc]
        assert built == Action(**{**ACTION_ARGS, "reason": built.reason})


def test_only_slotted_classes_have_fast_copies() -> None:
    @attrs.frozen(slots=False)
    class Loose:
        x: int = 0

    with pytest.raises(TypeError, match="not a slotted class"):
        replace(Loose(), x=1)


def test_copies_and_made_instances_of_a_cache_hash_class_hash_like_new_ones() -> None:
    @attrs.frozen(cache_hash=True)
    class Key:
        a: int
        b: str = "x"

    original = Key(1)
    assert hash(original) == hash(Key(1))  # the original's hash is cached now
    copied = replace(original, a=2)
    assert copied == Key(2) and hash(copied) == hash(Key(2)), "not the original's cached hash"
    made = maker(Key)(3)
    assert made == Key(3) and hash(made) == hash(Key(3))


def test_replace_runs_the_changed_fields_validators() -> None:
    @attrs.frozen
    class Positive:
        n: int = attrs.field(validator=attrs.validators.gt(0))
        label: str = ""

    assert replace(Positive(1), n=2) == Positive(2)
    with pytest.raises(ValueError, match="'n' must be > 0"):
        replace(Positive(1), n=0)


def test_replace_refuses_classes_that_compute_fields_in_init() -> None:
    @attrs.frozen
    class Derived:
        x: int
        double: int = attrs.field(init=False)

        def __attrs_post_init__(self) -> None:
            object.__setattr__(self, "double", 2 * self.x)

    with pytest.raises(TypeError, match=r"Derived computes some fields.*use attrs\.evolve"):
        replace(Derived(1), x=2)


def test_replace_takes_a_private_fields_init_name_as_evolve_does() -> None:
    @attrs.frozen
    class Private:
        _secret: str = ""

    assert replace(Private("a"), secret="b") == attrs.evolve(Private("a"), secret="b")
    with pytest.raises(TypeError, match="has no field '_secret'"):
        replace(Private("a"), _secret="b")
