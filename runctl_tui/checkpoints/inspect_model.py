"""What an inspection found, as frozen pydantic models with a JSON form and a text form.

Names, keys and values come from the checkpoint and may be hostile: the models keep them as
read (clipped in length), and :meth:`Inspection.summary_lines` passes every one through
:func:`runctl_tui.text.one_line` before it becomes text. Error messages are built safe.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from runctl_tui.text import one_line

JsonScalar = str | int | float | bool | None
"""A value read from a JSON file (``config.json``, ``trainer_state.json``), kept only if scalar."""

MAX_NAME = 1024
"""Longest name or value kept in a model; longer ones are clipped with an ellipsis."""


def clip_name(text: str, limit: int = MAX_NAME) -> str:
    """``text`` at most ``limit`` characters long, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_bytes(count: int) -> str:
    """``1.5 MB``: a byte count in decimal units."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"  # pragma: no cover


def human_count(count: int) -> str:
    """``1.2M``, ``7.0B``: a parameter count the way model cards write it."""
    if count < 1000:
        return str(count)
    value = float(count)
    for unit in ("K", "M", "B", "T"):
        value /= 1000
        if value < 1000 or unit == "T":
            return f"{value:.1f}{unit}"
    return str(count)  # pragma: no cover


class CheckpointFormat(StrEnum):
    """What kind of file or directory an inspection looked at."""

    PYTORCH = "pytorch"
    """``torch.save`` zip format (``.pt``, ``.pth``, ``.bin``, Lightning ``.ckpt``)."""
    PYTORCH_LEGACY = "pytorch-legacy"
    """The pre-1.6 non-zip ``torch.save`` format: not inspected."""
    TORCHSCRIPT = "torchscript"
    PICKLE = "pickle"
    SAFETENSORS = "safetensors"
    NPZ = "npz"
    NPY = "npy"
    HUGGINGFACE = "huggingface"
    """A Hugging Face Trainer checkpoint directory (``checkpoint-500/``)."""
    DIRECTORY = "directory"
    UNKNOWN = "unknown"


FORMAT_LABELS = {
    CheckpointFormat.PYTORCH: "PyTorch zip",
    CheckpointFormat.PYTORCH_LEGACY: "PyTorch legacy",
    CheckpointFormat.TORCHSCRIPT: "TorchScript",
    CheckpointFormat.PICKLE: "pickle",
    CheckpointFormat.SAFETENSORS: "safetensors",
    CheckpointFormat.NPZ: "NumPy npz",
    CheckpointFormat.NPY: "NumPy npy",
    CheckpointFormat.HUGGINGFACE: "Hugging Face checkpoint",
    CheckpointFormat.DIRECTORY: "directory",
    CheckpointFormat.UNKNOWN: "unknown format",
}


class TensorInfo(BaseModel):
    """One tensor or array: where it sits, its element type and its shape."""

    model_config = ConfigDict(frozen=True)

    name: str
    """Dotted key path (``state_dict.model.0.weight``), or the array's name in an ``.npz``."""
    dtype: str
    """``float32``, ``bfloat16``...; ``unknown`` when the checkpoint does not say."""
    shape: tuple[int, ...] | None = None
    """``None`` when the shape could not be recovered (sparse, nested, object arrays)."""
    elements: int | None = None
    note: str = ""
    """Why it is special: ``parameter``, ``meta``, ``quantized``, ``object array (pickled)...``."""


class KeyInfo(BaseModel):
    """One top-level key of a checkpoint (``state_dict``, ``optimizer_states``, ``epoch``...)."""

    model_config = ConfigDict(frozen=True)

    key: str
    kind: str
    """``dict``, ``list``, ``tensor``, ``int``, ``str``... or ``object`` for anything built."""
    value: str | None = None
    """The value as short text, for scalars."""
    tensors: int = 0
    parameters: int = 0
    """Tensor elements under this key."""


class ScalarInfo(BaseModel):
    """A scalar somewhere in the checkpoint: ``epoch = 3``, ``hyper_parameters.lr = 0.001``."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: str
    """Python literal text, clipped."""
    kind: str


class ShardIndex(BaseModel):
    """A sharded checkpoint's index (``model.safetensors.index.json``)."""

    model_config = ConfigDict(frozen=True)

    file: str
    shards: tuple[str, ...]
    total_size: int | None = None
    """Bytes of tensor data, as the index states it."""
    tensors: int = 0


class TrainerState(BaseModel):
    """The Hugging Face Trainer's ``trainer_state.json``, the parts worth a glance."""

    model_config = ConfigDict(frozen=True)

    global_step: int | None = None
    epoch: float | None = None
    best_metric: float | None = None
    best_model_checkpoint: str | None = None
    log_history_tail: tuple[dict[str, JsonScalar], ...] = ()
    """The last few ``log_history`` entries, scalars only."""


