"""Local stand-ins of every provider the app can show, in a private HOME.

EC2 is a moto server, RunPod the stand-in of its API, SSH hosts asyncssh servers, each in its
own process on 127.0.0.1, so their work never competes with the measured app for its GIL. The
app reaches them the way it reaches real accounts: ``AWS_ENDPOINT_URL`` with fake keys,
``RUNPOD_API_BASE_URL`` with a fake key, and ``[[ssh.hosts]]`` aliases from ``~/.ssh/config``
with the client key and ``known_hosts`` in that HOME.
"""

from __future__ import annotations

import getpass
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.common import LOOPBACK, ROOT

KEY = ("bench", "bench")
"""Fake AWS credentials; only moto on 127.0.0.1 ever sees them."""
RUNPOD_KEY = "bench-runpod-key"
"""The stand-in's key; a real RunPod key is never set."""
AMI = "ami-0b1e2c3d4e5f60718"
EC2_NAME = "bench-ec2-"
"""Every seeded instance's Name starts with this: a marker of its row on screen."""
EC2_TYPES = ("g5.xlarge", "p4d.24xlarge", "g6e.12xlarge", "c6i.xlarge")


@dataclass(frozen=True)
class Accounts:
    """Where the stand-ins listen and what an app's environment needs to use them."""

    home: Path
    """HOME for the app: ``.ssh`` holds the client key, ``known_hosts`` and ``config``."""
    env: dict[str, str]
    """Variables to add to an isolated environment (endpoint, fake keys, config path)."""
    regions: tuple[str, ...]
    ssh_labels: tuple[str, ...]
    pods: int


def child_server(stack: ExitStack, argv: Sequence[str], env: Mapping[str, str]) -> str:
    """Start a server process that prints one line when ready; return that line.

    The server stops when its stdin closes, which ``stack`` does on exit (or the OS, if this
    process dies first).
    """
    errors: IO[bytes] = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
    )
    stack.callback(stop_server, server)
    assert server.stdout is not None
    line = server.stdout.readline().decode().strip()
    if not line:
        errors.seek(0)
        raise RuntimeError(f"{' '.join(argv)} failed to start: {errors.read()[-800:]!r}")
    return line


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Close the server's stdin (its signal to stop) and reap it."""
    if server.stdin is not None:
        server.stdin.close()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def seed_ec2(url: str, regions: Sequence[str], per_region: int) -> None:
    """Launch ``per_region`` instances in each region through the EC2 API; one in five stopped."""
    import boto3.session

    session = boto3.session.Session(aws_access_key_id=KEY[0], aws_secret_access_key=KEY[1])
    for region in regions:
        client = session.client("ec2", region_name=region, endpoint_url=url)
        for n in range(per_region):
            tags = {"Name": f"{EC2_NAME}{region}-{n:02d}", "project": "bench", "owner": "bench"}
            answer = client.run_instances(
                ImageId=AMI,
                MinCount=1,
                MaxCount=1,
                InstanceType=EC2_TYPES[n % len(EC2_TYPES)],  # type: ignore[arg-type]
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                    }
                ],
            )
            if n % 5 == 4:
                client.stop_instances(InstanceIds=[answer["Instances"][0]["InstanceId"]])


def write_ssh_keys(home: Path, workdir: Path) -> tuple[Path, Path, str]:
    """The client key in ``home/.ssh``; a host key and authorized keys for the server.

    Returns the host key's path, the authorized-keys path and the host's public key line.
    """
    import asyncssh

    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    client = asyncssh.generate_private_key("ssh-ed25519", comment="runctl-bench")
    client.write_private_key(ssh_dir / "id_ed25519")
    (ssh_dir / "id_ed25519").chmod(0o600)
    client.write_public_key(ssh_dir / "id_ed25519.pub")
    host = asyncssh.generate_private_key("ssh-ed25519", comment="runctl-bench-host")
    host_key, authorized = workdir / "ssh_host_key", workdir / "authorized_keys"
    host.write_private_key(host_key)
    host_key.chmod(0o600)
    client.write_public_key(authorized)
    algorithm, blob = host.export_public_key("openssh").decode().split()[:2]
    return host_key, authorized, f"{algorithm} {blob}"


