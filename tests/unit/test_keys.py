"""The key binding catalog and keymap checks: every key a keymap accepts is one Textual sees."""

from __future__ import annotations

import re
import string

import pytest
from textual import events
from textual._xterm_parser import XTermParser
from textual.binding import Binding, BindingsMap

from runctl_tui.keys import (
    BINDING_IDS,
    BINDINGS,
    RESERVED_KEY_USES,
    RESERVED_KEYS,
    KeyBinding,
    KeymapError,
    display_key,
    normalize_key,
    resolve_keymap,
)
from runctl_tui.text import is_safe

DEFAULTS = {binding.id: binding.keys for binding in BINDINGS}


def keymap_error(keymap: dict[str, str]) -> KeymapError:
    with pytest.raises(KeymapError) as caught:
        resolve_keymap(keymap)
    error = caught.value
    assert str(error) == error.message
    assert "\n" not in error.message
    assert is_safe(error.message), error.message
    return error


def test_catalog_covers_every_binding_once() -> None:
    assert BINDING_IDS == (
        "details",
        "filter",
        "refresh",
        "mark",
        "stop-instance",
        "start-instance",
        "terminate-instance",
        "open-log",
        "pick-log",
        "open-checkpoints",
        "sort",
        "sort-reverse",
        "clear",
        "pane-fleet",
        "pane-journal",
        "pane-logs",
        "pane-checkpoints",
        "pane-costs",
        "help",
        "quit",
    )
    assert DEFAULTS["quit"] == ("q",)
    assert DEFAULTS["help"] == ("question_mark",)
    assert DEFAULTS["filter"] == ("slash",)
    assert DEFAULTS["terminate-instance"] == ("T",)
    for binding in BINDINGS:
        assert binding.description
        assert binding.label
        # An action name, or a call with literal arguments: act('stop').
        assert re.fullmatch(r"[a-z_]+(\('[a-z-]+'\))?", binding.action), binding.action
    assert [b.id for b in BINDINGS if not b.show] == ["pick-log", "sort", "sort-reverse", "clear"]
    assert [b.id for b in BINDINGS if b.priority] == ["filter"]


def test_bindings_are_frozen() -> None:
    binding = BINDINGS[0]

    with pytest.raises(AttributeError):
        binding.keys = ("x",)  # type: ignore[misc]
    assert isinstance(binding, KeyBinding)


def test_defaults_are_consistent() -> None:
    # The shipped defaults pass their own checks, and no default sits on a reserved key.
    assert resolve_keymap({}) == DEFAULTS
    assert resolve_keymap({b.id: ",".join(b.keys) for b in BINDINGS}) == DEFAULTS
    assert not {key for keys in DEFAULTS.values() for key in keys} & RESERVED_KEYS


def test_reserved_keys() -> None:
    assert {"up", "k", "down", "j", "pageup", "pagedown", "home", "g", "end", "G"} <= RESERVED_KEYS
    assert {"ctrl+p", "tab", "shift+tab", "ctrl+c", "ctrl+q"} <= RESERVED_KEYS
    assert set(RESERVED_KEY_USES) == RESERVED_KEYS


def test_a_keymap_entry_replaces_the_default() -> None:
    resolved = resolve_keymap({"stop-instance": "x", "terminate-instance": "ctrl+t,f8"})

    assert resolved["stop-instance"] == ("x",)
    assert resolved["terminate-instance"] == ("ctrl+t", "f8")
    assert resolved["refresh"] == ("r",)


def test_keys_can_be_swapped() -> None:
    resolved = resolve_keymap({"refresh": "s", "stop-instance": "r"})

    assert (resolved["refresh"], resolved["stop-instance"]) == (("s",), ("r",))


def test_quit_may_move_and_free_q() -> None:
    resolved = resolve_keymap({"quit": "x", "refresh": "q"})

    assert (resolved["quit"], resolved["refresh"]) == (("x",), ("q",))


