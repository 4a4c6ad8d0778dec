"""`ampersim measure`: time a workload's op graph, whole layers and the whole model on a CUDA GPU."""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

from ampersim.core.vocab import DIAGNOSTIC_PRUNE_IMPLS, MEASURED_PRUNE_IMPLS

DEFAULT_TOKENS = "256,1024,4096,16384"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "measure", help="measure a workload's op graph on a CUDA GPU (torch)",
        description="Measure the same op graph `ampersim predict` costs: every GEMM shape dense and 2:4-sparse "
                    "(cuSPARSELt), runtime prune/compress implementations, attention, norms and elementwise ops, "
                    "whole decoder layers and the whole model (random weights) dense vs sparsified; with --what "
                    "decode,mixed also decode steps (a real KV cache) and mixed chunked-prefill steps. Results are "
                    "appended to a JSON-lines file as they land. Needs a CUDA GPU.")
    parser.add_argument("--workload", default="llama-3.1-8b", metavar="NAME[,NAME...]",
                        help="model spec or scenario names/YAML paths, comma-separated (default: llama-3.1-8b); "
                             "layers and the whole model use each workload's policy")
    parser.add_argument("--tokens", default=DEFAULT_TOKENS, metavar="N[,N...]",
                        help=f"prompt tokens (one sequence) per measurement (default: {DEFAULT_TOKENS})")
    parser.add_argument("--out", required=True, metavar="FILE", help="measurement file (JSON lines)")
    parser.add_argument("--append", action="store_true", help="add a run to an existing file of the same GPU")
    parser.add_argument("--dtype", default="bf16", metavar="DTYPE[,DTYPE...]",
                        help="bf16|fp16|int8|fp8, comma-separated; the first for every op, others for GEMMs only")
    parser.add_argument("--pattern", default="2:4", metavar="N:M",
                        help="pattern of the sparse GEMMs and compressing pruners (default 2:4, the native one)")
    parser.add_argument("--policy", metavar="amber|all|none|FILE",
                        help="policy of whole layers/model (default: the workload's, amber for a model name)")
    parser.add_argument("--what", default="ops,layers,model", metavar="WHAT[,WHAT...]",
                        help="any of ops,layers,model,decode,mixed (default: ops,layers,model; decode: decode steps, "
                             "mixed: chunked-prefill steps with decode tokens, their ops and whole layers)")
    parser.add_argument("--decode-batch", default="1,16,64,256", metavar="B[,B...]",
                        help="sequences per decode step (default 1,16,64,256; the first also in mixed steps)")
    parser.add_argument("--decode-context", default="512,4096,32768", metavar="L[,L...]",
                        help="tokens in each decoding sequence's KV cache (default 512,4096,32768; the first also "
                             "in mixed steps)")
    parser.add_argument("--mixed-tokens", default="2048,8192", metavar="N[,N...]",
                        help="token budget of the mixed steps: decode tokens plus a prefill chunk (default 2048,8192)")
    parser.add_argument("--prune-impls", metavar="NAME[,NAME...]",
                        help=f"any of {','.join(MEASURED_PRUNE_IMPLS + DIAGNOSTIC_PRUNE_IMPLS)} "
                             "(default: every one available here)")
    parser.add_argument("--layer-tokens", metavar="N[,N...]", help="token counts of whole layers (default: --tokens)")
    parser.add_argument("--model-tokens", default="1024,4096", metavar="N[,N...]",
                        help="token counts of the whole-model prefill (first workload only; default 1024,4096)")
    parser.add_argument("--extra-dtype-tokens", metavar="N[,N...]",
                        help="token counts for the extra dtypes (default: --tokens)")
    parser.add_argument("--deadline", type=float, metavar="SECONDS",
                        help="stop starting new measurements after this long (the rest are recorded as skipped)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cpu: a dry run of the harness on tiny shapes, in seconds (each model as 2 layers of "
                             "width 64, 32 tokens; the token flags are ignored; host clock, not a GPU measurement)")
    parser.set_defaults(run=run)


