"""Text from a provider or a config made safe to show: one line, no terminal control, no markup.

Everything an outside party can set (instance names, tag keys and values, ids, error messages,
config values) passes through :func:`clean` before it reaches a cell, a line or a notification.
Widgets then build ``Text``/``Content`` objects from the result, never markup strings, so
brackets are shown as typed.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

ELLIPSIS = "…"

_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)}
"""C0 controls as their Unicode control pictures: ``\\n`` as ``␊``, ESC as ``␛``."""
_PICTURES[0x0A] = "␤"
_PICTURES[0x7F] = "␡"

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp", "Cn"})
"""Controls, formatting (bidi overrides, zero-width), surrogates, private use, line and
paragraph separators, unassigned code points: none is shown as itself."""


@lru_cache(maxsize=4096)
def _visible(char: str) -> str:
    code = ord(char)
    if code in _PICTURES:
        return _PICTURES[code]
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return char


def clean(value: object) -> str:
    """``value`` as one line of plain, visible text: controls and invisible characters escaped.

    ``\\n`` becomes ``␤``, ESC ``␛``, a C1 control ``\\u009b``, a bidi override ``\\u202e``,
    a zero-width space ``\\u200b``; everything printable is kept as it is.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and text.isascii():
        return text
    return "".join(_visible(char) for char in text)


@lru_cache(maxsize=4096)
def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in {"Mn", "Me"}:
        return 0
    return 2 if unicodedata.east_asian_width(char) in {"W", "F"} else 1


def cell_width(text: str) -> int:
    """How many terminal cells ``text`` takes (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    return sum(_char_width(char) for char in text)


def clip(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` terminal cells, with an ellipsis when cut."""
    if width <= 0:
        return ""
    if cell_width(text) <= width:
        return text
    if width == 1:
        return ELLIPSIS
    kept: list[str] = []
    used = 0
    for char in text:
        size = _char_width(char)
        if used + size > width - 1:
            break
        kept.append(char)
        used += size
    return "".join(kept) + ELLIPSIS


def one_line(value: object, width: int = 200) -> str:
    """:func:`clean`, then :func:`clip` to ``width`` cells: for names in lists and messages."""
    return clip(clean(value), width)


def is_safe(text: str) -> bool:
    """Whether ``text`` holds nothing :func:`clean` would escape."""
    return clean(text) == text
