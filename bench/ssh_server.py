"""asyncssh servers on 127.0.0.1 in their own process, one port per simulated host.

``python -m bench.ssh_server COUNT HOST_KEY AUTHORIZED_KEYS`` prints the ports on one line and
serves until stdin closes. Each command runs under ``/bin/sh`` on this machine, so a host's facts
are real ones; a separate process keeps the server's work off the measured app's GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

import asyncssh

COMMAND_TIMEOUT = 10.0


async def run_command(process: asyncssh.SSHServerProcess[str]) -> None:
    """Run the client's command with ``/bin/sh``, send its output, exit with its status."""
    child = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        process.command or "true",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), COMMAND_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        process.exit(124)
        return
    process.stdout.write(out.decode("utf-8", "replace"))
    process.stderr.write(err.decode("utf-8", "replace"))
    process.exit(child.returncode or 0)


async def serve(count: int, host_key: str, authorized: str) -> None:
    """Listen on ``count`` ports; print them; stop when stdin closes."""
    servers = [
        await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            authorized_client_keys=authorized,
            process_factory=run_command,
        )
        for _ in range(count)
    ]
    print(" ".join(str(s.sockets[0].getsockname()[1]) for s in servers), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    for server in servers:
        server.close()


def main(argv: Sequence[str]) -> int:
    """Serve until stdin reaches end of file."""
    asyncio.run(serve(int(argv[0]), argv[1], argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
