"""The serving engine a replica runs: step limits, KV-cache blocks, memory share, mixed-step mode.

Defaults follow vLLM (V1 scheduler: continuous batching with chunked prefill, PagedAttention blocks),
each with its source; every one can be overridden. The token budget and sequence limit depend on the
GPU as in vLLM: GPUs with at least 70 GiB of memory other than the A100 get the larger budget.
"""
from __future__ import annotations

from pydantic import Field, ValidationError

from ampersim.core.errors import InvalidArgument
from ampersim.core.schema import Frozen
from ampersim.core.sourced import Sourced
from ampersim.core.vocab import DType, MixedStepMode
from ampersim.hardware.profile import HardwareProfile

_VLLM_BATCH_DEFAULTS = ("https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py "
                        "(EngineArgs.get_batch_defaults, OpenAI server)")
LARGE_GPU_GIB = 70.0  # vLLM's threshold for the larger step budget (A100 excepted)

GPU_MEMORY_UTILIZATION = Sourced(
    value=0.9, date="2025-06",
    source="https://docs.vllm.ai/en/stable/configuration/engine_args.html: --gpu-memory-utilization defaults to "
           "0.9 (the rest is left to the CUDA context, NCCL, CUDA graphs and fragmentation)")
BLOCK_SIZE = Sourced(
    value=16, date="2025-06",
    source="https://docs.vllm.ai/en/stable/configuration/engine_args.html: --block-size defaults to 16 tokens on CUDA")
MIXED_STEP_DEFAULT: MixedStepMode = "split"
MIXED_STEP_REASON = (
    "split keeps decode dense, as the method is evaluated (prefill-only pruning), and keeps continuous "
    "batching with chunked prefill, the default schedule of vLLM and Sarathi-Serve; it pays one extra "
    "weight read per sparsified linear in a mixed step")


class EngineConfig(Frozen):
    """How one replica schedules and stores requests (vLLM names in brackets)."""

    max_batched_tokens: int = Field(gt=0, description="token budget of one step [max_num_batched_tokens]")
    max_seqs: int = Field(gt=0, description="running sequences at most [max_num_seqs]")
    block_size: int = Field(default=int(BLOCK_SIZE.value), gt=0, description="KV-cache block, tokens [block_size]")
    gpu_memory_utilization: float = Field(default=GPU_MEMORY_UTILIZATION.value, gt=0, le=1,
                                          description="share of each GPU's memory the engine may use")
    kv_dtype: DType | None = Field(default=None, description="KV-cache element type (None: the 16-bit activations)")
    mixed: MixedStepMode = Field(default=MIXED_STEP_DEFAULT, description="sparse path of a mixed step")

    def sources(self, profile: HardwareProfile) -> dict[str, str]:
        """Where each default came from (values the caller overrode are said to be given)."""
        large = _large_gpu(profile)
        return {
            "max_batched_tokens": f"vLLM default for {'>= 70 GiB GPUs other than A100' if large else 'other GPUs'}: "
                                  f"{_VLLM_BATCH_DEFAULTS}",
            "max_seqs": f"vLLM default ({_VLLM_BATCH_DEFAULTS})",
            "block_size": BLOCK_SIZE.source,
            "gpu_memory_utilization": GPU_MEMORY_UTILIZATION.source,
            "mixed": MIXED_STEP_REASON,
        }


def _large_gpu(profile: HardwareProfile) -> bool:
    gib = profile.memory.capacity_gb.value * 1e9 / 2**30
    return gib >= LARGE_GPU_GIB and "a100" not in profile.name.lower()


def engine_for(profile: HardwareProfile, **overrides: object) -> EngineConfig:
    """vLLM's defaults for this GPU with ``overrides`` (None values ignored); errors name the field."""
    large = _large_gpu(profile)
    values = {"max_batched_tokens": 8192 if large else 2048, "max_seqs": 1024 if large else 256}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return EngineConfig.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else None
        raise InvalidArgument(f"{field} {err.get('input')!r}: {err['msg'].removeprefix('Value error, ')}",
                              field=field) from None