class Inspection(BaseModel):
    """Everything read from one checkpoint file or directory, without running anything in it."""

    model_config = ConfigDict(frozen=True)

    name: str
    format: CheckpointFormat = CheckpointFormat.UNKNOWN
    size: int | None = None
    """Bytes on storage (the sum of the files for a directory)."""
    error: str | None = None
    """One line naming the file, when it could not be inspected (truncated, corrupt, refused)."""
    unsafe: tuple[str, ...] = ()
    """Callables its pickle would import or call beyond the tensor-rebuild allowlist."""
    keys: tuple[KeyInfo, ...] = ()
    tensors: tuple[TensorInfo, ...] = ()
    """The tensors found, in file order (capped: see ``tensor_count``)."""
    tensor_count: int = 0
    parameter_count: int = 0
    """Tensor elements in total (model weights only, for a Hugging Face directory)."""
    scalars: tuple[ScalarInfo, ...] = ()
    metadata: dict[str, str] = {}
    """safetensors ``__metadata__``."""
    config: dict[str, JsonScalar] = {}
    """Selected ``config.json`` fields (architectures, model_type, sizes)."""
    shard_index: ShardIndex | None = None
    trainer_state: TrainerState | None = None
    files: tuple[Inspection, ...] = ()
    """Each weight file of a directory, inspected on its own."""
    notes: tuple[str, ...] = ()
    bytes_read: int = 0
    """How much of the checkpoint was read to inspect it."""
    reads: int = 0
    """In how many range reads (round trips, for remote storage)."""

    @property
    def safe(self) -> bool:
        """Whether its pickle (if any) calls only tensor-rebuild functions."""
        return not self.unsafe

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (``--json``)."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """The inspection as one JSON document."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def summary_lines(self, max_tensors: int = 40, max_scalars: int = 20) -> list[str]:
        """A short plain-text report, every line safe to show (controls escaped, no markup)."""
        lines = [self._title()]
        if self.error:
            lines.append(f"error: {one_line(self.error, 300)}")
        if self.unsafe:
            names = ", ".join(one_line(name, 80) for name in self.unsafe[:8])
            more = f" and {len(self.unsafe) - 8} more" if len(self.unsafe) > 8 else ""
            lines.append(f"UNSAFE: loading it would call {names}{more}")
        lines.extend(f"note: {one_line(note, 300)}" for note in self.notes)
        lines.extend(self._hugging_face_lines())
        if self.metadata:
            pairs = ", ".join(
                f"{one_line(k, 40)}={one_line(v, 60)}" for k, v in self.metadata.items()
            )
            lines.append(f"metadata: {one_line(pairs, 300)}")
        if self.keys:
            lines.append("keys:")
            for key in self.keys:
                lines.append("  " + _key_line(key))
        if self.tensor_count:
            lines.append(
                f"tensors: {self.tensor_count:,}, {human_count(self.parameter_count)} parameters"
                f" ({self.parameter_count:,})"
            )
            for tensor in self.tensors[:max_tensors]:
                lines.append("  " + _tensor_line(tensor))
            if self.tensor_count > max_tensors:
                lines.append(f"  … {self.tensor_count - max_tensors:,} more")
        if self.scalars:
            lines.append("values:")
            for scalar in self.scalars[:max_scalars]:
                lines.append(f"  {one_line(scalar.name, 80)} = {one_line(scalar.value, 80)}")
            if len(self.scalars) > max_scalars:
                lines.append(f"  … {len(self.scalars) - max_scalars:,} more")
        for inner in self.files:
            lines.append("")
            lines.extend(inner.summary_lines(max_tensors=8, max_scalars=5))
        return lines

    def _title(self) -> str:
        parts = [one_line(self.name, 120), FORMAT_LABELS[self.format]]
        if self.size is not None:
            parts.append(human_bytes(self.size))
        if self.bytes_read:
            parts.append(f"read {human_bytes(self.bytes_read)} in {self.reads:,} reads")
        return " · ".join(parts)

    def _hugging_face_lines(self) -> list[str]:
        lines: list[str] = []
        if self.config:
            pairs = ", ".join(
                f"{one_line(k, 40)}={one_line(v, 60)}" for k, v in self.config.items()
            )
            lines.append(f"config: {one_line(pairs, 400)}")
        if self.shard_index:
            index = self.shard_index
            total = f", {human_bytes(index.total_size)}" if index.total_size is not None else ""
            lines.append(
                f"index: {one_line(index.file, 80)}: {len(index.shards)} shards,"
                f" {index.tensors:,} tensors{total}"
            )
        state = self.trainer_state
        if state:
            lines.append(
                f"trainer state: step {state.global_step}, epoch {state.epoch},"
                f" best metric {state.best_metric}"
                f" ({one_line(state.best_model_checkpoint or '-', 80)})"
            )
            for entry in state.log_history_tail:
                text = ", ".join(f"{one_line(k, 30)}={one_line(v, 30)}" for k, v in entry.items())
                lines.append(f"  log: {one_line(text, 200)}")
        return lines


def _key_line(key: KeyInfo) -> str:
    name = one_line(key.key, 60)
    if key.value is not None:
        return f"{name} = {one_line(key.value, 80)}"
    text = f"{name}: {key.kind}"
    if key.tensors:
        text += f", {key.tensors:,} tensors, {human_count(key.parameters)} parameters"
    return text


def _tensor_line(tensor: TensorInfo) -> str:
    shape = "?" if tensor.shape is None else "[" + ", ".join(map(str, tensor.shape)) + "]"
    text = f"{one_line(tensor.name, 80)}  {one_line(tensor.dtype, 30)}  {shape}"
    if tensor.note:
        text += f"  ({one_line(tensor.note, 60)})"
    return text
