"""N:M activation pruning on CUDA GPUs: fused Triton kernels (default), numba.cuda kernels, eager torch.

Semantics are the CPU pruner's (``ampersim.kernels.cpu``): score = |x| (times a static per-channel factor,
in fp32); in every group of M consecutive elements of the last dim the N best scores are kept, equal
scores go to the lower index, NaN scores rank highest; pruned elements become +0.

Public functions (torch is imported lazily by callers; this module needs torch and, for the fused
paths, Triton on a CUDA device):

- ``prune_gpu(x, pattern, factor=None, backend="triton")`` -> dense masked tensor (``fused_mask``).
- ``prune_torch(x, pattern, factor=None)`` -> the same, with eager torch ops (``torch_eager_mask``).
- ``prune_compress_24(x, factor=None, rows_out=None)`` -> the 2:4 operand for ``torch._cslt_sparse_mm``
  (``fused_cslt``: one kernel writes values + metadata), or eager prune + ``torch._cslt_compress`` when
  the fused layout is not verified on this GPU / shape.
- ``prune_quant_compress_24_int8(x, factor=None, rows_out=None)`` -> (int8 operand, fp32 per-row scales).
- ``quantize_int8(x, prune_24=False, factor=None)`` -> (dense int8, fp32 per-row scales).
- ``fused_layout_ok(device, itemsize)`` -> whether this GPU's ``_cslt_compress`` matches the fused
  writer bit-for-bit (checked once per process, device and width; a mismatch warns and falls back).
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from typing import TYPE_CHECKING, Any

from ampersim.core.errors import InvalidArgument, MissingDependency
from ampersim.core.patterns import NMPattern
from ampersim.kernels.gpu import cslt_layout as gpu_layout

if TYPE_CHECKING:
    import torch

BACKENDS = ("triton", "numba", "torch")
# Launch configurations (tuned on the device; docs/gpu-pruner.md records the sweep).
CONFIG: dict[str, dict[str, int]] = {
    "compress24": {"BR": 16, "BK": 256, "num_warps": 4},
    "quant_compress24": {"BR": 32, "BK": 256, "num_warps": 4},
    "quant": {"BR": 16, "BK": 256, "num_warps": 4},
    "absmax": {"BR": 16, "BK": 512, "num_warps": 4},
    "mask24": {"BR": 32, "BK": 128, "num_warps": 4},
    "mask": {"BR": 16, "BK": 128, "num_warps": 4},
}
_NAN_KEY = {"bfloat16": 0x7F81, "float16": 0x7C01}  # one above the format's +inf bits
_VERIFIED: dict[tuple[Any, int], bool] = {}


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the models extra
        raise MissingDependency("the GPU pruner needs torch: pip install 'ampersim[models]'") from exc
    return torch


def triton_available() -> bool:
    """True if Triton can be imported (the fused kernels' compiler)."""
    return importlib.util.find_spec("triton") is not None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _check_input(x: "torch.Tensor", dtypes: tuple[str, ...], what: str) -> None:
    torch = _torch()
    if not isinstance(x, torch.Tensor):
        raise InvalidArgument(f"{what}: x must be a torch.Tensor, got {type(x).__name__}")
    name = str(x.dtype).removeprefix("torch.")
    if name not in dtypes:
        raise InvalidArgument(f"{what}: x dtype {name} not supported; allowed: {', '.join(dtypes)}")
    if x.dim() < 1 or x.shape[-1] == 0:
        raise InvalidArgument(f"{what}: x must have a non-empty last dimension, got shape {tuple(x.shape)}")
    if not (x.is_cuda or _interpreting()):
        raise InvalidArgument(f"{what}: x must be a CUDA tensor (device {x.device}); use ampersim.kernels.cpu.prune on CPU")


def _factor(factor: Any, x: "torch.Tensor", what: str) -> "torch.Tensor | None":
    if factor is None:
        return None
    torch = _torch()
    f = torch.as_tensor(factor, device=x.device).to(torch.float32).contiguous()
    if f.shape != (x.shape[-1],):
        raise InvalidArgument(f"{what}: factor must have shape ({x.shape[-1]},) (one per channel), got {tuple(f.shape)}")
    return f


def _rows2d(x: "torch.Tensor") -> "torch.Tensor":
    x2 = x.reshape(-1, x.shape[-1])
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


def _nan_key(x: "torch.Tensor") -> int:
    return _NAN_KEY.get(str(x.dtype).removeprefix("torch."), 0)


def prune_torch(x: "torch.Tensor", pattern: str | NMPattern, *, factor: Any = None) -> "torch.Tensor":
    """Eager torch N:M pruning (any device, any M): the reference the kernels are checked against."""
    torch = _torch()
    nm = NMPattern.parse(pattern)
    k = x.shape[-1]
    if k % nm.m:
        raise InvalidArgument(f"prune_torch: last dimension {k} is not a multiple of M={nm.m} ({nm})")
    f = _factor(factor, x, "prune_torch")
    s = x.float().abs()
    if f is not None:
        s = s * f
    nan = s.isnan().reshape(*s.shape[:-1], k // nm.m, nm.m)
    groups = torch.where(s.isnan(), torch.full_like(s, float("inf")), s).reshape(nan.shape)
    # order: NaN first, then score descending, ties by position (stable sort keeps the lower index first)
    order = torch.sort(groups, dim=-1, descending=True, stable=True).indices
    order = order.gather(-1, torch.sort(nan.gather(-1, order).to(torch.int8), dim=-1, descending=True,
                                        stable=True).indices)
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order[..., : nm.n], True)
    return torch.where(keep.reshape(x.shape), x, torch.zeros((), dtype=x.dtype, device=x.device))


def prune_gpu(x: "torch.Tensor", pattern: str | NMPattern, *, factor: Any = None,
              backend: str = "triton") -> "torch.Tensor":
    """N:M-pruned copy of ``x`` (shape [..., K], fp16/bf16/fp32), one fused kernel (``fused_mask``).

    Triton handles M a power of two up to 64; other M, or ``backend="torch"``, run ``prune_torch``.
    """
    if backend not in BACKENDS:
        raise InvalidArgument(f"prune_gpu: unknown backend '{backend}'; allowed: {', '.join(BACKENDS)}")
    nm = NMPattern.parse(pattern)
    _check_input(x, ("float16", "bfloat16", "float32"), "prune_gpu")
    k = x.shape[-1]
    if k % nm.m:
        raise InvalidArgument(f"prune_gpu: last dimension {k} is not a multiple of M={nm.m} ({nm})")
    if backend == "torch" or nm.m & (nm.m - 1) or nm.m > 64:
        return prune_torch(x, nm, factor=factor)
    f = _factor(factor, x, "prune_gpu")
    x2 = _rows2d(x)
    out = _torch().empty_like(x2)
    if backend == "numba" and x2.element_size() == 2:
        from ampersim.kernels.gpu import numba_cuda as gpu_numba

        gpu_numba.mask(x2, f, out, nm.n, nm.m)
        return out.reshape(x.shape)
    from ampersim.kernels.gpu import triton_prune as T

    cfg = CONFIG["mask24" if (nm.n, nm.m) == (2, 4) else "mask"]
    bk = max(cfg["BK"], nm.m)
    grid = (-(-x2.shape[0] // cfg["BR"]), -(-k // bk))
    T.mask_kernel[grid](x2, f if f is not None else x2, out, x2.shape[0], k, x2.stride(0), out.stride(0),
                        N=nm.n, M=nm.m, HAS_FACTOR=f is not None, NAN_KEY=_nan_key(x2),
                        BR=cfg["BR"], BK=bk, num_warps=cfg["num_warps"])
    return out.reshape(x.shape)


def _rows_out(rows: int, rows_out: int | None, multiple: int, what: str) -> int:
    if rows_out is None:
        rows_out = -(-rows // multiple) * multiple
    if rows_out < rows or rows_out % multiple:
        raise InvalidArgument(
            f"{what}: rows_out={rows_out} must be >= the {rows} input rows and a multiple of {multiple} "
            "(cuSPARSELt's row multiple for this dtype)"
        )
    return rows_out


def _fusable(x2: "torch.Tensor") -> bool:
    return x2.shape[1] % gpu_layout.K_MULTIPLE == 0 and x2.dtype in (_torch().float16, _torch().bfloat16)


def _compressed_buffer(rows_out: int, k: int, dtype: "torch.dtype", device: Any) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    torch = _torch()
    itemsize = torch.empty((), dtype=dtype).element_size()
    out = torch.empty(gpu_layout.compressed_shape(rows_out, k, itemsize), dtype=dtype, device=device)
    flat = out.view(-1)
    meta = flat.view(torch.int32)[gpu_layout.values_nbytes(rows_out, k, itemsize) // 4:]
    return out, flat, meta


def _fused_compress24(x2: "torch.Tensor", f: "torch.Tensor | None", rows_out: int, backend: str) -> "torch.Tensor":
    k = x2.shape[1]
    out, flat, meta = _compressed_buffer(rows_out, k, x2.dtype, x2.device)
    if backend == "numba":
        from ampersim.kernels.gpu import numba_cuda as gpu_numba

        gpu_numba.compress24(x2, f, flat, meta, rows_out)
        return out
    from ampersim.kernels.gpu import triton_prune as T

    cfg = CONFIG["compress24"]
    bk = cfg["BK"] if k % cfg["BK"] == 0 else gpu_layout.K_MULTIPLE
    grid = (gpu_layout.padded_rows(rows_out) // cfg["BR"], k // bk)
    T.compress24_kernel[grid](x2, f if f is not None else x2, flat, meta, x2.shape[0], rows_out, k, x2.stride(0),
                              HAS_FACTOR=f is not None, NAN_KEY=_nan_key(x2), BR=cfg["BR"], BK=bk,
                              num_warps=cfg["num_warps"])
    return out


def _eager_compress24(x2: "torch.Tensor", f: "torch.Tensor | None", rows_out: int) -> "torch.Tensor":
    torch = _torch()
    pruned = prune_gpu(x2, "2:4", factor=f) if x2.shape[1] % 4 == 0 else None
    if pruned is None:
        raise InvalidArgument(f"prune_compress_24: last dimension {x2.shape[1]} is not a multiple of 4")
    if rows_out > x2.shape[0]:
        pruned = torch.nn.functional.pad(pruned, (0, 0, 0, rows_out - x2.shape[0]))
    return torch._cslt_compress(pruned)


def prune_compress_24(x: "torch.Tensor", *, factor: Any = None, rows_out: int | None = None,
                      backend: str = "triton") -> "torch.Tensor":
    """2:4-prune ``x`` [R, K] (fp16/bf16) and return the compressed operand for ``torch._cslt_sparse_mm``.

    ``rows_out`` (default: R rounded up to 16) pads the operand with zero rows (tokens), as cuSPARSELt
    needs a multiple of 16 rows. One fused kernel when K % 64 == 0 and the layout check passed on
    this GPU; otherwise ``prune_gpu`` + ``torch._cslt_compress`` (same result, more passes).
    """
    _check_input(x, ("float16", "bfloat16"), "prune_compress_24")
    if x.dim() != 2:
        raise InvalidArgument(f"prune_compress_24: x must be 2-D [tokens, K], got shape {tuple(x.shape)}")
    if backend not in ("triton", "numba", "torch"):
        raise InvalidArgument(f"prune_compress_24: unknown backend '{backend}'; allowed: triton, numba, torch")
    f = _factor(factor, x, "prune_compress_24")
    x2 = _rows2d(x)
    rows_out = _rows_out(x2.shape[0], rows_out, 16, "prune_compress_24")
    if backend != "torch" and _fusable(x2) and (_interpreting() or fused_layout_ok(x2.device, 2)):
        return _fused_compress24(x2, f, rows_out, backend)
    return _eager_compress24(x2, f, rows_out)


def quantize_int8(x: "torch.Tensor", *, prune_24: bool = False, factor: Any = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per-row absmax int8 quantization of 16-bit ``x`` [R, K] (2:4-pruned first if ``prune_24``).

    Returns (q int8 [R, K], scale fp32 [R]) with x ~= q * scale[:, None]; scale = absmax / 127 (1 for
    an all-zero row); q = round-half-even(x / scale) clamped to [-127, 127]. Inputs must be finite.
    """
    torch = _torch()
    _check_input(x, ("float16", "bfloat16"), "quantize_int8")
    x2 = _rows2d(x)
    k = x2.shape[1]
    if prune_24 and k % 4:
        raise InvalidArgument(f"quantize_int8: last dimension {k} is not a multiple of 4")
    f = _factor(factor, x, "quantize_int8")
    q = torch.empty(x2.shape, dtype=torch.int8, device=x2.device)
    scale = torch.empty(x2.shape[0], dtype=torch.float32, device=x2.device)
    amax = _absmax(x2, f, x2.shape[0], prune_24)
    from ampersim.kernels.gpu import triton_prune as T

    cfg = CONFIG["quant"]
    T.quant_kernel[(-(-x2.shape[0] // cfg["BR"]), -(-k // cfg["BK"]))](
        x2, f if f is not None else x2, q, amax, scale, x2.shape[0], k, x2.stride(0), HAS_FACTOR=f is not None,
        NAN_KEY=_nan_key(x2), PRUNE=prune_24, BR=cfg["BR"], BK=cfg["BK"], num_warps=cfg["num_warps"])
    return q, scale


def prune_quant_compress_24_int8(x: "torch.Tensor", *, factor: Any = None,
                                 rows_out: int | None = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """2:4-prune 16-bit ``x`` [R, K], quantize per row to int8, compress for ``torch._cslt_sparse_mm``.

    Returns (int8 operand of ``rows_out`` rows (default: R rounded up to 32), fp32 scales [rows_out]).
    ``_cslt_sparse_mm(op, w_int8.t(), out_dtype=torch.int32)`` then equals ``q @ w_int8.t()`` exactly;
    pass ``alpha=scales`` (with a 16-bit out_dtype) to apply the per-token scales in the GEMM.
    """
    torch = _torch()
    _check_input(x, ("float16", "bfloat16"), "prune_quant_compress_24_int8")
    if x.dim() != 2:
        raise InvalidArgument(f"prune_quant_compress_24_int8: x must be 2-D, got shape {tuple(x.shape)}")
    f = _factor(factor, x, "prune_quant_compress_24_int8")
    x2 = _rows2d(x)
    rows_out = _rows_out(x2.shape[0], rows_out, 32, "prune_quant_compress_24_int8")
    k = x2.shape[1]
    if not (k % gpu_layout.K_MULTIPLE == 0 and (_interpreting() or fused_layout_ok(x2.device, 1))):
        q, scale = quantize_int8(x2, prune_24=True, factor=f)
        pad = rows_out - x2.shape[0]
        if pad:
            q = torch.nn.functional.pad(q, (0, 0, 0, pad))
            scale = torch.nn.functional.pad(scale, (0, pad), value=1.0)
        return torch._cslt_compress(q), scale
    return _fused_quant_compress24(x2, f, rows_out)


def _absmax(x2: "torch.Tensor", f: "torch.Tensor | None", rows_out: int, prune_24: bool) -> "torch.Tensor":
    """int32 bits of each row's max |x| (of the 2:4-kept values if ``prune_24``), zero past the input rows."""
    torch = _torch()
    from ampersim.kernels.gpu import triton_prune as T

    amax = torch.zeros(rows_out, dtype=torch.int32, device=x2.device)
    cfg = CONFIG["absmax"]
    T.absmax_kernel[(-(-x2.shape[0] // cfg["BR"]), -(-x2.shape[1] // cfg["BK"]))](
        x2, f if f is not None else x2, amax, x2.shape[0], x2.shape[1], x2.stride(0), HAS_FACTOR=f is not None,
        NAN_KEY=_nan_key(x2), PRUNE=prune_24, BR=cfg["BR"], BK=cfg["BK"], num_warps=cfg["num_warps"])
    return amax


def _fused_quant_compress24(x2: "torch.Tensor", f: "torch.Tensor | None", rows_out: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    torch = _torch()
    from ampersim.kernels.gpu import triton_prune as T

    k = x2.shape[1]
    out, flat, meta = _compressed_buffer(rows_out, k, torch.int8, x2.device)
    scale = torch.empty(rows_out, dtype=torch.float32, device=x2.device)
    amax = _absmax(x2, f, rows_out, True)
    cfg = CONFIG["quant_compress24"]
    bk = cfg["BK"] if k % cfg["BK"] == 0 else gpu_layout.K_MULTIPLE
    T.quant_compress24_kernel[(gpu_layout.padded_rows(rows_out) // cfg["BR"], k // bk)](
        x2, f if f is not None else x2, flat, meta, amax, scale, x2.shape[0], rows_out, k, x2.stride(0),
        HAS_FACTOR=f is not None, NAN_KEY=_nan_key(x2), BR=cfg["BR"], BK=bk, num_warps=cfg["num_warps"])
    return out, scale


def fused_layout_ok(device: Any, itemsize: int) -> bool:
    """True if the fused writer reproduces ``torch._cslt_compress`` bit-for-bit on ``device``.

    Checked once per process, device and data width (2: bf16, 1: int8) on fresh random inputs of two
    shapes (one whose row count is not a multiple of 64); never inside a CUDA graph capture (then an
    unchecked width reports False and callers take the eager path).
    """
    torch = _torch()
    key = (str(torch.device(device)), itemsize)
    if key not in _VERIFIED:
        if torch.cuda.is_current_stream_capturing():
            return False
        _VERIFIED[key] = _self_check(torch.device(device), itemsize)
        if not _VERIFIED[key]:
            warnings.warn(
                f"fused 2:4 compression does not match torch._cslt_compress on {torch.cuda.get_device_name(device)} "
                f"(cuSPARSELt {torch.backends.cusparselt.version()}, {8 * itemsize}-bit): using the eager "
                "prune + _cslt_compress path", RuntimeWarning, stacklevel=3)
    return _VERIFIED[key]


def _self_check(device: "torch.device", itemsize: int) -> bool:
    torch = _torch()
    gen = torch.Generator(device=device).manual_seed(int.from_bytes(os.urandom(4), "little"))
    for rows, k in ((96, 256), (128, 512)):
        x = torch.randn(rows, k, generator=gen, device=device).to(torch.bfloat16)
        if itemsize == 2:
            got = _fused_compress24(x, None, rows, "triton")
            ref = torch._cslt_compress(prune_gpu(x, "2:4"))
        else:
            got, _ = _fused_quant_compress24(x, None, rows)
            ref = torch._cslt_compress(quantize_int8(x, prune_24=True)[0])
        n = gpu_layout.compressed_nbytes(rows, k, itemsize)
        if got.shape != ref.shape or not torch.equal(got.view(-1).view(torch.uint8)[:n], ref.view(-1).view(torch.uint8)[:n]):
            return False
    return True


__all__ = [
    "BACKENDS", "CONFIG", "fused_layout_ok", "prune_compress_24", "prune_gpu", "prune_quant_compress_24_int8",
    "prune_torch", "quantize_int8",
]
