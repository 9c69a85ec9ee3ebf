"""The role transition table (style anchors lesson 5): illegal moves raise, never clamp."""

from __future__ import annotations

import pytest

from pgha.engine.roles import (
    TRANSITIONS,
    WRITABLE_ROLES,
    IllegalTransitionError,
    Role,
    check_transition,
)


def test_every_role_has_a_row_and_staying_put_is_always_allowed() -> None:
    assert set(TRANSITIONS) == set(Role)
    for role in Role:
        assert check_transition(role, role) is role
        assert role not in TRANSITIONS[role]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (Role.REPLICA, Role.PRIMARY),  # only through CANDIDATE and PROMOTING
        (Role.PRIMARY, Role.REPLICA),  # only through DEMOTING
        (Role.UNINITIALIZED, Role.PRIMARY),
        (Role.CLONING, Role.PRIMARY),
        (Role.STOPPED, Role.PRIMARY),
        (Role.REWINDING, Role.PRIMARY),
    ],
)
def test_unsafe_shortcuts_raise(old: Role, new: Role) -> None:
    with pytest.raises(IllegalTransitionError) as err:
        check_transition(old, new)
    assert (err.value.old, err.value.new) == (old, new)
    assert old.value in str(err.value)


def test_primary_is_reached_only_from_roles_that_held_or_won_the_lock() -> None:
    sources = {old for old, targets in TRANSITIONS.items() if Role.PRIMARY in targets}
    assert sources == {Role.CANDIDATE, Role.PROMOTING, Role.STARTING}
    assert {Role.PRIMARY, Role.PROMOTING} == WRITABLE_ROLES


def test_an_illegal_transition_error_survives_copying_and_pickling() -> None:
    import copy
    import pickle

    error = IllegalTransitionError(Role.REPLICA, Role.PRIMARY)
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert (clone.old, clone.new) == (Role.REPLICA, Role.PRIMARY)
        assert str(clone) == "illegal role transition replica -> primary"
