"""Scenario: one prefill step of a workload — model, batch, prompt lengths, dtype, TP, sparsity policy.

A step packs ``batch`` prompts (varlen, no padding) into one forward pass. Prompt lengths are either
one number or a mix of lengths with shares; a mix is apportioned over the batch by largest
remainder (ties: the earlier bin), so a batch of 8 with shares 0.5/0.3/0.2 holds 4/2/2 prompts.
Shipped scenarios live in workloads/scenarios/*.yaml.
"""
from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ampersim.core.catalog import looks_like_path
from ampersim.core.errors import InvalidArgument, not_found
from ampersim.core.vocab import DType, Scoring
from ampersim.core.patterns import NMPattern
from ampersim.core.resources import data_dir
from ampersim.core.yamlio import load_model

DEFAULT_SCENARIO = "prefill-4k"  # the workload when none is named; see workloads/scenarios/prefill-4k.yaml


class PromptBin(BaseModel):
    """Prompts of ``tokens`` tokens make up ``share`` of the requests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: int = Field(gt=0)
    share: float = Field(gt=0, le=1)


class Scenario(BaseModel):
    """A prefill workload. See workloads/scenarios/*.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    model: str = Field(description="Model spec name/alias or path to a model YAML.")
    dtype: DType = "bf16"
    tp: int = Field(default=1, gt=0, description="Tensor-parallel degree (GPUs per model replica).")
    batch: int = Field(default=1, gt=0, description="Prompts prefilled together in one step.")
    prompt_tokens: int | tuple[PromptBin, ...] = Field(
        description="Tokens per prompt, or a mix: list of {tokens, share} with shares summing to 1."
    )
    policy: str = Field(default="amber", description="amber | all | none | path to a policy YAML.")
    pattern: str = "8:16"
    scoring: Scoring = "amber"

    @field_validator("prompt_tokens")
    @classmethod
    def _lengths_valid(cls, value: int | tuple[PromptBin, ...]) -> int | tuple[PromptBin, ...]:
        if isinstance(value, int):
            if value <= 0:
                raise ValueError(f"must be > 0; got {value}")
        elif not value:
            raise ValueError("the mix needs at least one {tokens, share} entry")
        elif not math.isclose(sum(b.share for b in value), 1.0, abs_tol=1e-6):
            raise ValueError(f"shares must sum to 1; got {sum(b.share for b in value):g}")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern_valid(cls, value: str) -> str:
        return str(NMPattern.parse(value))

    def sequence_lengths(self) -> list[int]:
        """Prompt length of every sequence in the step (largest-remainder apportionment of a mix)."""
        if isinstance(self.prompt_tokens, int):
            return [self.prompt_tokens] * self.batch
        ideal = [b.share * self.batch for b in self.prompt_tokens]
        counts = [math.floor(x) for x in ideal]
        order = sorted(range(len(ideal)), key=lambda i: (-(ideal[i] - counts[i]), i))
        for i in order[: self.batch - sum(counts)]:
            counts[i] += 1
        return [b.tokens for b, c in zip(self.prompt_tokens, counts) for _ in range(c)]

    def with_overrides(self, **changes: object) -> "Scenario":
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
