"""The action catalog: one entry gives an action its key, footer, help, palette and dialog."""

from __future__ import annotations

from runctl_tui.actions import BY_ACTION, CATALOG, VERBS, Confirmation, spec_for
from runctl_tui.keys import BINDINGS
from runctl_tui.models import Action


def test_every_catalog_entry_is_a_rebindable_key() -> None:
    by_id = {b.id: b for b in BINDINGS}
    for spec in CATALOG:
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
