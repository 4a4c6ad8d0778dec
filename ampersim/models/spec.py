"""ModelSpec: the architecture numbers of a decoder-only LLM (from YAML or a Hugging Face config).

The spec is the single description of "which linear layers exist and how big they are" shared by
the simulator (op graph, coverage) and the real-model pruner (layer selection, coverage).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ampersim.core.errors import InvalidArgument
from ampersim.core.schema import Frozen
from ampersim.core.vocab import LinearKind


class MoESpec(Frozen):
    """Mixture-of-experts FFN: ``experts_per_token`` of ``num_experts`` routed experts per token."""

    num_experts: int = Field(gt=1)
    experts_per_token: int = Field(gt=0)
    expert_intermediate_size: int = Field(gt=0)
    shared_expert_intermediate_size: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> MoESpec:
        if self.experts_per_token > self.num_experts:
            raise ValueError("experts_per_token must be <= num_experts")
        return self


class LinearSpec(Frozen):
    """One linear projection of a decoder layer (or lm_head), per token.

    ``instances`` is how many copies run per token on average: 1 for dense layers, top-k for
    routed experts (each token visits top-k of num_experts); ``count`` is how many exist.
    """

    kind: LinearKind
    layer: int
    in_features: int
    out_features: int
    instances_per_token: float = 1.0
    count: int = 1
    expert: bool = False

    @property
    def macs_per_token(self) -> float:
        return self.in_features * self.out_features * self.instances_per_token


class ModelSpec(Frozen):
    """Architecture of a decoder-only transformer. See workloads/models/*.yaml."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    display_name: str
    family: Literal["llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "gemma3", "other"]
    source: str = Field(description="Where the numbers come from (config URL or file).")
    aliases: list[str] = Field(default_factory=list)
    num_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0, description="Dense FFN width (unused by MoE layers).")
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_position_embeddings: int | None = Field(
        default=None, gt=0,
        description="Context length: the most tokens one sequence (prompt and output) may hold (config "
                    "max_position_embeddings); None: not recorded, no bound.")
    tie_embeddings: bool = False
    mlp_activation: Literal["silu", "gelu_tanh"] = "silu"
    qk_norm: bool = False
    sliding_window: int | None = Field(default=None, gt=0)
    global_every: int | None = Field(
        default=None, gt=0,
        description="With sliding_window: every k-th layer uses full attention (Gemma 3: 6).",
    )
    moe: MoESpec | None = None
    rope_theta: float = Field(
        default=10000.0, gt=0,
        description="Rotary embedding base (config rope_theta; Gemma 3: that of its global layers). "
                    "Default 10000: the RoFormer paper's base, which transformers also assumes when a "
                    "config omits it.",
    )
    rope_local_theta: float | None = Field(
        default=None, gt=0,
        description="Rotary base of the sliding-window layers where it differs from rope_theta "
                    "(Gemma 3: rope_local_base_freq); None: every layer uses rope_theta.",
    )

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})"
            )
        return self

    def check_context(self, tokens: int, field: str, what: str = "a sequence", hint: str = "") -> None:
        """Refuse ``tokens`` tokens in one sequence beyond the context length (InvalidArgument naming ``field``)."""
        limit = self.max_position_embeddings
        if limit is not None and tokens > limit:
            raise InvalidArgument(f"{field}: {what} has {tokens:,} tokens, more than {self.name}'s context length "
                                  f"of {limit:,} (max_position_embeddings){'; ' + hint if hint else ''}", field=field)

    def layer_linears(self, layer: int) -> list[LinearSpec]:
        """The linear projections of decoder layer ``layer`` (router and experts for MoE)."""
        h, q, kv = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        out = [
            LinearSpec(kind="q_proj", layer=layer, in_features=h, out_features=q),
            LinearSpec(kind="k_proj", layer=layer, in_features=h, out_features=kv),
            LinearSpec(kind="v_proj", layer=layer, in_features=h, out_features=kv),
            LinearSpec(kind="o_proj", layer=layer, in_features=q, out_features=h),
        ]
        if self.moe is None:
            ffn, per_tok, count, expert = self.intermediate_size, 1.0, 1, False
        else:
            out.append(LinearSpec(kind="router", layer=layer, in_features=h, out_features=self.moe.num_experts))
            ffn, per_tok = self.moe.expert_intermediate_size, float(self.moe.experts_per_token)
            count, expert = self.moe.num_experts, True
        out += [
            LinearSpec(kind="gate_proj", layer=layer, in_features=h, out_features=ffn,
                       instances_per_token=per_tok, count=count, expert=expert),
            LinearSpec(kind="up_proj", layer=layer, in_features=h, out_features=ffn,
                       instances_per_token=per_tok, count=count, expert=expert),
            LinearSpec(kind="down_proj", layer=layer, in_features=ffn, out_features=h,
                       instances_per_token=per_tok, count=count, expert=expert),
        ]
        if self.moe is not None and self.moe.shared_expert_intermediate_size:
            s = self.moe.shared_expert_intermediate_size
            out += [
                LinearSpec(kind="gate_proj", layer=layer, in_features=h, out_features=s),
                LinearSpec(kind="up_proj", layer=layer, in_features=h, out_features=s),
                LinearSpec(kind="down_proj", layer=layer, in_features=s, out_features=h),
            ]
        return out

    def lm_head(self) -> LinearSpec:
        return LinearSpec(kind="lm_head", layer=self.num_layers, in_features=self.hidden_size,
                          out_features=self.vocab_size)

    def is_global_attention(self, layer: int) -> bool:
        """True if ``layer`` attends over the whole prefix (False: sliding window)."""
        if self.sliding_window is None:
            return True
        return self.global_every is not None and (layer + 1) % self.global_every == 0

    @property
    def num_parameters(self) -> int:
        """Parameter count (weights of linears, embeddings, norms), all experts included."""
        linear = sum(lin.in_features * lin.out_features * lin.count
                     for i in range(self.num_layers) for lin in self.layer_linears(i))
        embed = self.vocab_size * self.hidden_size * (1 if self.tie_embeddings else 2)
        norms = self.num_layers * 2 * self.hidden_size + self.hidden_size
        return int(linear + embed + norms)