def test_quit_may_be_left_to_ctrl_q_alone() -> None:
    assert resolve_keymap({"quit": "ctrl+q"})["quit"] == ("ctrl+q",)


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("?", "question_mark"),
        ("question_mark", "question_mark"),
        ("/", "slash"),
        ("slash", "slash"),
        ("-", "minus"),
        ("+", "plus"),
        ("@", "at"),
        ("\\", "backslash"),
        ("_", "underscore"),
        (".", "full_stop"),
        ("comma", "comma"),
        ("x", "x"),
        ("T", "T"),
        ("shift+t", "T"),
        ("shift+T", "T"),
        ("5", "5"),
        ("é", "é"),
        ("ctrl+x", "ctrl+x"),
        ("Ctrl+x", "ctrl+x"),
        ("control+x", "ctrl+x"),
        ("alt+x", "alt+x"),
        ("alt+X", "alt+shift+x"),
        ("shift+alt+x", "alt+shift+x"),
        ("ctrl+space", "ctrl+@"),
        ("ctrl+]", "ctrl+right_square_bracket"),
        ("esc", "escape"),
        ("Escape", "escape"),
        ("return", "enter"),
        ("space", "space"),
        ("F5", "f5"),
        ("pgdn", "pagedown"),
        ("shift+up", "shift+up"),
        ("shift+ctrl+left", "ctrl+shift+left"),
        ("ctrl+alt+f12", "alt+ctrl+f12"),
        ("shift+tab", "shift+tab"),
        (" x ", "x"),
    ],
)
def test_keys_are_normalised_to_textual_names(written: str, name: str) -> None:
    assert normalize_key(written) == name


