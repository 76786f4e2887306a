"""The action catalog: one entry gives an action its key, footer, help, palette and dialog."""

from __future__ import annotations

from runctl_tui.actions import BY_ACTION, CATALOG, KEYED, SHARING, VERBS, Confirmation, spec_for
from runctl_tui.keys import BINDINGS
from runctl_tui.models import Action


def test_every_catalog_entry_is_a_rebindable_key() -> None:
    by_id = {b.id: b for b in BINDINGS}
    for spec in KEYED:
        binding = by_id[spec.binding_id]
        assert binding.keys == spec.keys
        assert binding.action == spec.screen_action == f"act('{spec.action.value}')"
        assert binding.description == spec.description
        assert binding.label == spec.verb


def test_destructive_actions_ask_for_the_typed_id() -> None:
    for spec in CATALOG:
        assert (spec.confirmation is Confirmation.TYPED) == spec.destroys
    assert BY_ACTION[Action.TERMINATE].destroys


def test_lookups() -> None:
    assert spec_for("stop") is BY_ACTION[Action.STOP]
    assert spec_for("nope") is None
    assert spec_for("cancel-spot-request") is None
    assert VERBS[Action.CANCEL_SPOT_REQUEST] == "Cancel spot request"


def test_an_action_without_keys_shares_the_key_of_its_slot() -> None:
    by_id = {b.id: b for b in BINDINGS}
    assert BY_ACTION[Action.INTERRUPT].key_action is Action.STOP
    assert BY_ACTION[Action.KILL].key_action is Action.TERMINATE
    for spec in CATALOG:
        if spec.slot is not None:
            assert spec.keys == ()
            assert spec.binding_id == BY_ACTION[spec.slot].binding_id
            assert by_id[spec.binding_id].action == BY_ACTION[spec.slot].screen_action
    assert [s.action for s in SHARING[Action.STOP]] == [Action.STOP, Action.INTERRUPT]
    assert [s.action for s in SHARING[Action.TERMINATE]] == [Action.TERMINATE, Action.KILL]
