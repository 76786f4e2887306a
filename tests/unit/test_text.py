"""Provider text made safe: one visible line, nothing a terminal would act on."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runctl_tui.text import cell_width, clean, clip, is_safe, one_line


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain-name", "plain-name"),
        ("[/]", "[/]"),
        ("a\nb", "a␤b"),
        ("a\r\nb", "a␍␤b"),
        ("tab\there", "tab␉here"),
        ("\x1b]0;pwned\x07", "␛]0;pwned␇"),
        ("\x1b[2J", "␛[2J"),
        ("c1\x9b31m", "c1\\u009b31m"),
        ("del\x7f", "del␡"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        ("日本語", "日本語"),
        ("café", "café"),
    ],
)
def test_clean_escapes_controls_and_invisibles(raw: str, shown: str) -> None:
    assert clean(raw) == shown


def test_clean_accepts_anything_printable() -> None:
    assert clean(42) == "42"
    assert is_safe("ok")
    assert not is_safe("a\nb")


def test_clip_counts_cells_and_marks_the_cut() -> None:
    assert clip("abcdef", 4) == "abc…"
    assert clip("abc", 3) == "abc"
    assert clip("日本語", 4) == "日…"
    assert cell_width(clip("日本語日本語", 5)) <= 5
    assert clip("abc", 0) == ""
    assert clip("abc", 1) == "…"
    assert one_line("x" * 10_000, 20) == "x" * 19 + "…"


@given(st.text())
def test_clean_output_holds_no_control_or_invisible_character(raw: str) -> None:
    shown = clean(raw)
    for char in shown:
        assert unicodedata.category(char) not in {"Cc", "Cf", "Cs", "Zl", "Zp"}, repr(char)
    assert clean(shown) == shown
