"""``python -m runctl_tui``."""

from runctl_tui.cli import main

raise SystemExit(main())
