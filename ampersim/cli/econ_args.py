"""Arguments shared by the economics commands (roi, plan, report): workload overrides and prices."""

from __future__ import annotations

import argparse
from typing import Any

from ampersim.cli import map_fields
from ampersim.core.errors import InvalidArgument

DEFAULT_MAX_BATCHED_TOKENS = 8192
DEFAULT_MAX_SEQS = 256

PRICE_FLAGS = (
    ("usd_per_hour", "--usd-per-hour", "cloud price, $ per GPU-hour"),
    ("purchase_usd", "--purchase-usd", "purchase price per GPU, $"),
)


def add_workload_arguments(parser: argparse.ArgumentParser, *, lengths: bool = True) -> None:
    parser.add_argument(
        "--workload",
        default=None,
        help="scenario name or YAML (default: prefill-4k, a 4,096-token prompt on Llama-3.1-8B)",
    )
    parser.add_argument("--pattern", default=None, help="N:M sparsity pattern (default: the workload's, 8:16)")
    parser.add_argument("--policy", default=None, help="amber | all | none | policy YAML (default: the workload's)")
    parser.add_argument("--dtype", default=None, help="bf16 | fp16 | fp8 | int8 (default: the workload's)")
    parser.add_argument("--tp", type=int, default=None, help="tensor-parallel degree (default: the workload's)")
    if lengths:
        parser.add_argument("--tokens", type=int, default=None, help="tokens per prompt (overrides the workload)")
        parser.add_argument("--batch", type=int, default=None, help="prompts per prefill step")
        map_fields(parser, prompt_tokens="--tokens")


def load_workload(args: argparse.Namespace) -> Any:
    """The scenario named by --workload with the command-line overrides applied."""
    from ampersim.sim.scenario import DEFAULT_SCENARIO, load_scenario

    scenario = load_scenario(args.workload or DEFAULT_SCENARIO)
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
    """SLO percentile, prompt-length distribution, step limits, simulated duration and seed."""
    parser.add_argument("--percentile", default="p95", help="SLO percentile: p50, p95, p99 (any pNN; default p95)")
    parser.add_argument(
        "--prompt-dist",
        default=None,
        help="fixed:TOKENS | lognormal:MEAN,SIGMA[,MAX] | trace:FILE (default: the workload's lengths)",
    )
    parser.add_argument(
        "--max-batched-tokens",
        type=int,
        default=DEFAULT_MAX_BATCHED_TOKENS,
        help=f"token budget of one prefill step (chunked prefill; default {DEFAULT_MAX_BATCHED_TOKENS})",
    )
    parser.add_argument("--max-seqs", type=int, default=DEFAULT_MAX_SEQS,
                        help=f"prompts per prefill step at most (default {DEFAULT_MAX_SEQS})")
    parser.add_argument("--duration-s", type=float, default=None, help=duration_help)
    parser.add_argument("--seed", type=int, default=0, help="random seed of arrivals and lengths (default 0)")
