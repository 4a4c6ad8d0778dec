"""Scenario: a workload — model, batch, prompt and output lengths, dtype, TP, sparsity policy.

A prefill step packs ``batch`` prompts (varlen, no padding) into one forward pass. Prompt lengths are
either one number or a mix of lengths with shares; a mix is apportioned over the batch by largest
remainder (ties: the earlier bin), so a batch of 8 with shares 0.5/0.3/0.2 holds 4/2/2 prompts.
Prompt and output lengths (output: tokens generated per request, the first one included) are one
number (outputs 0: prefill only, no decode), a mix, or a lognormal, with their sources. A workload may
name the traffic it is served at (``serving``: request rate and SLOs, sourced) and a prefix-cache hit
rate (``prefix_cache``: the share of prompt tokens whose KV is already cached, so their linear layers
are skipped). Shipped scenarios live in workloads/scenarios/*.yaml.
"""
from __future__ import annotations

import math
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from ampersim.core.catalog import looks_like_path
from ampersim.core.errors import InvalidArgument, not_found
from ampersim.core.limits import MAX_LOG_SIGMA, MAX_STEP_SEQUENCES, MAX_STEP_TOKENS, check_at_most
from ampersim.core.patterns import NMPattern
from ampersim.core.resources import data_dir
from ampersim.core.schema import Frozen
from ampersim.core.sourced import SOURCE_RULE, PositiveSourced, Sourced, is_source
from ampersim.core.vocab import DType, Scoring
from ampersim.core.yamlio import load_model
from ampersim.models.spec import ModelSpec

DEFAULT_SCENARIO = "prefill-4k"  # the workload when none is named; see workloads/scenarios/prefill-4k.yaml


class PromptBin(Frozen):
    """Prompts of ``tokens`` tokens make up ``share`` of the requests."""

    tokens: int = Field(gt=0)
    share: float = Field(gt=0, le=1)


class LognormalParams(Frozen):
    """Lognormal lengths: arithmetic ``mean`` tokens, ``sigma`` the std of log-length, optional ``max``."""

    mean: float = Field(ge=1)
    sigma: float = Field(ge=0, le=MAX_LOG_SIGMA)
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _mean_within_cap(self) -> LognormalParams:
        if self.max is not None and self.mean > self.max:
            raise ValueError(f"mean {self.mean:g} is above max {self.max}: most lengths would be the cap")
        return self


class LognormalLengths(Frozen):
    lognormal: LognormalParams


class ServingTargets(Frozen):
    """The traffic a workload is planned for: request rate and SLOs (at the planner's percentile), each sourced."""

    rate_per_s: PositiveSourced
    slo_ttft_ms: PositiveSourced | None = None
    slo_tpot_ms: PositiveSourced | None = None


class PrefixCache(Frozen):
    """Prefix caching: ``hit_rate`` of every prompt's tokens have their KV cached (0 <= hit_rate < 1)."""

    hit_rate: Sourced

    @field_validator("hit_rate")
    @classmethod
    def _rate(cls, value: Sourced) -> Sourced:
        if not 0 <= value.value < 1:
            raise ValueError(f"hit_rate must be in [0, 1); got {value.value}")
        return value


