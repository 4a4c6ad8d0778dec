"""Persistent cuSPARSELt plans (kernels/gpu/cusparselt.py), token buckets and the sparse-linear custom
ops, on the CPU: the binding's call sequence against a recording stand-in for the library (the
descriptors torch's _cslt_sparse_mm uses), status checks, and torch.compile tracing the 2:4 path as
one custom op with no graph break. The device run (benchmarks/gpu_eager_prefill.py) checks results."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="torch (models extra) not installed")

from ampersim.core.errors import InvalidArgument  # noqa: E402
from ampersim.kernels.gpu import cusparselt  # noqa: E402
from ampersim.runtime import sparse_linear as SL  # noqa: E402


@pytest.mark.parametrize("multiple", [16, 32])
def test_token_bucket_bounds_padding_and_plan_count(multiple):
    buckets = set()
    for rows in range(1, 20000, 7):
        b = SL.token_bucket(rows, multiple)
        assert b >= rows and b % multiple == 0
        if rows > 16 * multiple:
            assert b - rows < rows / 8  # less than 1/8 padding
        buckets.add(b)
    assert SL.token_bucket(1024, multiple) == 1024 and SL.token_bucket(16384, multiple) == 16384
    assert SL.token_bucket(1025, multiple) == 1152
    assert len([b for b in buckets if 4096 < b <= 8192]) == 8  # 8 plans per doubling
    with pytest.raises(InvalidArgument, match="rows must be >= 1"):
        SL.token_bucket(0, multiple)


class _FakeLibrary:
    """Records cuSPARSELt calls; ``fail`` makes the named function return status 7."""

    path = "fake"

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.fail = fail

    def check(self, status: int, what: str) -> None:
        if status:
            raise cusparselt.CusparseLtError(f"{what} failed: status {status} (internal error)")

    def call(self, name: str, *args) -> None:
        self.calls.append((name, *args))
        self.check(7 if name == self.fail else 0, name)

    def matmul(self, *args) -> int:
        self.calls.append(("cusparseLtMatmul", *args))
        return 0


@pytest.fixture
def fake_lib(monkeypatch):
    lib = _FakeLibrary()
    monkeypatch.setattr(cusparselt, "_LIB", lib)
    monkeypatch.setitem(cusparselt._HANDLES, 0, cusparselt._Opaque())
    return lib


def _key(**kw):
    base = dict(rows=64, n=128, k=256, dtype="bfloat16", out_dtype="bfloat16", alpha_vector=False, device=0,
                algorithm="default")
    return cusparselt.PlanKey(**{**base, **kw})


def test_plan_describes_operands_as_torch_cslt_sparse_mm(fake_lib):
    plan = cusparselt.Plan(_key(), None, None, None)
    names = [c[0] for c in fake_lib.calls]
    assert names[:4] == ["cusparseLtStructuredDescriptorInit", "cusparseLtDenseDescriptorInit",
                         "cusparseLtDenseDescriptorInit", "cusparseLtMatmulDescriptorInit"]
    a, b, c, mm = fake_lib.calls[:4]
    # sparse A: rows x K row-major (ld K, alignment 16, bf16 = 14, row order = 2, 50 % sparsity = 0)
    assert a[3:] == (64, 256, 256, 16, 14, 2, 0)
    assert b[3:] == (128, 256, 256, 16, 14, 2)   # weight [N, K] row-major, used transposed
    assert c[3:] == (64, 128, 128, 16, 14, 2)    # result [rows, N] row-major
    assert mm[3:5] == (0, 1) and mm[-1] == 2     # op(A) = N, op(B) = T, compute 32F
    assert "cusparseLtMatmulDescSetAttribute" not in names and "cusparseLtMatmulSearch" not in names
    assert names[-6:-3] == ["cusparseLtMatmulAlgSelectionInit", "cusparseLtMatmulPlanInit",
                            "cusparseLtMatmulGetWorkspace"]
    assert plan.workspace is None  # the recording library reports a 0-byte workspace
    plan.run(11, 22, 33, None, 44)
    run = fake_lib.calls[-1]
    assert run[0] == "cusparseLtMatmul" and run[4:6] == (11, 22) and run[7:9] == (33, 33) and run[-1] == 1


def test_int8_plan_uses_integer_compute_and_alpha_vector(fake_lib):
    plan = cusparselt.Plan(_key(dtype="int8", out_dtype="bfloat16", alpha_vector=True), None, None, None)
    a, b, c, mm, attr = fake_lib.calls[:5]
    assert a[7] == 3 and b[7] == 3 and c[7] == 14  # int8 operands, bf16 result
    assert mm[-1] == 0                             # compute 32I
    assert attr[0] == "cusparseLtMatmulDescSetAttribute" and attr[3] == 5  # alpha vector scaling
    plan.run(1, 2, 3, 999, 4)
    assert fake_lib.calls[-1][3] == 999  # the per-row alpha vector's device pointer goes in as alpha


def test_failed_status_names_the_function(monkeypatch):
    lib = _FakeLibrary(fail="cusparseLtMatmulPlanInit")
    monkeypatch.setattr(cusparselt, "_LIB", lib)
    monkeypatch.setitem(cusparselt._HANDLES, 0, cusparselt._Opaque())
    with pytest.raises(cusparselt.CusparseLtError, match="cusparseLtMatmulPlanInit failed: status 7"):
        cusparselt.Plan(_key(), None, None, None)


def test_opaque_buffers_are_aligned():
    assert all(cusparselt._Opaque().ptr % 16 == 0 for _ in range(50))


def test_get_plan_rejects_cpu_operands_and_unknown_algorithms():
    x = torch.zeros(64, 144, dtype=torch.bfloat16)
    w = torch.zeros(128, 256, dtype=torch.bfloat16)
    with pytest.raises(InvalidArgument, match="CUDA tensors"):
        cusparselt.get_plan(x, w)
    with pytest.raises(InvalidArgument, match="unknown algorithm 'fast'; allowed: searched, default"):
        cusparselt.get_plan(x, w, algorithm="fast")


def test_real_library_reports_errors_by_name():
    """With the real libcusparseLt (where one is installed) and no GPU: init fails with a named status."""
    try:
        lib = cusparselt._Library(cusparselt.library_path())
    except OSError:
        pytest.skip("no cuSPARSELt library here")
    assert lib.version().startswith("0.")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: init would succeed")
    with pytest.raises(cusparselt.CusparseLtError, match=r"cusparseLtInit failed: status \d+ \("):
        lib.call("cusparseLtInit", cusparselt._Opaque().ptr)


def test_custom_op_shapes_under_fake_tensors():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(1000, 256, dtype=torch.bfloat16)
        ws = [torch.empty(128, 256, dtype=torch.bfloat16), torch.empty(64, 256, dtype=torch.bfloat16)]
        ys = torch.ops.ampersim.sparse_linear_24(x, ws, None)
        y8 = torch.ops.ampersim.sparse_linear_24_int8(x, torch.empty(96, 256, dtype=torch.int8),
                                                      torch.empty(96), None)
    assert [tuple(y.shape) for y in ys] == [(1000, 128), (1000, 64)] and tuple(y8.shape) == (1000, 96)
    assert ys[0].dtype == torch.bfloat16 and y8.dtype == torch.bfloat16


def test_compiled_sparse_linear_has_no_graph_break_and_matches_eager():
    """fullgraph=True fails on any graph break; the 2:4 path is one opaque custom op (dense fallback on CPU)."""
    import warnings

    from torch._dynamo.utils import counters

    gen = torch.Generator().manual_seed(5)
    lin = torch.nn.Linear(128, 64).to(torch.bfloat16)
    factor = torch.rand(128, generator=gen) + 0.5
    module = SL.ActivationSparseLinear.from_linear(lin, factor=factor)
    x = torch.randn(2, 40, 128, generator=gen).to(torch.bfloat16)
    torch._dynamo.reset()
    counters.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        eager = module(x)
        compiled = torch.compile(module, backend="eager", fullgraph=True)(x)
    assert torch.equal(compiled, eager)
    assert not counters["graph_break"]


def _tiny_llama():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config).eval()


def test_sparsify_cuda_backend_prunes_prefill_and_restores(recwarn):
    """On the CPU the cuda backend computes the same function densely (one warning says why)."""
    import ampersim

    model = _tiny_llama()
    ids = torch.randint(0, 96, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        dense = model(input_ids=ids).logits
        with ampersim.sparsify(model, "amber", pattern="2:4") as masked:
            want = model(input_ids=ids).logits
        handle = ampersim.sparsify(model, "amber", pattern="2:4", backend="cuda")
        got = model(input_ids=ids).logits
        decode = model(input_ids=ids[:, :1]).logits
        assert handle.layers == masked.layers
        handle.remove()
        assert torch.equal(model(input_ids=ids).logits, dense)
        assert torch.equal(decode, model(input_ids=ids[:, :1]).logits)  # decode steps stay dense
    assert ((got - want).norm() / want.norm()).item() < 1e-5  # bias added after the GEMM: fp32 rounding only
    assert not torch.allclose(got, dense)


def test_sparsify_cuda_backend_rejects_what_it_cannot_run():
    import ampersim

    model = _tiny_llama()
    with pytest.raises(InvalidArgument, match="pattern 8:16 is not accelerated") as err:
        ampersim.sparsify(model, "amber", pattern="8:16", backend="cuda")
    assert err.value.field == "backend"
    with pytest.raises(InvalidArgument, match="unknown sparsify backend 'triton'; allowed: mask, cuda"):
        ampersim.sparsify(model, "amber", pattern="2:4", backend="triton")
    assert not hasattr(model, "_ampersim_sparsify_handle")


def test_w8a8_decoder_layer_reference_tracks_the_bf16_layer():
    """The W8A8 model's float reference (what its int8 kernels are checked against on the GPU) is the
    bf16 layer up to int8 rounding, with and without the 2:4-pruned linears."""
    from ampersim.measure.model import DecoderLayer, SparsePath, rotary_tables
    from ampersim.measure.ops import rel_err
    from ampersim.models.spec import ModelSpec

    spec = ModelSpec(name="tiny", display_name="tiny", family="llama", source="config: test", num_layers=1,
                     hidden_size=128, intermediate_size=256, num_heads=2, num_kv_heads=1, head_dim=64, vocab_size=256)
    torch.manual_seed(3)
    kinds = frozenset({"q_proj", "gate_proj", "down_proj"})
    layer = DecoderLayer(spec, kinds, "bf16", "cpu", int8=True)
    x = torch.randn(48, 128).to(torch.bfloat16)
    cos, sin = rotary_tables(48, 64, "cpu", "bf16", 500000.0)
    path = SparsePath("w8a8", lambda t: t, True, (2, 4))
    layer.int8 = False  # the same weights as a bf16 layer (the int8 kernels themselves need a GPU)
    dense, pruned = layer(x, cos, sin, None), layer(x, cos, sin, path, reference=True)
    layer.int8 = True
    w8a8_dense, w8a8_pruned = layer(x, cos, sin, None, reference=True), layer(x, cos, sin, path, reference=True)
    assert rel_err(w8a8_dense, dense) < 5e-2 and rel_err(w8a8_pruned, pruned) < 5e-2  # int8 weights and inputs
    assert rel_err(w8a8_pruned, w8a8_dense) > 5 * rel_err(w8a8_dense, dense)  # pruning changes the layer