def write_ssh_aliases(home: Path, ports: Sequence[int], host_public: str) -> tuple[str, ...]:
    """``known_hosts`` trusting the host key on each port, and ``config`` aliases ``lab-N``."""
    user = getpass.getuser()
    known, config, labels = [], [], []
    for n, port in enumerate(ports, start=1):
        labels.append(f"lab-{n}")
        known.append(f"[{LOOPBACK}]:{port} {host_public}\n")
        config.append(
            f"Host lab-{n}\n  HostName {LOOPBACK}\n  Port {port}\n  User {user}\n"
            "  IdentityFile ~/.ssh/id_ed25519\n  IdentitiesOnly yes\n"
        )
    (home / ".ssh" / "known_hosts").write_text("".join(known))
    (home / ".ssh" / "config").write_text("".join(config))
    return tuple(labels)


def config_text(regions: Sequence[str], ssh_labels: Sequence[str], local: bool) -> str:
    """The app's config: the regions, the SSH hosts by alias, this machine on or off."""
    lines = ["[aws]", f"regions = [{', '.join(repr(r) for r in regions)}]".replace("'", '"')]
    lines += ["", "[local]", f"enabled = {'true' if local else 'false'}"]
    for label in ssh_labels:
        lines += [
            "",
            "[[ssh.hosts]]",
            f'host = "{label}"',
            f'label = "{label}"',
            "hourly_usd = 1.2",
        ]
    return "\n".join(lines) + "\n"


@contextmanager
def local_accounts(
    root: Path,
    base_env: Mapping[str, str],
    *,
    regions: Sequence[str] = ("us-east-1", "eu-west-1"),
    ec2_per_region: int = 10,
    pods: int = 0,
    ssh_hosts: int = 0,
    local: bool = True,
) -> Iterator[Accounts]:
    """Start and seed the stand-ins; yield how to reach them; stop them on exit.

    ``pods=0`` leaves RunPod without a key (not configured), ``ssh_hosts=0`` lists no host,
    ``ec2_per_region=0`` starts no EC2 server and turns ``[aws]`` off.
    """
    home, workdir = root / "home", root / "servers"
    home.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    server_env = {**base_env, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    env: dict[str, str] = {"HOME": str(home)}
    labels: tuple[str, ...] = ()
    with ExitStack() as stack:
        if ec2_per_region:
            port = child_server(stack, ["-m", "bench.moto_server"], server_env)
            url = f"http://{LOOPBACK}:{int(port)}"
            seed_ec2(url, regions, ec2_per_region)
            env.update(
                AWS_ENDPOINT_URL=url,
                AWS_ACCESS_KEY_ID=KEY[0],
                AWS_SECRET_ACCESS_KEY=KEY[1],
                AWS_DEFAULT_REGION=regions[0],
            )
        else:
            env["RUNCTL_TUI_AWS__ENABLED"] = "false"
        if pods:
            argv = ["-m", "bench.runpod_server", str(pods), RUNPOD_KEY]
            port = child_server(stack, argv, server_env)
            env.update(
                RUNPOD_API_KEY=RUNPOD_KEY, RUNPOD_API_BASE_URL=f"http://{LOOPBACK}:{int(port)}"
            )
        if ssh_hosts:
            host_key, authorized, host_public = write_ssh_keys(home, workdir)
            argv = ["-m", "bench.ssh_server", str(ssh_hosts), str(host_key), str(authorized)]
            ports = [int(p) for p in child_server(stack, argv, server_env).split()]
            labels = write_ssh_aliases(home, ports, host_public)
        config = root / "config.toml"
        config.write_text(config_text(regions, labels, local), encoding="utf-8")
        env["RUNCTL_TUI_CONFIG"] = str(config)
        yield Accounts(home, env, tuple(regions), labels, pods)
