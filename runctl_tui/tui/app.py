"""The Textual application."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial

from textual.app import App, SystemCommand
from textual.content import Content
from textual.screen import Screen

from runctl_tui.actions import CATALOG
from runctl_tui.config import Settings
from runctl_tui.keys import BINDINGS as KEY_BINDINGS
from runctl_tui.keys import PANES, QUIT_ID, KeymapError, resolve_keymap
from runctl_tui.services.fleet import Clock, Fleet, utc_now
from runctl_tui.text import clean
from runctl_tui.tui.panes.fleet import FleetPane
from runctl_tui.tui.screens.main import MainScreen
from runctl_tui.tui.widgets.footer import textual_binding
from runctl_tui.tui.widgets.provider_bar import header_sub_title, header_warning

FLEET_PALETTE = (
    ("Toggle details", "Show or hide the details panel", "toggle_details"),
    ("Filter rows", "Filter the table by any text", "filter"),
)
"""Palette entries that run an action of the fleet pane: (title, help, action)."""

SHADOWED_SYSTEM_COMMANDS = frozenset({"Keys"})
"""Textual's own entries that one of ours already covers."""


class RunctlApp(App[None]):
    """runctl-tui: the fleet dashboard."""

    CSS_PATH = "app.tcss"
    TITLE = "runctl-tui"
    BINDINGS = [textual_binding(b) for b in KEY_BINDINGS if b.id == QUIT_ID]

    def __init__(
        self,
        settings: Settings,
        fleet: Fleet,
        *,
        demo: bool = False,
        clock: Clock = utc_now,
        startup_warnings: Sequence[str] = (),
        open_log: str | Sequence[str] | None = None,
        open_checkpoints: str | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.fleet = fleet
        self.demo = demo
        self.clock = clock
        self.startup_warnings = list(startup_warnings)
        self.open_log: tuple[str, ...] = (
            (open_log,) if isinstance(open_log, str) else tuple(open_log or ())
        )
        """Logs to open at start, a tab each (``runctl-tui tail SOURCE...``)."""
        self.open_checkpoints = open_checkpoints
        """A location to open in the checkpoints pane at start (``runctl-tui checkpoints``)."""
        self.warning = header_warning(demo=demo, readonly=fleet.readonly)
        """What the header shows first, so that no terminal is too narrow for it."""
        self.sub_title = header_sub_title(demo=demo, readonly=fleet.readonly)

    def format_title(self, title: str, sub_title: str) -> Content:
        """The DEMO/READ-ONLY warning first and bold, then the title, then what is shown."""
        title_content = Content(clean(title))
        if not self.warning or not sub_title.startswith(self.warning):
            return super().format_title(clean(title), clean(sub_title))
        rest = sub_title[len(self.warning) :].removeprefix(" · ")
        return Content.assemble(
            (self.warning, "bold"),
            (" · ", "dim"),
            title_content,
            (" — ", "dim"),
            (clean(rest), "dim"),
        )

    def get_default_screen(self) -> Screen[None]:
        """The main screen, its first pane shown."""
        return MainScreen(
            self.fleet,
            poll_seconds=self.settings.poll_seconds,
            clock=self.clock,
            demo=self.demo,
            keymap=self.settings.keymap,
            open_log=self.open_log,
            open_checkpoints=self.open_checkpoints,
        )

    def on_mount(self) -> None:
        """Apply the keymap and surface start-up warnings."""
        self.set_class(self.demo, "-demo")
        if self.settings.keymap:
            try:
                resolved = resolve_keymap(self.settings.keymap)
            except KeymapError as exc:
                # The config loader refuses such a keymap; this guards a Settings built in code.
                self.notify(f"config: keymap: {clean(exc.message)}", severity="error", markup=False)
            else:
                # Key names as key events carry them: a keymap may say "?" for question_mark.
                self.set_keymap({i: ",".join(keys) for i, keys in resolved.items()})
        for warning in self.startup_warnings:
            self.notify(clean(warning), severity="warning", timeout=15, markup=False)

    async def action_quit(self) -> None:
        """Close the providers' connections (briefly: a hung host is abandoned), then exit."""
        await self.fleet.close()
        self.exit()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The fleet commands, then those of Textual's own that ours do not duplicate."""
        if isinstance(screen, MainScreen):
            yield from main_screen_commands(screen)
        shadowed = SHADOWED_SYSTEM_COMMANDS if isinstance(screen, MainScreen) else ()
        for command in super().get_system_commands(screen):
            if command.title not in shadowed:
                yield command


def main_screen_commands(screen: MainScreen) -> Iterable[SystemCommand]:
    """Refresh, every action of the catalog, the fleet pane's commands, the panes, help."""
    yield SystemCommand("Refresh now", "Poll every provider now", screen.action_refresh)
    for spec in CATALOG:
        # Through ask(), so that an action that cannot run says why, as its key does.
        yield SystemCommand(spec.palette_title, spec.palette_help, partial(screen.ask, spec.action))
    for title, help_text, action in FLEET_PALETTE:
        run = partial(screen.run_pane_action, FleetPane.PANE_ID, action)
        yield SystemCommand(title, help_text, run)
    for pane in PANES:
        show = partial(screen.action_show_pane, pane.id)
        yield SystemCommand(f"Show the {pane.title.lower()}", pane.description, show)
    yield SystemCommand("Show keys", "The help screen", screen.action_help)
