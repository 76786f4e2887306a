"""Checkpoint inspection: real torch/safetensors/NumPy files, hostile pickles and forged headers."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runctl_tui.checkpoints import inspect as inspect_module
from runctl_tui.checkpoints.inspect import (
    CheckpointFormat,
    Inspection,
    inspect_checkpoint,
    inspect_reader,
    inspect_reader_async,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "checkpoints"


class BytesReader:
    """A range reader over bytes in memory, recording each read."""

    def __init__(self, data: bytes, name: str = "mem.pt") -> None:
        self.data = data
        self.name = name
        self.size = len(data)
        self.reads: list[tuple[int, int]] = []

    def read_range(self, start: int, end: int) -> bytes:
        self.reads.append((start, end))
        return self.data[start:end]


class AsyncBytesReader(BytesReader):
    """The same, awaited."""

    async def read_range(self, start: int, end: int) -> bytes:  # type: ignore[override]
        await asyncio.sleep(0)
        return self.data[start:end]


def tensors_by_name(inspection: Inspection) -> dict[str, tuple[str, tuple[int, ...] | None]]:
    return {t.name: (t.dtype, t.shape) for t in inspection.tensors}


def torch_zip(pickle_bytes: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    """A zip laid out like ``torch.save``'s, holding ``pickle_bytes`` as ``archive/data.pkl``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/version", b"3\n")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


# -- real checkpoints written by torch, safetensors and NumPy


def test_state_dict_of_a_linear_layer() -> None:
    found = inspect_checkpoint(FIXTURES / "linear_state_dict.pt")
    assert found.error is None
    assert found.format is CheckpointFormat.PYTORCH
    assert found.safe
    assert tensors_by_name(found) == {"weight": ("float32", (3, 4)), "bias": ("float32", (3,))}
    assert found.parameter_count == 15
    assert [k.key for k in found.keys] == ["weight", "bias"]


def test_lightning_checkpoint_keys_scalars_and_counts() -> None:
    found = inspect_checkpoint(FIXTURES / "epoch=3-step=1200.ckpt")
    assert found.error is None
    assert found.safe
    keys = {k.key: k for k in found.keys}
    assert keys["epoch"].value == "3"
    assert keys["global_step"].value == "1200"
    assert keys["pytorch-lightning_version"].value == "'2.4.0'"
    assert (keys["state_dict"].tensors, keys["state_dict"].parameters) == (4, 46)
    assert keys["optimizer_states"].tensors == 12
    assert keys["hyper_parameters"].kind == "dict"
    tensors = tensors_by_name(found)
    assert tensors["state_dict.model.0.weight"] == ("float32", (4, 8))
    assert tensors["optimizer_states.0.state.3.exp_avg_sq"] == ("float32", (2,))
    scalars = {s.name: s.value for s in found.scalars}
    assert scalars["hyper_parameters.lr"] == "0.001"
    assert scalars["hyper_parameters.dropout"] == "None"
    assert scalars["optimizer_states.0.param_groups.0.amsgrad"] == "False"
    assert found.parameter_count == sum(k.parameters for k in found.keys)


def test_dtypes_from_storage_classes_and_explicit_dtypes() -> None:
    found = inspect_checkpoint(FIXTURES / "mixed_dtypes.pth")
    tensors = tensors_by_name(found)
    assert tensors["bf16"] == ("bfloat16", (2, 3))
    assert tensors["fp16"] == ("float16", (5,))
    assert tensors["f8"] == ("float8_e4m3fn", (4,))
    assert tensors["u16"] == ("uint16", (2, 2))
    assert tensors["mask"] == ("bool", (3,))
    assert tensors["scalar"] == ("float64", ())
    assert tensors["view"] == ("float32", (3,))
    assert {t.name: t.note for t in found.tensors}["param"] == "parameter"
    assert found.safe


def test_legacy_format_is_recognised_not_inspected() -> None:
    found = inspect_checkpoint(FIXTURES / "legacy.pt")
    assert found.format is CheckpointFormat.PYTORCH_LEGACY
    assert found.tensor_count == 0
    assert any(
        "legacy format" in line and "not inspected" in line for line in found.summary_lines()
    )


