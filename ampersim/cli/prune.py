"""`ampersim prune`: N:M-prune a real model's linear inputs in prefill and measure what it costs.

Loads the model (offline), evaluates it dense, sparsifies it with the policy and evaluates again on
the same perplexity windows and quiz questions; prints ppl, quiz accuracy, coverage and tokens/s
with paired deltas. ``--sensitivity`` instead runs the sensitivity pass that chooses the amber
policy's skip layers and writes them to the amber skip-list folder (or ``--out``).
"""
from __future__ import annotations

import sys
import time
from typing import Any

from ampersim.cli.output import add_format_argument, emit, render_csv, render_table, to_json
from ampersim.core.errors import InvalidArgument
from ampersim.core.vocab import MODEL_DTYPES, SCORINGS

EVALS = ("ppl", "quiz")
COLUMNS = ("variant", "ppl", "quiz_acc", "coverage", "tokens_per_s")
HEADERS = {"quiz_acc": "quiz acc", "coverage": "coverage", "tokens_per_s": "tokens/s"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "prune", help="prune a real model's linear inputs (N:M, prefill) and measure accuracy",
        description="Evaluate a real model dense and with N:M activation pruning of the linear inputs the "
                    "policy selects (prefill only): perplexity on shipped public-domain text (Pride and "
                    "Prejudice, non-overlapping windows), zero-shot multiple-choice quiz accuracy, coverage "
                    "(share of linear MACs sparsified) and forward tokens/s. Runs offline on CPU.")
    parser.add_argument("--model", default="smollm2-135m", metavar="NAME|PATH",
                        help="smollm2-135m (default), gemma-3-270m, or a local Hugging Face folder / .gguf")
    parser.add_argument("--pattern", default="8:16", metavar="N:M", help="N:M pattern (default: 8:16)")
    parser.add_argument("--scoring", choices=SCORINGS, default="amber",
                        help="score = |x| (magnitude) or |x| * robust-norm weight factor (amber, default)")
    parser.add_argument("--policy", default="amber", metavar="amber|all|none|FILE",
                        help="which linear layers are pruned (default: amber)")
    parser.add_argument("--eval", default="ppl,quiz", metavar="ppl,quiz",
                        help="comma-separated evaluations (default: ppl,quiz)")
    parser.add_argument("--windows", type=int, default=8, metavar="N",
                        help="perplexity windows (default: 8)")
    parser.add_argument("--window-tokens", type=int, default=512, metavar="N",
                        help="tokens per perplexity window (default: 512)")
    parser.add_argument("--questions", type=int, default=120, metavar="N",
                        help="quiz questions, evenly spread over the six quiz files (default: 120; 0 = all)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="quiz construction seed (default: 0)")
    parser.add_argument("--outstanding", action="store_true",
                        help="add inverse SmoothQuant (alpha 0.10) + simulated W8A8 to the pruned layers")
    parser.add_argument("--dtype", choices=MODEL_DTYPES, default="fp32",
                        help="weights/activations dtype (default: fp32)")
    parser.add_argument("--sensitivity", action="store_true",
                        help="run the sensitivity pass choosing amber skip layers instead of evaluating")
    parser.add_argument("--calibration-windows", type=int, default=8, metavar="N",
                        help="calibration windows of Moby Dick for --sensitivity/--outstanding (default: 8)")
    parser.add_argument("--out", metavar="FILE", help="--sensitivity: where to write the skip list "
                        "(default: the amber skip-list folder, workloads/policies/amber/<model>.yaml)")
    parser.add_argument("--force", action="store_true", help="--sensitivity: overwrite an existing skip list")
    add_format_argument(parser)
    parser.set_defaults(run=run)


def _progress(label: str, total: int) -> Any:
    """A progress bar with rate and time left on stderr (tqdm); ``step(n)`` advances it by n forwards."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="forward", file=sys.stderr, dynamic_ncols=True, leave=True)

    def step(n: int) -> None:
        bar.update(n)
        if bar.n >= total:
            bar.close()
    return step


def _parse_evals(text: str) -> tuple[str, ...]:
    chosen = tuple(e.strip() for e in text.split(",") if e.strip())
    bad = [e for e in chosen if e not in EVALS]
    if bad or not chosen:
        raise InvalidArgument(f"--eval: unknown evaluation '{bad[0] if bad else text}'; allowed: ppl, quiz "
                              "(comma-separated)")
    return chosen


def _check_arguments(args: Any) -> tuple[str, ...]:
    """Every check that needs no model weights, before the model loads (seconds to minutes): the evaluations,
    pattern, counts, what --out means, the output file, and for a model with a shipped spec its context length
    and the policy against its shapes. Returns the evaluations."""
    from ampersim.core.outputs import check_output
    from ampersim.core.patterns import NMPattern
    from ampersim.models.load import builtin_model
    from ampersim.models.registry import load_model_spec
    from ampersim.sparsity.policy import amber_skip_dir, resolve_policy

    evals = _parse_evals(args.eval)
    NMPattern.parse(args.pattern)
    for flag, value, low in (("--windows", args.windows, 1), ("--window-tokens", args.window_tokens, 2),
                             ("--questions", args.questions, 0), ("--calibration-windows", args.calibration_windows, 1)):
        if value < low:
            raise InvalidArgument(f"{flag} must be >= {low}, got {value}")
    if args.out and not args.sensitivity:
        raise InvalidArgument("--out is where --sensitivity writes its skip list; add --sensitivity or drop --out")
    builtin = builtin_model(args.model)
    spec = load_model_spec(builtin.name) if builtin is not None else None
    if spec is not None:
        spec.check_context(args.window_tokens, "window_tokens", "a perplexity window")
        resolve_policy(args.policy, spec, args.pattern, args.scoring)
    if args.sensitivity and (args.out or spec is not None):
        path = check_output(args.out or amber_skip_dir() / f"{spec.name}.yaml", "out", suffixes=(".yaml", ".yml"))
        if path.exists() and not args.force:
            raise InvalidArgument(f"--out: {path} exists; pass --force to overwrite it")
    return evals


def run(args: Any) -> int:
    from ampersim.eval import metrics as ev
    from ampersim.models.load import load_model

    evals = _check_arguments(args)
    t0 = time.perf_counter()
    loaded = load_model(args.model, dtype=args.dtype)
    print(f"loaded {loaded.name} from {loaded.source} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    spec = loaded.spec
    calibration = None
    if args.sensitivity or args.outstanding:
        calib = ev.token_windows(loaded.tokenizer, ev.load_text("mobydick"), args.window_tokens,
                                 args.calibration_windows, add_bos=loaded.add_bos)
        calibration = list(calib.split(1))
    if args.sensitivity:
        return _run_sensitivity(args, loaded, spec, calibration)

    windows = ev.token_windows(loaded.tokenizer, ev.load_text("austen"), args.window_tokens, args.windows,
                               add_bos=loaded.add_bos) if "ppl" in evals else None
    questions = ev.build_quiz(seed=args.seed, limit=args.questions or None) if "quiz" in evals else None
    import ampersim

    def sparsified(outstanding: bool) -> Any:
        return ampersim.sparsify(loaded.model, args.policy, pattern=args.pattern, scoring=args.scoring,
                                 spec=spec, outstanding=outstanding, calibration=calibration)

    sparsified(False).remove()  # bad policies/patterns fail here, before minutes of evaluation
    total = (args.windows if windows is not None else 0) + (len(questions) * 4 if questions else 0)
    warm_up = windows[:1] if windows is not None else None
    _warm_up(loaded.model, warm_up)
    dense = ev.evaluate(loaded.model, loaded.tokenizer, windows=windows, questions=questions,
                        add_bos=loaded.add_bos, progress=_progress("dense", total))
    handle = sparsified(args.outstanding)
    try:
        _warm_up(loaded.model, warm_up)
        sparse = ev.evaluate(loaded.model, loaded.tokenizer, windows=windows, questions=questions,
                             add_bos=loaded.add_bos, progress=_progress("sparse", total))
    finally:
        handle.remove()
    _report(args, loaded, handle, windows, questions, dense, sparse)
    return 0


def _warm_up(model: Any, ids: Any) -> None:
    """One untimed forward pass (allocator, kernel caches), so tokens/s reflects steady state."""
    if ids is None:
        return
    import torch

    with torch.inference_mode():
        model(input_ids=ids, use_cache=False)


def _run_sensitivity(args: Any, loaded: Any, spec: Any, calibration: list) -> int:
    from ampersim.core.outputs import check_output
    from ampersim.eval.sensitivity import sensitivity_pass, write_skip_list
    from ampersim.sparsity.policy import amber_skip_dir

    path = check_output(args.out or amber_skip_dir() / f"{spec.name}.yaml", "out", suffixes=(".yaml", ".yml"))
    if path.exists() and not args.force:
        raise InvalidArgument(f"--out: {path} exists; pass --force to overwrite it")
    what = (f"{len(calibration)} windows x {args.window_tokens} tokens of Moby Dick ch. 1-3 "
            "(ampersim/data/text/mobydick_ch1-3.txt)")
    result = sensitivity_pass(loaded.model, spec.name, spec.num_layers, calibration,
                              pattern=args.pattern, scoring=args.scoring, calibration=what)
    write_skip_list(result.skip_list(), path)
    print(f"wrote {path}", file=sys.stderr)
    rows = [{"layer": i, "score": s, "q_proj": result.errors.get(f"layers.{i}.q_proj"),
             "gate_proj": result.errors.get(f"layers.{i}.gate_proj"),
             "skip": "skip" if i in result.skip_layers else ""} for i, s in result.layer_scores.items()]
    if args.format == "json":
        emit(to_json({"model": spec.name, "pattern": str(result.pattern), "scoring": result.scoring,
                      "skip_layers": list(result.skip_layers), "file": str(path), "calibration": what,
                      "errors": result.errors}))
    elif args.format == "csv":
        emit(render_csv(rows))
    else:
        emit(f"{spec.name}: amber skip layers {list(result.skip_layers)} (relative output error, "
             f"{result.pattern} {result.scoring}; {what})\n\n" + render_table(rows))
    return 0


def _report(args: Any, loaded: Any, handle: Any, windows: Any, questions: Any, dense: Any, sparse: Any) -> None:
    from ampersim.eval.metrics import paired_deltas

    cov = handle.coverage.fraction if handle.coverage is not None else None
    deltas = paired_deltas(dense, sparse)
    d, s = dense.summary(), sparse.summary()
    setup = {
        "model": loaded.name, "source": loaded.source, "policy": handle.policy.name,
        "pattern": str(handle.pattern), "scoring": handle.policy.scoring, "outstanding": args.outstanding,
        "note": handle.policy.note, "coverage": cov, "sparse_layers": len(handle.layers),
        "windows": int(windows.shape[0]) if windows is not None else 0,
        "window_tokens": int(windows.shape[1]) if windows is not None else 0,
        "quiz_questions": len(questions) if questions else 0, "seed": args.seed,
    }
    if args.format == "json":
        emit(to_json({**setup, "dense": d, "sparse": s, "delta": deltas}))
        return
    rows = [
        {"variant": "dense", "ppl": d["ppl"], "quiz_acc": d["quiz_acc"], "coverage": 0.0,
         "tokens_per_s": d["tokens_per_s"]},
        {"variant": f"{handle.pattern} {handle.policy.scoring}/{handle.policy.name}"
                    + (" +W8A8" if args.outstanding else ""),
         "ppl": s["ppl"], "quiz_acc": s["quiz_acc"], "coverage": cov, "tokens_per_s": s["tokens_per_s"]},
    ]
    if args.format == "csv":
        emit(render_csv(rows, COLUMNS))
        return
    lines = [f"{loaded.name}: N:M activation pruning of linear inputs in prefill ({setup['sparse_layers']} linears)",
             "", render_table(rows, COLUMNS, HEADERS), ""]
    if deltas["ppl_delta"] is not None:
        lines.append(f"ppl: {d['ppl']:.3f} -> {s['ppl']:.3f} ({100 * (deltas['ppl_ratio'] - 1):+.2f} %, "
                     f"log-ratio stderr {deltas['log_ppl_delta_stderr']:.4f}) over {setup['windows']} windows x "
                     f"{setup['window_tokens']} tokens of Pride and Prejudice")
    if deltas["quiz_acc_delta"] is not None:
        lines.append(f"quiz: {d['quiz_acc']:.3f} -> {s['quiz_acc']:.3f} ({deltas['quiz_acc_delta']:+.3f} "
                     f"± {deltas['quiz_acc_delta_stderr']:.3f} paired stderr; accuracy stderr "
                     f"{s['quiz_stderr']:.3f}) over {setup['quiz_questions']} 4-way questions")
    lines.append("coverage: share of decoder-layer linear MACs per token whose input is pruned")
    if handle.policy.note:
        lines.append(f"note: {handle.policy.note}")
    emit("\n".join(lines))
