"""The report: the study computed once, every section's content, self-contained HTML, Markdown, bad input."""

import collections
import itertools
import json
import re

import pytest

import ampersim.econ.capacity
import ampersim.report.study
import ampersim.sim.predict
from ampersim.cli import main
from ampersim.core.sourced import sourced_numbers
from ampersim.econ.capacity import scenario_outputs, scenario_prompts
from ampersim.econ.roi import price_basis
from ampersim.econ.serving import SLO
from ampersim.hardware.registry import load_profile
from ampersim.report.html import render_html
from ampersim.report.markdown import render_markdown
from ampersim.report.sections import document
from ampersim.report.study import ReportInputs, build_study, pareto, price_bases
from ampersim.sim.engine import engine_for
from ampersim.sim.predict import comparison_patterns
from ampersim.sim.scenario import load_scenario

ACCURACY = {
    "model": "smollm2-135m",
    "environment": {"torch": "2.13.0"},
    "dense": {"ppl": 21.0, "quiz_acc": 0.78},
    "rows": [
        {
            "pattern": "2:4",
            "scoring": "amber",
            "policy": "amber",
            "coverage": 0.6,
            "ppl": 24.0,
            "quiz_acc": 0.70,
            "ppl_delta": 3.0,
            "quiz_acc_delta": -0.08,
        },
        {
            "pattern": "8:16",
            "scoring": "amber",
            "policy": "amber",
            "coverage": 0.6,
            "ppl": 22.5,
            "quiz_acc": 0.75,
            "ppl_delta": 1.5,
            "quiz_acc_delta": -0.03,
        },
        {  # the accuracy study's W8A8 variant of the same pattern
            "pattern": "8:16",
            "scoring": "amber",
            "policy": "amber",
            "outstanding": True,
            "coverage": 0.6,
            "ppl": 23.0,
            "quiz_acc": 0.74,
            "ppl_delta": 2.0,
            "quiz_acc_delta": -0.04,
            "quiz_acc_delta_stderr": 0.01,
        },
    ],
}
SECOND = {  # a second model, scored by perplexity only; a local folder, so its figure's file name is made safe
    "model": "models/qwen 0.5b",
    "parameters": 494005120,
    "dense": {"ppl": 12.0},
    "rows": [
        {"pattern": "8:16", "scoring": "amber", "policy": "amber", "coverage": 0.55, "ppl": 12.6, "ppl_delta": 0.6},
        {"pattern": "2:4", "scoring": "magnitude", "policy": "all", "coverage": 1.0, "ppl": 19.0, "ppl_delta": 7.0},
    ],
}
STUDY = {  # the multi-model results file (ACCURACY is the earlier single-model format)
    "environment": {"date": "2026-12-03", "command": "python benchmarks/accuracy_study.py"},
    "models": [{k: v for k, v in ACCURACY.items() if k != "environment"}, SECOND],
}
MODELS = ["smollm2-135m", "models/qwen 0.5b"]


def _inputs(tmp_path, accuracy: dict | None) -> ReportInputs:
    profiles = (load_profile("h100-sxm"), load_profile("a100-sxm"))
    scenario = load_scenario("prefill-4k")
    path = tmp_path / "accuracy.json"
    if accuracy is not None:
        path.write_text(json.dumps(accuracy))
    return ReportInputs(
        profiles=profiles,
        scenario=scenario,
        bases=tuple(price_basis(p) for p in profiles),
        price_notes=(),
        rates=(2.0, 10.0),
        slo_ttft_s=1.0,
        percentile=95.0,
        prompts=scenario_prompts(scenario),
        outputs=scenario_outputs(scenario),
        engines=tuple(engine_for(p, max_batched_tokens=8192, max_seqs=256) for p in profiles),
        duration_s=300.0,
        seed=0,
        accuracy_path=path,
        command="test",
        generated="2026-01-01",
        fleet_rate=10.0,
        fleet_slo=SLO(1.0, 0.05, 95.0),
    )


