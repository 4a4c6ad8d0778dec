"""`ampersim prune`: N:M-prune a real model's linear inputs in prefill and measure what it costs.

Parses the flags, runs :mod:`ampersim.eval.experiment` (dense and sparsified evaluation on the
same inputs, paired deltas) or its sensitivity pass (``--sensitivity``), and renders the result.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ampersim.cli.output import add_format_argument, emit, render_csv, render_table, to_json
from ampersim.core.errors import InvalidArgument
from ampersim.core.vocab import AMBER_OUTLIERS, MODEL_DTYPES, SCORINGS
from ampersim.models.load import BUILTIN_MODELS

COLUMNS = ("variant", "ppl", "code_ppl", "quiz_acc", "coverage", "tokens_per_s")
HEADERS = {"code_ppl": "code ppl", "quiz_acc": "quiz acc", "coverage": "coverage", "tokens_per_s": "tokens/s"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "prune", help="prune a real model's linear inputs (N:M, prefill) and measure accuracy",
        description="Evaluate a real model dense and with N:M activation pruning of the linear inputs the "
                    "policy selects (prefill only), on the same inputs: perplexity on shipped public-domain "
                    "text (Pride and Prejudice) or your --text files, perplexity on Python standard-library "
                    "code, zero-shot multiple-choice accuracy on the shipped quiz or your --quiz files, "
                    "lm-evaluation-harness tasks (optional extra), coverage (share of linear MACs "
                    "sparsified) and forward tokens/s. Runs offline on CPU.")
    parser.add_argument("--model", default="smollm2-135m", metavar="NAME|PATH",
                        help=f"a built-in model ({', '.join(BUILTIN_MODELS)}; default smollm2-135m) or a "
                             "local Hugging Face folder / .gguf file")
    parser.add_argument("--pattern", default="8:16", metavar="N:M", help="N:M pattern (default: 8:16)")
    parser.add_argument("--scoring", choices=SCORINGS, default="amber",
                        help="score = |x| (magnitude) or |x| * robust-norm weight factor (amber, default)")
    parser.add_argument("--outliers", choices=AMBER_OUTLIERS, default="clamp",
                        help="amber factor: weights outside the 0.5/99.5 %% quantiles are clamped to them "
                             "(default) or dropped from the statistics")
    parser.add_argument("--policy", default="amber", metavar="amber|all|none|FILE",
                        help="which linear layers are pruned (default: amber)")
    parser.add_argument("--eval", default="ppl,quiz", metavar="ppl,code,quiz,lm-eval:TASKS",
                        help="comma-separated evaluations (default: ppl,quiz); code = perplexity on Python "
                             "stdlib sources; lm-eval:TASK[,TASK...] runs lm-evaluation-harness tasks "
                             "(ampersim_quiz = the quiz, offline)")
    parser.add_argument("--text", dest="texts", nargs="+", action="extend", metavar="FILE", default=[],
                        help="UTF-8 text file(s) for perplexity instead of Pride and Prejudice (joined in order)")
    parser.add_argument("--quiz", dest="quizzes", nargs="+", action="extend", metavar="FILE", default=[],
                        help="quiz file(s) instead of the shipped quiz: bsdgames 'question:answer|alternative' "
                             "lines, or *.jsonl with question, choices, answer (index)")
    parser.add_argument("--windows", type=int, default=8, metavar="N", help="perplexity windows (default: 8)")
    parser.add_argument("--window-tokens", type=int, default=512, metavar="N",
                        help="tokens per perplexity window (default: 512)")
    parser.add_argument("--code-windows", type=int, default=4, metavar="N",
                        help="code perplexity windows (default: 4)")
    parser.add_argument("--questions", type=int, default=120, metavar="N",
                        help="quiz questions, evenly spread over the quiz (default: 120; 0 = all)")
    parser.add_argument("--lm-eval-limit", type=int, default=None, metavar="N",
                        help="documents per lm-eval task (default: all)")
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


class _Progress:
    """Progress bars with rate and time left on stderr (tqdm), one per phase (dense, each variant):
    ``progress(phase, done, total)`` as the experiment reports it."""

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self._bars.get(phase)
        if bar is None:
            bar = self._bars[phase] = tqdm(total=total, desc=phase, unit="seq", file=sys.stderr,
                                           dynamic_ncols=True, leave=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()


def _check_arguments(args: Any) -> tuple[Any, Any, Path | None]:
    """Every check that needs no model weights, before the model loads (seconds to minutes): the
    evaluations, the variant, the counts, what --out means and the skip-list file, the text and quiz files,
    and, for a built-in model, the window against its context length and the policy against its shapes.
    Returns (the variant, the evaluation inputs or None for --sensitivity, the skip-list path or None)."""
    from ampersim.eval import experiment as ex

    evals, tasks = ex.parse_evals(args.eval)
    if tasks:
        from ampersim.eval.lm_eval import check_installed

        check_installed()
    variant = ex.Variant(args.pattern, args.scoring, args.policy, args.outstanding, args.outliers)
    ex.check_counts(windows=args.windows, window_tokens=args.window_tokens, code_windows=args.code_windows,
                    questions=args.questions, calibration_windows=args.calibration_windows,
                    lm_eval_limit=args.lm_eval_limit)
    if args.out is not None and not args.sensitivity:
        raise InvalidArgument("--out is where --sensitivity writes its skip list; add --sensitivity or drop --out")
    if args.sensitivity and (args.texts or args.quizzes):
        raise InvalidArgument(f"{'--text' if args.texts else '--quiz'}: --sensitivity calibrates on Moby Dick and "
                              "evaluates nothing; drop it or --sensitivity")
    spec = ex.check_model_inputs(args.model, [variant], window_tokens=args.window_tokens)
    out = None
    if args.sensitivity:
        out = _skip_list_path(args, spec.name if spec is not None else None)
        return variant, None, out
    inputs = ex.read_eval_inputs(evals, lm_eval_tasks=tasks, texts=args.texts, quizzes=args.quizzes,
                                 questions=args.questions, seed=args.seed)
    return variant, inputs, out


def _skip_list_path(args: Any, model: str | None) -> Path | None:
    from ampersim.eval.experiment import skip_list_path

    path = skip_list_path(model, args.out)
    if path is not None and path.exists() and not args.force:
        raise InvalidArgument(f"{path} exists; pass --force to overwrite it", field="out")
    return path


def run(args: Any) -> int:
    from ampersim.eval import experiment as ex
    from ampersim.models.load import load_model

    variant, inputs, out = _check_arguments(args)
    t0 = time.perf_counter()
    loaded = load_model(args.model, dtype=args.dtype)
    print(f"loaded {loaded.name} from {loaded.source} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if args.sensitivity:
        return _run_sensitivity(args, loaded, out)
    eval_set = ex.prepare_eval_set(
        loaded, inputs.evals, windows=args.windows, window_tokens=args.window_tokens,
        code_windows=args.code_windows, questions=args.questions, lm_eval_limit=args.lm_eval_limit, inputs=inputs)
    calibration = ex.calibration_batches(loaded, args.calibration_windows, args.window_tokens) \
        if args.outstanding else None
    experiment = ex.run_experiment(loaded, eval_set, [variant], calibration=calibration, progress=_Progress())
    _report(args, experiment)
    return 0


def _run_sensitivity(args: Any, loaded: Any, path: Path | None) -> int:
    from ampersim.eval.experiment import run_sensitivity
    from ampersim.eval.sensitivity import write_skip_list

    spec = loaded.spec
    if path is None:  # a model given by path: its name is known now
        path = _skip_list_path(args, spec.name)
    result = run_sensitivity(loaded, pattern=args.pattern, scoring=args.scoring,
                             calibration_windows=args.calibration_windows, window_tokens=args.window_tokens)
    write_skip_list(result.skip_list(), path)
    print(f"wrote {path}", file=sys.stderr)
    rows = [{"layer": i, "score": s, "q_proj": result.errors.get(f"layers.{i}.q_proj"),
             "gate_proj": result.errors.get(f"layers.{i}.gate_proj"),
             "skip": "skip" if i in result.skip_layers else ""} for i, s in result.layer_scores.items()]
    if args.format == "json":
        emit(to_json({"model": spec.name, "pattern": str(result.pattern), "scoring": result.scoring,
                      "skip_layers": list(result.skip_layers), "file": str(path),
                      "calibration": result.calibration, "errors": result.errors}))
    elif args.format == "csv":
        emit(render_csv(rows))
    else:
        emit(f"{spec.name}: amber skip layers {list(result.skip_layers)} (relative output error, "
             f"{result.pattern} {result.scoring}; {result.calibration})\n\n" + render_table(rows))
    return 0


def _report(args: Any, experiment: Any) -> None:
    sparse = experiment.results[0]
    deltas, d, s = sparse.deltas, experiment.dense.summary(), sparse.evaluation.summary()
    inputs = experiment.eval_set.describe()
    setup = {"model": experiment.model, "source": experiment.source, "policy": sparse.variant.policy,
             "pattern": sparse.variant.pattern, "scoring": sparse.variant.scoring,
             "outliers": sparse.variant.outliers, "outstanding": sparse.variant.outstanding,
             "note": sparse.policy_note, "coverage": sparse.coverage, "sparse_layers": sparse.sparse_linears,
             **inputs, "seed": args.seed}
    if args.format == "json":
        emit(to_json({**setup, "dense": d, "sparse": s, "delta": deltas}))
        return
    rows = [{"variant": "dense", **d, "coverage": 0.0}, {"variant": sparse.variant.label, **s,
                                                         "coverage": sparse.coverage}]
    tasks = [f"lm_eval:{task}" for task in d["lm_eval"]]
    for task in d["lm_eval"]:
        rows[0][f"lm_eval:{task}"], rows[1][f"lm_eval:{task}"] = d["lm_eval"][task]["acc"], s["lm_eval"][task]["acc"]
    if args.format == "csv":  # stable columns; empty where not evaluated
        emit(render_csv(rows, [*COLUMNS, *tasks]))
        return
    columns = [c for c in COLUMNS if c in ("variant", "coverage", "tokens_per_s") or d.get(c) is not None]
    columns += tasks
    lines = [f"{experiment.model}: N:M activation pruning of linear inputs in prefill "
             f"({sparse.sparse_linears} linears)", "", render_table(rows, columns, HEADERS), ""]
    if deltas["ppl_delta"] is not None:
        lines.append(_ppl_line("ppl", d["ppl"], s["ppl"], deltas["ppl_ratio"], deltas["log_ppl_delta_stderr"],
                               f"{inputs['windows']} windows x {inputs['window_tokens']} tokens of {inputs['text']}"))
    if deltas["code_ppl_delta"] is not None:
        lines.append(_ppl_line("code ppl", d["code_ppl"], s["code_ppl"], deltas["code_ppl_ratio"],
                               deltas["code_log_ppl_delta_stderr"],
                               f"{inputs['code_windows']} windows of {inputs['code']}"))
    if deltas["quiz_acc_delta"] is not None:
        lines.append(_acc_line("quiz", d["quiz_acc"], s["quiz_acc"], deltas["quiz_acc_delta"],
                               deltas["quiz_acc_delta_stderr"], s["quiz_stderr"],
                               f"{inputs['quiz_questions']} questions ({inputs['quiz']})"))
    for task, delta in deltas["lm_eval"].items():
        lines.append(_acc_line(f"lm-eval {task}", d["lm_eval"][task]["acc"], s["lm_eval"][task]["acc"],
                               delta["acc_delta"], delta["acc_delta_stderr"], s["lm_eval"][task]["stderr"],
                               f"{s['lm_eval'][task]['n']} documents"))
    lines.append("coverage: share of decoder-layer linear MACs per token whose input is pruned")
    if sparse.policy_note:
        lines.append(f"note: {sparse.policy_note}")
    emit("\n".join(lines))


def _ppl_line(name: str, dense: float, sparse: float, ratio: float, stderr: float, what: str) -> str:
    return (f"{name}: {dense:.3f} -> {sparse:.3f} ({100 * (ratio - 1):+.2f} %, log-ratio stderr {stderr:.4f}) "
            f"over {what}")


def _acc_line(name: str, dense: float, sparse: float, delta: float, stderr: float, acc_stderr: float,
              what: str) -> str:
    return (f"{name}: {dense:.3f} -> {sparse:.3f} ({delta:+.3f} ± {stderr:.3f} paired stderr; accuracy stderr "
            f"{acc_stderr:.3f}) over {what}")
