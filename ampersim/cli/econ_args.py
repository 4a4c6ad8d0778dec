"""Arguments shared by the economics commands (roi, plan, report): workload overrides and prices."""

from __future__ import annotations

import argparse
from typing import Any

from ampersim.errors import InvalidArgument

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
