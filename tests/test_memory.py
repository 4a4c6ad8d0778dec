"""Memory fit: weights, KV cache per token and in blocks, workspace, reserve, and what predict reports."""

import math

import pytest

from ampersim.core.errors import InvalidArgument
from ampersim.hardware.registry import load_profile
from ampersim.models.registry import load_model_spec
from ampersim.sim.engine import engine_for
from ampersim.sim.memory import kv_bytes_per_token, memory_fit, workspace_bytes
from ampersim.sim.predict import predict
from ampersim.sim.scenario import load_scenario


def test_kv_bytes_per_token():
    llama8 = load_model_spec("llama-3.1-8b")  # 32 layers, 8 KV heads of 128
    assert kv_bytes_per_token(llama8, 1, 2) == 128 * 1024  # 2 (K, V) x 32 x 8 x 128 x 2 bytes
    assert kv_bytes_per_token(llama8, 2, 2) == 64 * 1024 and kv_bytes_per_token(llama8, 1, 1) == 64 * 1024
    assert kv_bytes_per_token(load_model_spec("llama-3.1-70b"), 4, 2) == 2 * 80 * 2 * 128 * 2


def test_kv_capacity_arithmetic():
    h100, spec = load_profile("h100-sxm"), load_model_spec("llama-3.1-8b")
    engine = engine_for(h100)
    fit = memory_fit(h100, spec, "bf16", 1, engine)
    assert (engine.max_batched_tokens, engine.max_seqs, engine.block_size) == (8192, 1024, 16)  # vLLM, >= 70 GiB
    weights = spec.num_parameters * 2
    workspace = workspace_bytes(spec, "bf16", 1, 8192, 1024)
    assert workspace == 8192 * (2 * 4096 + 3 * 14336) * 2 + 1024 * 128256 * 4
    blocks = math.floor((0.9 * 80e9 - weights - workspace) / (128 * 1024 * 16))
    assert fit.kv_blocks == blocks and fit.kv_tokens == 16 * blocks
    assert fit.weights_gb == pytest.approx(weights / 1e9) and fit.reserve_gb == pytest.approx(8.0)
    assert fit.max_sequences(1200) == blocks // 75  # 1,200 tokens take 75 blocks
    fp8 = memory_fit(h100, spec, "bf16", 1, engine_for(h100, kv_dtype="fp8"))
    assert fp8.kv_blocks == pytest.approx(2 * blocks, abs=1)
    tp2 = memory_fit(h100, spec, "bf16", 2, engine)
    assert tp2.kv_tokens > 2 * fit.kv_tokens  # half the weights and half the KV per token on each GPU
    a100 = engine_for(load_profile("a100"))
    assert (a100.max_batched_tokens, a100.max_seqs) == (2048, 256)  # vLLM's smaller defaults for A100


def test_engine_errors_name_the_field():
    with pytest.raises(InvalidArgument, match="gpu_memory_utilization 1.5") as err:
        engine_for(load_profile("h100-sxm"), gpu_memory_utilization=1.5)
    assert err.value.field == "gpu_memory_utilization"


def test_predict_counts_the_kv_cache_in_fits_memory():
    h100 = load_profile("h100-sxm")
    chat = predict(h100, load_scenario("chat"))
    assert chat.fits_memory and chat.max_concurrent_tokens == chat.memory.kv_tokens
    assert chat.max_concurrent_sequences == chat.memory.max_sequences(2048 + 211 - 1)
    huge = predict(h100, load_scenario("chat").with_overrides(batch=256, prompt_tokens=4096, output_tokens=4096))
    assert huge.weights_gb_per_gpu < 80 and not huge.fits_memory  # the weights fit; their KV cache does not
    assert "KV cache need" in huge.note
