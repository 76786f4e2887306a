"""Checkpoints written by hand, without torch or safetensors: a PyTorch zip-format ``.pt`` laid
out as ``torch.save`` writes one, a safetensors file, and a Hugging Face style
``checkpoint-N/`` directory. Tensors hold zeros; the structure is real, so the inspection
reads them as it reads a real run's. Used by the demo's training run and the benchmarks.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


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


def checkpoint_pickle(
    model: Model, *, epoch: int = 3, global_step: int = 120_000
) -> tuple[bytes, list[int]]:
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
    writer.int_(epoch)
    writer.str_("global_step")
    writer.int_(global_step)
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


def write_checkpoint(
    path: Path, model: Model, *, epoch: int = 3, global_step: int = 120_000
) -> Built:
    """A stored zip laid out as ``torch.save`` writes one, tensors left as holes in the file.

    The members are those of ``torch.save`` (``archive/data.pkl``, ``byteorder``, one
    ``data/N`` per storage, aligned to 64 bytes by padding in the local header, ``version``);
    the storages are never written, only skipped over, so 2.2 GB take a few KB of disk.
    """
    pickle, storage_sizes = checkpoint_pickle(model, epoch=epoch, global_step=global_step)
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


SAFETENSORS_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1}
"""safetensors dtype names this writer knows, with their sizes in bytes."""


def write_safetensors(
    path: Path,
    tensors: Sequence[tuple[str, str, Sequence[int]]],
    metadata: Mapping[str, str] | None = None,
) -> int:
    """A safetensors file of ``(name, dtype, shape)`` tensors, all zeros; returns its size.

    The header is the JSON the format specifies (``data_offsets`` into the data that
    follows, padded with spaces to 8 bytes); the data is written as a hole.
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, dtype, shape in tensors:
        numel = 1
        for size in shape:
            numel *= size
        end = offset + numel * SAFETENSORS_DTYPES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as file:
        file.write(struct.pack("<Q", len(raw)) + raw)
        if offset:
            file.seek(offset - 1, os.SEEK_CUR)
            file.write(b"\0")
        return file.tell()


def model_tensors(model: Model, dtype: str = "BF16") -> list[tuple[str, str, tuple[int, ...]]]:
    """``model``'s state dict as ``(name, dtype, shape)`` for :func:`write_safetensors`."""
    return [(name, dtype, shape) for name, shape in model.tensors()]


def write_hf_checkpoint(
    directory: Path,
    model: Model,
    *,
    step: int,
    best_metric: float | None = None,
    best_model_checkpoint: str | None = None,
    log_history: Sequence[Mapping[str, float]] = (),
    epoch: float = 0.0,
) -> Path:
    """``directory/checkpoint-{step}/`` as the Hugging Face Trainer saves one: config.json,
    model.safetensors and trainer_state.json; built beside it and renamed in place, so a
    reader never sees half of it. Returns the directory."""
    final = directory / f"checkpoint-{step}"
    partial = directory / f".checkpoint-{step}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": model.hidden,
        "intermediate_size": model.intermediate,
        "num_hidden_layers": model.layers,
        "num_attention_heads": max(1, model.hidden // 8),
        "num_key_value_heads": max(1, model.kv_hidden // 8),
        "vocab_size": model.vocab,
        "torch_dtype": "bfloat16",
    }
    (partial / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    write_safetensors(partial / "model.safetensors", model_tensors(model), {"format": "pt"})
    state = {
        "best_metric": best_metric,
        "best_model_checkpoint": best_model_checkpoint,
        "epoch": epoch,
        "global_step": step,
        "log_history": [dict(entry) for entry in log_history],
        "max_steps": 0,
        "save_steps": 0,
    }
    (partial / "trainer_state.json").write_text(
        json.dumps(state, indent=2) + "\n", encoding="utf-8"
    )
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    return final
