"""The audit journal: one JSON line per attempted action, appended and synced."""

from __future__ import annotations

import getpass
import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import platformdirs

from runctl_tui.models import ActionResult

log = logging.getLogger(__name__)


def default_journal_path() -> Path:
    """``journal.jsonl`` under the user state directory."""
    return platformdirs.user_state_path("runctl-tui") / "journal.jsonl"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


class Journal:
    """Appends :class:`ActionResult` records to a JSON-lines file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_journal_path()
        self._lock = threading.Lock()

    def record(self, result: ActionResult, *, at: datetime | None = None) -> None:
        """Append one entry; a journal that cannot be written is logged, never fatal."""
        entry = {
            "time": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
            "user": _user(),
            "provider": result.instance.provider,
            "region": result.instance.region,
            "id": result.instance.id,
            "name": result.instance.name,
            "action": result.action.value,
            "result": result.outcome.value,
            "detail": result.detail,
            "state_seen": result.instance.state.value,
            "state_after": result.new_state.value if result.new_state else None,
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                log.error("cannot write audit journal %s: %s", self.path, exc)
