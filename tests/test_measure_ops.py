"""The harness's op construction and checks on the CPU (torch CPU); CUDA-only paths skip cleanly."""
import pytest

torch = pytest.importorskip("torch")

from ampersim.cli import main  # noqa: E402
from ampersim.core.errors import InvalidArgument  # noqa: E402
from ampersim.core.vocab import DIAGNOSTIC_PRUNE_IMPLS, MEASURED_PRUNE_IMPLS  # noqa: E402
from ampersim.hardware.registry import load_profile  # noqa: E402
from ampersim.kernels import torch_eager  # noqa: E402
from ampersim.measure import ops as ops_torch  # noqa: E402
from ampersim.measure.prune_impls import PRUNE_IMPLS, prune_impl, unavailable_impls  # noqa: E402
from ampersim.measure.records import MeasurementWriter, header_record, read_measurements  # noqa: E402
from ampersim.measure.runner import MeasureConfig, MeasureTarget, ModelSlot, execute, graph_ops, plan  # noqa: E402
from ampersim.measure.validate import Predictor  # noqa: E402
from ampersim.models.registry import load_model_spec  # noqa: E402
from ampersim.models.spec import ModelSpec  # noqa: E402
from ampersim.sim.graph import OpRecord  # noqa: E402

CUDA = torch.cuda.is_available()
SMALL = MeasureTarget("smollm2-135m", load_model_spec("smollm2-135m"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny CPU tensors: one torch thread (thread pools on a busy 2-core CI box cost seconds per op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ops():
    return {op.name: op for op in graph_ops(SMALL, 32, "bf16", "2:4")}


def request(variant="dense", device="cpu", l2_bytes=1e6):
    return ops_torch.Request(device, l2_bytes, SMALL.spec, variant)


def test_op_round_trips_through_json(ops):
    for op in ops.values():
        assert OpRecord.model_validate_json(op.to_record().model_dump_json()).to_op() == op


def test_dense_gemm_checked_against_float64(ops):
    p = ops_torch.prepare_gemm(ops["down_proj"], request())
    assert p.check.ok and 0 < p.check.rel_err < 1e-2
    assert p.impl == "F.linear" and p.shape.M == 32 and len(p.calls) == p.shape.sets
    out = p.calls[0]()
    assert out.shape == (32, 576) and bool(out.isfinite().all())


def test_sparse_gemm_rows_rounded_to_kernel_multiple(ops):
    op = ops["q_proj"]
    assert ops_torch.gemm_shape(op, "sparse")["M"] == 32
    odd = op.to_record().model_copy(update={"M": 17.0}).to_op()
    assert ops_torch.gemm_shape(odd, "sparse")["M"] == 32
    assert ops_torch.gemm_shape(odd, "dense")["M"] == 17
    bad = op.to_record().model_copy(update={"K": 100.0}).to_op()
    with pytest.raises(InvalidArgument, match="cannot take the bf16 2:4 sparse path"):
        ops_torch.gemm_shape(bad, "sparse")


@pytest.mark.parametrize("dtype", ["bf16", "int8"])
def test_pruned_input_keeps_the_reference_entries(dtype):
    x = ops_torch.pruned_input((2, 8, 64), dtype, "cpu")
    groups = x.float().reshape(2, 8, 16, 4)
    assert bool(((groups != 0).sum(-1) == 2).all())  # random inputs are non-zero: exactly 2 of 4 kept
    assert torch.equal(x.float(), torch_eager.prune(x.float(), "2:4"))  # already pruned: unchanged


def test_prune_impls_registry_names_the_vocabulary():
    assert tuple(PRUNE_IMPLS) == MEASURED_PRUNE_IMPLS + DIAGNOSTIC_PRUNE_IMPLS
    on_cpu = unavailable_impls("cpu")
    assert "torch_eager_mask" not in on_cpu  # eager torch runs anywhere
    assert "not a CUDA device" in on_cpu["fused_mask"] and "cuSPARSELt" in on_cpu["torch_eager_cslt"]
    with pytest.raises(InvalidArgument, match="unknown prune impl 'topk'"):
        prune_impl("topk")
    with pytest.raises(InvalidArgument, match="pattern 8:16 is not 2:4"):
        prune_impl("fused_cslt").pruner("8:16")


@pytest.mark.parametrize("pattern", ["2:4", "8:16"])
def test_eager_prune_checked_against_the_reference(ops, pattern):
    op = ops["prune.mlp_mid"]
    p = ops_torch.prepare(op, ops_torch.Request("cpu", 1e6, SMALL.spec, "prune", "torch_eager_mask", pattern))
    assert p.check.ok and p.check.rel_err == 0.0 and p.check.tol == 0.0 and "reference" in p.check.what
    assert "torch_eager" in p.impl
    with pytest.raises(InvalidArgument, match="fused_mask is not available here"):
        ops_torch.prepare_prune(op, "fused_mask", "cpu", 1e6, pattern)


def test_random_inputs_are_non_zero():
    assert bool((ops_torch.random_tensor((64, 64), "int8", "cpu") != 0).all())
    assert bool((ops_torch.random_tensor((64, 64), "bf16", "cpu") != 0).all())


def test_check_failure_is_not_timed():
    with pytest.raises(ops_torch.CheckFailed, match="relative error"):
        ops_torch.require_within(0.5, 1e-2, "x")
    assert ops_torch.rel_err(torch.tensor([float("nan")]), torch.tensor([1.0])) == float("inf")


@pytest.mark.parametrize("name", ["attn_norm", "rotary", "activation", "residual.attn", "embedding"])
def test_stream_ops_checked(ops, name):
    op = ops[name]
    p = ops_torch.prepare(op, request())
    assert p.check.ok
    assert "eager" in p.impl or "eager" not in ops_torch.preparation(op).variants  # no Triton kernels on the CPU


def test_attention_checked(ops):
    p = ops_torch.prepare(ops["attention"], request())
    assert p.check.ok and p.shape.M == 32


def test_every_op_of_the_graph_has_one_registered_preparation():
    """Dense, MoE and head-norm graphs: each op maps to a preparation by kind (and family for stream ops)."""
    moe = MeasureTarget("qwen3-30b-a3b", load_model_spec("qwen3-30b-a3b"))
    for target in (SMALL, moe):
        for op in graph_ops(target, 32, "bf16", "2:4"):
            assert ops_torch.preparation(op) is not None, op.name
    families = {ops_torch.op_family(op) for op in graph_ops(moe, 32, "bf16", "2:4") if op.kind != "sparse_gemm"}
    assert {"norm", "head_norm", "rotary", "activation", "residual", "moe.dispatch", "moe.combine"} <= families


@pytest.mark.parametrize("name", ["q_norm", "moe.dispatch", "moe.combine", "shared_expert.activation"])
def test_moe_and_head_norm_ops_checked(name):
    qwen3 = load_model_spec("qwen3-30b-a3b")
    shared = qwen3.moe.model_copy(update={"shared_expert_intermediate_size": 256})
    spec = qwen3.model_copy(update={"num_layers": 1, "moe": shared})
    op = next(o for o in graph_ops(MeasureTarget("q", spec), 32, "bf16", "2:4") if o.name == name)
    assert ops_torch.prepare(op, ops_torch.Request("cpu", 1e6, spec)).check.ok


def test_unregistered_op_and_variant_are_refused(ops):
    allreduce = ops["residual.attn"].to_record().model_copy(update={"kind": "allreduce", "name": "allreduce.attn"})
    with pytest.raises(InvalidArgument, match="no torch implementation"):
        ops_torch.prepare(allreduce.to_op(), request())
    with pytest.raises(InvalidArgument, match="variant 'sparse' is not measured"):
        ops_torch.prepare(ops["attn_norm"], request("sparse"))


def test_plan_covers_the_graph():
    config = MeasureConfig([SMALL], [32], what=frozenset({"ops", "layers", "model"}))
    labels = [i.label for i in plan(config, ["torch_eager_mask"])]
    for expected in ("q_proj dense", "q_proj sparse", "down_proj sparse", "lm_head dense", "attention dense",
                     "rotary dense", "rotary eager", "prune.mlp_mid torch_eager_mask", "layer 0 dense",
                     "whole model dense"):
        assert any(label.endswith(expected) for label in labels), expected
    assert not any(label.endswith("lm_head sparse") for label in labels)
    # GEMMs first, then whole layers and the model, then the other ops, prune implementations last
    first = {kind: next(i for i, label in enumerate(labels) if label.endswith(kind))
             for kind in ("q_proj dense", "layer 0 dense", "whole model dense", "attention dense",
                          "prune.mlp_mid torch_eager_mask")}
    assert list(first.values()) == sorted(first.values())


def test_model_slot_holds_one_model_and_frees_it():
    built = []
    slot = ModelSlot()
    build = lambda name: lambda: built.append(name) or name  # noqa: E731
    assert slot.get("a", build("a")) == "a" and slot.get("a", build("a")) == "a"
    assert slot.get("b", build("b")) == "b" and built == ["a", "b"]
    slot.clear()
    assert slot.get("b", build("b")) == "b" and built == ["a", "b", "b"]


TINY = MeasureTarget("tiny", ModelSpec(name="tiny", display_name="tiny", family="llama", source="config: test",
                                  num_layers=2, hidden_size=64, intermediate_size=128, num_heads=2,
                                  num_kv_heads=1, head_dim=32, vocab_size=256))


def test_cpu_dry_run_writes_records_that_validate_reads(tmp_path):
    path = tmp_path / "dry.jsonl"
    config = MeasureConfig([TINY], [32], what=frozenset({"ops", "layers"}), prune_impls=["torch_eager_mask"],
                           device="cpu")
    with MeasurementWriter(path, header_record({"gpu": "cpu"}, [], "t")) as writer:
        counts = execute(config, writer, 2**20, stream=open(tmp_path / "progress.txt", "w"))
    m = read_measurements(path)
    assert counts["measured"] == len(m.records) > 10
    # the sparse GEMMs and the cuSPARSELt prune paths cannot run on a CPU: recorded as skipped, with the reason
    assert {s.what.split()[-1] for s in m.skips} >= {"sparse"}
    assert all(r.timing.method == "cpu_clock" for r in m.records)
    assert any(r.record == "layer" for r in m.records)
    op_records = [r for r in m.records if r.record == "op"]  # layers need a shipped model spec to predict
    predicted = Predictor(op_records).predict(load_profile("h200"))
    assert len(predicted) == len(op_records) and (predicted > 0).all()


@pytest.mark.skipif(CUDA, reason="checks the no-GPU error; this machine has a GPU")
def test_measure_without_cuda_is_one_line_exit_2(tmp_path, capsys):
    assert main(["measure", "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ampersim measure needs a CUDA GPU") and err.count("\n") == 1
    assert not (tmp_path / "x.jsonl").exists()


def test_measure_bad_arguments(tmp_path, capsys):
    assert main(["measure", "--out", str(tmp_path / "x.jsonl"), "--tokens", "0,5", "--device", "cpu"]) == 2
    assert "--tokens: token counts must be > 0" in capsys.readouterr().err
    assert main(["measure", "--out", str(tmp_path / "x.jsonl"), "--workload", "nonexistent", "--device", "cpu"]) == 2
    assert "neither a model spec nor a scenario" in capsys.readouterr().err


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU: cuSPARSELt 2:4 GEMM")
def test_sparse_gemm_on_gpu_matches_dense_product_of_pruned_input(ops):
    p = ops_torch.prepare_gemm(ops["gate_proj"], request("sparse", "cuda", 50e6))
    assert p.check.ok and p.check.rel_err < 2e-2


def test_decode_and_mixed_steps_plan_and_dry_run(tmp_path):
    """Decode steps (a real KV cache) and mixed steps: the same graph's ops, and whole layers as that step."""
    small = MeasureTarget("smollm2-135m", load_model_spec("smollm2-135m"))
    config = MeasureConfig([small], [32], what=frozenset({"decode", "mixed"}), prune_impls=["torch_eager_mask"],
                           device="cpu", decode_batches=(16, 2), decode_contexts=(64,), mixed_tokens=(64,))
    labels = [item.label for item in plan(config, ["torch_eager_mask"])]
    assert "smollm2-135m decode B=2 L=64 bf16 decode_attention dense" in labels
    assert "smollm2-135m mixed split P=48 B=16 L=64 bf16 attention dense" in labels
    assert "smollm2-135m decode B=16 L=64 bf16 layer 0 dense" in labels
    path = tmp_path / "steps.jsonl"
    with MeasurementWriter(path, header_record({"gpu": "cpu"}, [], "t")) as writer:
        execute(config, writer, 2**20, stream=open(tmp_path / "progress.txt", "w"))
    m = read_measurements(path)
    decode = [r for r in m.records if r.record == "op" and r.op.kind == "decode_attention"]
    assert decode and decode[0].measured.M in (2, 16) and decode[0].step.decode_context == 64
    layers = {(r.tokens, r.step.decode_batch) for r in m.records if r.record == "layer"}
    assert layers == {(0, 16), (0, 2), (48, 16)}  # two decode steps and the dense mixed step
    predicted = Predictor(m.records).predict(load_profile("h200"))
    assert len(predicted) == len(m.records) and (predicted > 0).all()


def test_chunk_attention_after_a_cached_prefix_matches_its_reference():
    from ampersim.sim.graph import BatchShape, StepShape, graph_for_step
    from ampersim.sparsity.policy import resolve_policy

    spec = SMALL.spec
    step = StepShape(prefill=BatchShape.from_chunks([(40, 24)]))
    att = next(op for op in graph_for_step(spec, resolve_policy("none", spec), step, "bf16", 1) if op.kind == "attention")
    p = ops_torch.prepare_attention(att, request())
    assert p.check.ok and "cached prefix" in p.impl and p.calls[0]().shape[2] == 24


def test_mixed_budget_must_suit_the_sparse_kernels():
    config = MeasureConfig([SMALL], [32], what=frozenset({"mixed"}), device="cpu", decode_batches=(3,),
                           mixed_tokens=(64,))
    with pytest.raises(InvalidArgument, match="multiples of 16 rows") as err:
        config.step_points()
    assert err.value.field == "mixed_tokens"


def test_serving_step_of_a_layer_keeps_decode_rows_dense_under_split():
    """A mixed step of one layer: under split the decode rows come out exactly as on the dense path,
    under prune_all they are pruned too; the step writes its new K/V into the caches."""
    from ampersim.kernels import torch_eager
    from ampersim.measure.model import DecoderLayer, ServingStep, SparsePath

    spec = TINY.spec
    torch.manual_seed(0)
    kinds = frozenset({"q_proj", "gate_proj", "down_proj"})
    layer = DecoderLayer(spec, kinds, "fp16", "cpu")
    mask = SparsePath("mask", lambda x: torch_eager.prune(x, "2:4"), False, (2, 4))
    x = torch.randn(32 + 8, spec.hidden_size, dtype=torch.float16)

    step = ServingStep.build(spec, 32, 16, 8, 40, "split", "fp16", "cpu")  # the same caches for every run

    def run(mixed, path):
        step.mixed = mixed
        return layer.step(x, step, path)

    dense, split, every = run("split", None), run("split", mask), run("prune_all", mask)
    assert torch.equal(split[32:], dense[32:]) and not torch.equal(split[:32], dense[:32])
    assert not torch.equal(every[32:], dense[32:])
    assert step.decode_k.shape == (8, spec.num_kv_heads, 40, spec.head_dim)
    assert step.prefill_k.shape == (1, spec.num_kv_heads, 16 + 32, spec.head_dim)
