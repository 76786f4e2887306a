"""The non-pickle formats: safetensors headers, NumPy ``.npy`` headers, Hugging Face JSON files.

Each function takes bytes already read and returns plain values or raises
:class:`~runctl_tui.checkpoints.inspect_io.FormatError` with a one-line reason.
"""

from __future__ import annotations

import ast
import json
import math
import struct
from typing import Any

from runctl_tui.checkpoints.inspect_io import FormatError
from runctl_tui.checkpoints.inspect_model import (
    JsonScalar,
    ShardIndex,
    TensorInfo,
    TrainerState,
    clip_name,
    human_bytes,
)

SAFETENSORS_HEADER_CAP = 100 * 1000 * 1000
"""Largest safetensors JSON header read (the format itself caps it at 100 MB)."""
NPY_HEADER_CAP = 1024 * 1024
"""Largest ``.npy`` header dict read."""
NPY_MAGIC = b"\x93NUMPY"
LOG_HISTORY_TAIL = 5

SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu",
    "F4": "float4_e2m1fn_x2", "C64": "complex64",
}  # fmt: skip

_NPY_KINDS = {"f": "float", "i": "int", "u": "uint", "c": "complex"}

CONFIG_KEYS = (
    "architectures", "model_type", "_name_or_path", "hidden_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "intermediate_size", "vocab_size",
    "max_position_embeddings", "torch_dtype", "dtype", "transformers_version",
)  # fmt: skip
"""``config.json`` fields shown; the rest of the file is left out of the inspection."""


def safetensors_header_length(head: bytes, size: int) -> int:
    """The JSON header's length from the first 8 bytes, checked against the file and the cap."""
    if size < 8 or len(head) < 8:
        raise FormatError("too short for a safetensors header")
    length: int = struct.unpack_from("<Q", head)[0]
    if length > size - 8:
        raise FormatError(
            f"safetensors header length {length:,} exceeds the file ({size:,} bytes): truncated?"
        )
    if length > SAFETENSORS_HEADER_CAP:
        raise FormatError(
            f"safetensors header length {length:,} over the {human_bytes(SAFETENSORS_HEADER_CAP)}"
            " cap"
        )
    return length


def parse_safetensors_header(
    header: bytes, data_size: int
) -> tuple[list[TensorInfo], dict[str, str]]:
    """Tensors and ``__metadata__`` from a safetensors JSON header."""
    document = load_json(header, "safetensors header")
    if not isinstance(document, dict):
        raise FormatError("safetensors header is not a JSON object")
    tensors: list[TensorInfo] = []
    metadata: dict[str, str] = {}
    data_end = 0
    for name, entry in document.items():
        if name == "__metadata__":
            if isinstance(entry, dict):
                metadata = {clip_name(str(k)): clip_name(str(v)) for k, v in entry.items()}
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(dtype, str)
            or not _is_shape(shape)
            or not (isinstance(offsets, list) and len(offsets) == 2 and _is_shape(offsets))
        ):
            raise FormatError(f"safetensors header: bad entry for tensor {clip_name(name, 80)!r}")
        data_end = max(data_end, offsets[1])
        dims = tuple(shape or ())
        tensors.append(
            TensorInfo(
                name=clip_name(name),
                dtype=SAFETENSORS_DTYPES.get(dtype, clip_name(dtype, 40)),
                shape=dims,
                elements=math.prod(dims),
            )
        )
    if data_end > data_size:
        raise FormatError(
            f"truncated: tensor data needs {data_end:,} bytes after the header,"
            f" the file has {data_size:,}"
        )
    return tensors, metadata


def _is_shape(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in value
    )


