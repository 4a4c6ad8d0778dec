"""GPU pruner: the Triton kernels' logic on the CPU (Triton interpreter) where pruning semantics alone do
not say it all (compress with padded rows, int8), launch configurations, availability, bad inputs, the
activation-sparse linear's fallbacks; the real-GPU checks run only where CUDA is present. Equality of
the masks and pruned values with the reference: tests/test_prune_equivalence.py."""
from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch (models extra) not installed")
HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = importlib.util.find_spec("triton") is not None
if HAS_TRITON and not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # run the Triton kernels' logic on the CPU

from ampersim.core.errors import InvalidArgument  # noqa: E402
from ampersim.kernels import gpu, torch_eager  # noqa: E402
from ampersim.kernels.gpu import cslt_layout as gpu_layout  # noqa: E402
from ampersim.kernels.gpu import pruner as kernels_gpu  # noqa: E402

needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton not installed (test extra: pip install -e '.[test]')")
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
DEVICE = "cuda" if HAS_CUDA else "cpu"


def _special(x: torch.Tensor, subnormals: bool) -> torch.Tensor:
    """Ties, NaN, +-inf, +-0 (and subnormals) in the first rows."""
    v = lambda *a: torch.tensor(a, dtype=torch.float32).to(x.dtype)  # noqa: E731
    x[0, :8] = 0
    x[1, :8] = v(1, 1, -1, 1, 2, 2, 2, 2)
    x[2, :4] = float("nan")
    x[3, :8] = v(float("inf"), float("nan"), 1, float("-inf"), float("-inf"), 1, float("nan"), float("nan"))
    x[4, :4] = v(-0.0, 0.0, 0.0, -0.0)
    if subnormals and x.dtype == torch.float16:
        x[5, :8] = v(1e-7, 2e-7, -3e-7, 6e-8, 1e-5, -1e-5, 2e-5, 0)
    x[6, :16] = v(*range(16, 0, -1))
    x[7, :16] = 3
    return x


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(a.isnan(), b.isnan()) and torch.equal(torch.nan_to_num(a.float()), torch.nan_to_num(b.float())))


def _keep(x: torch.Tensor, factor: torch.Tensor | None, n: int, m: int) -> np.ndarray:
    """The reference keep mask of a CPU tensor."""
    return torch_eager.keep_mask(x.cpu(), f"{n}:{m}", factor=None if factor is None else factor.cpu()).numpy()


@needs_triton
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rows,rows_out", [(64, 64), (40, 48), (100, 128)])
def test_triton_fused_compress_matches_layout_encoder(dtype, rows, rows_out):
    gen = torch.Generator().manual_seed(rows)
    x = _special(torch.randn(rows, 256, generator=gen).to(dtype), subnormals=True).to(DEVICE)
    c = kernels_gpu.prune_compress_24(x, rows_out=rows_out)
    assert tuple(c.shape) == gpu_layout.compressed_shape(rows_out, 256, 2) and c.dtype == dtype
    xp = torch.nn.functional.pad(x.cpu(), (0, 0, 0, rows_out - rows))
    keep = _keep(xp, None, 2, 4)
    expected = gpu_layout.encode(xp.view(torch.int16).numpy(), keep)
    got = c.cpu().view(-1).view(torch.uint8).numpy()[: expected.size]
    np.testing.assert_array_equal(got, expected)


@needs_triton
def test_triton_fused_compress_with_factor():
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(64, 128, generator=gen).to(torch.float16).to(DEVICE)
    f = (torch.rand(128, generator=gen) + 0.25).to(DEVICE)
    c = kernels_gpu.prune_compress_24(x, factor=f)
    keep = _keep(x.cpu(), f.cpu(), 2, 4)
    expected = gpu_layout.encode(x.cpu().view(torch.int16).numpy(), keep)
    np.testing.assert_array_equal(c.cpu().view(-1).view(torch.uint8).numpy()[: expected.size], expected)


@needs_triton
def test_triton_int8_quantize_and_compress():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(40, 128, generator=gen).to(torch.bfloat16).to(DEVICE)
    q, s = kernels_gpu.quantize_int8(x, prune_24=True)
    c, s2 = kernels_gpu.prune_quant_compress_24_int8(x)
    assert c.shape == gpu_layout.compressed_shape(64, 128, 1) and s2.shape == (64,)
    pruned = torch_eager.prune(x.cpu(), "2:4").float()
    amax = pruned.abs().amax(1)
    torch.testing.assert_close(s.cpu(), amax / 127, rtol=1e-6, atol=0)
    assert torch.equal(s2[:40].cpu(), s.cpu()) and torch.equal(s2[40:].cpu(), torch.ones(24))
    assert (q.cpu().float() - torch.round(pruned / s.cpu()[:, None])).abs().max() <= 1  # x * (1/s) vs x / s
    keep = (pruned != 0).numpy()
    qp = torch.nn.functional.pad(q.cpu(), (0, 0, 0, 24))
    keep_p = np.pad(keep, ((0, 24), (0, 0)))
    keep_p[40:, 0::4] = keep_p[40:, 1::4] = True  # zero rows: ties keep positions 0 and 1
    expected = gpu_layout.encode(qp.numpy(), keep_p)
    np.testing.assert_array_equal(c.cpu().view(-1).view(torch.uint8).numpy()[: expected.size], expected)
    dense_q, dense_s = kernels_gpu.quantize_int8(x)
    # the device divides amax / 127 to within an ulp (the interpreter exactly), as for s above
    torch.testing.assert_close(dense_s.cpu(), x.cpu().float().abs().amax(1) / 127, rtol=1e-6, atol=0)
    assert dense_q.dtype == torch.int8 and dense_q.abs().max() == 127


