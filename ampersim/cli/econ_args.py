"""Arguments shared by the economics commands (roi, plan, report): workload overrides and prices."""

from __future__ import annotations

import argparse
from typing import Any

from ampersim.cli import map_fields
from ampersim.core.errors import InvalidArgument
from ampersim.core.vocab import CLOUD_PRICES, DTYPES, MEASURED_DTYPES, MIXED_STEP_MODES

PRICE_FLAGS = (
    ("usd_per_hour", "--usd-per-hour", "cloud price, $ per GPU-hour"),
    ("purchase_usd", "--purchase-usd", "purchase price per GPU, $"),
)


def add_workload_arguments(parser: argparse.ArgumentParser, *, lengths: bool = True,
                           default_workload: str = "prefill-4k",
                           tp_help: str = "tensor-parallel degree (default: the workload's)") -> None:
    parser.add_argument("--workload", default=None, metavar="NAME|FILE",
                        help=f"scenario name or YAML (default: {default_workload})")
    parser.add_argument("--pattern", default=None, metavar="N:M",
                        help="N:M sparsity pattern (default: the workload's, 8:16)")
    parser.add_argument("--policy", default=None, metavar="amber|all|none|FILE",
                        help="which linears are sparsified: a preset or a policy YAML (default: the workload's)")
    parser.add_argument("--dtype", default=None, choices=MEASURED_DTYPES,
                        help="GEMM data type (default: the workload's)")
    parser.add_argument("--tp", type=int, default=None, metavar="N", help=tp_help)
    if lengths:
        parser.add_argument("--tokens", type=int, default=None, metavar="N",
                            help="tokens per prompt (overrides the workload)")
        parser.add_argument("--batch", type=int, default=None, metavar="N", help="prompts per prefill step")
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
            parser.add_argument(flag, dest=dest, type=float, action="append", default=None, metavar="USD",
                                help=f"{what}; once for every profile or once per --profile, in order")
        else:
            parser.add_argument(flag, dest=dest, type=float, default=None, metavar="USD",
                                help=f"{what} (overrides the profile)")


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
    parser.add_argument("--profile", action="append", required=True, metavar="NAME|FILE",
                        help="hardware profile name, alias or YAML (repeat to compare; the first is the payback "
                             "baseline)")


def add_ownership_arguments(parser: argparse.ArgumentParser, *, utilization: bool = True) -> None:
    """Cloud price kind and the total-cost-of-ownership assumptions of owned GPUs (the TCO file's, overridable)."""
    parser.add_argument("--cloud-price", choices=CLOUD_PRICES, default="market",
                        help="cloud rent: market (default: a median over providers) or list (one provider's "
                             "on-demand list price); both dated in the profile")
    parser.add_argument("--tco", default=None, metavar="NAME|FILE",
                        help="total-cost-of-ownership assumptions: name or YAML (default colocation-us: "
                             "workloads/tco/colocation-us.yaml, every number sourced)")
    parser.add_argument("--lifetime-years", type=float, default=None, metavar="YEARS",
                        help="depreciation period of a purchase (default: the TCO's, 5)")
    parser.add_argument("--usd-per-kwh", type=float, default=None, metavar="USD",
                        help="electricity price (default: the TCO's, 0.10)")
    for flag, dest, what, metavar in TCO_FLAGS:
        parser.add_argument(flag, dest=dest, type=float, default=None, metavar=metavar,
                            help=f"{what} (default: the TCO's)")
    if utilization:
        parser.add_argument("--utilization", type=float, default=None, metavar="FRACTION",
                            help="fraction of hours the GPUs run prefill in the per-GPU prefill table, (0, 1] "
                                 "(default 1)")


TCO_FLAGS = (
    ("--server-usd-per-gpu", "server_usd_per_gpu", "server share of an owned GPU (CPUs, memory, NICs, chassis), $",
     "USD"),
    ("--hosting-usd-per-kw-month", "hosting_usd_per_kw_month", "colocation price per provisioned kW per month, $",
     "USD"),
    ("--pue", "pue", "power usage effectiveness of the facility", "RATIO"),
    ("--idle-power-fraction", "idle_power_fraction", "idle GPU power as a share of TDP", "FRACTION"),
)


def load_tco(args: argparse.Namespace) -> Any:
    """The TCO assumptions named by --tco (default colocation-us) with the single-value overrides."""
    from ampersim.econ.tco import DEFAULT_TCO
    from ampersim.econ.tco import load_tco as load

    tco = load(args.tco if args.tco is not None else DEFAULT_TCO)  # an empty --tco is refused, not ignored
    return tco.with_overrides(**{dest: getattr(args, dest, None) for _, dest, _, _ in TCO_FLAGS})


