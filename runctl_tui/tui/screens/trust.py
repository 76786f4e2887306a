"""Asking before an SSH host's unknown key is trusted: its fingerprint, and where it is written.

Like every confirmation here, keys that reached the dialog before it was on screen do nothing
and only a cancel counts during its first moments: a burst of keys typed ahead can never
trust a key the user has not seen. Cancel is the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from runctl_tui.text import one_line
from runctl_tui.tui.screens.confirm import KeyGuard, event_clock, guarded_key

if TYPE_CHECKING:
    from runctl_tui.models import Instance
    from runctl_tui.remote.ssh import SshHub, SshTarget

GUARD_SECONDS = 0.5


class TrustHostKeyScreen(ModalScreen[bool]):
    """Trust ``fingerprint`` for ``host`` (written to ``known_hosts``), or not."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "trust", "Trust", show=False),
        Binding("n,escape", "cancel", "Cancel", show=False),
    ]
    CANCEL_KEYS = frozenset({"n", "escape"})

    DEFAULT_CSS = """
    TrustHostKeyScreen { align: center middle; }
    TrustHostKeyScreen > Vertical {
        width: 90; max-width: 100%; height: auto; padding: 1 2;
        border: thick $warning; background: $surface;
    }
    TrustHostKeyScreen .title { text-style: bold; margin-bottom: 1; }
    TrustHostKeyScreen #trust-ignored { color: $text-muted; height: auto; }
    TrustHostKeyScreen Horizontal { height: auto; margin-top: 1; }
    TrustHostKeyScreen Button { margin-right: 2; }
    """

    def __init__(self, host: str, fingerprint: str, algorithm: str, known_hosts: str) -> None:
        super().__init__()
        self.host = host
        self.fingerprint = fingerprint
        self.algorithm = algorithm
        self.known_hosts = known_hosts
        self.guard = KeyGuard(GUARD_SECONDS)
        self.ignored = 0

    def compose(self) -> ComposeResult:
        """Who, which key, where it goes, and the two buttons."""
        with Vertical():
            yield Label(Text("Unknown SSH host key"), classes="title")
            body = Text()
            body.append("host         ", style="dim")
            body.append(one_line(self.host, 70), style="bold")
            body.append("\nkey          ", style="dim")
            body.append(one_line(f"{self.fingerprint} ({self.algorithm})", 80), style="bold")
            body.append("\nwritten to   ", style="dim")
            body.append(one_line(self.known_hosts, 70))
            body.append(
                "\n\nThis host has never been seen. Check the fingerprint with the machine's "
                "owner (or its console: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) before "
                "trusting it. A key that changes later is always refused."
            )
            yield Static(body)
            yield Static(Text(""), id="trust-ignored")
            with Horizontal():
                yield Button("Cancel (n)", id="trust-cancel", variant="primary")
                yield Button("Trust and connect (y)", id="trust-yes", variant="warning")

    def on_mount(self) -> None:
        """Cancel has the focus; the guard starts once the dialog is painted."""
        self.query_one("#trust-cancel", Button).focus()
        self.call_after_refresh(lambda: self.guard.show(event_clock()))

    async def on_key(self, event: events.Key) -> None:
        """Drop keys from before the dialog was shown, and all but a cancel during the guard."""
        if await guarded_key(self, event, self.guard, self.CANCEL_KEYS):
            return
        self.ignored += 1
        plural = "key" if self.ignored == 1 else "keys"
        self.query_one("#trust-ignored", Static).update(
            Text(f"ignored {self.ignored} {plural} pressed before this dialog was ready")
        )

    def action_trust(self) -> None:
        """Trust the key, if the dialog has been on screen long enough."""
        if self.guard.armed(event_clock()):
            self.dismiss(True)

    def action_cancel(self) -> None:
        """Do not trust it."""
        self.dismiss(False)

    @on(Button.Pressed, "#trust-yes")
    def _yes(self) -> None:
        self.action_trust()

    @on(Button.Pressed, "#trust-cancel")
    def _no(self) -> None:
        self.action_cancel()


async def ensure_host_trusted(app: App[object], hub: SshHub, target: SshTarget) -> str | None:
    """Connect to ``target`` once before using it: an unknown host key is shown and trusted
    (written to known_hosts) only if the user says so; a changed key is refused. Why not, in
    one line; ``None`` when the caller may go on (other failures are left to it: it retries)."""
    from runctl_tui.remote.ssh import (
        HostKeyError,
        SshError,
        UnknownHostKey,
        trust_file,
        trust_host_key,
    )

    try:
        await hub.connection(target)
    except UnknownHostKey as exc:
        if exc.key is None:
            return str(exc)
        where = trust_file(target, known_hosts=hub.known_hosts, use_user_config=hub.use_user_config)
        screen = TrustHostKeyScreen(
            str(target), exc.fingerprint, exc.key.get_algorithm(), str(where)
        )
        if not await app.push_screen_wait(screen):
            return f"host key of {target} not trusted; {exc}"
        try:
            written = trust_host_key(
                target, exc.key, known_hosts=hub.known_hosts, use_user_config=hub.use_user_config
            )
        except OSError as error:
            return f"cannot write {where}: {error.strerror or error}"
        app.notify(
            one_line(f"trusted {exc.fingerprint} for {target} in {written}", 300),
            timeout=6,
            markup=False,
        )
    except HostKeyError as exc:
        return str(exc)
    except SshError:
        return None
    return None


def hub_for_row(
    providers: Mapping[str, object],
    target: SshTarget | None,
    origin: Instance | None,
    own: Callable[[], SshHub],
) -> SshHub:
    """The hub to reach ``target`` through: the one of the provider of the row it belongs to
    (its keys, its open connection), else the fleet's shared one, else ``own()``."""
    from runctl_tui.remote.ssh import SshHub

    owner = providers.get(origin.provider) if origin is not None else None
    hub_for = getattr(owner, "hub_for", None)
    if hub_for is not None and target is not None:
        hub = hub_for(target)
        if isinstance(hub, SshHub):
            return hub
    for provider in providers.values():
        hub = getattr(provider, "hub", None)
        if isinstance(hub, SshHub):
            return hub
    return own()
