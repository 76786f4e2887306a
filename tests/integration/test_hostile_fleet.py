"""Hostile names, tags and types from EC2 come back from the provider exactly as they were set.

The provider keeps raw data; escaping is the display code's job.
"""

from __future__ import annotations

import pytest

from runctl_tui.models import GpuSpec
from runctl_tui.providers.aws import unknown_type_reason
from runctl_tui.text import is_safe
from tests.integration.conftest import (
    HOSTILE_KEY_NAME,
    HOSTILE_LABEL_TAG,
    HOSTILE_NAMES,
    HOSTILE_TYPE,
    HostileFleet,
    details_of,
)

pytestmark = pytest.mark.integration

PRINTABLE_HOSTILE = {
    "close-markup",
    "click-quit",
    "click-screenshot",
    "link",
    "newline",
    "bidi",
    "zero-width",
    "long",
    "c1-csi",
    "delete",
}
"""Names that are valid XML text: the server must keep them all."""


def test_the_server_keeps_every_printable_hostile_name(hostile_fleet: HostileFleet) -> None:
    assert hostile_fleet.ids.keys() >= PRINTABLE_HOSTILE
    assert hostile_fleet.refused.keys() == HOSTILE_NAMES.keys() - hostile_fleet.ids.keys()
    # Characters XML 1.0 cannot carry, and what boto3 cannot encode, never reach a poll.
    assert hostile_fleet.refused.keys() <= {"esc", "bell", "nul", "carriage-return", "surrogate"}
    assert "surrogate" in hostile_fleet.refused
    assert len(hostile_fleet.names["long"]) > 10_000


def test_names_tags_and_key_names_come_back_byte_for_byte(hostile_fleet: HostileFleet) -> None:
    listed = {i.id: i for i in hostile_fleet.provider().list_instances()}

    assert set(listed) == set(hostile_fleet.ids.values())
    for label, instance_id in hostile_fleet.ids.items():
        instance = listed[instance_id]
        assert instance.name == hostile_fleet.names[label], label
        assert instance.tags == hostile_fleet.tags[label], label
        assert instance.tags[HOSTILE_LABEL_TAG] == label
        assert details_of(instance).key_name == HOSTILE_KEY_NAME


def test_hostile_text_does_not_change_what_is_learned(hostile_fleet: HostileFleet) -> None:
    provider = hostile_fleet.provider()
    listed = {i.id: i for i in provider.list_instances()}

    for label, instance_id in hostile_fleet.ids.items():
        instance = listed[instance_id]
        if label == "hostile-type":
            continue
        assert instance.gpus == GpuSpec(count=1, model="A10G", memory_mib=22888), label
        assert details_of(instance).instance_store_gb == 250
        assert details_of(instance).type_facts_missing is None
        assert instance.protected is False


def test_a_hostile_instance_type_is_kept_and_its_facts_are_unknown(
    hostile_fleet: HostileFleet,
) -> None:
    provider = hostile_fleet.provider()
    listed = {i.id: i for i in provider.list_instances()}

    odd = listed[hostile_fleet.ids["hostile-type"]]
    assert details_of(odd).instance_type == HOSTILE_TYPE
    assert odd.gpus is None
    assert details_of(odd).instance_store_gb is None
    assert details_of(odd).type_facts_missing == unknown_type_reason(HOSTILE_TYPE)
    assert details_of(odd).type_facts_missing == (
        f"instance type '{HOSTILE_TYPE}' unknown to DescribeInstanceTypes"
    )
    (warning,) = provider.poll_warnings()
    assert HOSTILE_TYPE in warning
    assert is_safe(warning)


def test_describe_keeps_the_raw_text_too(hostile_fleet: HostileFleet) -> None:
    provider = hostile_fleet.provider()
    listed = {i.id: i for i in provider.list_instances()}

    for label in ("click-quit", "newline", "bidi", "long"):
        fresh = provider.describe(listed[hostile_fleet.ids[label]])
        assert fresh.name == hostile_fleet.names[label]
        assert fresh.tags == hostile_fleet.tags[label]
