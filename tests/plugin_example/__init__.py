"""Provider plugins installed for a test only: a ``*.dist-info`` directory put on ``sys.path``.

``installed/`` holds the example plugin of the README (``runctl_example``, table
``[example]``); ``broken/`` holds plugins that fail in each way a plugin can.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).parent
INSTALLED = HERE / "installed"
"""The example plugin: ``example = runctl_example:plugin``."""
BROKEN = HERE / "broken"
"""``broken_import``, ``broken_build``, ``broken_name``, ``broken_object`` and ``legacy``."""

_MODULES = ("runctl_example", "runctl_broken")


@contextmanager
def installed(*roots: Path) -> Iterator[None]:
    """While inside, importlib.metadata finds the plugins under ``roots``, as if pip had."""
    added = [str(root) for root in roots]
    sys.path[:0] = added
    importlib.invalidate_caches()
    try:
        yield
    finally:
        for root in added:
            sys.path.remove(root)
        for name in list(sys.modules):
            if name.split(".")[0] in _MODULES:
                del sys.modules[name]
        importlib.invalidate_caches()
