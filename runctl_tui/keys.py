"""The key binding catalog: every binding id, its default keys, and checks for a user's keymap.

Key names are Textual's: ``"r"``, ``"T"``, ``"question_mark"``, ``"slash"``, ``"ctrl+t"``,
``"shift+up"``, ``"f5"``. A keymap may also say ``"?"`` or ``"/"``; :func:`resolve_keymap`
turns every key into the name a Textual key event carries, because a binding matches only
that exact string.
"""

from __future__ import annotations

import difflib
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

from runctl_tui.actions import KEYED
from runctl_tui.text import clean, is_safe


@dataclass(frozen=True)
class KeyBinding:
    """One rebindable binding: its id, default keys, action and how help and footer show it."""

    id: str
    """The id a keymap names, e.g. ``stop-instance``."""
    keys: tuple[str, ...]
    """Default keys, as Textual key names."""
    action: str
    """The action it runs."""
    description: str
    """One line for the help screen."""
    label: str
    """The footer's short label."""
    show: bool = True
    """Whether the footer shows it."""
    priority: bool = False
    """Whether it fires before the focused widget sees the key."""


@dataclass(frozen=True)
class PaneEntry:
    """One pane of the main screen: adding a pane is its module plus one entry here."""

    id: str
    """The pane's id, and its module's name under ``runctl_tui.tui.panes``."""
    title: str
    """The footer's label and the palette's noun, e.g. ``Journal``."""
    keys: tuple[str, ...]
    """Default keys that show it, as Textual key names."""
    description: str
    """One line for the help screen and the palette."""

    @property
    def binding_id(self) -> str:
        """The id a keymap names, e.g. ``pane-journal``."""
        return f"pane-{self.id}"

    @property
    def action(self) -> str:
        """The screen action its binding runs: ``show_pane('journal')``."""
        return f"show_pane('{self.id}')"


PANES: tuple[PaneEntry, ...] = (
    PaneEntry("fleet", "Fleet", ("1",), "show the fleet: every machine and training run"),
    PaneEntry("journal", "Journal", ("2",), "show the audit journal of actions, newest first"),
    PaneEntry(
        "logs",
        "Logs",
        ("3",),
        "show the training log: follow, search, error jumps and the loss curve",
    ),
    PaneEntry(
        "checkpoints",
        "Checkpoints",
        ("4",),
        "show the checkpoints of a directory, an SSH host or S3: newest, best, inspect",
    ),
    PaneEntry(
        "costs",
        "Costs",
        ("5",),
        "show the costs: burn rate, spend today and this month, budgets, idle GPUs, orphaned disks",
    ),
)
"""Every pane of the main screen, in the order of their keys; the first is shown at start."""


BINDINGS: tuple[KeyBinding, ...] = (
    KeyBinding(
        "details",
        ("enter",),
        "toggle_details",
        "show or hide the details panel (tags, IPs, AMI, volumes)",
        "Details",
    ),
    KeyBinding(
        "filter",
        ("slash",),
        "filter",
        "filter: words all match, !word excludes, state=running, region=…, tag=value",
        "Filter",
        # The filter opens as the key arrives, before the keys typed after it.
        priority=True,
    ),
    KeyBinding("refresh", ("r",), "refresh", "poll every provider now", "Refresh"),
    KeyBinding("mark", ("space",), "mark", "mark or unmark the row, then move down", "Mark"),
    *(
        KeyBinding(spec.binding_id, spec.keys, spec.screen_action, spec.description, spec.verb)
        for spec in KEYED
    ),
    KeyBinding(
        "open-log",
        ("l",),
        "open_log",
        "open the row's training log in the logs pane (follow, search, errors, loss curve)",
        "Log",
    ),
    KeyBinding(
        "pick-log",
        ("L",),
        "pick_log",
        "pick the row's log from every candidate: open files, configured globs, recent *.log",
        "Pick log",
        show=False,
    ),
    KeyBinding(
        "open-checkpoints",
        ("c",),
        "open_checkpoints",
        "open the row's checkpoint directory in the checkpoints pane",
        "Checkpoints",
    ),
    KeyBinding(
        "sort",
        ("o",),
        "sort_next",
        "sort by the next column (after the last: the default order); click a title too",
        "Sort",
        show=False,
    ),
    KeyBinding("sort-reverse", ("O",), "sort_reverse", "reverse the order", "Reverse", show=False),
    KeyBinding(
        "clear",
        ("escape",),
        "clear",
        "close the filter, then the details, then clear the marks",
        "Clear",
        show=False,
    ),
    *(
        KeyBinding(pane.binding_id, pane.keys, pane.action, pane.description, pane.title)
        for pane in PANES
    ),
    KeyBinding("help", ("question_mark",), "help", "this screen", "Help"),
    KeyBinding("quit", ("q",), "quit", "quit (ctrl+q always quits too)", "Quit"),
)
"""Every binding a keymap can change, in the order help lists them."""

