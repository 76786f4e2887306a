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
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
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


class PickleWriter:
    """Protocol 2 pickle opcodes, written directly: the shape ``torch.save`` gives ``data.pkl``,
    without torch."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")
        self._memo: dict[tuple[str, str], int] = {}

    def op(self, code: bytes) -> None:
        """One argument-less opcode."""
        self.out += code

    def global_(self, module: str, name: str) -> None:
        """``module.name``, memoised like the pickler does."""
        key = (module, name)
        if key in self._memo:
            self.out += b"j" + struct.pack("<I", self._memo[key])
            return
        self.out += f"c{module}\n{name}\n".encode()
        self._memo[key] = len(self._memo)
        self.out += b"r" + struct.pack("<I", self._memo[key])

    def str_(self, text: str) -> None:
        """A ``BINUNICODE`` string."""
        data = text.encode()
        self.out += b"X" + struct.pack("<I", len(data)) + data

    def int_(self, value: int) -> None:
        """An int, in the shortest opcode."""
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])
        elif -(2**31) <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)
        else:
            data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            self.out += b"\x8a" + bytes([len(data)]) + data

    def float_(self, value: float) -> None:
        """A ``BINFLOAT``."""
        self.out += b"G" + struct.pack(">d", value)

    def tuple_(self, values: Sequence[int]) -> None:
        """A tuple of ints."""
        self.op(b"(")
        for value in values:
            self.int_(value)
        self.op(b"t")

    def ordered_dict(self) -> None:
        """An empty ``collections.OrderedDict()``."""
        self.global_("collections", "OrderedDict")
        self.op(b")")
        self.op(b"R")

    def tensor(self, storage_type: str, key: str, shape: Sequence[int]) -> None:
        """``_rebuild_tensor_v2`` of a contiguous tensor over storage ``key``."""
        numel = 1
        for size in shape:
            numel *= size
        strides = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * shape[i + 1]
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.op(b"(")
        self.op(b"(")
        self.str_("storage")
        self.global_("torch", storage_type)
        self.str_(key)
        self.str_("cpu")
        self.int_(numel)
        self.op(b"t")
        self.op(b"Q")
        self.int_(0)
        self.tuple_(shape)
        self.tuple_(strides)
        self.op(b"\x89")
        self.ordered_dict()
        self.op(b"t")
        self.op(b"R")

    def done(self) -> bytes:
        """The finished pickle."""
        return bytes(self.out + b".")


@dataclass(frozen=True)
class Model:
    """A Llama-style decoder's dimensions (TinyLlama 1.1B at full size)."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    kv_hidden: int

    def tensors(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        """Its state dict's names and shapes, in order."""
        yield "model.embed_tokens.weight", (self.vocab, self.hidden)
        for n in range(self.layers):
            at = f"model.layers.{n}."
            yield at + "self_attn.q_proj.weight", (self.hidden, self.hidden)
            yield at + "self_attn.k_proj.weight", (self.kv_hidden, self.hidden)
            yield at + "self_attn.v_proj.weight", (self.kv_hidden, self.hidden)
            yield at + "self_attn.o_proj.weight", (self.hidden, self.hidden)
            yield at + "mlp.gate_proj.weight", (self.intermediate, self.hidden)
            yield at + "mlp.up_proj.weight", (self.intermediate, self.hidden)
            yield at + "mlp.down_proj.weight", (self.hidden, self.intermediate)
            yield at + "input_layernorm.weight", (self.hidden,)
            yield at + "post_attention_layernorm.weight", (self.hidden,)
        yield "model.norm.weight", (self.hidden,)
        yield "lm_head.weight", (self.vocab, self.hidden)


FULL = Model(vocab=32_000, hidden=2048, intermediate=5632, layers=22, kv_hidden=256)
TOY = Model(vocab=320, hidden=32, intermediate=88, layers=22, kv_hidden=8)
"""The same names and nesting, so the same pickle to walk, over a few KB of tensors."""


def checkpoint_pickle(model: Model) -> tuple[bytes, list[int]]:
    """``data.pkl`` of ``{"model": state_dict, "optimizer": ..., "epoch", "global_step",
    "hyper_parameters"}`` in bf16, and each storage's byte size."""
    writer = PickleWriter()
    sizes: list[int] = []
    writer.op(b"}")
    writer.op(b"(")
    writer.str_("model")
    writer.ordered_dict()
    writer.op(b"(")
    for name, shape in model.tensors():
        writer.str_(name)
        writer.tensor("BFloat16Storage", str(len(sizes)), shape)
        numel = 1
        for size in shape:
            numel *= size
        sizes.append(numel * 2)
    writer.op(b"u")
    writer.str_("optimizer")
    writer.op(b"}")
    writer.op(b"(")
    writer.str_("state")
    writer.op(b"}")
    writer.str_("param_groups")
    writer.op(b"]")
    writer.op(b"}")
    writer.op(b"(")
    writer.str_("lr")
    writer.float_(3e-4)
    writer.str_("weight_decay")
    writer.float_(0.1)
    writer.str_("params")
    writer.op(b"]")
    writer.op(b"(")
    for n in range(len(sizes)):
        writer.int_(n)
    writer.op(b"e")
    writer.op(b"u")
    writer.op(b"a")
    writer.op(b"u")
    writer.str_("epoch")
    writer.int_(3)
    writer.str_("global_step")
    writer.int_(120_000)
    writer.str_("hyper_parameters")
    writer.op(b"}")
    writer.op(b"(")
    writer.str_("hidden_size")
    writer.int_(model.hidden)
    writer.str_("num_hidden_layers")
    writer.int_(model.layers)
    writer.str_("vocab_size")
    writer.int_(model.vocab)
    writer.op(b"u")
    writer.op(b"u")
    return writer.done(), sizes


_ZERO_CRCS: dict[int, int] = {}
_ZEROS = bytes(16 * 1024 * 1024)


def zeros_crc(size: int) -> int:
    """CRC-32 of ``size`` zero bytes (the model's layers repeat sizes, so each is done once)."""
    if size not in _ZERO_CRCS:
        crc = 0
        for _ in range(size // len(_ZEROS)):
            crc = zlib.crc32(_ZEROS, crc)
        _ZERO_CRCS[size] = zlib.crc32(_ZEROS[: size % len(_ZEROS)], crc)
    return _ZERO_CRCS[size]


@dataclass(frozen=True)
class Built:
    """A checkpoint written by :func:`write_checkpoint`, and where its parts lie."""

    path: Path
    size: int
    directory_bytes: int
    """The central directory and the end record."""
    pickle_bytes: int
    """``data.pkl``, with its local header."""
    tensor_ranges: tuple[tuple[int, int], ...]
    """``[start, end)`` of every tensor storage in the file."""
    parameters: int
    tensors: int


def write_checkpoint(path: Path, model: Model) -> Built:
    """A stored zip laid out as ``torch.save`` writes one, tensors left as holes in the file.

    The members are those of ``torch.save`` (``archive/data.pkl``, ``byteorder``, one
    ``data/N`` per storage, aligned to 64 bytes by padding in the local header, ``version``);
    the storages are never written, only skipped over, so 2.2 GB take a few KB of disk.
    """
    pickle, storage_sizes = checkpoint_pickle(model)
    members: list[tuple[str, bytes | int]] = [
        ("archive/data.pkl", pickle),
        ("archive/.format_version", b"1"),
        ("archive/.storage_alignment", b"64"),
        ("archive/byteorder", b"little"),
        *((f"archive/data/{n}", size) for n, size in enumerate(storage_sizes)),
        ("archive/version", b"3\n"),
        ("archive/.data/serialization_id", b"0" * 40),
    ]
    central = bytearray()
    ranges: list[tuple[int, int]] = []
    pickle_bytes = 0
    with path.open("wb") as file:
        for name, content in members:
            raw = name.encode()
            offset = file.tell()
            size = content if isinstance(content, int) else len(content)
            crc = zeros_crc(content) if isinstance(content, int) else zlib.crc32(content)
            header_end = offset + 30 + len(raw)
            padding = (-(header_end + 4)) % 64 if isinstance(content, int) else 0
            extra = b"FB" + struct.pack("<H", padding) + b"Z" * padding if padding else b""
            file.write(
                struct.pack(
                    "<4sHHHHHIIIHH",
                    b"PK\x03\x04",
                    20,
                    0,
                    0,
                    0,
                    0x21,
                    crc,
                    size,
                    size,
                    len(raw),
                    len(extra),
                )  # fmt: skip
                + raw
                + extra
            )
            if isinstance(content, int):
                start = file.tell()
                file.seek(size, os.SEEK_CUR)
                ranges.append((start, start + size))
            else:
                file.write(content)
                if name.endswith("data.pkl"):
                    pickle_bytes = file.tell() - offset
            central += (
                struct.pack(
                    "<4sHHHHHHIIIHHHHHII",
                    b"PK\x01\x02",
                    20,
                    20,
                    0,
                    0,
                    0,
                    0x21,
                    crc,
                    size,
                    size,
                    len(raw),
                    0,
                    0,
                    0,
                    0,
                    0,
                    offset,
                )  # fmt: skip
                + raw
            )
        directory_at = file.tell()
        count = len(members)
        file.write(central)
        file.write(
            struct.pack(
                "<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), directory_at, 0
            )
        )
        total = file.tell()
    parameters = sum(size // 2 for size in storage_sizes)
    return Built(
        path, total, total - directory_at, pickle_bytes, tuple(ranges), parameters, len(ranges)
    )


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