@needs_triton
@needs_triton
def test_triton_dequant_epilogue():
    """W8A8 epilogue: int32 accumulators times per-row and per-column scales, one pass, bf16 out."""
    from ampersim.kernels.gpu import triton_elementwise

    gen = torch.Generator().manual_seed(8)
    acc = torch.randint(-2**20, 2**20, (45, 200), generator=gen, dtype=torch.int32).to(DEVICE)
    rs, cs = (torch.rand(45, generator=gen) / 100).to(DEVICE), (torch.rand(200, generator=gen) / 100).to(DEVICE)
    out = triton_elementwise.dequant(acc, rs, cs, torch.bfloat16)
    ref = (acc.double() * rs.double()[:, None] * cs.double()[None, :]).to(torch.bfloat16)
    assert out.dtype == torch.bfloat16 and out.shape == (45, 200)
    torch.testing.assert_close(out.float(), ref.float(), rtol=8e-3, atol=0)


@needs_triton
def test_w8a8_decoder_layer_int8_kernels_match_their_float_model():
    """The harness's W8A8 layer (per-token quantization kernels, torch._int_mm, dequant epilogue; one
    quantization per shared activation) against the float model of the same quantization."""
    from ampersim.measure.model import DecoderLayer, rotary_tables
    from ampersim.measure.ops import rel_err
    from ampersim.models.spec import ModelSpec

    spec = ModelSpec(name="tiny", display_name="tiny", family="llama", source="config: test", num_layers=1,
                     hidden_size=128, intermediate_size=256, num_heads=2, num_kv_heads=1, head_dim=64, vocab_size=256)
    torch.manual_seed(4)
    layer = DecoderLayer(spec, frozenset(), "bf16", DEVICE, int8=True)
    x = torch.randn(48, 128).to(torch.bfloat16).to(DEVICE)
    cos, sin = rotary_tables(48, 64, DEVICE, "bf16", 500000.0)
    # 2e-2: the Triton interpreter truncates fp32 -> bf16 stores (a GPU rounds to nearest), a bias that adds up
    assert rel_err(layer(x, cos, sin, None), layer(x, cos, sin, None, reference=True)) < (1e-2 if HAS_CUDA else 2e-2)


def test_bad_inputs():
    x = torch.randn(16, 64).to(torch.bfloat16).to(DEVICE)
    with pytest.raises(InvalidArgument, match="multiple of M=16"):
        kernels_gpu.prune_gpu(x[:, :40], "8:16")
    with pytest.raises(InvalidArgument, match="dtype int32 not supported"):
        kernels_gpu.prune_gpu(x.to(torch.int32), "2:4")
    with pytest.raises(InvalidArgument, match="factor must have shape"):
        kernels_gpu.prune_gpu(x, "2:4", factor=torch.ones(3))
    with pytest.raises(InvalidArgument, match="rows_out=8"):
        kernels_gpu.prune_compress_24(x, rows_out=8)
    with pytest.raises(InvalidArgument, match="2-D"):
        kernels_gpu.prune_compress_24(x.reshape(2, 8, 64))
    with pytest.raises(InvalidArgument, match="dtype float32 not supported"):
        kernels_gpu.prune_compress_24(x.float())
    with pytest.raises(InvalidArgument, match="invalid N:M pattern"):
        kernels_gpu.prune_gpu(x, "4:4")


@pytest.mark.skipif(HAS_CUDA or HAS_TRITON, reason="only meaningful without CUDA and without the interpreter")
def test_cpu_tensor_rejected_without_interpreter():
    with pytest.raises(InvalidArgument, match="must be a CUDA tensor"):
        kernels_gpu.prune_gpu(torch.randn(4, 8), "2:4")


def test_sparse_linear_dense_fallback_on_cpu():
    from ampersim.runtime import sparse_linear as SL

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, 64, generator=gen).to(torch.bfloat16)
    lin = torch.nn.Linear(64, 32).to(torch.bfloat16)
    mod = SL.ActivationSparseLinear.from_linear(lin)
    with pytest.warns(RuntimeWarning, match="x is on cpu"):
        SL._WARNED.clear()
        y = mod(x)
    ref = torch.nn.functional.linear(torch_eager.prune(x, "2:4"), lin.weight) + lin.bias  # bias after, as on GPU
    assert y.shape == (3, 5, 32) and torch.equal(y, ref)
    y8 = SL.ActivationSparseLinear.from_linear(lin, pattern="8:16")(x)  # not native: no warning needed
    assert torch.equal(y8, torch.nn.functional.linear(torch_eager.prune(x, "8:16"), lin.weight, lin.bias))
    with pytest.raises(InvalidArgument, match="features"):
        SL.sparse_linear(x, lin.weight[:, :32])


