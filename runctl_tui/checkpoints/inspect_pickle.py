"""A pickle read as data: its opcodes walked by a small stack machine that never imports or calls.

``pickletools.genops`` decodes the opcodes; this module plays them on a stack of inert
stand-ins. A ``GLOBAL`` becomes a :class:`Global` naming the callable, ``REDUCE`` a
:class:`Call` recording it, and only the tensor-rebuild functions and containers that
``torch.load(weights_only=True)`` accepts are given meaning (a tensor's dtype and shape, an
``OrderedDict``'s items). Any other global is reported as unsafe by its dotted name, and the
walk carries on so the rest of the checkpoint can still be described.
"""

from __future__ import annotations

import math
import pickletools
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from runctl_tui.checkpoints.inspect_io import FormatError
from runctl_tui.checkpoints.inspect_model import (
    KeyInfo,
    ScalarInfo,
    TensorInfo,
    clip_name,
)

_SCALAR_TYPES = ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte")

STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
    "QInt8Storage": "qint8",
    "QInt32Storage": "qint32",
    "QUInt8Storage": "quint8",
    "QUInt4x2Storage": "quint4x2",
    "QUInt2x4Storage": "quint2x4",
}
"""Legacy typed storage classes and the dtype of their elements (``torch/storage.py``)."""

DTYPES = frozenset(
    {
        "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
        "uint8", "bool", "complex128", "complex64", "complex32", "qint8", "qint32", "quint8",
        "quint4x2", "quint2x4", "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz",
        "float8_e4m3fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "bits8", "bits16", "bits1x8",
        "bits2x4", "bits4x2", "uint16", "uint32", "uint64",
        *(f"uint{bits}" for bits in range(1, 8)),
        *(f"int{bits}" for bits in range(1, 8)),
    }
)  # fmt: skip
"""``torch.<dtype>`` globals: a dtype is pickled by name."""

TENSOR_REBUILDERS = frozenset(
    {
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
        "_rebuild_qtensor",
        "_rebuild_sparse_tensor",
        "_rebuild_meta_tensor_no_storage",
        "_rebuild_nested_tensor",
        "_rebuild_wrapper_subclass",
        "_rebuild_device_tensor_from_numpy",
        "_rebuild_device_tensor_from_cpu_tensor",
    }
)
"""``torch._utils`` functions that rebuild a tensor from its storage and metadata."""

ALLOWED_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "collections.Counter",
        "_codecs.encode",  # how protocol 2 pickles bytes
        "builtins.bytearray",
        "builtins.set",
        "builtins.complex",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch._tensor._rebuild_from_type_v2",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        *(f"torch._utils.{name}" for name in TENSOR_REBUILDERS),
        *(f"torch.{name}" for name in DTYPES),
        *(f"torch.{name}" for name in STORAGE_DTYPES),
        *(f"torch.cuda.{name}" for name in STORAGE_DTYPES if not name.startswith("Q")),
        *(f"torch.{kind}Tensor" for kind in (*_SCALAR_TYPES, "Bool")),
        *(f"torch.cuda.{kind}Tensor" for kind in (*_SCALAR_TYPES, "Bool")),
        *(f"torch.sparse.{kind}Tensor" for kind in _SCALAR_TYPES),
        *(f"torch.cuda.sparse.{kind}Tensor" for kind in _SCALAR_TYPES),
        "torch.per_tensor_affine",
        "torch.per_tensor_symmetric",
        "torch.per_channel_affine",
        "torch.per_channel_symmetric",
        "torch.per_channel_affine_float_qparams",
    }
)
"""What ``torch.load(weights_only=True)`` accepts (``torch/_weights_only_unpickler.py``,
``_get_allowed_globals``, torch 2.13): containers, dtypes, storage and tensor classes, the
tensor-rebuild functions. Everything else a pickle names is reported as unsafe."""

_PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}

