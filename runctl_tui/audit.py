"""The audit journal: a JSON line before and after each destructive call, appended and synced."""

from __future__ import annotations

import getpass
import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs

from runctl_tui.models import Action, ActionResult, Instance

log = logging.getLogger(__name__)

ATTEMPTED = "attempted"
"""The ``result`` of the line written just before a call is made."""


class JournalError(Exception):
    """The journal cannot be written; ``str()`` is one line naming the path and the reason."""


def default_journal_path() -> Path:
    """``journal.jsonl`` under the user state directory."""
    return platformdirs.user_state_path("runctl-tui") / "journal.jsonl"


def current_user() -> str:
    """Who runs this, as the journal names them (``?`` when the system cannot say)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


class Journal:
    """Appends one JSON object per line; every line is fsynced before the call goes on."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_journal_path()
        self._lock = threading.Lock()

    def _entry(
        self,
        action: Action,
        instance: Instance,
        result: str,
        *,
        at: datetime | None,
        detail: str = "",
        state_after: str | None = None,
    ) -> dict[str, Any]:
        return {
            "time": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
            "user": current_user(),
            "provider": instance.provider,
            "region": instance.location,
            "kind": instance.kind,
            "id": instance.id,
            "name": instance.name,
            "action": action.value,
            "result": result,
            "detail": detail,
            "state_seen": instance.state.value,
            "state_after": state_after,
        }

    def append(self, entry: dict[str, Any]) -> None:
        """Write ``entry`` as one line, fsynced (actions beyond the fleet's, such as deleting a
        checkpoint, write their own entries with the same keys)."""
        # ASCII escapes keep control and bidi characters from a provider out of the file, so
        # that reading the journal in a terminal is as safe as reading it here.
        line = json.dumps(entry, ensure_ascii=True) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise self._unwritable(exc) from exc

    def _unwritable(self, exc: OSError) -> JournalError:
        reason = exc.strerror or type(exc).__name__
        return JournalError(f"cannot write the audit journal {self.path}: {reason}")

    def check(self) -> None:
        """Raise :class:`JournalError` unless the journal can be appended to right now."""
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8"):
                    pass
            except OSError as exc:
                raise self._unwritable(exc) from exc

    def attempted(
        self, action: Action, instance: Instance, *, at: datetime | None = None, detail: str = ""
    ) -> None:
        """Record that ``action`` is about to be called on ``instance``; raises JournalError."""
        self.append(self._entry(action, instance, ATTEMPTED, at=at, detail=detail))

    def record(self, result: ActionResult, *, at: datetime | None = None) -> None:
        """Record how an action ended; raises :class:`JournalError` if it cannot."""
        self.append(
            self._entry(
                result.action,
                result.instance,
                result.outcome.value,
                at=at,
                detail=result.detail,
                state_after=result.new_state.value if result.new_state else None,
            )
        )
