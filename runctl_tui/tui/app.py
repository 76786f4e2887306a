"""The Textual application."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from runctl_tui import __version__
from runctl_tui.config import Settings
from runctl_tui.costs.rates import PriceTable, bundled_prices
from runctl_tui.services.fleet import Clock, Fleet, utc_now
from runctl_tui.tui.screens.dashboard import DashboardScreen

PALETTE = (
    ("Refresh now", "Poll every provider now", "refresh"),
    ("Stop instance(s)", "Stop the cursor row or the marked rows", "stop_instance"),
    ("Start instance(s)", "Start the cursor row or the marked rows", "start_instance"),
    ("Terminate instance(s)", "Terminate after typing the id", "terminate_instance"),
    ("Toggle details", "Show or hide the details panel", "toggle_details"),
    ("Filter rows", "Filter the table by any text", "filter"),
    ("Show keys", "The help screen", "help"),
)


class RunctlApp(App[None]):
    """runctl-tui: the fleet dashboard."""

    CSS_PATH = "app.tcss"
    TITLE = "runctl-tui"
    BINDINGS = [Binding("q", "quit", "Quit", id="quit")]

    def __init__(
        self,
        settings: Settings,
        fleet: Fleet,
        *,
        demo: bool = False,
        clock: Clock = utc_now,
        prices: PriceTable | None = None,
        startup_warnings: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.settings = settings
        self.fleet = fleet
        self.demo = demo
        self.clock = clock
        self.prices = prices or bundled_prices()
        self.startup_warnings = list(startup_warnings)
        self.sub_title = self._sub_title()

    def _sub_title(self) -> str:
        parts = [f"v{__version__}"]
        if self.demo:
            parts.append("DEMO: simulated EC2 on 127.0.0.1, not your account")
        if self.fleet.readonly:
            parts.append("READ-ONLY")
        return " · ".join(parts)

    def get_default_screen(self) -> Screen[None]:
        """The dashboard."""
        return DashboardScreen(
            self.fleet,
            prices=self.prices,
            poll_seconds=self.settings.poll_seconds,
            clock=self.clock,
            demo=self.demo,
        )

    def on_mount(self) -> None:
        """Apply the keymap and surface start-up warnings."""
        self.set_class(self.demo, "-demo")
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)
            known = {
                b.id for b in [*DashboardScreen.BINDINGS, *self.BINDINGS] if isinstance(b, Binding)
            }
            for unknown in sorted(set(self.settings.keymap) - known):
                self.notify(f"config: keymap: no binding with id {unknown!r}", severity="warning")
        for warning in self.startup_warnings:
            self.notify(warning, severity="warning", timeout=15)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The fleet commands, then Textual's own."""
        if isinstance(screen, DashboardScreen):
            for title, help_text, action in PALETTE:
                yield SystemCommand(title, help_text, lambda a=action: screen.run_action(a))
        yield from super().get_system_commands(screen)