@pytest.mark.parametrize(
    "written",
    [
        "ctrl+shift+alt+f13",
        "f13",
        "ctrl+alt+shift+up",
        "foo",
        "",
        " ",
        "ctrl+é",
        "ctrl x",
        "ctrl+",
        "+x",
        "ctrl+ctrl+x",
        "meta+x",
        "super+x",
        "hyper+x",
        "ctrl+X",
        "ctrl+shift+x",
        "ctrl+m",
        "ctrl+i",
        "ctrl+h",
        "ctrl+alt+x",
        "shift+1",
        "ctrl+1",
        "alt+1",
        "alt+?",
        "ctrl+?",
        "shift+enter",
        "alt+escape",
        "ctrl+backspace",
        "alt+b",
        "alt+f",
        "shift+f3",
        "ctrl+f3",
        "\u202ex",
        "\x00",
    ],
)
def test_keys_that_cannot_be_typed_are_refused(written: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        normalize_key(written)
    assert "\n" not in str(caught.value)


def test_a_twin_control_key_names_what_to_write() -> None:
    with pytest.raises(ValueError, match="'ctrl\\+m' reaches programs as 'enter'; write 'enter'"):
        normalize_key("ctrl+m")


def test_display_key() -> None:
    assert display_key("question_mark") == "?"
    assert display_key("slash") == "/"
    assert display_key("ctrl+t") == "ctrl+t"


# The keymap errors, one kind at a time -------------------------------------------------------


def test_duplicate_with_a_default_blames_the_moved_binding() -> None:
    error = keymap_error({"refresh": "s"})

    assert error.binding_id == "refresh"
    assert error.message == "'s' is already the key of stop-instance; rebind stop-instance too"


def test_taking_q_from_quit_is_a_duplicate() -> None:
    error = keymap_error({"refresh": "q"})

    assert error.binding_id == "refresh"
    assert "'q' is already the key of quit" in error.message


def test_duplicate_within_the_keymap_blames_the_later_entry() -> None:
    error = keymap_error({"refresh": "x", "mark": "x"})

    assert error.binding_id == "mark"
    assert error.message == "'x' is already the key of refresh; choose another key"


def test_duplicate_written_differently_is_still_a_duplicate() -> None:
    error = keymap_error({"refresh": "question_mark"})

    assert error.binding_id == "refresh"
    assert error.message.startswith("'?' is already the key of help")


@pytest.mark.parametrize(
    ("key", "use"),
    [
        ("j", "moves down the table"),
        ("G", "jumps to the last row"),
        ("pageup", "pages up the table"),
        ("ctrl+p", "opens the command palette"),
        ("tab", "moves the focus"),
        ("shift+tab", "moves the focus back"),
        ("ctrl+c", "tells how to quit"),
        ("ctrl+q", "quits"),
    ],
)
def test_reserved_keys_are_refused(key: str, use: str) -> None:
    error = keymap_error({"stop-instance": f"x,{key}"})

    assert error.binding_id == "stop-instance"
    assert error.message == f"{key!r} is reserved: it {use}"


@pytest.mark.parametrize("value", ["ctrl+shift+alt+f13", "foo", "ctrl+é", "ctrl x", "x,foo"])
def test_a_bad_key_is_refused(value: str) -> None:
    error = keymap_error({"stop-instance": value})

    assert error.binding_id == "stop-instance"
    assert "not a key" in error.message or "space" in error.message


def test_an_empty_key_between_commas() -> None:
    error = keymap_error({"refresh": "x,,y"})

    assert error.message == "'x,,y' has an empty key; write 'comma' for the comma key"


@pytest.mark.parametrize("value", ["x\x1b[31m", "x\ny", "x\ty", "\x9b", "x\u202e"])
def test_control_characters_in_keys_are_shown_escaped(value: str) -> None:
    error = keymap_error({"refresh": value})

    assert "control or invisible character" in error.message


def test_unknown_id_suggests_the_close_one() -> None:
    error = keymap_error({"stop-instanse": "x"})

    assert error.binding_id == "stop-instanse"
    assert error.message == "unknown binding id 'stop-instanse' (did you mean 'stop-instance'?)"


def test_unknown_id_far_from_any_lists_them_all() -> None:
    error = keymap_error({"zzz": "x"})

    assert error.message.startswith("unknown binding id 'zzz' (known: details, filter, ")


@pytest.mark.parametrize("binding_id", ["[b]stop[/b]", "[@click=app.quit]", "[/]"])
def test_markup_like_id_is_just_unknown_and_shown_literally(binding_id: str) -> None:
    error = keymap_error({binding_id: "x"})

    assert error.binding_id == binding_id
    assert error.message.startswith(f"unknown binding id {binding_id!r}")


@pytest.mark.parametrize("binding_id", ["stop\x1b[31m", "a\nb", "x\x07", "\x9b1m", "r\u202eq"])
def test_control_characters_in_an_id_are_escaped(binding_id: str) -> None:
    error = keymap_error({binding_id: "x"})

    assert error.binding_id == binding_id
    assert error.message.startswith(f"unknown binding id {binding_id!r}")


@pytest.mark.parametrize("value", ["", "   "])
def test_quit_needs_a_key(value: str) -> None:
    error = keymap_error({"quit": value})

    assert (error.binding_id, error.message) == ("quit", "quit needs at least one key")


def test_every_binding_needs_a_key() -> None:
    assert keymap_error({"refresh": ""}).message == "refresh needs at least one key"


def test_a_value_that_is_not_a_string() -> None:
    error = keymap_error({"refresh": ["r"]})  # type: ignore[dict-item]

    assert error.message.startswith("keys must be a string")


# Textual agrees -------------------------------------------------------------------------------

CSI_LETTERS = {"up": "A", "down": "B", "right": "C", "left": "D", "home": "H", "end": "F"}
CSI_NUMBERS = {"insert": 2, "delete": 3, "pageup": 5, "pagedown": 6}
CSI_NUMBERS |= {"f5": 15, "f6": 17, "f7": 18, "f8": 19, "f9": 20, "f10": 21, "f11": 23, "f12": 24}
SS3_LETTERS = {"f1": "P", "f2": "Q", "f3": "R", "f4": "S"}
PLAIN = {"escape": "\x1b", "enter": "\r", "tab": "\t", "space": " ", "backspace": "\x7f"}
MODIFIER_BITS = {"shift": 1, "alt": 2, "ctrl": 4}
CTRL_PUNCTUATION = {"@": "\x00", "\\": "\x1c", "]": "\x1d", "^": "\x1e", "_": "\x1f"}


def xterm_sequence(written: str) -> str:
    """What an xterm-like terminal sends for the key a person writes as ``written``."""
    if len(written) == 1:
        return written
    *mods, base = written.split("+")
    if not mods:
        if base in PLAIN:
            return PLAIN[base]
        if base in SS3_LETTERS:
            return "\x1bO" + SS3_LETTERS[base]
        if base in CSI_LETTERS:
            return "\x1b[" + CSI_LETTERS[base]
        if base in CSI_NUMBERS:
            return f"\x1b[{CSI_NUMBERS[base]}~"
        return base
    if mods == ["ctrl"] and len(base) == 1:
        return CTRL_PUNCTUATION.get(base) or chr(ord(base) - ord("a") + 1)
    if mods == ["alt"] and len(base) == 1:
        return "\x1b" + base
    if written == "shift+tab":
        return "\x1b[Z"
    code = 1 + sum(MODIFIER_BITS[mod] for mod in mods)
    if base in CSI_NUMBERS:
        return f"\x1b[{CSI_NUMBERS[base]};{code}~"
    return f"\x1b[1;{code}{CSI_LETTERS.get(base) or SS3_LETTERS[base]}"


def keys_textual_sees(sequence: str) -> list[str]:
    parser = XTermParser()
    tokens = [*parser.feed(sequence), *parser.feed("")]
    return [token.key for token in tokens if isinstance(token, events.Key)]


WRITTEN_KEYS = [
    *string.ascii_letters,
    *string.digits,
    *(c for c in string.punctuation if c != ","),
    *(f"ctrl+{c}" for c in string.ascii_lowercase if c not in "him"),
    *(f"alt+{c}" for c in string.ascii_letters if c not in "bf"),
    *(f"ctrl+{c}" for c in "@\\]^_"),
    *PLAIN,
    "shift+tab",
    *(
        f"{mods}{key}"
        for key in [*CSI_LETTERS, *CSI_NUMBERS, *SS3_LETTERS]
        for mods in ["", "shift+", "alt+", "ctrl+", "ctrl+shift+", "alt+shift+", "alt+ctrl+"]
        # xterm sends f3 with modifiers as a cursor position report, which the keymap refuses.
        if key != "f3" or not mods
    ),
]


@pytest.mark.parametrize("written", WRITTEN_KEYS)
def test_textual_sees_the_name_the_keymap_gives(written: str) -> None:
    assert keys_textual_sees(xterm_sequence(written)) == [normalize_key(written)]


def test_resolved_keys_make_textual_bindings_that_fire() -> None:
    resolved = resolve_keymap({"help": "?", "refresh": "shift+f5", "stop-instance": "x,ctrl+t"})
    bindings = BindingsMap(
        Binding(",".join(resolved[b.id]), b.action, b.label, show=b.show, id=b.id) for b in BINDINGS
    )

    for sequence, action in [
        ("?", "help"),
        ("\x1b[15;2~", "refresh"),
        ("x", "act('stop')"),
        ("\x14", "act('stop')"),
        ("/", "filter"),
    ]:
        (key,) = keys_textual_sees(sequence)
        assert [b.action for b in bindings.get_bindings_for_key(key)] == [action]


@pytest.mark.parametrize("written", WRITTEN_KEYS)
def test_normalising_twice_changes_nothing(written: str) -> None:
    # Settings store normalised keys, which are checked again when the app applies them.
    name = normalize_key(written)

    assert normalize_key(name) == name
