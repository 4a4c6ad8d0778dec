"""Arguments shared by the economics commands (roi, plan, report): workload overrides and prices."""

from __future__ import annotations

import argparse
from typing import Any

from ampersim.cli import map_fields
from ampersim.core.errors import InvalidArgument
from ampersim.core.vocab import DTYPES, MIXED_STEP_MODES

PRICE_FLAGS = (
    ("usd_per_hour", "--usd-per-hour", "cloud price, $ per GPU-hour"),
    ("purchase_usd", "--purchase-usd", "purchase price per GPU, $"),
)


def add_workload_arguments(parser: argparse.ArgumentParser, *, lengths: bool = True,
                           default_workload: str = "prefill-4k",
                           tp_help: str = "tensor-parallel degree (default: the workload's)") -> None:
    parser.add_argument(
        "--workload",
        default=None,
        help=f"scenario name or YAML (default: {default_workload})",
    )
    parser.add_argument("--pattern", default=None, help="N:M sparsity pattern (default: the workload's, 8:16)")
    parser.add_argument("--policy", default=None, help="amber | all | none | policy YAML (default: the workload's)")
    parser.add_argument("--dtype", default=None, help="bf16 | fp16 | fp8 | int8 (default: the workload's)")
    parser.add_argument("--tp", type=int, default=None, help=tp_help)
    if lengths:
        parser.add_argument("--tokens", type=int, default=None, help="tokens per prompt (overrides the workload)")
        parser.add_argument("--batch", type=int, default=None, help="prompts per prefill step")
        map_fields(parser, prompt_tokens="--tokens")


def load_workload(args: argparse.Namespace, default: str | None = None) -> Any:
    """The scenario named by --workload (else ``default``, else prefill-4k) with the command-line overrides."""
    from ampersim.sim.scenario import DEFAULT_SCENARIO, load_scenario

    scenario = load_scenario(args.workload or default or DEFAULT_SCENARIO)
    return scenario.with_overrides(
        pattern=args.pattern,
        policy=args.policy,
        dtype=args.dtype,
        tp=args.tp,
        prompt_tokens=getattr(args, "tokens", None),
        batch=getattr(args, "batch", None),
    )


def add_price_arguments(parser: argparse.ArgumentParser, *, repeatable: bool) -> None:
    """--usd-per-hour / --purchase-usd (once for all profiles, or once per --profile in order)."""
    for dest, flag, what in PRICE_FLAGS:
        if repeatable:
            parser.add_argument(
                flag,
                dest=dest,
                type=float,
                action="append",
                default=None,
                help=f"{what}; once for every profile or once per --profile, in order",
            )
        else:
            parser.add_argument(flag, dest=dest, type=float, default=None, help=f"{what} (overrides the profile)")


def per_profile(values: list[float] | None, flag: str, n_profiles: int) -> list[float | None]:
    """Expand a repeated flag to one value per profile: none, one for all, or exactly one each."""
    if not values:
        return [None] * n_profiles
    if len(values) == 1:
        return values * n_profiles
    if len(values) != n_profiles:
        raise InvalidArgument(
            f"{flag} given {len(values)} times for {n_profiles} profiles: give it once "
            "(all profiles) or once per --profile, in the same order"
        )
    return list(values)


def add_profiles_argument(parser: argparse.ArgumentParser) -> None:
    """Repeatable --profile; the first is the payback baseline."""
    parser.add_argument(
        "--profile",
        action="append",
        required=True,
        help="hardware profile (repeat to compare; the first is the payback baseline)",
    )


def add_ownership_arguments(parser: argparse.ArgumentParser) -> None:
    """Amortization and running-cost assumptions of owned GPUs."""
    parser.add_argument("--lifetime-years", type=float, default=None,
                        help="amortization period of a purchase (default 5)")
    parser.add_argument("--usd-per-kwh", type=float, default=None, help="electricity price (default 0.10)")
    parser.add_argument("--utilization", type=float, default=None,
                        help="fraction of hours the GPUs run prefill, (0, 1] (default 1)")


def add_traffic_arguments(parser: argparse.ArgumentParser, *, duration_help: str) -> None:
    """SLO percentile, prompt and output lengths, the serving engine's limits, simulated duration and seed."""
    parser.add_argument("--percentile", default="p95", help="SLO percentile: p50, p95, p99 (any pNN; default p95)")
    parser.add_argument(
        "--prompt-dist",
        default=None,
        help="fixed:TOKENS | lognormal:MEAN,SIGMA[,MAX] | trace:FILE (default: the workload's lengths)",
    )
    parser.add_argument(
        "--output-dist",
        default=None,
        help="output tokens per request: fixed:TOKENS (0: prefill only) | lognormal:MEAN,SIGMA[,MAX] | trace:FILE "
        "(default: the workload's)",
    )
    add_engine_arguments(parser)
    parser.add_argument("--duration-s", type=float, default=None, help=duration_help)
    parser.add_argument("--seed", type=int, default=0, help="random seed of arrivals and lengths (default 0)")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The serving engine's limits (defaults: vLLM's for the profile's GPU)."""
    parser.add_argument("--max-batched-tokens", type=int, default=None,
                        help="token budget of one step, prefill chunks and decode tokens together (default: vLLM's "
                             "for the GPU: 8192 on >= 70 GiB GPUs other than A100, else 2048)")
    parser.add_argument("--max-seqs", type=int, default=None,
                        help="running sequences per replica at most (default: vLLM's: 1024 on >= 70 GiB GPUs other "
                             "than A100, else 256)")
    parser.add_argument("--block-size", type=int, default=None, help="KV-cache block, tokens (default 16)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=None,
                        help="share of each GPU's memory for weights, activations and KV cache (default 0.9)")
    parser.add_argument("--kv-dtype", choices=DTYPES, default=None,
                        help="KV-cache element type (default: the 16-bit activations)")
    parser.add_argument("--mixed", choices=MIXED_STEP_MODES, default=None,
                        help="sparse path of a step mixing prefill chunks and decode tokens: split (default: prefill "
                             "rows sparse, decode rows dense), prune_all (decode rows pruned too: accuracy risk), "
                             "separate (no mixed steps)")


def load_engine(args: argparse.Namespace, profile: Any) -> Any:
    """The serving engine: vLLM's defaults for ``profile`` with the command-line overrides."""
    from ampersim.sim.engine import engine_for

    return engine_for(profile, max_batched_tokens=args.max_batched_tokens, max_seqs=args.max_seqs,
                      block_size=args.block_size, gpu_memory_utilization=args.gpu_memory_utilization,
                      kv_dtype=args.kv_dtype, mixed=args.mixed)