BINDING_IDS: tuple[str, ...] = tuple(binding.id for binding in BINDINGS)
"""The ids a keymap may name, in catalog order."""

RESERVED_KEY_USES: Mapping[str, str] = {
    "up": "moves up the table",
    "k": "moves up the table",
    "down": "moves down the table",
    "j": "moves down the table",
    "pageup": "pages up the table",
    "pagedown": "pages down the table",
    "home": "jumps to the first row",
    "g": "jumps to the first row",
    "end": "jumps to the last row",
    "G": "jumps to the last row",
    "ctrl+p": "opens the command palette",
    "tab": "moves the focus",
    "shift+tab": "moves the focus back",
    "ctrl+c": "tells how to quit",
    "ctrl+q": "quits",
}
"""Keys no binding may take, with what they do."""

RESERVED_KEYS: frozenset[str] = frozenset(RESERVED_KEY_USES)
"""Keys no binding may take (``ctrl+q`` may be given to ``quit``, which it runs anyway)."""

QUIT_ID = "quit"
"""The binding that must keep a key: ``ctrl+q`` quits too, but nobody should have to know."""

_RESERVED_OWNERS = {"ctrl+q": QUIT_ID}


class KeymapError(ValueError):
    """A keymap that cannot be used; ``message`` is one line, safe to print."""

    def __init__(self, binding_id: str, message: str) -> None:
        super().__init__(message)
        self.binding_id = binding_id
        """The keymap entry at fault, as written."""
        self.message = message
        """Why, in one line with control characters escaped."""


def _textual_name(char: str) -> str:
    """What Textual calls the key that types ``char`` (``?`` is ``question_mark``)."""
    name = unicodedata.name(char).lower().replace("-", "_").replace(" ", "_")
    return _NAME_REPLACEMENTS.get(name, name)


# Textual shortens a few Unicode names; these are the names its key events carry.
_NAME_REPLACEMENTS = {
    "solidus": "slash",
    "reverse_solidus": "backslash",
    "commercial_at": "at",
    "hyphen_minus": "minus",
    "plus_sign": "plus",
    "low_line": "underscore",
}
_PUNCTUATION_NAMES = {char: _textual_name(char) for char in string.punctuation}
_PUNCTUATION_CHARS = {name: char for char, name in _PUNCTUATION_NAMES.items()}

_ARROWS_AND_PAGING = ("up", "down", "left", "right", "home", "end", "pageup", "pagedown")
_FUNCTION_KEYS = tuple(f"f{number}" for number in range(1, 13))
# Keys a terminal sends as one escape sequence that can carry modifiers.
_MODIFIABLE_KEYS = (*_ARROWS_AND_PAGING, "insert", "delete", *_FUNCTION_KEYS)
_NAMED_KEYS = frozenset({"escape", "enter", "tab", "space", "backspace", *_MODIFIABLE_KEYS})
_ALIASES = {
    "esc": "escape",
    "return": "enter",
    "del": "delete",
    "ins": "insert",
    "pgup": "pageup",
    "pgdn": "pagedown",
    "control": "ctrl",
}
_MODIFIERS = ("alt", "ctrl", "shift")
_UNSENT_MODIFIERS = frozenset({"meta", "super", "hyper", "cmd", "command", "win", "option"})

