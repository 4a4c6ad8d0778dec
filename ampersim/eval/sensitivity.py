"""Sensitivity pass: choose the amber policy's skip layers of a model from calibration text.

Metric (Amber Pruner, arXiv 2508.02128): for every decoder linear, the relative output error
``||Y - Y'||_F / (||Y||_F + eps)`` where ``Y = X W^T + b`` is the dense output on calibration tokens
and ``Y'`` the output with X N:M-pruned (the policy's pattern and scoring), each layer pruned on its
own (inputs come from the dense model). Norms are over all calibration tokens and output channels.

Choice: the amber rule prunes q_proj and gate_proj except in "skip" layers, which keep both
dense. A layer's score is the mean of its q_proj and gate_proj errors; the ``k`` highest-scoring
layers are skipped, with ``k = round(num_layers * 5 / 32)`` — the proportion of the paper's
Llama-3.1-8B list (5 of 32 layers); Qwen2-7B's is 5 of 28. The metric of every linear (all seven
kinds, for reference) is recorded in the skip-list file with the method, so the choice can be
audited and redone with another rule.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ampersim.core.errors import InvalidArgument
from ampersim.core.patterns import NMPattern
from ampersim.core.vocab import DECODER_LINEAR_KINDS
from ampersim.core.yamlio import write_text_atomic
from ampersim.eval.metrics import calibration_forward
from ampersim.models.hf_names import linear_targets
from ampersim.sparsity.policy import AMBER_SPARSE_KINDS, AmberSkipList
from ampersim.sparsity.scoring import static_factor

if TYPE_CHECKING:
    import torch

PAPER_SKIP_FRACTION = 5 / 32
EPS = 1e-8


@dataclass(frozen=True)
class Sensitivity:
    """Relative output error per canonical linear name and the skip layers chosen from it."""

    model: str
    pattern: NMPattern
    scoring: str
    errors: dict[str, float]  # canonical name -> relative output error
    layer_scores: dict[int, float]  # layer -> mean of its q_proj and gate_proj errors
    skip_layers: tuple[int, ...]
    calibration: str  # what the calibration data was

    def skip_list(self) -> AmberSkipList:
        """The result in the amber skip-list file format of :mod:`ampersim.sparsity.policy`."""
        k = len(self.skip_layers)
        method = (
            f"ampersim sensitivity pass: relative output error ||Y - Y'||_F / (||Y||_F + {EPS:g}) of each "
            f"linear with only its input pruned ({self.pattern}, {self.scoring} scoring) on {self.calibration}; "
            f"layer score = mean of q_proj and gate_proj errors; the {k} highest-scoring layers are skipped "
            f"(k = round(num_layers * 5/32), the paper's Llama-3.1-8B proportion)"
        )
        return AmberSkipList(model=self.model, skip_layers=self.skip_layers,
                             source="measured: ampersim.eval.sensitivity (ampersim prune --sensitivity)",
                             method=method, sensitivity={k: round(v, 6) for k, v in self.errors.items()})


def relative_errors(model: torch.nn.Module, batches: Iterable[torch.Tensor], pattern: str | NMPattern,
                    scoring: str = "amber", kinds: tuple[str, ...] = DECODER_LINEAR_KINDS) -> dict[str, float]:
    """``||Y - Y'|| / (||Y|| + eps)`` of every decoder linear of ``kinds`` over calibration ``batches``."""
    import torch

    from ampersim.runtime.sparsify import prune_activation

    nm = NMPattern.parse(pattern)
    targets = [t for t in linear_targets(model) if t.kind in kinds and t.layer is not None]
    if not targets:
        raise InvalidArgument(f"the model has no decoder linears of kinds {', '.join(kinds)}")
    sums = {t.canonical: [0.0, 0.0] for t in targets}  # squared error, squared output

    def hook_for(name: str, module: Any, factor: Any):
        def hook(_module: Any, args: tuple) -> None:
            x = args[0]
            y = torch.nn.functional.linear(x, module.weight, module.bias)
            y_pruned = torch.nn.functional.linear(prune_activation(x, nm, factor), module.weight, module.bias)
            sums[name][0] += float((y - y_pruned).double().square().sum())
            sums[name][1] += float(y.double().square().sum())
        return hook

    hooks = []
    for t in targets:
        if t.in_features % nm.m:
            raise InvalidArgument(f"layer {t.name} ({t.canonical}): in_features {t.in_features} is not "
                                  f"divisible by M={nm.m} of pattern {nm}")
        factor = static_factor(t.module.weight, scoring)
        hooks.append(t.module.register_forward_pre_hook(hook_for(t.canonical, t.module, factor)))
    calibration_forward(model, batches, hooks)
    return {name: math.sqrt(err) / (math.sqrt(out) + EPS) for name, (err, out) in sums.items()}


def choose_skip_layers(errors: dict[str, float], num_layers: int,
                       fraction: float = PAPER_SKIP_FRACTION) -> tuple[dict[int, float], tuple[int, ...]]:
    """Layer scores (mean q_proj/gate_proj error) and the round(num_layers * fraction) worst layers."""
    scores = {}
    for layer in range(num_layers):
        values = [errors[f"layers.{layer}.{k}"] for k in AMBER_SPARSE_KINDS if f"layers.{layer}.{k}" in errors]
        if values:
            scores[layer] = sum(values) / len(values)
    k = round(num_layers * fraction)
    worst = sorted(scores, key=lambda i: (-scores[i], i))[:k]
    return scores, tuple(sorted(worst))


def sensitivity_pass(model: torch.nn.Module, model_name: str, num_layers: int,
                     batches: list[torch.Tensor], *, pattern: str | NMPattern = "8:16",
                     scoring: str = "amber", calibration: str = "") -> Sensitivity:
    """Measure every linear's relative output error and choose the amber skip layers."""
    nm = NMPattern.parse(pattern)
    errors = relative_errors(model, batches, nm, scoring)
    scores, skip = choose_skip_layers(errors, num_layers)
    tokens = sum(int(b.numel()) for b in batches)
    what = calibration or f"{tokens} calibration tokens"
    return Sensitivity(model_name, nm, scoring, errors, scores, skip, what)


def write_skip_list(record: AmberSkipList, path: str | Path) -> Path:
    """Write an amber skip list as YAML (atomically); return the path."""
    def dump(data: dict) -> str:
        return yaml.safe_dump(data, sort_keys=False, width=100)

    text = (
        "# Amber skip list chosen by ampersim's sensitivity pass (format: ampersim/sparsity/policy.py).\n"
        "# sensitivity: relative output error of each linear under pruning (see 'method').\n"
        + dump({"model": record.model})
        + f"skip_layers: {list(record.skip_layers)}\n"
        + dump({"source": record.source, "method": record.method, "sensitivity": record.sensitivity})
    )
    write_text_atomic(path, text)
    return Path(path)