def test_sparse_linear_int8_fallback_on_cpu():
    from ampersim.runtime import sparse_linear as SL

    gen = torch.Generator().manual_seed(4)
    x = torch.randn(8, 64, generator=gen).to(torch.bfloat16)
    lin = torch.nn.Linear(64, 32, bias=False).to(torch.bfloat16)
    mod = SL.Int8ActivationSparseLinear.from_linear(lin)
    SL._WARNED.clear()
    with pytest.warns(RuntimeWarning, match="x is on cpu"):
        y = mod(x)
    ref = torch.nn.functional.linear(torch_eager.prune(x, "2:4").float(), lin.weight.float())
    assert ((y.float() - ref).norm() / ref.norm()).item() < 3e-2  # int8 weights and activations
    with pytest.raises(InvalidArgument, match="must be int8"):
        SL.sparse_linear_int8(x, lin.weight, mod.w_scale)


@needs_cuda
def test_on_gpu_fused_layout_and_sparse_linear():
    from ampersim.runtime import sparse_linear as SL

    assert kernels_gpu.fused_layout_ok("cuda", 2)
    x = torch.randn(100, 256, device="cuda").to(torch.bfloat16)
    w = torch.randn(128, 256, device="cuda").to(torch.bfloat16) / 16
    b = torch.randn(128, device="cuda").to(torch.bfloat16)
    y = SL.sparse_linear(x, w, b)
    ref = torch.nn.functional.linear(kernels_gpu.prune_gpu(x, "2:4").double(), w.double(), b.double())
    assert ((y.double() - ref).norm() / ref.norm()).item() < 1e-2




@needs_triton
def test_launch_configuration_is_an_explicit_value():
    """Another launch gives the same result; the defaults are a frozen value nobody can overwrite."""
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(40, 256, generator=gen).to(torch.bfloat16).to(DEVICE)
    other = dataclasses.replace(kernels_gpu.DEFAULT_LAUNCH, mask=kernels_gpu.Launch(32, 64, 2),
                                compress24=kernels_gpu.Launch(64, 64, 8))
    assert torch.equal(kernels_gpu.prune_gpu(x, "8:16", launch=other), kernels_gpu.prune_gpu(x, "8:16"))
    written = gpu_layout.compressed_nbytes(48, 256, 2)  # bytes past it are allocated, never written
    a, b = kernels_gpu.fused_compress_24(x, launch=other), kernels_gpu.fused_compress_24(x)
    assert torch.equal(a.view(-1).view(torch.uint8)[:written], b.view(-1).view(torch.uint8)[:written])
    with pytest.raises(dataclasses.FrozenInstanceError):
        kernels_gpu.DEFAULT_LAUNCH.mask = other.mask  # type: ignore[misc]
    with pytest.raises(InvalidArgument, match="block_cols must be a power of two"):
        kernels_gpu.Launch(16, 96, 4)
    with pytest.raises(InvalidArgument, match="compress24: block_rows must be 16..64"):
        kernels_gpu.LaunchConfig(compress24=kernels_gpu.Launch(8, 256, 4))


def test_default_mask_launch_gives_every_thread_a_group():
    """Each power-of-two M has its launch (2:4, M = 16 and M = 32 their own), and the default tile holds at
    least one group per thread: 16:32 on 16x128 tiles with 4 warps (64 groups for 128 threads) ran at
    0.40 of copy on the H200, 16x256 at 0.68 (validation/gpu_pruner/selection-h200.json)."""
    from ampersim.core.patterns import NMPattern
    from ampersim.core.vocab import MAX_M

    cfg = kernels_gpu.DEFAULT_LAUNCH
    field = kernels_gpu.LaunchConfig.mask_field
    assert field(NMPattern.parse("2:4")) == "mask24" and field(NMPattern.parse("1:4")) == "mask"
    assert field(NMPattern.parse("4:8")) == "mask" and field(NMPattern.parse("8:16")) == "mask_m16"
    assert field(NMPattern.parse("16:32")) == "mask_m32"
    m = 8
    while m <= MAX_M:
        for n in (1, m // 2, m - 1):
            launch = getattr(cfg, field(NMPattern(n=n, m=m)))
            groups = launch.block_rows * max(launch.block_cols, m) // m
            assert groups >= 32 * launch.num_warps, (n, m, launch)
        m *= 2


def test_gpu_availability_gives_a_reason():
    assert "not a CUDA device" in gpu.available("cpu")
    if not HAS_CUDA:
        assert "sees no CUDA GPU" in gpu.available("cuda")
    elif HAS_TRITON:
        assert gpu.available("cuda") is None