# One or two modifiers on a key that has an escape sequence of its own, in Textual's
# (alphabetical) order; terminals, window managers and keyboards disagree beyond that, and
# escape, enter, backspace and space with a modifier mostly arrive as the plain key.
_MODIFIED_NAMED_KEYS = frozenset(
    {
        *(f"{mod}+{key}" for mod in _MODIFIERS for key in _MODIFIABLE_KEYS if key != "f3"),
        *(
            f"{a}+{b}+{key}"
            for a, b in combinations(_MODIFIERS, 2)
            for key in _MODIFIABLE_KEYS
            if key != "f3"
        ),
        "shift+tab",
    }
)
# What a key with modifiers arrives as instead, where that is not the key itself.
_ARRIVES_AS = {"alt+b": "ctrl+left", "alt+f": "ctrl+right", "f3": "a cursor position report"}
# Control characters that a terminal cannot tell apart from another key.
_CTRL_LETTER_TWINS = {"h": "backspace", "i": "tab", "m": "enter"}
# The few punctuation keys with ctrl that have a control character of their own.
_CTRL_PUNCTUATION = {
    "@": "ctrl+@",
    "\\": "ctrl+backslash",
    "]": "ctrl+right_square_bracket",
    "^": "ctrl+circumflex_accent",
    "_": "ctrl+underscore",
}

_EXAMPLES = "keys look like 'x', 'T', '?', 'ctrl+x', 'alt+x', 'f5', 'shift+up', 'escape'"


def _quoted(text: str) -> str:
    """``text`` quoted as Python would, with nothing invisible left raw."""
    return clean(repr(text))


def display_key(key: str) -> str:
    """How to show a Textual key name to a person: ``question_mark`` as ``?``."""
    return _PUNCTUATION_CHARS.get(key, key)


def _shown(key: str) -> str:
    return _quoted(display_key(key))


def _not_a_key(written: str, why: str) -> ValueError:
    return ValueError(f"{_quoted(written)} {why}")


def _modifiers(written: str, parts: list[str]) -> tuple[str, ...]:
    found: list[str] = []
    for part in parts:
        name = _ALIASES.get(part.lower(), part.lower())
        if name in _UNSENT_MODIFIERS:
            raise _not_a_key(written, f"uses {name}, which terminals do not send to programs")
        if name not in _MODIFIERS:
            raise _not_a_key(written, f"has no modifier {_quoted(part)}; use ctrl, alt or shift")
        if name in found:
            raise _not_a_key(written, f"repeats {name}")
        found.append(name)
    return tuple(sorted(found))


def _base(written: str, text: str) -> str:
    """The key itself: one character as typed, else a key name in lower case."""
    if not text:
        raise _not_a_key(written, f"is not a key name ({_EXAMPLES})")
    if len(text) == 1:
        return text
    name = _ALIASES.get(text.lower(), text.lower())
    if name in _PUNCTUATION_CHARS:
        return _PUNCTUATION_CHARS[name]
    if name in _NAMED_KEYS:
        return name
    known = [*_NAMED_KEYS, *_PUNCTUATION_CHARS]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {_quoted(close[0])}? " if close else ""
    raise _not_a_key(written, f"is not a key name ({hint}{_EXAMPLES})")


def _character_key(written: str, mods: tuple[str, ...], char: str) -> str:
    if not char.isascii():
        if mods or not (char.isalnum() and char.isprintable()):
            raise _not_a_key(written, f"is not a key a terminal sends ({_EXAMPLES})")
        return char
    if char.isspace() or not char.isprintable():
        raise _not_a_key(written, f"is not a key name ({_EXAMPLES})")
    if not mods:
        return char if char.isalnum() else _PUNCTUATION_NAMES[char]
    if char.isalpha():
        lower = char.lower()
        shifted = char.isupper() or "shift" in mods
        rest = tuple(mod for mod in mods if mod != "shift")
        if rest == ():
            return lower.upper()
        if rest == ("alt",):
            if not shifted and f"alt+{lower}" in _ARRIVES_AS:
                twin = _ARRIVES_AS[f"alt+{lower}"]
                raise _not_a_key(written, f"reaches programs as {twin!r}; write {twin!r}")
            return f"alt+shift+{lower}" if shifted else f"alt+{lower}"
        if rest == ("ctrl",) and not shifted:
            if lower in _CTRL_LETTER_TWINS:
                twin = _CTRL_LETTER_TWINS[lower]
                raise _not_a_key(written, f"reaches programs as {twin!r}; write {twin!r}")
            return f"ctrl+{lower}"
        if rest == ("ctrl",):
            raise _not_a_key(
                written, f"reaches programs as ctrl+{lower} in most terminals; write 'ctrl+{lower}'"
            )
    elif char.isdigit():
        raise _not_a_key(written, f"reaches programs as plain {char!r} in most terminals")
    elif mods == ("ctrl",) and char in _CTRL_PUNCTUATION:
        return _CTRL_PUNCTUATION[char]
    raise _not_a_key(written, f"is not a key a terminal sends ({_EXAMPLES})")


