"""runctl-tui: a keyboard-driven terminal dashboard for ML training fleets."""

__version__ = "0.1.0"