class Scenario(Frozen):
    """A workload. See workloads/scenarios/*.yaml."""

    name: str
    description: str = ""
    model: str = Field(description="Model spec name/alias or path to a model YAML.")
    dtype: DType = "bf16"
    tp: int = Field(default=1, gt=0, description="Tensor-parallel degree (GPUs per model replica).")
    batch: int = Field(default=1, gt=0, description="Prompts prefilled together in one step.")
    prompt_tokens: int | tuple[PromptBin, ...] | LognormalLengths = Field(
        description="Tokens per prompt, a mix (list of {tokens, share} with shares summing to 1) or "
                    "{lognormal: {mean, sigma, max}}."
    )
    prompt_source: str | None = Field(default=None, description="Where the prompt lengths come from.")
    policy: str = Field(default="amber", description="amber | all | none | path to a policy YAML.")
    pattern: str = "8:16"
    scoring: Scoring = "amber"
    output_tokens: int | tuple[PromptBin, ...] | LognormalLengths = Field(
        default=0, description="Tokens generated per request (the first included): one number (0: prefill only), "
                               "a mix [{tokens, share}] or {lognormal: {mean, sigma, max}}.")
    output_source: str | None = Field(default=None, description="Where the output lengths come from.")
    serving: ServingTargets | None = Field(default=None, description="Request rate and SLOs to plan for.")
    prefix_cache: PrefixCache | None = Field(default=None, description="Share of prompt tokens found in the KV cache.")

    @field_validator("prompt_tokens")
    @classmethod
    def _lengths_valid(cls, value: int | tuple[PromptBin, ...] | LognormalLengths
                       ) -> int | tuple[PromptBin, ...] | LognormalLengths:
        if isinstance(value, int):
            if value <= 0:
                raise ValueError(f"must be > 0; got {value}")
        elif isinstance(value, tuple):
            _check_mix(value)
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern_valid(cls, value: str) -> str:
        return str(NMPattern.parse(value))

    @field_validator("output_tokens")
    @classmethod
    def _outputs_valid(cls, value: int | tuple[PromptBin, ...] | LognormalLengths
                       ) -> int | tuple[PromptBin, ...] | LognormalLengths:
        if isinstance(value, int) and value < 0:
            raise ValueError(f"must be >= 0 (0: prefill only); got {value}")
        if isinstance(value, tuple):
            _check_mix(value)
        return value

    @field_validator("output_source", "prompt_source")
    @classmethod
    def _source_valid(cls, value: str | None) -> str | None:
        if value is not None and not is_source(value):
            raise ValueError(f"must be {SOURCE_RULE}; got '{value}'")
        return value

    @property
    def has_outputs(self) -> bool:
        """False for a prefill-only workload (output_tokens: 0)."""
        return self.output_tokens != 0

    def mean_output_tokens(self) -> float:
        """Mean tokens generated per request (a lognormal's mean before rounding and capping)."""
        out = self.output_tokens
        if isinstance(out, int):
            return float(out)
        if isinstance(out, LognormalLengths):
            return out.lognormal.mean
        return sum(b.tokens * b.share for b in out)

    def output_lengths(self) -> list[int]:
        """Tokens generated by each sequence of the step: the mix apportioned like the prompts, a
        lognormal's mean (rounded) for every sequence."""
        out = self.output_tokens
        if isinstance(out, tuple):
            return _apportion(out, self.batch)
        return [round(self.mean_output_tokens())] * self.batch

    @property
    def cache_hit_rate(self) -> float:
        """Share of prompt tokens whose KV is cached (0 without prefix caching)."""
        return self.prefix_cache.hit_rate.value if self.prefix_cache else 0.0

    def mean_prompt_tokens(self) -> float:
        """Mean tokens per prompt (a lognormal's mean before rounding and capping)."""
        p = self.prompt_tokens
        if isinstance(p, int):
            return float(p)
        if isinstance(p, LognormalLengths):
            return p.lognormal.mean
        return sum(b.tokens * b.share for b in p)

    def sequence_lengths(self) -> list[int]:
        """Prompt length of every sequence in the step (largest-remainder apportionment of a mix, a
        lognormal's mean rounded for every sequence)."""
        if isinstance(self.prompt_tokens, tuple):
            return _apportion(self.prompt_tokens, self.batch)
        return [round(self.mean_prompt_tokens())] * self.batch

    def longest_prompt(self) -> int:
        """Tokens of the longest prompt: the number, the mix's largest, a lognormal's cap (else its mean)."""
        return _longest(self.prompt_tokens)

    def longest_output(self) -> int:
        """Tokens of the longest output: the number, the mix's largest, a lognormal's cap (else its mean)."""
        return _longest(self.output_tokens)

    def check_bounds(self, spec: ModelSpec) -> None:
        """Refuse, before any work, a step beyond the resource bounds (ampersim.core.limits) or a sequence
        beyond ``spec``'s context length; errors name the field (batch, prompt_tokens, output_tokens)."""
        spec.check_context(self.longest_prompt(), "prompt_tokens", "a prompt")
        spec.check_context(self.longest_prompt() + self.longest_output(), "output_tokens",
                           f"a request of {self.longest_prompt():,} prompt and {self.longest_output():,} output tokens")
        check_at_most(self.batch, MAX_STEP_SEQUENCES, "batch", "the prompts in one prefill step")
        check_at_most(self.batch * self.longest_prompt(), MAX_STEP_TOKENS, "batch",
                      f"the tokens in one prefill step ({self.batch:,} prompts of up to {self.longest_prompt():,})")

    def with_overrides(self, **changes: object) -> Scenario:
        """A validated copy with some fields replaced (None values are ignored)."""
        update = {k: v for k, v in changes.items() if v is not None}
        if not update:
            return self
        try:
            return Scenario.model_validate({**self.model_dump(), **update})
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else "scenario"
            raise InvalidArgument(f"{field}: {err['msg'].removeprefix('Value error, ')}", field=field) from None


def _check_mix(bins: tuple[PromptBin, ...]) -> None:
    if not bins:
        raise ValueError("the mix needs at least one {tokens, share} entry")
    if not math.isclose(sum(b.share for b in bins), 1.0, abs_tol=1e-6):
        raise ValueError(f"shares must sum to 1; got {sum(b.share for b in bins):g}")


def _longest(lengths: int | tuple[PromptBin, ...] | LognormalLengths) -> int:
    """The longest of ``lengths``: the number, the mix's largest, a lognormal's cap (else its mean, rounded)."""
    if isinstance(lengths, int):
        return lengths
    if isinstance(lengths, LognormalLengths):
        return lengths.lognormal.max if lengths.lognormal.max is not None else round(lengths.lognormal.mean)
    return max(b.tokens for b in lengths)


def _apportion(bins: tuple[PromptBin, ...], batch: int) -> list[int]:
    """``batch`` lengths from a mix by largest remainder (ties: the earlier bin)."""
    ideal = [b.share * batch for b in bins]
    counts = [math.floor(x) for x in ideal]
    order = sorted(range(len(ideal)), key=lambda i: (-(ideal[i] - counts[i]), i))
    for i in order[: batch - sum(counts)]:
        counts[i] += 1
    return [b.tokens for b, c in zip(bins, counts) for _ in range(c)]


def scenarios_dir() -> Path:
    return data_dir("workloads") / "scenarios"


def list_scenarios() -> list[Scenario]:
    """All shipped scenarios, sorted by name."""
    return sorted((load_model(p, Scenario) for p in scenarios_dir().glob("*.yaml")), key=lambda s: s.name)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, or a scenario YAML file; NotFound lists close names."""
    if looks_like_path(name_or_path):
        return load_model(Path(name_or_path), Scenario)
    text = str(name_or_path)
    shipped = scenarios_dir() / f"{text}.yaml"
    if shipped.is_file():
        return load_model(shipped, Scenario)
    raise not_found("workload", text, (p.stem for p in scenarios_dir().glob("*.yaml")))
