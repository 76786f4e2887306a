"""The ``runctl-tui`` entry point (also ``python -m runctl_tui``)."""

from __future__ import annotations

import gc


def main() -> int:
    """Run the command with garbage collection held off while start-up imports run."""
    # Imports allocate a great deal and free almost nothing, so collecting during them only
    # delays the first frame; the CLI turns collection back on when start-up is over.
    gc.disable()
    from runctl_tui.cli import main as run

    return run()


if __name__ == "__main__":
    raise SystemExit(main())