def test_safetensors_header() -> None:
    found = inspect_checkpoint(FIXTURES / "tiny.safetensors")
    assert found.format is CheckpointFormat.SAFETENSORS
    assert tensors_by_name(found) == {
        "embed.weight": ("float32", (10, 4)),
        "head.bias": ("float16", (3,)),
    }
    assert found.metadata == {"format": "pt", "step": "500"}
    assert found.parameter_count == 43


def test_npz_arrays_and_object_array() -> None:
    found = inspect_checkpoint(FIXTURES / "arrays.npz")
    assert found.format is CheckpointFormat.NPZ
    assert tensors_by_name(found) == {
        "weights": ("float32", (2, 3)),
        "steps": ("int64", (5,)),
        "names": ("object", (2,)),
    }
    assert "not inspected" in {t.name: t.note for t in found.tensors}["names"]
    compressed = inspect_checkpoint(FIXTURES / "compressed.npz")
    assert tensors_by_name(compressed) == {"grid": ("float16", (4, 4, 2))}


def test_hugging_face_directory() -> None:
    found = inspect_checkpoint(FIXTURES / "checkpoint-500")
    assert found.format is CheckpointFormat.HUGGINGFACE
    assert found.error is None
    assert found.config["architectures"] == "TinyForCausalLM"
    assert found.config["hidden_size"] == 8
    assert found.shard_index is not None
    assert found.shard_index.shards == (
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    )
    assert found.shard_index.tensors == 4
    state = found.trainer_state
    assert state is not None
    assert (state.global_step, state.epoch, state.best_metric) == (500, 1.0, 1.23)
    assert state.best_model_checkpoint == "out/checkpoint-500"
    assert state.log_history_tail[-1] == {"epoch": 1.0, "eval_loss": 1.23, "step": 500}
    assert len(state.log_history_tail) == 5
    assert found.parameter_count == 16 * 8 + 8 * 8 + 8 + 16 * 8
    assert found.unsafe == ("training_args.bin: __main__.TrainingArguments",)
    assert {f.name for f in found.files} >= {"optimizer.pt", "training_args.bin"}
    assert found.bytes_read > 0


def test_json_form_round_trips() -> None:
    found = inspect_checkpoint(FIXTURES / "checkpoint-500")
    document = json.loads(found.to_json())
    assert document["format"] == "huggingface"
    assert Inspection.model_validate(document) == found


# -- reading only what is needed


def test_large_archive_reads_only_directory_and_pickle(tmp_path: Path) -> None:
    with zipfile.ZipFile(FIXTURES / "linear_state_dict.pt") as original:
        pickle_bytes = original.read("linear_state_dict/data.pkl")
    path = tmp_path / "big.pt"
    path.write_bytes(torch_zip(pickle_bytes, {"archive/data/0": bytes(8 * 1024 * 1024)}))
    found = inspect_checkpoint(path)
    assert tensors_by_name(found)["weight"] == ("float32", (3, 4))
    assert found.bytes_read < 100 * 1024
    assert found.reads <= 3


def test_async_reader_gives_the_same_inspection() -> None:
    data = (FIXTURES / "epoch=3-step=1200.ckpt").read_bytes()
    sync = inspect_reader(BytesReader(data, "x.ckpt"))
    from_async = asyncio.run(inspect_reader_async(AsyncBytesReader(data, "x.ckpt")))
    assert from_async == sync
    assert sync.tensor_count == 17


def test_failing_storage_gives_one_line() -> None:
    class Failing(BytesReader):
        def read_range(self, start: int, end: int) -> bytes:
            if self.reads:
                raise OSError(5, "Input/output error")
            return super().read_range(start, end)

    data = bytes(200 * 1024)
    data = b"PK\x03\x04" + data
    found = inspect_reader(Failing(data, "remote.pt"))
    assert found.error == "remote.pt: read failed: Input/output error"


# -- hostile files


def reduce_pickle(module: str, name: str, argument: str) -> bytes:
    """Protocol 2: ``module.name(argument)`` as GLOBAL + REDUCE, in a dict under ``payload``."""
    encoded = argument.encode()
    return (
        b"\x80\x02}q\x00X\x07\x00\x00\x00payloadq\x01"
        + f"c{module}\n{name}\n".encode()
        + b"X"
        + struct.pack("<I", len(encoded))
        + encoded
        + b"\x85R"
        + b"s."
    )