def normalize_key(key: str) -> str:
    """The Textual name of one key as a person writes it (``?`` gives ``question_mark``).

    Raises :class:`ValueError`, with a one-line reason, for anything a terminal cannot send
    as that one key.
    """
    written = key.strip()
    if not written:
        raise ValueError("an empty key; write 'space' for the space bar")
    if any(char.isspace() for char in written):
        raise _not_a_key(written, "has a space in it; write 'space' for the space bar")
    if len(written) == 1:
        return _character_key(written, (), written)
    *mod_parts, base_text = written.split("+")
    mods = _modifiers(written, mod_parts)
    base = _base(written, base_text)
    if len(base) == 1:
        return _character_key(written, mods, base)
    if not mods:
        return base
    if mods == ("ctrl",) and base == "space":
        return "ctrl+@"
    combined = "+".join((*mods, base))
    if base in _ARRIVES_AS:
        raise _not_a_key(written, f"reaches programs as {_ARRIVES_AS[base]} in most terminals")
    if combined not in _MODIFIED_NAMED_KEYS:
        raise _not_a_key(written, f"is not a key a terminal sends ({_EXAMPLES})")
    return combined


def _keys_of(binding_id: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        raise KeymapError(binding_id, 'keys must be a string, e.g. "x" or "x,ctrl+x"')
    if not is_safe(value):
        raise KeymapError(binding_id, f"{_quoted(value)} has a control or invisible character")
    if not value.strip():
        raise KeymapError(binding_id, f"{binding_id} needs at least one key")
    keys: list[str] = []
    for part in value.split(","):
        if not part.strip():
            raise KeymapError(
                binding_id,
                f"{_quoted(value)} has an empty key; write 'comma' for the comma key",
            )
        try:
            key = normalize_key(part)
        except ValueError as exc:
            raise KeymapError(binding_id, str(exc)) from None
        if key not in keys:
            keys.append(key)
    return tuple(keys)


def _unknown_id(binding_id: object) -> KeymapError:
    text = binding_id if isinstance(binding_id, str) else repr(binding_id)
    close = difflib.get_close_matches(text, BINDING_IDS, n=1, cutoff=0.5) or [
        known for known in BINDING_IDS if text and known.startswith(text)
    ]
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(BINDING_IDS)})"
    return KeymapError(text, f"unknown binding id {_quoted(text)}{hint}")


def resolve_keymap(keymap: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Every binding id's keys once ``keymap`` is laid over the defaults, as Textual key names.

    Raises :class:`KeymapError` for an unknown id, a key a terminal cannot send, a reserved
    key, one key given to two bindings, or a binding left with no key.
    """
    known = {binding.id: binding for binding in BINDINGS}
    effective = {binding.id: binding.keys for binding in BINDINGS}
    changed: list[str] = []
    for binding_id, value in keymap.items():
        if binding_id not in known:
            raise _unknown_id(binding_id)
        effective[binding_id] = _keys_of(binding_id, value)
        changed.append(binding_id)
    for binding_id in changed:
        for key in effective[binding_id]:
            if key in RESERVED_KEYS and _RESERVED_OWNERS.get(key) != binding_id:
                raise KeymapError(
                    binding_id, f"{_shown(key)} is reserved: it {RESERVED_KEY_USES[key]}"
                )
    owners: dict[str, str] = {}
    # Defaults first, so that a clash is blamed on the entry that moved a key.
    order = [b for b in BINDING_IDS if b not in changed] + changed
    for binding_id in order:
        for key in effective[binding_id]:
            other = owners.setdefault(key, binding_id)
            if other != binding_id:
                advice = "choose another key" if other in changed else f"rebind {other} too"
                raise KeymapError(
                    binding_id, f"{_shown(key)} is already the key of {other}; {advice}"
                )
    return {binding_id: effective[binding_id] for binding_id in BINDING_IDS}
