"""Sensitivity pass (amber skip layers) and evaluation arithmetic on a tiny random Llama."""
import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ampersim.core.patterns import NMPattern  # noqa: E402
from ampersim.eval import data as evdata  # noqa: E402
from ampersim.eval import metrics as ev  # noqa: E402
from ampersim.eval.sensitivity import choose_skip_layers, relative_errors, sensitivity_pass, write_skip_list  # noqa: E402
from ampersim.kernels.torch_eager import prune as eager_prune  # noqa: E402
from ampersim.sparsity.policy import load_amber_skip_list  # noqa: E402
from ampersim.sparsity.scoring import static_factor  # noqa: E402


def tiny_llama(layers=4):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config).eval()


def batches():
    g = torch.Generator().manual_seed(3)
    return [torch.randint(0, 96, (1, 16), generator=g) for _ in range(2)]


def test_relative_error_matches_definition():
    model = tiny_llama()
    errors = relative_errors(model, batches(), "2:4", "amber")
    assert len(errors) == 4 * 7 and all(0 < e < 1.5 for e in errors.values())
    layer = model.model.layers[2].mlp.down_proj
    inputs = []
    hook = layer.register_forward_pre_hook(lambda _m, a: inputs.append(a[0].detach().clone()))
    with torch.inference_mode():
        for b in batches():
            model(input_ids=b)
    hook.remove()
    x = torch.cat([i.reshape(-1, 128) for i in inputs])
    factor = static_factor(layer.weight, "amber")
    w = layer.weight.detach()
    y = x @ w.T
    y_pruned = eager_prune(x, NMPattern.parse("2:4"), factor=factor) @ w.T
    expected = float((y - y_pruned).norm() / (y.norm() + 1e-8))
    assert errors["layers.2.down_proj"] == pytest.approx(expected, rel=1e-4)


def test_choose_skip_layers_uses_paper_proportion():
    errors = {f"layers.{i}.{k}": 0.1 + 0.01 * ((i * 7) % 32) for i in range(32) for k in ("q_proj", "gate_proj")}
    errors["layers.31.q_proj"] = 5.0
    scores, skip = choose_skip_layers(errors, 32)
    assert len(skip) == 5 and 31 in skip  # round(32 * 5/32)
    assert skip == tuple(sorted(sorted(scores, key=lambda i: -scores[i])[:5]))
    assert len(choose_skip_layers(errors, 30)[1]) == 5  # round(4.69)
    assert len(choose_skip_layers({}, 18)[1]) == 0


def test_sensitivity_result_round_trips_through_policy_file(tmp_path):
    model = tiny_llama(layers=7)
    result = sensitivity_pass(model, "tiny-llama", 7, batches(), pattern="4:8", scoring="magnitude",
                              calibration="two random batches")
    assert len(result.skip_layers) == 1  # round(7 * 5/32)
    path = write_skip_list(result.skip_list(), tmp_path / "tiny-llama.yaml")
    record, _ = load_amber_skip_list("tiny-llama", folder=tmp_path)
    assert record.skip_layers == result.skip_layers
    assert "two random batches" in record.method and "4:8, magnitude" in record.method
    assert record.sensitivity == {k: round(v, 6) for k, v in result.errors.items()}
    assert "skip_layers: [" in path.read_text()


def test_perplexity_and_quiz_arithmetic():
    model = tiny_llama(layers=2)
    windows = torch.randint(0, 96, (3, 10), generator=torch.Generator().manual_seed(0))
    result = ev.perplexity(model, windows)
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=windows).logits[:, :-1], dim=-1)
    nll = -logp.gather(2, windows[:, 1:, None]).mean()
    assert result.ppl == pytest.approx(math.exp(float(nll)), rel=1e-5)
    assert result.predicted_tokens == 27 and result.tokens == 30

    class Tok:
        pad_token_id = 0
        bos_token_id = 1

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [2 + (ord(c) % 90) for c in text]}

    questions = [evdata.Question("t", "ab", (" c", " dd", " e", " ffff"), 1), evdata.Question("t", "xyz", (" q", " r"), 0)]
    batched = ev.quiz_accuracy(model, Tok(), questions, batch_size=64)  # padded into one batch
    single = ev.quiz_accuracy(model, Tok(), questions, batch_size=1)  # no padding at all
    assert batched.correct == single.correct and batched.n == 2


def test_paired_deltas():
    dense = ev.Evaluation(ppl=ev.PerplexityResult(math.exp(2.0), [1.9, 2.1], 20, 1.0, 22),
                          quiz=ev.QuizResult(0.5, [True, False, True, False]))
    sparse = ev.Evaluation(ppl=ev.PerplexityResult(math.exp(2.2), [2.0, 2.4], 20, 1.0, 22),
                           quiz=ev.QuizResult(0.25, [True, False, False, False]))
    d = ev.paired_deltas(dense, sparse)
    assert d["ppl_ratio"] == pytest.approx(math.exp(0.2))
    assert d["log_ppl_delta_stderr"] == pytest.approx(0.1)  # diffs 0.1, 0.3: sd 0.1414 / sqrt 2
    assert d["quiz_acc_delta"] == pytest.approx(-0.25)
    assert d["quiz_acc_delta_stderr"] == pytest.approx(0.25)  # diffs 0,0,-1,0: sd 0.5 / 2