def test_pickle_that_would_run_a_command_is_flagged_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    path = tmp_path / "evil.pkl"
    path.write_bytes(reduce_pickle("os", "system", command))
    found = inspect_checkpoint(path)
    assert found.error is None
    assert found.unsafe == ("os.system",)
    assert not found.safe
    assert {s.name: s.value for s in found.scalars}["payload.0"] == repr(command)
    assert any(line.startswith("UNSAFE") and "os.system" in line for line in found.summary_lines())
    assert not marker.exists()


def test_unsafe_callables_inside_a_torch_archive_are_all_named(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    body = (
        b"\x80\x02}q\x00(X\x01\x00\x00\x00a"
        + b"cbuiltins\neval\nX"
        + struct.pack("<I", 8)
        + b"1 + 1 ==\x85R"
        + b"X\x01\x00\x00\x00b"
        + b"c__main__\nMyClass\n)\x81}X\x02\x00\x00\x00lrG?\xb9\x99\x99\x99\x99\x99\x9as\x62"
        + b"X\x01\x00\x00\x00c"
        + f"csubprocess\nPopen\nX{struct.pack('<I', len(str(marker)) + 6).decode('latin-1')}"
        f"touch {marker}\x85R".encode("latin-1")
        + b"u."
    )
    path = tmp_path / "model.pt"
    path.write_bytes(torch_zip(body))
    found = inspect_checkpoint(path)
    assert found.error is None
    assert found.unsafe == ("builtins.eval", "__main__.MyClass", "subprocess.Popen")
    assert {s.name: s.value for s in found.scalars}["b.lr"] == "0.1"
    assert not marker.exists()


def test_truncated_checkpoint_gives_one_line_naming_it(tmp_path: Path) -> None:
    data = (FIXTURES / "linear_state_dict.pt").read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    found = inspect_checkpoint(path)
    assert found.error is not None
    assert found.error.startswith("cut.pt: ")
    assert "truncated" in found.error
    assert "\n" not in found.error


def test_corrupt_pickle(tmp_path: Path) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(torch_zip(b"\x80\x02}q\x00(X\x01\x00\x00\x00ah\x07u."))
    found = inspect_checkpoint(path)
    assert found.error is not None
    assert found.error.startswith("broken.pt: corrupt pickle")


def eocd(count: int, size: int, offset: int) -> bytes:
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, size, offset, 0)


def test_zip_claiming_millions_of_members_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.pt"
    end = eocd(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    zip64 = struct.pack(
        "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 10_000_000, 10_000_000, 2**40, 0
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, 4, 1)
    path.write_bytes(b"PK\x03\x04" + zip64 + locator + end)
    found = inspect_checkpoint(path)
    assert found.error == "bomb.pt: zip directory claims 10,000,000 members (limit 1,000,000)"


def test_zip_member_claiming_a_terabyte_is_refused(tmp_path: Path) -> None:
    name = b"archive/data.pkl"
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0, 0, 0, 0, 0, 0, 0, len(name), 0)
    local += name + b"\x80\x02}."
    extra = struct.pack("<HHQQ", 1, 16, 2**40, 2**40)
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII",
        b"PK\x01\x02", 45, 45, 0, 0, 0, 0, 0,
        0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0,
    ) + name + extra  # fmt: skip
    path = tmp_path / "huge.pt"
    path.write_bytes(local + central + eocd(1, len(central), len(local)))
    found = inspect_checkpoint(path)
    assert found.error is not None
    assert found.error.startswith("huge.pt: damaged zip: member 'archive/data.pkl' claims 1.1 TB")


def test_pickle_over_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspect_module, "PICKLE_CAP", 100)
    found = inspect_checkpoint(FIXTURES / "linear_state_dict.pt")
    assert found.error is not None
    assert "over the 100 B limit" in found.error


def test_safetensors_header_length_beyond_the_file(tmp_path: Path) -> None:
    path = tmp_path / "forged.safetensors"
    path.write_bytes(struct.pack("<Q", 2**60) + b'{"a": 1}')
    found = inspect_checkpoint(path)
    assert found.error is not None
    assert found.error.startswith("forged.safetensors: safetensors header length")
    assert "exceeds the file" in found.error