MAX_UNSAFE = 50
MAX_TENSORS = 100_000
"""Tensors described one by one; beyond this they are only counted."""
MAX_SCALARS = 500
MAX_DEPTH = 100
"""Nesting followed when collecting names; deeper structure is counted as cut off."""
MAX_VISITS = 2_000_000
"""Nodes visited when collecting names: a shared structure referenced many times stops here."""


@dataclass(frozen=True)
class Global:
    """A module attribute the pickle names (``GLOBAL``/``STACK_GLOBAL``), never imported."""

    module: str
    name: str

    @property
    def qualified(self) -> str:
        """``module.name``."""
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class Call:
    """What ``REDUCE``/``NEWOBJ``/``INST``/``OBJ`` would have built by calling ``func``."""

    func: object
    args: object
    state: object = None
    items: list[object] = field(default_factory=list)
    """What ``APPEND(S)``/``SETITEM(S)`` would have added to the built object."""


@dataclass(eq=False)
class PickledDict:
    """A dict (or ``OrderedDict``) as its items, in order; keys need not be hashable here."""

    items: list[tuple[object, object]] = field(default_factory=list)


@dataclass(eq=False)
class PickledSet:
    """A set or frozenset as its items."""

    items: list[object] = field(default_factory=list)


@dataclass(eq=False)
class Storage:
    """A tensor storage named by a persistent id; its bytes stay in the archive."""

    dtype: str
    key: str


@dataclass(eq=False)
class Tensor:
    """A tensor the pickle would rebuild."""

    dtype: str
    shape: tuple[int, ...] | None
    note: str = ""


@dataclass(eq=False)
class Opaque:
    """Something with no meaning here (an out-of-band buffer, an unknown persistent id)."""

    label: str


_MARK = object()


@dataclass
class PickleResult:
    """The walked pickle: what it holds and which callables it names beyond the allowlist."""

    root: object
    unsafe: list[str]


def walk(data: bytes) -> PickleResult:
    """Play ``data``'s opcodes on inert stand-ins; :class:`FormatError` if it is not a pickle."""
    machine = _Machine()
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            if opcode.name == "STOP":
                return PickleResult(machine.result(), machine.unsafe)
            machine.step(opcode.name, arg)
    except FormatError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, struct.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FormatError(f"corrupt pickle: {clip_name(reason, 200)}") from None
    raise FormatError("corrupt pickle: no STOP opcode (truncated?)")


