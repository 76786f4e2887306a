"""One moto EC2 server on 127.0.0.1 in its own process: prints its port, serves until stdin closes.

The scale benchmark starts one per region, as real regions are independent endpoints. Reading
stdin to EOF ties the server's life to the parent's, even if the parent is killed.
"""

from __future__ import annotations

import logging
import os
import sys

from bench.common import LOOPBACK


def main() -> int:
    """Serve until stdin reaches end of file."""
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(port, flush=True)
    sys.stdin.read()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