def test_safetensors_header_over_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "sparse.safetensors"
    with path.open("wb") as file:
        file.write(struct.pack("<Q", 150_000_000) + b"{")
        file.truncate(300_000_000)  # sparse: no disk space used
    found = inspect_checkpoint(path)
    assert found.error is not None
    assert "over the 100.0 MB cap" in found.error
    assert found.bytes_read <= 64


def test_truncated_safetensors_data(tmp_path: Path) -> None:
    data = (FIXTURES / "tiny.safetensors").read_bytes()
    path = tmp_path / "short.safetensors"
    path.write_bytes(data[:-20])
    found = inspect_checkpoint(path)
    assert found.error is not None
    assert "truncated" in found.error


def test_deeply_nested_pickle_does_not_overflow(tmp_path: Path) -> None:
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x02" + b"]" * 50_000 + b"a" * 49_999 + b".")
    found = inspect_checkpoint(path)
    assert found.error is None
    assert any("not followed" in note for note in found.notes)


def test_shared_structure_does_not_explode(tmp_path: Path) -> None:
    # each level holds the previous one twice: 2**60 paths, 60 objects
    body = b"\x80\x02]q\x00"
    for level in range(1, 61):
        body += b"h" + bytes([level - 1]) + b"h" + bytes([level - 1]) + b"\x86q" + bytes([level])
    path = tmp_path / "shared.pkl"
    path.write_bytes(body + b".")
    found = inspect_checkpoint(path)
    assert found.error is None
    assert any("not followed" in note for note in found.notes)


def test_hostile_names_are_shown_safely(tmp_path: Path) -> None:
    key = "[bold red]x[/]\x1b[2J\u202e\nlayer"
    encoded = key.encode()
    body = b"\x80\x02}X" + struct.pack("<I", len(encoded)) + encoded + b"K\x07s."
    path = tmp_path / "names\x1b.pkl"
    path.write_bytes(body)
    found = inspect_checkpoint(path)
    assert found.keys[0].key == key
    for line in found.summary_lines():
        assert "\x1b" not in line
        assert "\n" not in line
        assert "\u202e" not in line


def test_directories_missing_and_empty(tmp_path: Path) -> None:
    empty = inspect_checkpoint(tmp_path)
    assert empty.error is not None
    assert "no checkpoint files" in empty.error
    missing = inspect_checkpoint(tmp_path / "nope.pt")
    assert missing.error == "nope.pt: cannot read: No such file or directory"


def test_directory_with_a_broken_shard(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint-500"
    shutil.copytree(FIXTURES / "checkpoint-500", target)
    (target / "model-00002-of-00002.safetensors").write_bytes(b"\x00\x01")
    (target / "config.json").write_text("{not json")
    found = inspect_checkpoint(target)
    assert found.error is None
    broken = {f.name: f for f in found.files}["model-00002-of-00002.safetensors"]
    assert broken.error is not None
    assert any(note.startswith("config.json: invalid JSON") for note in found.notes)


def test_directory_with_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    target = tmp_path / "run"
    target.mkdir()
    locked = target / "model.pt"
    locked.write_bytes(b"PK\x03\x04")
    locked.chmod(0)
    found = inspect_checkpoint(target)
    assert found.files[0].error is not None


PREFIXES = [
    b"",
    b"PK\x03\x04",
    b"\x80\x02",
    b"\x93NUMPY\x01\x00",
    b"\x10\x00\x00\x00\x00\x00\x00\x00{",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from(PREFIXES),
    body=st.binary(max_size=2048),
    suffix=st.sampled_from([".pt", ".safetensors", ".npz", ".pkl", ".bin"]),
)
def test_random_bytes_never_raise(prefix: bytes, body: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"random{suffix}"
        path.write_bytes(prefix + body)
        found = inspect_checkpoint(path)
    assert isinstance(found, Inspection)
    if found.error is not None:
        assert "\n" not in found.error
        assert found.error.startswith(f"random{suffix}: ")
    found.summary_lines()
    found.to_json()


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_damaged_real_checkpoints_never_raise(data: st.DataObject) -> None:
    original = (FIXTURES / "epoch=3-step=1200.ckpt").read_bytes()
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(damaged) - 1))
        damaged[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(damaged)))
    found = inspect_reader(BytesReader(bytes(damaged[:cut]), "damaged.ckpt"))
    assert isinstance(found, Inspection)
    if found.error is not None:
        assert "\n" not in found.error