def add_target_arguments(parser: argparse.ArgumentParser, *, rate_help: str) -> None:
    """--rate, --slo-ttft-ms, --slo-tpot-ms (defaults: the workload's serving targets)."""
    parser.add_argument("--rate", type=float, default=None, metavar="R", help=rate_help)
    parser.add_argument("--slo-ttft-ms", type=float, default=None, metavar="MS",
                        help="time-to-first-token target, ms (default: the workload's, when it names one and no "
                             "SLO flag is given)")
    parser.add_argument("--slo-tpot-ms", type=float, default=None, metavar="MS",
                        help="time-per-output-token target (mean gap after the first token), ms (default: the "
                             "workload's)")
    map_fields(parser, rate_per_s="--rate", slo_ttft_s="--slo-ttft-ms", slo_tpot_s="--slo-tpot-ms")


def serving_targets(args: argparse.Namespace, scenario: Any, *, trace: bool = False) -> tuple[float | None, Any]:
    """(request rate or None for a trace at its own rate, SLO): the flags, else the workload's serving targets.
    SLO flags replace the workload's SLOs as a whole; without either, an error says what to give."""
    from ampersim.econ.capacity import check_rate, parse_percentile
    from ampersim.econ.serving import SLO

    serving = scenario.serving
    ttft, tpot = args.slo_ttft_ms, args.slo_tpot_ms
    if ttft is None and tpot is None and serving is not None:
        ttft = serving.slo_ttft_ms.value if serving.slo_ttft_ms else None
        tpot = serving.slo_tpot_ms.value if serving.slo_tpot_ms else None
    if ttft is None and tpot is None:
        raise InvalidArgument("give --slo-ttft-ms, --slo-tpot-ms or both (the workload names no SLO)")
    rate = args.rate
    if rate is None and not trace:
        if serving is None:
            raise InvalidArgument("give --rate (requests/s) or --trace FILE (the workload names no request rate)")
        rate = serving.rate_per_s.value
    if rate is not None:
        check_rate(rate)
    slo = SLO(None if ttft is None else ttft / 1e3, None if tpot is None else tpot / 1e3,
              parse_percentile(args.percentile))
    return rate, slo


def load_requests(args: argparse.Namespace, scenario: Any, rate: float | None) -> tuple[Any, Any, Any]:
    """(requests, prompt lengths, output lengths): --trace replayed (rescaled to ``rate`` if given), else
    Poisson traffic at ``rate`` with the workload's lengths, the flags' distributions and cache hit rate."""
    from ampersim.econ.capacity import auto_duration_s, scenario_outputs, scenario_prompts
    from ampersim.econ.traffic import Traffic, parse_length_dist, read_request_trace

    if getattr(args, "trace", None) is not None:  # an empty --trace is refused, not ignored
        requests = read_request_trace(args.trace)
        if rate is not None:
            requests = requests.scaled_to(rate)
        return requests, requests.prompts, requests.outputs
    prompts = parse_length_dist(args.prompt_dist) if args.prompt_dist is not None else scenario_prompts(scenario)
    outputs = (parse_length_dist(args.output_dist, what="output", field="output_dist")
               if args.output_dist is not None else scenario_outputs(scenario))
    hit = args.cache_hit_rate if args.cache_hit_rate is not None else scenario.cache_hit_rate
    duration = args.duration_s if args.duration_s is not None else auto_duration_s(rate)
    requests = Traffic(rate, prompts, duration, outputs=outputs, seed=args.seed, cache_hit_rate=hit)
    return requests, prompts, outputs


def add_traffic_arguments(parser: argparse.ArgumentParser, *, duration_help: str) -> None:
    """SLO percentile, prompt and output lengths, the serving engine's limits, simulated duration and seed."""
    parser.add_argument("--percentile", default="p95", metavar="pNN",
                        help="SLO percentile: p50, p95, p99 (any pNN; default p95)")
    parser.add_argument("--prompt-dist", default=None, metavar="DIST",
                        help="fixed:TOKENS | lognormal:MEAN,SIGMA[,MAX] | trace:FILE (default: the workload's lengths)")
    parser.add_argument("--output-dist", default=None, metavar="DIST",
                        help="output tokens per request: fixed:TOKENS (0: prefill only) | lognormal:MEAN,SIGMA[,MAX] | "
                             "trace:FILE (default: the workload's)")
    parser.add_argument("--cache-hit-rate", type=float, default=None, metavar="FRACTION",
                        help="share of every prompt's tokens already in the prefix cache, [0, 1): their prefill "
                             "(and its sparsity) is skipped (default: the workload's, else 0)")
    add_engine_arguments(parser)
    parser.add_argument("--duration-s", type=float, default=None, metavar="SECONDS", help=duration_help)
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="random seed of arrivals and lengths, >= 0 (default 0)")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The serving engine's limits (defaults: vLLM's for the profile's GPU)."""
    parser.add_argument("--max-batched-tokens", type=int, default=None, metavar="N",
                        help="token budget of one step, prefill chunks and decode tokens together (default: vLLM's "
                             "for the GPU: 8192 on >= 70 GiB GPUs other than A100, else 2048)")
    parser.add_argument("--max-seqs", type=int, default=None, metavar="N",
                        help="running sequences per replica at most (default: vLLM's: 1024 on >= 70 GiB GPUs other "
                             "than A100, else 256)")
    parser.add_argument("--block-size", type=int, default=None, metavar="N", help="KV-cache block, tokens (default 16)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=None, metavar="FRACTION",
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