class _Machine:
    def __init__(self) -> None:
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: dict[int, object] = {}
        self.unsafe: list[str] = []

    def result(self) -> object:
        # like pickle.load: the value is the top of the stack, whatever lies below it
        return self.top()

    def pop(self) -> object:
        if not self.stack:
            raise FormatError("corrupt pickle: stack underflow")
        return self.stack.pop()

    def top(self) -> object:
        if not self.stack:
            raise FormatError("corrupt pickle: stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[object]:
        if not self.metastack:
            raise FormatError("corrupt pickle: MARK missing")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def flag(self, name: str) -> None:
        name = clip_name(name, 200)
        if name not in self.unsafe and len(self.unsafe) < MAX_UNSAFE:
            self.unsafe.append(name)

    def global_(self, module: str, name: str) -> Global:
        module = _PYTHON2_MODULES.get(module, module)
        found = Global(module, name)
        if found.qualified not in ALLOWED_GLOBALS:
            self.flag(found.qualified)
        return found

    def push(self, value: object) -> None:
        self.stack.append(value)

    def step(self, name: str, arg: object) -> None:  # noqa: C901 - one branch per opcode
        # ``self.stack`` is replaced by MARK and by every pop_mark: never hold on to it
        push = self.push
        if name in _CONSTANTS:
            push(_CONSTANTS[name])
        elif name in _VALUE_OPS:
            push(bytes(arg) if isinstance(arg, bytearray) else arg)
        elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
            pass
        elif name == "NEXT_BUFFER":
            push(Opaque("out-of-band buffer"))
        elif name == "EMPTY_LIST":
            push([])
        elif name == "EMPTY_TUPLE":
            push(())
        elif name == "EMPTY_DICT":
            push(PickledDict())
        elif name == "EMPTY_SET":
            push(PickledSet())
        elif name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name == "LIST":
            push(self.pop_mark())
        elif name == "TUPLE":
            push(tuple(self.pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            if len(self.stack) < count:
                raise FormatError("corrupt pickle: stack underflow")
            last = tuple(self.stack[-count:])
            del self.stack[-count:]
            push(last)
        elif name == "DICT":
            marked = self.pop_mark()
            push(PickledDict(list(zip(marked[::2], marked[1::2], strict=False))))
        elif name == "FROZENSET":
            push(PickledSet(self.pop_mark()))
        elif name == "APPEND":
            value = self.pop()
            self._extend(self.top(), [value])
        elif name == "APPENDS":
            items = self.pop_mark()
            self._extend(self.top(), items)
        elif name == "SETITEM":
            value = self.pop()
            key = self.pop()
            self._set_items(self.top(), [key, value])
        elif name == "SETITEMS":
            items = self.pop_mark()
            self._set_items(self.top(), items)
        elif name == "ADDITEMS":
            items = self.pop_mark()
            target = self.top()
            if isinstance(target, PickledSet):
                target.items.extend(items)
        elif name == "POP":
            if self.stack:
                self.stack.pop()
            else:
                self.pop_mark()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            push(self.top())
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if not isinstance(arg, int) or arg not in self.memo:
                raise FormatError(f"corrupt pickle: memo key {arg!r} not found")
            push(self.memo[arg])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            if not isinstance(arg, int) or arg < 0:
                raise FormatError("corrupt pickle: bad memo key")
            self.memo[arg] = self.top()
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = self.top()
        elif name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found = self.global_(module, attr)
            if name == "GLOBAL":
                push(found)
            else:
                push(Call(found, tuple(self.pop_mark())))
        elif name == "STACK_GLOBAL":
            attr_name = self.pop()
            module_name = self.pop()
            if not isinstance(module_name, str) or not isinstance(attr_name, str):
                raise FormatError("corrupt pickle: STACK_GLOBAL needs two strings")
            push(self.global_(module_name, attr_name))
        elif name in ("EXT1", "EXT2", "EXT4"):
            self.flag(f"copyreg extension {arg}")
            push(Opaque(f"extension {arg}"))
        elif name == "REDUCE":
            args = self.pop()
            func = self.pop()
            push(self._apply(func, args))
        elif name == "BUILD":
            state = self.pop()
            target = self.top()
            if isinstance(target, Call):
                target.state = state
        elif name == "OBJ":
            items = self.pop_mark()
            if not items:
                raise FormatError("corrupt pickle: OBJ without a class")
            push(Call(items[0], tuple(items[1:])))
        elif name == "NEWOBJ":
            args = self.pop()
            push(Call(self.pop(), args))
        elif name == "NEWOBJ_EX":
            kwargs = self.pop()
            args = self.pop()
            push(Call(self.pop(), (args, kwargs)))
        elif name == "PERSID":
            push(_persistent(arg))
        elif name == "BINPERSID":
            push(_persistent(self.pop()))
        else:
            raise FormatError(f"corrupt pickle: unsupported opcode {name}")

    def _extend(self, target: object, items: list[object]) -> None:
        if isinstance(target, list):
            target.extend(items)
        elif isinstance(target, PickledSet):
            target.items.extend(items)
        elif isinstance(target, Call):
            # list-like objects built by a callable: keep the items so names can still be shown
            target.items.extend(items)

    def _set_items(self, target: object, items: list[object]) -> None:
        pairs = list(zip(items[::2], items[1::2], strict=False))
        if isinstance(target, PickledDict):
            target.items.extend(pairs)
        elif isinstance(target, Call):
            target.items.append(PickledDict(pairs))

    def _apply(self, func: object, args: object) -> object:
        if not isinstance(func, Global):
            return Call(func, args)
        values = args if isinstance(args, tuple) else ()
        qualified = func.qualified
        if qualified not in ALLOWED_GLOBALS:
            return Call(func, args)
        if func.module == "torch._utils":
            return _rebuild(func.name, values)
        if qualified == "torch._tensor._rebuild_from_type_v2" and len(values) >= 3:
            return self._apply(values[0], values[2])
        if qualified in ("collections.OrderedDict", "collections.Counter"):
            return PickledDict(_pairs(values[0]) if values else [])
        if qualified == "torch.Size" and values and isinstance(values[0], tuple | list):
            return tuple(values[0])
        if qualified == "builtins.set":
            return PickledSet(list(values[0]) if values and isinstance(values[0], list) else [])
        if qualified == "_codecs.encode" and values and isinstance(values[0], str):
            return values[0].encode("latin-1", errors="replace")
        if qualified == "builtins.bytearray":
            return values[0] if values and isinstance(values[0], bytes) else b""
        if qualified == "torch.device" and values:
            return "device(" + ":".join(str(v) for v in values if isinstance(v, str | int)) + ")"
        if qualified == "torch.serialization._get_layout" and values:
            return str(values[0])
        return Call(func, args)


_VALUE_OPS = frozenset(
    {
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING",
        "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
        "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE",
        "BINUNICODE", "BINUNICODE8", "FLOAT", "BINFLOAT",
    }
)  # fmt: skip


_CONSTANTS: dict[str, object] = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


def _pairs(value: object) -> list[tuple[object, object]]:
    if isinstance(value, PickledDict):
        return list(value.items)
    if isinstance(value, list | tuple):
        return [(item[0], item[1]) for item in value if isinstance(item, tuple) and len(item) == 2]
    return []


def _persistent(pid: object) -> object:
    """A storage from torch's persistent id ``('storage', StorageType, key, location, numel)``."""
    if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage":
        kind = pid[1]
        dtype = "unknown"
        if isinstance(kind, Global):
            dtype = STORAGE_DTYPES.get(
                kind.name, "uint8" if kind.name == "UntypedStorage" else dtype
            )
        return Storage(dtype, str(pid[2]))
    return Opaque("persistent id")


def _shape(value: object) -> tuple[int, ...] | None:
    if isinstance(value, tuple | list) and all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in value
    ):
        return tuple(value)
    return None


def _dtype_name(value: object) -> str | None:
    if isinstance(value, Global) and value.module == "torch" and value.name in DTYPES:
        return value.name
    return None


def _rebuild(name: str, args: tuple[object, ...]) -> object:
    """The tensor a ``torch._utils`` rebuild function would return, from its arguments."""
    storage = args[0] if args else None
    dtype = storage.dtype if isinstance(storage, Storage) else "unknown"
    if name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_qtensor"):
        if name == "_rebuild_tensor_v3" and len(args) > 6:
            dtype = _dtype_name(args[6]) or dtype
        note = "quantized" if name == "_rebuild_qtensor" else ""
        return Tensor(dtype, _shape(args[2]) if len(args) > 2 else None, note)
    if name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
        if isinstance(storage, Tensor):
            return Tensor(storage.dtype, storage.shape, storage.note or "parameter")
        return Tensor("unknown", None, "parameter")
    if name == "_rebuild_device_tensor_from_cpu_tensor" and isinstance(storage, Tensor):
        return storage
    if name == "_rebuild_meta_tensor_no_storage":
        return Tensor(
            _dtype_name(storage) or "unknown", _shape(args[1]) if len(args) > 1 else None, "meta"
        )
    if name == "_rebuild_wrapper_subclass" and len(args) > 2:
        return Tensor(_dtype_name(args[1]) or "unknown", _shape(args[2]), "subclass")
    return Tensor("unknown", None, name.removeprefix("_rebuild_").replace("_", " "))


# -- from the rebuilt structure to names, counts and values


def scalar_text(value: object) -> tuple[str, str] | None:
    """``(kind, text)`` for a scalar value, or ``None`` for anything else."""
    if value is None:
        return "None", "None"
    if isinstance(value, bool):
        return "bool", repr(value)
    if isinstance(value, int):
        if value.bit_length() > 200:
            return "int", f"<int of {value.bit_length()} bits>"
        return "int", repr(value)
    if isinstance(value, float):
        return "float", repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, complex):
        return "complex", repr(value)
    if isinstance(value, str):
        return "str", repr(clip_name(value, 200))
    if isinstance(value, bytes):
        return "bytes", f"<{len(value):,} bytes>"
    return None


def _kind(value: object) -> str:
    if isinstance(value, Tensor):
        return "tensor"
    if isinstance(value, PickledDict):
        return "dict"
    if isinstance(value, list):
        return "list"
    if isinstance(value, tuple):
        return "tuple"
    if isinstance(value, PickledSet):
        return "set"
    if isinstance(value, Call | Global):
        return "object"
    found = scalar_text(value)
    return found[0] if found else "object"


def _key_text(key: object) -> str:
    if isinstance(key, str):
        return key
    found = scalar_text(key)
    if found and not isinstance(key, bytes):
        return found[1]
    return f"<{_kind(key)}>"


@dataclass
class Collected:
    """Names, counts and values gathered from a walked pickle."""

    tensors: list[TensorInfo] = field(default_factory=list)
    tensor_count: int = 0
    parameter_count: int = 0
    scalars: list[ScalarInfo] = field(default_factory=list)
    keys: list[KeyInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _elements(shape: tuple[int, ...] | None) -> int | None:
    return None if shape is None else math.prod(shape)


def _children(value: object) -> Iterator[tuple[str, object]]:
    if isinstance(value, PickledDict):
        for key, item in value.items:
            yield _key_text(key), item
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield str(index), item
    elif isinstance(value, Call):
        yield from _children(value.args)
        yield from _children(value.state)
        for item in value.items:
            yield from _children(item) if isinstance(item, PickledDict) else [("item", item)]


def collect(root: object) -> Collected:
    """Every tensor under ``root`` named by its dotted key path, scalars, and per-key totals."""
    found = Collected()
    state = {"visits": 0, "cut": 0}

    def visit(value: object, path: tuple[str, ...], on_path: set[int]) -> tuple[int, int]:
        state["visits"] += 1
        if state["visits"] > MAX_VISITS or len(path) > MAX_DEPTH:
            state["cut"] += 1
            return 0, 0
        name = clip_name(".".join(path))
        if isinstance(value, Tensor):
            elements = _elements(value.shape)
            found.tensor_count += 1
            found.parameter_count += elements or 0
            if len(found.tensors) < MAX_TENSORS:
                found.tensors.append(
                    TensorInfo(
                        name=name or "<tensor>",
                        dtype=value.dtype,
                        shape=value.shape,
                        elements=elements,
                        note=value.note,
                    )
                )
            return 1, elements or 0
        scalar = scalar_text(value)
        if scalar is not None:
            if path and len(found.scalars) < MAX_SCALARS:
                found.scalars.append(ScalarInfo(name=name, value=scalar[1], kind=scalar[0]))
            return 0, 0
        if id(value) in on_path:
            return 0, 0
        on_path.add(id(value))
        tensors = parameters = 0
        for key, item in _children(value):
            more, elements = visit(item, (*path, clip_name(key, 200)), on_path)
            tensors += more
            parameters += elements
        on_path.discard(id(value))
        return tensors, parameters

    if isinstance(root, PickledDict | list | tuple):
        for key, item in _children(root):
            tensors, parameters = visit(item, (clip_name(key, 200),), {id(root)})
            scalar = scalar_text(item)
            found.keys.append(
                KeyInfo(
                    key=clip_name(key),
                    kind=_kind(item),
                    value=scalar[1] if scalar else None,
                    tensors=tensors,
                    parameters=parameters,
                )
            )
    else:
        visit(root, (), set())
    if state["cut"]:
        found.notes.append(f"structure too deep or too shared: {state['cut']:,} parts not followed")
    return found