@pytest.fixture(scope="module")
def counted_study(tmp_path_factory):
    """The study with two models' accuracy results, built while every call of ``predict`` is counted per variant."""
    calls = collections.Counter()
    real = ampersim.report.study.predict

    def counting(profile, scenario, **kwargs):
        lengths = tuple(scenario.sequence_lengths())
        calls[(profile.name, scenario.pattern, scenario.policy, scenario.scoring, lengths)] += 1
        return real(profile, scenario, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        for module in (ampersim.report.study, ampersim.sim.predict):
            mp.setattr(module, "predict", counting)
        study = build_study(_inputs(tmp_path_factory.mktemp("acc"), STUDY), lambda _: None)
    return study, calls


@pytest.fixture(scope="module")
def with_accuracy(counted_study):
    return document(counted_study[0])


def test_each_variant_is_predicted_once(counted_study):
    study, calls = counted_study
    sc = study.inputs.scenario
    lengths = tuple(sc.sequence_lengths())
    expected = {
        (p.name, pattern, sc.policy, sc.scoring, lengths)
        for p in study.inputs.profiles
        for pattern in comparison_patterns(p, sc)
    } | {
        (p.name, row["pattern"], row["policy"], row["scoring"], lengths)
        for p in study.inputs.profiles
        for model in STUDY["models"]
        for row in model["rows"]
    }
    # the workload's own pattern, the W8A8 row and the second model's 8:16 amber reuse a prediction
    assert set(calls) == expected
    assert set(calls.values()) == {1}
    assert study.predictions == len(expected)
    for p in study.profiles:  # the summary, breakdown and cost sections share one prediction object
        assert p.prediction in p.by_pattern and p.economics.tokens_per_s["sparse"] == p.prediction.tokens_per_s_sparse


def test_sections_only_format(counted_study, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a section computed a prediction or a plan")

    for module, name in (
        (ampersim.report.study, "predict"),
        (ampersim.report.study, "step_seconds"),
        (ampersim.report.study, "plan_capacity"),
        (ampersim.sim.predict, "predict"),
        (ampersim.sim.predict, "step_seconds"),
        (ampersim.econ.capacity, "plan_capacity"),
    ):
        monkeypatch.setattr(module, name, refuse)
    assert len(document(counted_study[0]).sections) == 8


def test_every_table_says_where_its_numbers_come_from(with_accuracy):
    for section in with_accuracy.sections:
        if section.anchor != "sources":  # that section's tables are the sources (and the inputs)
            assert all(t.source for t in section.tables), section.title
    summary = with_accuracy.sections[0].tables[0].source
    assert "predicted by ampersim" in summary and "h100-sxm, a100-sxm (official)" in summary and "simulated" in summary
    frontier = next(s for s in with_accuracy.sections if s.anchor == "frontier")
    assert frontier.tables[0].source == (
        "measured on smollm2-135m, models/qwen 0.5b by python benchmarks/accuracy_study.py on 2026-12-03 "
        "(results file accuracy.json)")


@pytest.fixture(scope="module")
def without_accuracy(tmp_path_factory):
    return build_study(_inputs(tmp_path_factory.mktemp("none"), None), lambda _: None)


def test_no_internal_references(with_accuracy, without_accuracy, tmp_path):
    for doc in (with_accuracy, document(without_accuracy)):
        for text in (render_html(doc), render_markdown(doc, tmp_path / "r.md")[0]):
            assert not re.search(r"\bissues?\s*#?\d", text, re.IGNORECASE)


def test_price_bases_note_unpriced_profiles():
    from ampersim.hardware.profile import Prices

    priced = load_profile("h100-sxm")
    unpriced = load_profile("l4").model_copy(update={"name": "l4-noprice", "prices": Prices()})
    bases, notes = price_bases([priced, unpriced, unpriced], [None, None, 1.5], [None, None, None])
    assert bases[0].cloud_usd_per_gpu_hour == priced.prices.cloud_market_usd_per_gpu_hour
    assert bases[1] is None and len(notes) == 1 and "'l4-noprice' has no price" in notes[0]
    assert bases[2].cloud_usd_per_gpu_hour.value == 1.5  # a price given for it counts


def test_sections_and_figures(with_accuracy):
    titles = [s.title for s in with_accuracy.sections]
    assert titles == [
        "Summary",
        "Speedup vs prompt length",
        "Where the time goes",
        "Cost per million prompt tokens",
        "GPUs needed vs request rate",
        "What sparsity buys your fleet",
        "Accuracy × speed × cost frontier",
        "Assumptions and sources",
    ]
    figures = [f.name for s in with_accuracy.sections for f in s.figures]
    assert figures == ["speedup_vs_tokens", "time_breakdown", "cost_per_m_tokens", "gpus_vs_rate", "fleet_chain",
                       "fleet_sweeps", "frontier-smollm2-135m", "frontier-models-qwen-0.5b"]
    assert all(f.png.startswith(b"\x89PNG") for s in with_accuracy.sections for f in s.figures)


def test_every_profile_number_and_price_is_listed(with_accuracy):
    sources = with_accuracy.sections[-1]
    h100 = load_profile("h100-sxm")
    table = next(t for t in sources.tables if t.caption.startswith("h100-sxm"))
    assert len(table.rows) == sum(1 for *_, source in sourced_numbers(h100) if source is not None)
    assert {r["field"] for r in table.rows} >= {"memory.bandwidth_gbps", "power.tdp_w", "prices.cloud_usd_per_gpu_hour"}
    prices = next(t for t in sources.tables if t.caption.startswith("prices"))
    assert {(r["profile"], r["item"]) for r in prices.rows} >= {
        ("h100-sxm", "cloud_usd_per_gpu_hour"),
        ("all", "usd_per_kwh"),
        ("all", "tco.pue"),
        ("all", "tco.hosting_usd_per_kw_month"),
    }


def test_frontier_per_model(counted_study, with_accuracy):
    acc = counted_study[0].accuracy
    assert list(acc.frontier) == MODELS  # the file's order
    for model, best in acc.frontier.items():  # a model's options compete only with each other
        assert best and {o.model for o in best} == {model}
    cost = collections.defaultdict(set)  # one prediction per variant: the same cost whichever model
    for o in acc.options:
        cost[(o.name, o.profile)].add(o.usd_per_m)
    assert len(cost[("8:16 amber", "h100-sxm")]) == 1 and all(len(c) == 1 for c in cost.values())

    frontier = next(s for s in with_accuracy.sections if s.anchor == "frontier")
    assert "measured on 2 models" in frontier.paragraphs[0] and "for the workload's model, llama-3.1-8b" in \
        frontier.paragraphs[0] and "its own frontier" in frontier.paragraphs[2]
    assert [f.alt.split(":")[0] for f in frontier.figures] == MODELS
    accuracy, best, every = frontier.tables
    assert [r["model"] for r in accuracy.rows] == [MODELS[0]] * 4 + [MODELS[1]] * 3
    assert best.columns[0] == every.columns[0] == "model"
    assert {"quiz_acc", "ppl"} <= set(best.columns)  # each model on its own metric
    small = [r for r in every.rows if r["model"] == MODELS[0]]
    assert {r["option"] for r in small} == {"dense", "2:4 amber", "8:16 amber", "8:16 amber +W8A8"}
    assert len(small) == 4 * 2  # every option on both profiles
    quiz = [r for r in best.rows if r["model"] == MODELS[0]]
    assert min(small, key=lambda r: r["cloud $/M tokens"]) == quiz[0]  # the cheapest option is on the frontier
    assert max(r["quiz_acc"] for r in small) == quiz[-1]["quiz_acc"]  # and so is the most accurate
    assert all(a["quiz_acc"] < b["quiz_acc"] for a, b in itertools.pairwise(quiz))
    ppl = [r for r in best.rows if r["model"] == MODELS[1]]
    assert ppl and all(r.get("quiz_acc") is None for r in ppl)  # scored by perplexity: lower is better
    assert all(a["ppl"] > b["ppl"] for a, b in itertools.pairwise(ppl))
    assert min(r["ppl"] for r in every.rows if r["model"] == MODELS[1]) == ppl[-1]["ppl"] == 12.0


def test_pareto_frontier():
    points = [(1.0, 0.70), (2.0, 0.80), (1.5, 0.60), (3.0, 0.75), (2.5, 0.85)]
    assert pareto(points, higher_better=True) == [(1.0, 0.70), (2.0, 0.80), (2.5, 0.85)]
    assert pareto([(1.0, 30.0), (2.0, 20.0), (3.0, 25.0)], higher_better=False) == [(1.0, 30.0), (2.0, 20.0)]


def test_missing_accuracy_is_said_clearly(without_accuracy):
    assert without_accuracy.accuracy is None
    frontier = next(s for s in document(without_accuracy).sections if s.anchor == "frontier")
    assert "No accuracy results" in frontier.paragraphs[0] and not frontier.figures and not frontier.tables


def test_html_is_self_contained(with_accuracy):
    html = render_html(with_accuracy)
    assert html.count('src="data:image/png;base64,') == 8
    assert not re.search(r'(src|href)="(https?:|//)', html) and "<script" not in html
    assert "<h2>Assumptions and sources</h2>" in html


def test_markdown_writes_figures_beside(with_accuracy, tmp_path):
    text, files = render_markdown(with_accuracy, tmp_path / "r.md")
    assert {p.as_posix() for p in files} == {
        f"r_files/{n}.png"
        for n in ("speedup_vs_tokens", "time_breakdown", "cost_per_m_tokens", "gpus_vs_rate", "fleet_chain",
                  "fleet_sweeps", "frontier-smollm2-135m", "frontier-models-qwen-0.5b")
    }
    assert "![speedup vs prompt tokens per profile and pattern](r_files/speedup_vs_tokens.png)" in text
    assert "## GPUs needed vs request rate" in text and "|---" in text


def test_report_cli_html_and_markdown(tmp_path, capsys):
    out = tmp_path / "report.html"
    assert (
        main(
            [
                "report",
                "--profile",
                "h100-sxm",
                "--profile",
                "l4",
                "--rates",
                "1,4",
                "--duration-s",
                "200",
                "--out",
                str(out),
                "--markdown",
                "--accuracy",
                str(_write_accuracy(tmp_path)),
            ]
        )
        == 0
    )
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "report.md").is_file()
    # a single-model results file (the earlier format) gives one frontier chart, as before
    assert [p.name for p in (tmp_path / "report_files").glob("frontier*")] == ["frontier.png"]
    # each profile plans with its own engine (vLLM's defaults differ by GPU), as `ampersim plan` does
    assert "h100-sxm 8,192 / 1,024, l4 2,048 / 256" in (tmp_path / "report.md").read_text()
    assert f"wrote {out}" in capsys.readouterr().out


def _write_accuracy(tmp_path):
    path = tmp_path / "acc.json"
    path.write_text(json.dumps(ACCURACY))
    return path


def test_report_cli_profile_without_price_still_renders(tmp_path, capsys):
    import yaml

    from ampersim.hardware.profile import Prices

    profile = load_profile("l4").model_copy(update={"name": "l4-noprice", "prices": Prices()})
    path = tmp_path / "l4-noprice.yaml"
    path.write_text(yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True)))
    out = tmp_path / "r.md"
    assert (
        main(
            [
                "report",
                "--profile",
                "h100-sxm",
                "--profile",
                str(path),
                "--rates",
                "2",
                "--duration-s",
                "100",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "profile 'l4-noprice' has no price" in out.read_text()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--out", "x.pdf"], "--out x.pdf: the file name must end in .html, .htm, .md"),
        (["--out", "x.html", "--rates", "5,0"], "--rates 0.0: the request rate (requests/s) must be > 0"),
        (["--out", "x.html", "--rates", "a"], "--rates 'a'"),
        (
            ["--out", "x.html", "--accuracy", "/nonexistent/acc.json"],
            "--accuracy '/nonexistent/acc.json': file not found",
        ),
        (["--out", "x.html", "--percentile", "95"], "--percentile '95'"),
    ],
)
def test_report_cli_bad_input(capsys, args, message):
    assert main(["report", "--profile", "h100-sxm", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


@pytest.mark.parametrize(
    "results,message",
    [
        ({"model": "m", "dense": {}, "rows": [{"pattern": "2:4"}]}, "field 'rows.0.scoring'"),
        ({"models": [SECOND, SECOND]}, "field 'models': model models/qwen 0.5b listed more than once"),
    ],
)
def test_bad_accuracy_file_names_field(tmp_path, capsys, results, message):
    bad = tmp_path / "acc.json"
    bad.write_text(json.dumps(results))
    assert (
        main(
            [
                "report",
                "--profile",
                "h100-sxm",
                "--rates",
                "2",
                "--duration-s",
                "60",
                "--out",
                str(tmp_path / "r.html"),
                "--accuracy",
                str(bad),
            ]
        )
        == 2
    )
    assert message in capsys.readouterr().err


def test_fleet_section_prices_the_fleet_and_the_break_even(with_accuracy):
    fleet = next(s for s in with_accuracy.sections if s.anchor == "fleet")
    costs = fleet.tables[0]
    assert {"GPUs", "cloud $/day", "owned saved $/month"} <= set(costs.columns)
    for row in costs.rows:
        dense, sparse = (int(n) for n in row["GPUs"].split(" → "))
        assert dense >= sparse >= 1 and row["cloud saved $/month"] >= 0
    even = fleet.tables[-1]
    assert all(str(v).endswith("x") or v == "out of reach" for r in even.rows for k, v in r.items() if k.startswith("for "))
