"""Benchmark 8: checkpoints: listing 10,000 of them, locally and over SFTP, and inspecting 2 GB.

8a lists a directory of 10,000 entries (checkpoint files and a few Hugging Face
``checkpoint-N/`` directories) with ``list_local``, against ``ls -l`` of the same directory.
8b lists it over SFTP on loopback from a real OpenSSH ``sshd`` with ``list_sftp`` on an
``SshHub`` connection, against ``ssh host ls -l DIR`` through the same sshd, reusing one
connection (``ControlMaster``) as the hub does. 8c inspects a 2.2 GB PyTorch zip checkpoint
built sparse without torch: it must read only the zip directory and the pickle, never a tensor.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    LOOPBACK,
    Figure,
    alternate,
    child_arguments,
    heading,
    isolate_this_process,
    median,
    round_ratios,
    spread,
    write_figures,
)
from runctl_tui.checkpoints.inspect import (
    FileRangeReader,
    Inspection,
    inspect_checkpoint,
    inspect_reader,
)
from runctl_tui.checkpoints.listing import Listing
from runctl_tui.checkpoints.listing_local import list_local
from runctl_tui.checkpoints.writer import (
    FULL,
    TOY,
    Built,
    write_checkpoint,
)

FILES = 10_000
"""Entries in the listed directory: checkpoint files and ``HF_DIRS`` checkpoint directories."""
HF_DIRS = 10
HF_FILES = {
    "config.json": 700,
    "model.safetensors": 2_200_000_000,
    "optimizer.pt": 4_400_000_000,
    "scheduler.pt": 1_064,
    "rng_state.pth": 14_244,
    "training_args.bin": 5_304,
}
CHECKPOINT_BYTES = 2_200_000_000
"""Apparent size of each listed file; the files are sparse, so they take no disk."""
STEP_EVERY = 500

LIST_ROUNDS, QUICK_LIST_ROUNDS = 7, 2
INSPECT_ROUNDS, QUICK_INSPECT_ROUNDS = 9, 3

INSPECT_RATIO_GOAL = 1.5
"""Inspecting the 2.2 GB file may take at most this many times the same model at toy size."""

END_WINDOW = 22 + 0xFFFF + 20
"""The end of a zip read to find its end record: the record, the longest comment, and the zip64
locator. The central directory lies in it when it is small; the rest is whatever precedes it."""

SSHD = Path("/usr/sbin/sshd")


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


# 8a. The directory -----------------------------------------------------------------------------


def make_directory(root: Path) -> int:
    """``FILES`` entries in ``root``, oldest first; how many are files directly in it."""
    root.mkdir(parents=True)
    started = time.time() - FILES * 60
    singles = FILES - HF_DIRS
    for n in range(singles):
        path = root / f"model_{(n + 1) * STEP_EVERY:07d}.pt"
        with path.open("wb") as file:
            file.truncate(CHECKPOINT_BYTES)
        os.utime(path, (started + n * 60, started + n * 60))
    for n in range(HF_DIRS):
        step = (singles + n + 1) * STEP_EVERY
        directory = root / f"checkpoint-{step}"
        directory.mkdir()
        for name, size in HF_FILES.items():
            with (directory / name).open("wb") as file:
                file.truncate(size)
        loss = 0.5 + abs(n - 3) / 10
        state = (
            f'{{"global_step": {step}, "epoch": {n / 4:.2f}, "best_metric": 0.5, '
            f'"best_model_checkpoint": "out/checkpoint-{(singles + 4) * STEP_EVERY}", '
            f'"log_history": [{{"step": {step}, "eval_loss": {loss}}}]}}'
        )
        (directory / "trainer_state.json").write_text(state, encoding="utf-8")
        mtime = started + (singles + n) * 60
        for child in directory.iterdir():
            os.utime(child, (mtime, mtime))
        os.utime(directory, (mtime, mtime))
    return singles


def ls_l(directory: Path) -> None:
    """``ls -l DIR > /dev/null``."""
    subprocess.run(["ls", "-l", str(directory)], stdout=subprocess.DEVNULL, check=True)


def check_listing(listing: Listing, what: str) -> None:
    """Fail unless ``listing`` holds every checkpoint of the directory."""
    if listing.error is not None:
        raise RuntimeError(f"{what}: {listing.error}")
    if len(listing.checkpoints) != FILES or not listing.complete:
        raise RuntimeError(
            f"{what}: {len(listing.checkpoints):,} checkpoints, not {FILES:,}"
            f" (complete: {listing.complete})"
        )


def list_locally(directory: Path, quick: bool) -> list[Figure]:
    """``list_local`` against ``ls -l`` of the same directory, alternating."""
    rounds = QUICK_LIST_ROUNDS if quick else LIST_ROUNDS
    heading(
        f"8a. Checkpoint listing, local: {FILES:,} entries ({FILES - HF_DIRS:,} .pt files,"
        f" {HF_DIRS} checkpoint-N/ directories), {rounds} rounds"
    )
    check_listing(list_local(directory), "list_local")
    ls_l(directory)
    ours: list[float] = []
    theirs: list[float] = []
    for n in range(rounds):
        for who in alternate(n, "ours", "ls"):
            if who == "ours":
                ours.append(timed(lambda: list_local(directory)))
            else:
                theirs.append(timed(lambda: ls_l(directory)))
    ratio = median(ours) / median(theirs)
    print(f"  ls -l > /dev/null   {spread(theirs)}")
    print(f"  list_local          {spread(ours)}")
    print(f"  ratio               {ratio:.2f}x  {round_ratios(ours, theirs)}")
    return [
        Figure(
            "Checkpoints, list 10k local / ls -l",
            ratio,
            "x",
            None,
            f"{median(ours) * 1000:.0f} ms vs {median(theirs) * 1000:.0f} ms",
        )
    ]


# 8b. Over SFTP ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair at ``path`` (and ``path.pub``); the public line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        timeout=10,
    )
    return path.with_name(path.name + ".pub").read_text(encoding="ascii").strip()


@dataclass
class Sshd:
    """A real OpenSSH ``sshd`` on 127.0.0.1 with its own config, host key and one client key."""

    workdir: Path
    home: Path
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_key(self) -> Path:
        """The client's private key, in the isolated HOME."""
        return self.home / ".ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """The known_hosts file trusting only this sshd's host key."""
        return self.home / ".ssh" / "known_hosts"

    def start(self) -> None:
        """Write keys and config, start sshd, wait until it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.client_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        host_key = self.workdir / "ssh_host_ed25519_key"
        host_line = keygen(host_key, "bench-host").split()
        client_line = keygen(self.client_key, "bench-client")
        self.known_hosts.write_text(
            f"[{LOOPBACK}]:{self.port} {host_line[0]} {host_line[1]}\n", encoding="ascii"
        )
        authorized = self.workdir / "authorized_keys"
        authorized.write_text(client_line + "\n", encoding="ascii")
        authorized.chmod(0o600)
        config = self.workdir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress {LOOPBACK}\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {authorized}\nPidFile {self.workdir / 'sshd.pid'}\n"
            "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\n",
            encoding="ascii",
        )
        if os.geteuid() == 0:
            # Privilege separation needs this directory when sshd runs as root.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = self.workdir / "sshd.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited at start: {log.read_text()[-1000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((LOOPBACK, self.port), timeout=0.5),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError(f"sshd did not listen within 10 s: {log.read_text()[-1000:]}")

    def stop(self) -> None:
        """Stop sshd (its sessions end with their clients)."""
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_master(self) -> None:
        """End the shared connection ``ssh`` left running (``ControlPersist``)."""
        subprocess.run(
            [*self.ssh_command(shared=True)[:-1], "-O", "exit", f"{self.user}@{LOOPBACK}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=10,
        )

    def ssh_command(self, *remote: str, shared: bool) -> list[str]:
        """``ssh`` to this sshd with only its key and known_hosts; ``shared`` reuses one
        connection (``ControlMaster``), as the hub does."""
        command = [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.port),
            "-i",
            str(self.client_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
        ]
        if shared:
            command += [
                "-o",
                "ControlMaster=auto",
                "-o",
                f"ControlPath={self.workdir / 'cm'}",
                "-o",
                "ControlPersist=300",
            ]
        return [*command, f"{self.user}@{LOOPBACK}", *remote]


def sshd_missing_reason() -> str | None:
    """Why the SFTP part cannot run here, or ``None`` when it can."""
    if not SSHD.exists():
        return f"OpenSSH server not installed ({SSHD} missing; apt-get install openssh-server)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install openssh-client)"
    return None


async def measure_sftp(
    sshd: Sshd, directory: Path, rounds: int
) -> tuple[list[float], list[float], list[float]]:
    """Seconds per ``list_sftp`` and per ``ssh ls -l`` (shared connection, then a new one)."""
    from runctl_tui.checkpoints.listing_remote import list_sftp
    from runctl_tui.remote.ssh import SshHub, SshTarget

    hub = SshHub(known_hosts=sshd.known_hosts, client_keys=[sshd.client_key], use_user_config=False)
    target = SshTarget(LOOPBACK, sshd.port, sshd.user)
    remote = str(directory)
    shared = sshd.ssh_command("ls", "-l", remote, shared=True)
    fresh = sshd.ssh_command("ls", "-l", remote, shared=False)

    def ssh_ls(command: list[str]) -> None:
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True, timeout=60)

    ours: list[float] = []
    theirs: list[float] = []
    new_connection: list[float] = []
    try:
        # Untimed: the connection is set up once, as it is when the pane opens.
        check_listing(await list_sftp(hub, target, remote), "list_sftp")
        ssh_ls(shared)
        ssh_ls(fresh)
        for n in range(rounds):
            for who in alternate(n, "ours", "ssh"):
                if who == "ours":
                    started = time.perf_counter()
                    listing = await list_sftp(hub, target, remote)
                    ours.append(time.perf_counter() - started)
                    check_listing(listing, "list_sftp")
                else:
                    theirs.append(timed(lambda: ssh_ls(shared)))
            new_connection.append(timed(lambda: ssh_ls(fresh)))
    finally:
        await hub.close()
    return ours, theirs, new_connection


def list_over_sftp(tmp: Path, directory: Path, quick: bool) -> list[Figure]:
    """``list_sftp`` against ``ssh host ls -l DIR`` through the same real sshd."""
    rounds = QUICK_LIST_ROUNDS if quick else LIST_ROUNDS
    heading(f"8b. Checkpoint listing over SFTP: the same {FILES:,} entries, {rounds} rounds")
    missing = sshd_missing_reason()
    if missing:
        print(f"  skipped: {missing}")
        return []
    sshd = Sshd(tmp / "sshd", Path(os.environ["HOME"]))
    sshd.start()
    try:
        ours, theirs, fresh = asyncio.run(measure_sftp(sshd, directory, rounds))
    finally:
        sshd.stop_master()
        sshd.stop()
    ratio = median(ours) / median(theirs)
    print(f"  OpenSSH sshd on {LOOPBACK}:{sshd.port}, user {sshd.user}")
    print(f"  ssh ls -l, shared connection   {spread(theirs)}")
    print(f"  ssh ls -l, new connection      {spread(fresh)}")
    print(f"  list_sftp on the hub's link    {spread(ours)}")
    print(f"  ratio to shared ssh ls -l      {ratio:.2f}x  {round_ratios(ours, theirs)}")
    return [
        Figure(
            "Checkpoints, list 10k SFTP / ssh ls -l",
            ratio,
            "x",
            None,
            f"{median(ours) * 1000:.0f} ms vs {median(theirs) * 1000:.0f} ms;"
            f" new ssh connection {median(fresh) * 1000:.0f} ms",
        )
    ]


# 8c. A 2.2 GB checkpoint, built sparse ----------------------------------------------------------


class CountingReader:
    """A local file's range reader that keeps every range asked for."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        size = os.fstat(self._file.fileno()).st_size
        self.inner = FileRangeReader(self._file, str(path), size)
        self.ranges: list[tuple[int, int]] = []

    @property
    def name(self) -> str:
        """How the file is shown."""
        return self.inner.name

    @property
    def size(self) -> int:
        """Its length in bytes."""
        return self.inner.size

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``, noted."""
        data = self.inner.read_range(start, end)
        self.ranges.append((start, start + len(data)))
        return data

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def inspect_counting(path: Path) -> tuple[Inspection, list[tuple[int, int]]]:
    """Inspect ``path`` through :class:`CountingReader`: the result and the ranges read."""
    reader = CountingReader(path)
    try:
        return inspect_reader(reader), reader.ranges
    finally:
        reader.close()


def stdlib_pickle(path: Path) -> bytes:
    """The least reading for the same facts: ``zipfile`` opens the archive, reads ``data.pkl``."""
    with zipfile.ZipFile(path) as archive:
        return archive.read("archive/data.pkl")


def overlap(ranges: Sequence[tuple[int, int]], regions: Sequence[tuple[int, int]]) -> int:
    """Bytes of ``ranges`` that fall inside any of the sorted, disjoint ``regions``."""
    total = 0
    for start, end in ranges:
        for low, high in regions:
            if low >= end:
                break
            total += max(0, min(end, high) - max(start, low))
    return total


def check_inspection(inspection: Inspection, built: Built) -> None:
    """Fail unless the inspection saw every tensor and parameter of ``built``."""
    if inspection.error is not None:
        raise RuntimeError(f"inspection failed: {inspection.error}")
    if (inspection.tensor_count, inspection.parameter_count) != (built.tensors, built.parameters):
        raise RuntimeError(
            f"inspection found {inspection.tensor_count} tensors, "
            f"{inspection.parameter_count:,} parameters; expected {built.tensors}, "
            f"{built.parameters:,}"
        )


def inspect_big(tmp: Path, quick: bool) -> list[Figure]:
    """Inspect the sparse 2.2 GB checkpoint: bytes and reads, and its time against toy size."""
    rounds = QUICK_INSPECT_ROUNDS if quick else INSPECT_ROUNDS
    started = time.perf_counter()
    big = write_checkpoint(tmp / "model_0120000.pt", FULL)
    small = write_checkpoint(tmp / "toy.pt", TOY)
    built_in = time.perf_counter() - started
    heading(
        f"8c. Checkpoint inspection: a {big.size / 1e9:.2f} GB .pt ({big.tensors} bf16 tensors,"
        f" {big.parameters / 1e9:.2f} B parameters, sparse), {rounds} rounds"
    )
    with zipfile.ZipFile(small.path) as archive:
        if archive.testzip() is not None:
            raise RuntimeError("the toy checkpoint is not a valid zip")
    disk = big.path.stat().st_blocks * 512
    print(
        f"  built in {built_in:.1f} s; {big.size:,} bytes, {disk / 1e6:.1f} MB on disk;"
        f" zip directory {big.directory_bytes:,} B, data.pkl {big.pickle_bytes:,} B"
    )
    inspection, ranges = inspect_counting(big.path)
    check_inspection(inspection, big)
    check_inspection(inspect_checkpoint(small.path), small)
    read = sum(end - start for start, end in ranges)
    in_tensors = overlap(sorted(ranges), big.tensor_ranges)
    allowed = sorted([(0, big.pickle_bytes), (big.size - END_WINDOW, big.size)])
    outside = read - overlap(sorted(ranges), allowed)
    window = big.size - END_WINDOW
    before_window = [(low, min(high, window)) for low, high in big.tensor_ranges if low < window]
    tensors_read = overlap(sorted(ranges), before_window)
    if read != inspection.bytes_read or len(ranges) != inspection.reads:
        raise RuntimeError(
            f"the inspection says {inspection.bytes_read:,} bytes in {inspection.reads} reads;"
            f" the reader saw {read:,} in {len(ranges)}"
        )
    ours: list[float] = []
    toy: list[float] = []
    stdlib: list[float] = []
    for n in range(rounds):
        for who in alternate(n, "big", "toy"):
            if who == "big":
                ours.append(timed(lambda: inspect_checkpoint(big.path)))
            else:
                toy.append(timed(lambda: inspect_checkpoint(small.path)))
        stdlib.append(timed(lambda: stdlib_pickle(big.path)))
    ratio = median(ours) / median(toy)
    shown = ", ".join(f"[{start:,}, +{end - start:,})" for start, end in ranges)
    print(f"  reads: {shown}")
    print(
        f"  read {read:,} of {big.size:,} bytes ({read / big.size:.6%}) in {len(ranges)} reads;"
        f" {outside:,} outside data.pkl and the last {END_WINDOW:,} bytes"
    )
    print(
        f"  tensor data read: {in_tensors:,} bytes, of which {tensors_read:,} before the end"
        " window (the window is read whole to find the end record)"
    )
    print(f"  zipfile + read data.pkl (2.2 GB)   {spread(stdlib)}")
    print(f"  inspect, toy-size checkpoint       {spread(toy)}")
    print(f"  inspect, 2.2 GB checkpoint         {spread(ours)}")
    print(f"  ratio 2.2 GB / toy                 {ratio:.2f}x  {round_ratios(ours, toy)}")
    return [
        Figure(
            "Checkpoint inspect 2.2 GB, tensor reads",
            tensors_read,
            "B",
            0,
            f"outside the end window; read {read / 1000:.0f} KB in {len(ranges)} reads:"
            f" pickle {big.pickle_bytes / 1000:.0f} KB, last {END_WINDOW / 1000:.0f} KB"
            f" (directory {big.directory_bytes / 1000:.0f} KB)",
        ),
        Figure(
            "Checkpoint inspect 2.2 GB / toy size",
            ratio,
            "x",
            INSPECT_RATIO_GOAL,
            f"{median(ours) * 1000:.0f} ms vs {median(toy) * 1000:.0f} ms;"
            f" zipfile + data.pkl {median(stdlib) * 1000:.0f} ms",
        ),
    ]


# Main ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checkpoint benchmarks and print their report."""
    args = child_arguments(__doc__ or "", argv)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as name:
        tmp = Path(name)
        isolate_this_process(tmp / "home")
        directory = tmp / "checkpoints"
        started = time.perf_counter()
        make_directory(directory)
        print(f"  {FILES:,} entries written in {time.perf_counter() - started:.1f} s")
        figures += list_locally(directory, args.quick)
        figures += list_over_sftp(tmp, directory, args.quick)
        figures += inspect_big(tmp, args.quick)
    write_figures(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