def npy_header_end(data: bytes) -> int | None:
    """Where the header of ``.npy`` bytes ends, or ``None`` when ``data`` is too short to say."""
    if len(data) < 10:
        return None
    if not data.startswith(NPY_MAGIC):
        raise FormatError("not a .npy array (bad magic)")
    major = data[6]
    length: int
    if major == 1:
        (length,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        if len(data) < 12:
            return None
        (length,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        raise FormatError(f".npy format version {major} not supported")
    if length > NPY_HEADER_CAP:
        raise FormatError(f".npy header of {length:,} bytes over the cap")
    return start + length


def parse_npy_header(data: bytes, name: str) -> TensorInfo:
    """Name, dtype and shape from the start of a ``.npy`` file; object arrays are not read."""
    end = npy_header_end(data)
    if end is None or end > len(data):
        raise FormatError(f"{clip_name(name, 80)!r}: truncated .npy header")
    start = 10 if data[6] == 1 else 12
    text = data[start:end].decode("utf-8" if data[6] == 3 else "latin-1", errors="replace")
    try:
        header = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise FormatError(f"{clip_name(name, 80)!r}: bad .npy header") from None
    if not isinstance(header, dict) or not isinstance(header.get("shape"), tuple):
        raise FormatError(f"{clip_name(name, 80)!r}: bad .npy header")
    shape: tuple[int, ...] = header["shape"]
    if not _is_shape(list(shape)):
        raise FormatError(f"{clip_name(name, 80)!r}: bad .npy shape")
    descr = header.get("descr")
    dtype, is_object = _npy_dtype(descr)
    if is_object:
        return TensorInfo(
            name=clip_name(name),
            dtype="object",
            shape=shape,
            note="object array (pickled), not inspected",
        )
    return TensorInfo(name=clip_name(name), dtype=dtype, shape=shape, elements=math.prod(shape))


def _npy_dtype(descr: object) -> tuple[str, bool]:
    if isinstance(descr, list):
        fields = [item[1] for item in descr if isinstance(item, tuple) and len(item) >= 2]
        return "structured", any(_npy_dtype(field)[1] for field in fields)
    if not isinstance(descr, str) or not descr:
        return "unknown", False
    code = descr.lstrip("<>|=")
    if code.startswith("O"):
        return "object", True
    if code == "b1" or code == "?":
        return "bool", False
    kind, digits = code[:1], code[1:]
    if kind in _NPY_KINDS and digits.isdigit():
        return f"{_NPY_KINDS[kind]}{int(digits) * 8}", False
    return clip_name(descr, 40), False


def load_json(data: bytes, what: str) -> Any:
    """Parsed JSON, or a one-line reason naming ``what``."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{what}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except (UnicodeDecodeError, RecursionError, ValueError):
        raise FormatError(f"{what}: invalid JSON") from None


def json_scalar(value: object) -> JsonScalar:
    """A JSON value as a scalar: lists of scalars joined, objects summarised, strings clipped."""
    if isinstance(value, str):
        return clip_name(value, 200)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return clip_name(", ".join(str(item) for item in value), 200)
    return f"<{type(value).__name__}>"


def parse_config(data: bytes) -> dict[str, JsonScalar]:
    """The interesting fields of a Hugging Face ``config.json``."""
    document = load_json(data, "config.json")
    if not isinstance(document, dict):
        raise FormatError("config.json is not a JSON object")
    return {key: json_scalar(document[key]) for key in CONFIG_KEYS if key in document}


def parse_shard_index(data: bytes, file: str) -> ShardIndex:
    """A ``*.index.json``: shard files, total size, tensor count."""
    document = load_json(data, file)
    if not isinstance(document, dict):
        raise FormatError(f"{file} is not a JSON object")
    weight_map = document.get("weight_map")
    weight_map = weight_map if isinstance(weight_map, dict) else {}
    metadata = document.get("metadata")
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    shards = sorted({clip_name(str(shard)) for shard in weight_map.values()})
    return ShardIndex(
        file=file,
        shards=tuple(shards),
        total_size=int(total) if isinstance(total, int | float) and total >= 0 else None,
        tensors=len(weight_map),
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_trainer_state(data: bytes) -> TrainerState:
    """``trainer_state.json``: step, epoch, best metric and checkpoint, the log history's tail."""
    document = load_json(data, "trainer_state.json")
    if not isinstance(document, dict):
        raise FormatError("trainer_state.json is not a JSON object")
    history = document.get("log_history")
    tail = history[-LOG_HISTORY_TAIL:] if isinstance(history, list) else []
    step = document.get("global_step")
    best = document.get("best_model_checkpoint")
    return TrainerState(
        global_step=step if isinstance(step, int) and not isinstance(step, bool) else None,
        epoch=_number(document.get("epoch")),
        best_metric=_number(document.get("best_metric")),
        best_model_checkpoint=clip_name(best) if isinstance(best, str) else None,
        log_history_tail=tuple(
            {clip_name(str(k), 80): json_scalar(v) for k, v in list(entry.items())[:20]}
            for entry in tail
            if isinstance(entry, dict)
        ),
    )
