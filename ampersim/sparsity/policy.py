"""Sparsity policy: which linear layers get N:M-pruned inputs in prefill.

One policy type serves the simulator (op graph, coverage) and the real-model pruner (layer selection);
the share of the work it covers is ``ampersim.sparsity.coverage``.

Selection is a list of rules evaluated in order; the last rule that matches a linear decides whether
its input is sparsified (a linear no rule matches stays dense). Linears are addressed by canonical
names ``layers.{i}.{kind}`` with kind one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
down_proj (MoE: the expert projections share their kind's name). The MoE ``router`` and ``lm_head``
are never sparsified.

Presets (``resolve_policy``):
- ``amber``: the Amber Pruner rule (arXiv 2508.02128): down_proj always sparse; q_proj and gate_proj
  sparse except in the model's sensitive ("skip") layers; k, v, o and up stay dense. Skip lists come
  from ``workloads/policies/amber/<model-name>.yaml`` (shipped for the paper's three models; the
  sensitivity pass writes others). Without a file the rule runs with no skipped layers, and the
  policy's ``note`` says so.
- ``all``: every decoder-layer projection (q, k, v, o, gate, up, down).
- ``none``: dense.

Custom policy YAML (any other value is a path)::

    name: no-first-last          # optional; default: the file name
    description: free text       # optional
    rules:                       # in order; later rules override earlier ones
      - kinds: [q_proj, gate_proj, down_proj]   # default: all seven decoder kinds
        skip_layers: [0, 31]                     # layers this rule leaves alone
      - modules: ["layers.1?.down_proj"]        # fnmatch globs on canonical names
        sparse: false                            # this rule makes matches dense (default: true)
      - layers: [5, 6]                           # default: every layer
        kinds: [up_proj]

Amber skip-list file (``workloads/policies/amber/<model-name>.yaml``)::

    model: llama-3.1-8b                 # must equal the file's model name
    skip_layers: [19, 21, 28, 30, 31]   # 0-based layers whose q_proj and gate_proj stay dense
    source: https://arxiv.org/abs/2508.02128   # URL, 'measured: <file>', 'derived: <how>', ...
    method: free text                   # optional: metric, calibration data, pattern, threshold
    sensitivity: {layers.0.q_proj: 0.12, ...}   # optional: per-linear score the choice used

Pattern and scoring are not part of a policy file: they come from the caller (CLI flags/scenario).
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from ampersim.core.errors import InvalidArgument, InvalidData, NotFound
from ampersim.core.patterns import NMPattern
from ampersim.core.resources import data_dir
from ampersim.core.schema import Frozen
from ampersim.core.sourced import Sourced
from ampersim.core.vocab import (
    DECODER_LINEAR_KINDS,
    NEVER_SPARSE_KINDS,
    POLICY_PRESETS,
    ROW_PARALLEL_KINDS,
    SCORINGS,
    DecoderLinearKind,
    Scoring,
)
from ampersim.core.yamlio import load_model, load_model_cached
from ampersim.models.spec import ModelSpec

AMBER_SPARSE_KINDS = ("q_proj", "gate_proj")  # sparse except in the model's skip layers
AMBER_ALWAYS_SPARSE = ("down_proj",)
PAPER_URL = "https://arxiv.org/abs/2508.02128"



def canonical_name(layer: int, kind: str) -> str:
    """Canonical linear name shared by policies, coverage and the pruner: ``layers.{i}.{kind}``."""
    return f"layers.{layer}.{kind}"


class PolicyRule(Frozen):
    """Linears matched by every given selector (kinds AND layers AND modules, minus skip_layers)."""

    kinds: tuple[DecoderLinearKind, ...] = DECODER_LINEAR_KINDS  # type: ignore[assignment]
    layers: tuple[int, ...] | None = Field(default=None, description="Layers matched; None = all.")
    skip_layers: tuple[int, ...] = ()
    modules: tuple[str, ...] | None = Field(
        default=None, description="fnmatch globs on canonical names 'layers.{i}.{kind}'; None = all."
    )
    sparse: bool = True

    def matches(self, layer: int, kind: str) -> bool:
        if kind not in self.kinds or layer in self.skip_layers:
            return False
        if self.layers is not None and layer not in self.layers:
            return False
        if self.modules is not None:
            name = canonical_name(layer, kind)
            return any(fnmatch.fnmatchcase(name, glob) for glob in self.modules)
        return True


class SparsityPolicy(Frozen):
    """Which linear inputs are N:M-pruned (prefill only), with which pattern and score."""

    name: str
    pattern: NMPattern
    scoring: Scoring = "amber"
    rules: tuple[PolicyRule, ...] = ()
    prefill_only: bool = True
    model: str = Field(default="", description="Model the policy was resolved for (layer ranges checked).")
    note: str = ""

    def is_sparse(self, layer: int, kind: str) -> bool:
        """True if the input of linear ``kind`` in decoder layer ``layer`` is pruned."""
        if kind in NEVER_SPARSE_KINDS:
            return False
        for rule in reversed(self.rules):
            if rule.matches(layer, kind):
                return rule.sparse
        return False

    def dense_layers(self, spec: ModelSpec, kind: str) -> list[int]:
        """Layers in which ``kind`` stays dense (e.g. amber's skip list for q_proj)."""
        return [i for i in range(spec.num_layers) if not self.is_sparse(i, kind)]


class _CustomPolicyFile(Frozen):
    name: str | None = None
    description: str = ""
    rules: tuple[PolicyRule, ...]


class AmberSkipList(Frozen):
    """Layers whose q_proj and gate_proj stay dense under the amber policy, for one model."""

    model: str
    skip_layers: tuple[int, ...]
    source: str
    method: str = ""
    sensitivity: dict[str, float] = Field(default_factory=dict)

    @field_validator("source")
    @classmethod
    def _sourced(cls, value: str) -> str:
        try:  # the same source rule as every profile number
            return Sourced(value=0.0, source=value).source
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def amber_skip_dir() -> Path:
    """Folder of amber skip-list files, one ``<model-name>.yaml`` per model."""
    return data_dir("workloads") / "policies" / "amber"


def load_amber_skip_list(model_name: str, folder: Path | None = None) -> tuple[AmberSkipList, Path] | None:
    """The recorded skip list for ``model_name`` and its file, or None if none is recorded."""
    path = (folder or amber_skip_dir()) / f"{model_name}.yaml"
    if not path.is_file():
        return None
    skip = load_model_cached(path, AmberSkipList)
    if skip.model != model_name:
        raise InvalidData(f"{path}: field 'model': '{skip.model}' does not match the file name '{model_name}'")
    return skip, path


def check_pattern_fits(model: ModelSpec, policy: SparsityPolicy, tp: int = 1) -> None:
    """Refuse a pattern that cannot prune ``policy``'s linears of ``model``: every sparsified linear's
    input features per GPU (row-parallel linears split them ``tp`` ways) must be a multiple of M.
    The one check of pattern against model shapes, for every command (InvalidArgument, field 'pattern')."""
    m = policy.pattern.m
    for linear in model.layer_linears(0):  # every decoder layer has the same linears
        features = linear.in_features // tp if linear.kind in ROW_PARALLEL_KINDS else linear.in_features
        if features % m == 0:
            continue
        layer = next((i for i in range(model.num_layers) if policy.is_sparse(i, linear.kind)), None)
        if layer is not None:
            per_gpu = f" per GPU (tp {tp})" if tp > 1 else ""
            raise InvalidArgument(
                f"pattern {policy.pattern} needs the input features of every sparsified linear to be a multiple "
                f"of {m}; {canonical_name(layer, linear.kind)} of {model.name} has {features}{per_gpu}",
                field="pattern")


def resolve_policy(policy: str | Path, model: ModelSpec, pattern: str | NMPattern = "8:16",
                   scoring: str = "amber") -> SparsityPolicy:
    """Build the policy ``policy`` (preset name or custom YAML path) for ``model``.

    Raises InvalidArgument for an unknown scoring or a pattern the sparsified linears' shapes do not
    allow (check_pattern_fits), InvalidData for a malformed file or a layer out of the model's range,
    NotFound for a missing file.
    """
    resolved = _resolve(policy, model, pattern, scoring)
    check_pattern_fits(model, resolved)
    return resolved


def _resolve(policy: str | Path, model: ModelSpec, pattern: str | NMPattern, scoring: str) -> SparsityPolicy:
    nm = NMPattern.parse(pattern)
    if scoring not in SCORINGS:
        raise InvalidArgument(f"unknown scoring '{scoring}'; allowed: {', '.join(SCORINGS)}")
    common = dict(pattern=nm, scoring=scoring, model=model.name)
    if str(policy) == "none":
        return SparsityPolicy(name="none", rules=(), **common)
    if str(policy) == "all":
        return SparsityPolicy(name="all", rules=(PolicyRule(),), **common)
    if str(policy) == "amber":
        return _amber(model, common)
    path = Path(policy)
    if not path.is_file():
        raise NotFound(
            f"policy '{policy}' is neither a preset ({', '.join(POLICY_PRESETS)}) nor an existing YAML file",
            field="policy")
    custom = load_model(path, _CustomPolicyFile)
    for index, rule in enumerate(custom.rules):
        for field in ("layers", "skip_layers"):
            _check_layers(getattr(rule, field) or (), model, f"{path}: rules[{index}].{field}")
    return SparsityPolicy(name=custom.name or path.stem, rules=custom.rules, note=custom.description, **common)


def _amber(model: ModelSpec, common: dict) -> SparsityPolicy:
    found = load_amber_skip_list(model.name)
    if found is None:
        skip: tuple[int, ...] = ()
        note = (f"no amber skip list recorded for {model.name} "
                f"({amber_skip_dir() / (model.name + '.yaml')}): amber rules with no skipped layers")
    else:
        record, path = found
        _check_layers(record.skip_layers, model, f"{path}: skip_layers")
        skip = record.skip_layers
        note = f"amber skip layers {list(skip)} from {record.source}"
    rules = (PolicyRule(kinds=AMBER_SPARSE_KINDS, skip_layers=skip), PolicyRule(kinds=AMBER_ALWAYS_SPARSE))
    return SparsityPolicy(name="amber", rules=rules, note=note, **common)


def _check_layers(layers: tuple[int, ...], model: ModelSpec, where: str) -> None:
    bad = [i for i in layers if not 0 <= i < model.num_layers]
    if bad:
        raise InvalidData(
            f"{where}: layer {bad[0]} is out of range for {model.name} (allowed 0..{model.num_layers - 1})"
        )


__all__ = ["AmberSkipList", "PolicyRule", "SparsityPolicy", "canonical_name", "check_pattern_fits", "load_amber_skip_list",
           "resolve_policy"]