def _ints(text: str | None, flag: str) -> list[int] | None:
    from ampersim.core.errors import InvalidArgument

    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidArgument(f"{flag}: expected comma-separated integers, got '{text}'") from None
    if not values or min(values) <= 0:
        raise InvalidArgument(f"{flag}: token counts must be > 0; got '{text}'")
    return values


def _words(text: str, flag: str, allowed: tuple[str, ...]) -> list[str]:
    from ampersim.core.errors import InvalidArgument

    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise InvalidArgument(f"{flag}: '{text}' is not a list of {', '.join(allowed)}")
    return values


def _target(name: str, policy: str | None) -> Any:
    from ampersim.core.errors import NotFound
    from ampersim.measure.runner import MeasureTarget
    from ampersim.models.registry import load_model_spec
    from ampersim.sim.scenario import load_scenario

    try:
        spec = load_model_spec(name)
        return MeasureTarget(name=name, spec=spec, policy=policy or "amber")
    except NotFound:
        pass
    try:
        scenario = load_scenario(name)
    except NotFound:
        raise NotFound(f"--workload: '{name}' is neither a model spec nor a scenario "
                       "(see `ampersim predict --help`, workloads/models, workloads/scenarios)") from None
    return MeasureTarget(name=scenario.name, spec=load_model_spec(scenario.model), policy=policy or scenario.policy,
                         scoring=scenario.scoring)


def run(args: Any) -> int:
    from ampersim.core.errors import InvalidArgument
    from ampersim.core.patterns import NMPattern
    from ampersim.core.vocab import MEASURED_DTYPES
    from ampersim.measure.env import capture_environment, require_cuda, require_torch
    from ampersim.measure.prune_impls import unavailable_impls
    from ampersim.measure.records import MeasurementWriter, check_measurement_output, header_record
    from ampersim.measure.runner import MeasureConfig, dry_run, execute

    pattern = str(NMPattern.parse(args.pattern))
    config = MeasureConfig(
        targets=[_target(w.strip(), args.policy) for w in args.workload.split(",") if w.strip()],
        tokens=_ints(args.tokens, "--tokens"),
        dtypes=_words(args.dtype, "--dtype", MEASURED_DTYPES),
        pattern=pattern,
        what=frozenset(_words(args.what, "--what", ("ops", "layers", "model", "decode", "mixed"))),
        prune_impls=_words(args.prune_impls, "--prune-impls", MEASURED_PRUNE_IMPLS + DIAGNOSTIC_PRUNE_IMPLS)
        if args.prune_impls else None,
        layer_tokens=_ints(args.layer_tokens, "--layer-tokens"),
        model_tokens=_ints(args.model_tokens, "--model-tokens"),
        extra_dtype_tokens=_ints(args.extra_dtype_tokens, "--extra-dtype-tokens"),
        deadline_s=args.deadline,
        device=args.device,
        decode_batches=_ints(args.decode_batch, "--decode-batch"),
        decode_contexts=_ints(args.decode_context, "--decode-context"),
        mixed_tokens=_ints(args.mixed_tokens, "--mixed-tokens"),
    )
    if not config.targets:
        raise InvalidArgument("--workload: give at least one model or scenario")
    if args.device == "cpu":
        config = dry_run(config)
    config.check_bounds()
    config.step_points()  # refuses mixed budgets the 2:4 kernels cannot take, before any GPU work
    check_measurement_output(args.out, append=args.append)
    if args.device == "cuda":
        require_cuda()
    else:
        require_torch("ampersim measure --device cpu")
    env = capture_environment(args.device)
    header = header_record(env, ["ampersim", *sys.argv[1:]] if sys.argv else [],
                           datetime.now(timezone.utc).isoformat(timespec="seconds"))
    unavailable = unavailable_impls(args.device)
    print(f"measuring on {env.gpu}" + "".join(f"\n  prune impl {name} not available: {reason}"
                                             for name, reason in unavailable.items()), file=sys.stderr)
    with MeasurementWriter(args.out, header, append=args.append) as writer:
        counts = execute(config, writer, float(env.l2_bytes or 50e6))
    print(f"wrote {counts['measured']} records to {args.out} ({counts['skipped']} skipped; see 'skip' lines)",
          file=sys.stderr)
    return 0
