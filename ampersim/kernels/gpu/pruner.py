"""N:M activation pruning on CUDA GPUs: fused Triton kernels, with eager torch where they do not apply.

Semantics: ``ampersim.kernels.reference`` (score = |x|, times a per-channel factor in float32; the N
best of every M consecutive channels of the last dim kept, NaN first, ties to the lower channel;
dropped entries +0). tests/test_prune_equivalence.py runs the kernels (under Triton's interpreter
without a GPU) against it bit for bit.

Public functions (they need torch and, for the fused paths, Triton with a CUDA device; see
``ampersim.kernels.gpu.available``):

- ``prune_gpu(x, pattern, factor=None)`` -> dense masked tensor (``fused_mask``); M not a power of
  two runs ``ampersim.kernels.torch_eager.prune``.
- ``prune_compress_24(x, factor=None, rows_out=None)`` -> the 2:4 operand for ``torch._cslt_sparse_mm``
  (``fused_cslt``: one kernel writes values + metadata), or ``prune_gpu`` + ``torch._cslt_compress``
  when the fused layout is not verified on this GPU / shape.
- ``fused_compress_24`` / ``fused_quant_compress_24_int8``: the fused writers alone, unchecked (what
  ``fused_layout_ok`` verifies; benchmarks compare them with ``_cslt_compress``).
- ``prune_quant_compress_24_int8(x, factor=None, rows_out=None)`` -> (int8 operand, fp32 per-row scales).
- ``quantize_int8(x, prune_24=False, factor=None)`` -> (dense int8, fp32 per-row scales).
- ``fused_layout_ok(device, itemsize)`` -> whether this GPU's ``_cslt_compress`` matches the fused
  writer bit-for-bit (checked once per process, device and width; a mismatch warns and falls back);
  ``fused_writer_matches(device, itemsize, compress)`` runs that check against any compressor.

Every kernel-launching function takes ``launch`` (a ``LaunchConfig``; default ``DEFAULT_LAUNCH``,
the configurations chosen from H200 measurements, docs/gpu-pruner.md).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ampersim.core.deps import require
from ampersim.core.errors import InvalidArgument
from ampersim.core.patterns import NMPattern
from ampersim.kernels import torch_eager
from ampersim.kernels.gpu import cslt_layout as gpu_layout

if TYPE_CHECKING:
    import torch

_NAN_KEY = {"bfloat16": 0x7F81, "float16": 0x7C01}  # one above the format's +inf bits
SELF_CHECK_SHAPES = ((96, 256), (128, 512))  # one row count not a multiple of 64
SELF_CHECK_SEED = 0  # shape i draws its inputs from seed SELF_CHECK_SEED + i
_VERIFIED: dict[tuple[str, int], bool] = {}  # (device, itemsize) -> layout verdict, once per process


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


@dataclass(frozen=True)
class Launch:
    """Tile of one Triton program (rows x columns of the activation) and its warps."""

    block_rows: int
    block_cols: int
    num_warps: int

    def __post_init__(self) -> None:
        for name in ("block_rows", "block_cols", "num_warps"):
            if not _power_of_two(getattr(self, name)):
                raise InvalidArgument(f"{name} must be a power of two, got {getattr(self, name)}", field=name)


@dataclass(frozen=True)
class LaunchConfig:
    """Launch of each kernel. ``fused_mask`` has one per group size (``mask_field``): ``mask24`` for
    2:4, ``mask_m16`` for M = 16, ``mask_m32`` for M = 32, ``mask`` for every other M. For M > 4 a
    tile should hold at least one group per thread (block_rows * block_cols / M >= 32 * num_warps),
    else threads repeat each other's selection. The compressing kernels need block_rows in 16..64
    (metadata tiles of 16 rows within 64-row blocks) and block_cols a multiple of 64 (a 64-column K
    block)."""

    mask24: Launch = Launch(32, 128, 4)
    mask: Launch = Launch(16, 128, 4)
    mask_m16: Launch = Launch(32, 128, 4)
    mask_m32: Launch = Launch(16, 256, 4)
    compress24: Launch = Launch(16, 256, 4)
    quant_compress24: Launch = Launch(32, 256, 4)
    quant: Launch = Launch(16, 256, 4)
    absmax: Launch = Launch(16, 512, 4)

    def __post_init__(self) -> None:
        for name in ("compress24", "quant_compress24"):
            launch = getattr(self, name)
            if not (16 <= launch.block_rows <= gpu_layout.ROW_TILE and launch.block_cols >= gpu_layout.K_MULTIPLE):
                raise InvalidArgument(f"{name}: block_rows must be 16..{gpu_layout.ROW_TILE} and block_cols >= "
                                      f"{gpu_layout.K_MULTIPLE}, got {launch}", field=name)

    @staticmethod
    def mask_field(pattern: NMPattern) -> str:
        """Name of the field whose launch ``prune_gpu`` uses for ``pattern``."""
        if (pattern.n, pattern.m) == (2, 4):
            return "mask24"
        return {16: "mask_m16", 32: "mask_m32"}.get(pattern.m, "mask")


DEFAULT_LAUNCH = LaunchConfig()
"""Chosen on an NVIDIA H200: the compressing kernels by the sweep in
validation/gpu_pruner/results-h200.json (section tune); mask_m16 and mask_m32 from the explicit-launch
rows of validation/gpu_pruner/selection-h200.json (section patterns), then timed as defaults in
selection-h200-run2.json (within 0.6 % of those rows; docs/gpu-pruner.md)."""


def _torch():
    return require("torch", "the GPU pruner")


def _kernels():
    from ampersim.kernels.gpu import triton_prune

    return triton_prune


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _check_input(x: torch.Tensor, dtypes: tuple[str, ...], what: str) -> None:
    torch = _torch()
    if not isinstance(x, torch.Tensor):
        raise InvalidArgument(f"{what}: x must be a torch.Tensor, got {type(x).__name__}", field="x")
    name = str(x.dtype).removeprefix("torch.")
    if name not in dtypes:
        raise InvalidArgument(f"{what}: x dtype {name} not supported; allowed: {', '.join(dtypes)}", field="x")
    if x.dim() < 1 or x.shape[-1] == 0:
        raise InvalidArgument(f"{what}: x must have a non-empty last dimension, got shape {tuple(x.shape)}",
                              field="x")
    if not (x.is_cuda or _interpreting()):
        raise InvalidArgument(f"{what}: x must be a CUDA tensor (device {x.device}); "
                              "use ampersim.kernels.cpu.prune on CPU", field="x")


def _rows2d(x: torch.Tensor) -> torch.Tensor:
    x2 = x.reshape(-1, x.shape[-1])
    return x2 if x2.stride(-1) == 1 else x2.contiguous()


def _nan_key(x: torch.Tensor) -> int:
    return _NAN_KEY.get(str(x.dtype).removeprefix("torch."), 0)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def prune_gpu(x: torch.Tensor, pattern: str | NMPattern, *, factor: Any = None,
              launch: LaunchConfig = DEFAULT_LAUNCH) -> torch.Tensor:
    """N:M-pruned copy of ``x`` (shape [..., K], fp16/bf16/fp32), one fused kernel (``fused_mask``).

    The Triton kernel handles M a power of two; other M run ``torch_eager.prune`` (same result).
    """
    nm = NMPattern.parse(pattern)
    _check_input(x, torch_eager.DTYPES, "prune_gpu")
    k = x.shape[-1]
    if k % nm.m:
        raise InvalidArgument(f"prune_gpu: last dimension {k} is not a multiple of M={nm.m} ({nm})", field="x")
    if not _power_of_two(nm.m):
        return torch_eager.prune(x, nm, factor=factor)
    f = torch_eager.factor_tensor(factor, k, x.device)
    x2 = _rows2d(x)
    out = _torch().empty_like(x2)
    cfg = getattr(launch, LaunchConfig.mask_field(nm))
    bk = max(cfg.block_cols, nm.m)
    grid = (_cdiv(x2.shape[0], cfg.block_rows), _cdiv(k, bk))
    _kernels().mask_kernel[grid](
        x2, f if f is not None else x2, out, x2.shape[0], k, x2.stride(0), out.stride(0), N=nm.n, M=nm.m,
        HAS_FACTOR=f is not None, NAN_KEY=_nan_key(x2), BR=cfg.block_rows, BK=bk, num_warps=cfg.num_warps)
    return out.reshape(x.shape)


def _rows_out(rows: int, rows_out: int | None, multiple: int, what: str) -> int:
    if rows_out is None:
        rows_out = _cdiv(rows, multiple) * multiple
    if rows_out < rows or rows_out % multiple:
        raise InvalidArgument(
            f"{what}: rows_out={rows_out} must be >= the {rows} input rows and a multiple of {multiple} "
            "(cuSPARSELt's row multiple for this dtype)", field="rows_out"
        )
    return rows_out


def _compressed_buffer(rows_out: int, k: int, dtype: torch.dtype, device: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch = _torch()
    itemsize = torch.empty((), dtype=dtype).element_size()
    out = torch.empty(gpu_layout.compressed_shape(rows_out, k, itemsize), dtype=dtype, device=device)
    flat = out.view(-1)
    meta = flat.view(torch.int32)[gpu_layout.values_nbytes(rows_out, k, itemsize) // 4:]
    return out, flat, meta


def _compress_tile_cols(k: int, launch: Launch) -> int:
    return launch.block_cols if k % launch.block_cols == 0 else gpu_layout.K_MULTIPLE


def _launch_compress24(x2: torch.Tensor, f: torch.Tensor | None, rows_out: int,
                       launch: LaunchConfig) -> torch.Tensor:
    k = x2.shape[1]
    out, flat, meta = _compressed_buffer(rows_out, k, x2.dtype, x2.device)
    cfg = launch.compress24
    bk = _compress_tile_cols(k, cfg)
    grid = (gpu_layout.padded_rows(rows_out) // cfg.block_rows, k // bk)
    _kernels().compress24_kernel[grid](
        x2, f if f is not None else x2, flat, meta, x2.shape[0], rows_out, k, x2.stride(0),
        HAS_FACTOR=f is not None, NAN_KEY=_nan_key(x2), BR=cfg.block_rows, BK=bk, num_warps=cfg.num_warps)
    return out


def _fusable(k: int) -> bool:
    return k % gpu_layout.K_MULTIPLE == 0


def _compress_operands(x: torch.Tensor, factor: Any, rows_out: int | None, multiple: int, what: str, *,
                       fused_only: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Checked 2-D input, float32 factor and output rows of a compressing call (``fused_only``: K
    must suit the fused kernels)."""
    _check_input(x, ("float16", "bfloat16"), what)
    if x.dim() != 2:
        raise InvalidArgument(f"{what}: x must be 2-D [tokens, K], got shape {tuple(x.shape)}", field="x")
    if fused_only and not _fusable(x.shape[1]):
        raise InvalidArgument(f"{what}: last dimension {x.shape[1]} is not a multiple of {gpu_layout.K_MULTIPLE}",
                              field="x")
    x2 = _rows2d(x)
    return x2, torch_eager.factor_tensor(factor, x.shape[-1], x.device), _rows_out(x2.shape[0], rows_out, multiple, what)


def fused_compress_24(x: torch.Tensor, *, factor: Any = None, rows_out: int | None = None,
                      launch: LaunchConfig = DEFAULT_LAUNCH) -> torch.Tensor:
    """The fused 2:4 prune + compress kernel alone, without the layout check (K a multiple of 64)."""
    x2, f, rows_out = _compress_operands(x, factor, rows_out, 16, "fused_compress_24", fused_only=True)
    return _launch_compress24(x2, f, rows_out, launch)


def prune_compress_24(x: torch.Tensor, *, factor: Any = None, rows_out: int | None = None,
                      launch: LaunchConfig = DEFAULT_LAUNCH) -> torch.Tensor:
    """2:4-prune ``x`` [R, K] (fp16/bf16) and return the compressed operand for ``torch._cslt_sparse_mm``.

    ``rows_out`` (default: R rounded up to 16) pads the operand with zero rows (tokens), as cuSPARSELt
    needs a multiple of 16 rows. One fused kernel when K % 64 == 0 and the layout check passed on
    this GPU; otherwise ``prune_gpu`` + ``torch._cslt_compress`` (same result, more passes).
    """
    torch = _torch()
    x2, f, rows_out = _compress_operands(x, factor, rows_out, 16, "prune_compress_24")
    k = x2.shape[1]
    if _fusable(k) and (_interpreting() or fused_layout_ok(x2.device, 2)):
        return _launch_compress24(x2, f, rows_out, launch)
    if k % 4:
        raise InvalidArgument(f"prune_compress_24: last dimension {k} is not a multiple of 4", field="x")
    pruned = prune_gpu(x2, "2:4", factor=f, launch=launch)
    if rows_out > x2.shape[0]:
        pruned = torch.nn.functional.pad(pruned, (0, 0, 0, rows_out - x2.shape[0]))
    return torch._cslt_compress(pruned)


def quantize_int8(x: torch.Tensor, *, prune_24: bool = False, factor: Any = None,
                  launch: LaunchConfig = DEFAULT_LAUNCH) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row absmax int8 quantization of 16-bit ``x`` [R, K] (2:4-pruned first if ``prune_24``).

    Returns (q int8 [R, K], scale fp32 [R]) with x ~= q * scale[:, None]; scale = absmax / 127 (1 for
    an all-zero row); q = round-half-even(x / scale) clamped to [-127, 127]. Inputs must be finite.
    """
    torch = _torch()
    _check_input(x, ("float16", "bfloat16"), "quantize_int8")
    x2 = _rows2d(x)
    k = x2.shape[1]
    if prune_24 and k % 4:
        raise InvalidArgument(f"quantize_int8: last dimension {k} is not a multiple of 4", field="x")
    f = torch_eager.factor_tensor(factor, k, x.device)
    q = torch.empty(x2.shape, dtype=torch.int8, device=x2.device)
    scale = torch.empty(x2.shape[0], dtype=torch.float32, device=x2.device)
    amax = _absmax(x2, f, x2.shape[0], prune_24, launch)
    cfg = launch.quant
    _kernels().quant_kernel[(_cdiv(x2.shape[0], cfg.block_rows), _cdiv(k, cfg.block_cols))](
        x2, f if f is not None else x2, q, amax, scale, x2.shape[0], k, x2.stride(0), HAS_FACTOR=f is not None,
        NAN_KEY=_nan_key(x2), PRUNE=prune_24, BR=cfg.block_rows, BK=cfg.block_cols, num_warps=cfg.num_warps)
    return q, scale


def fused_quant_compress_24_int8(x: torch.Tensor, *, factor: Any = None, rows_out: int | None = None,
                                 launch: LaunchConfig = DEFAULT_LAUNCH) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused 2:4 prune + int8 quantize + compress kernels alone, without the layout check."""
    x2, f, rows_out = _compress_operands(x, factor, rows_out, 32, "fused_quant_compress_24_int8", fused_only=True)
    return _launch_quant_compress24(x2, f, rows_out, launch)


def prune_quant_compress_24_int8(x: torch.Tensor, *, factor: Any = None, rows_out: int | None = None,
                                 launch: LaunchConfig = DEFAULT_LAUNCH) -> tuple[torch.Tensor, torch.Tensor]:
    """2:4-prune 16-bit ``x`` [R, K], quantize per row to int8, compress for ``torch._cslt_sparse_mm``.

    Returns (int8 operand of ``rows_out`` rows (default: R rounded up to 32), fp32 scales [rows_out]).
    ``_cslt_sparse_mm(op, w_int8.t(), out_dtype=torch.int32)`` then equals ``q @ w_int8.t()`` exactly;
    pass ``alpha=scales`` (with a 16-bit out_dtype) to apply the per-token scales in the GEMM.
    """
    torch = _torch()
    x2, f, rows_out = _compress_operands(x, factor, rows_out, 32, "prune_quant_compress_24_int8")
    if _fusable(x2.shape[1]) and (_interpreting() or fused_layout_ok(x2.device, 1)):
        return _launch_quant_compress24(x2, f, rows_out, launch)
    q, scale = quantize_int8(x2, prune_24=True, factor=f, launch=launch)
    pad = rows_out - x2.shape[0]
    if pad:
        q = torch.nn.functional.pad(q, (0, 0, 0, pad))
        scale = torch.nn.functional.pad(scale, (0, pad), value=1.0)
    return torch._cslt_compress(q), scale


def _absmax(x2: torch.Tensor, f: torch.Tensor | None, rows_out: int, prune_24: bool,
            launch: LaunchConfig) -> torch.Tensor:
    """int32 bits of each row's max |x| (of the 2:4-kept values if ``prune_24``), zero past the input rows."""
    torch = _torch()
    amax = torch.zeros(rows_out, dtype=torch.int32, device=x2.device)
    cfg = launch.absmax
    _kernels().absmax_kernel[(_cdiv(x2.shape[0], cfg.block_rows), _cdiv(x2.shape[1], cfg.block_cols))](
        x2, f if f is not None else x2, amax, x2.shape[0], x2.shape[1], x2.stride(0), HAS_FACTOR=f is not None,
        NAN_KEY=_nan_key(x2), PRUNE=prune_24, BR=cfg.block_rows, BK=cfg.block_cols, num_warps=cfg.num_warps)
    return amax


def _launch_quant_compress24(x2: torch.Tensor, f: torch.Tensor | None, rows_out: int,
                             launch: LaunchConfig) -> tuple[torch.Tensor, torch.Tensor]:
    torch = _torch()
    k = x2.shape[1]
    out, flat, meta = _compressed_buffer(rows_out, k, torch.int8, x2.device)
    scale = torch.empty(rows_out, dtype=torch.float32, device=x2.device)
    amax = _absmax(x2, f, rows_out, True, launch)
    cfg = launch.quant_compress24
    bk = _compress_tile_cols(k, cfg)
    _kernels().quant_compress24_kernel[(gpu_layout.padded_rows(rows_out) // cfg.block_rows, k // bk)](
        x2, f if f is not None else x2, flat, meta, amax, scale, x2.shape[0], rows_out, k, x2.stride(0),
        HAS_FACTOR=f is not None, NAN_KEY=_nan_key(x2), BR=cfg.block_rows, BK=bk, num_warps=cfg.num_warps)
    return out, scale


def fused_layout_ok(device: Any, itemsize: int) -> bool:
    """True if the fused writer reproduces ``torch._cslt_compress`` bit-for-bit on ``device``.

    Checked once per process, device and data width (2: bf16, 1: int8) on the SELF_CHECK_SHAPES
    (fixed seeds, different values per shape); never inside a CUDA graph capture (then an unchecked
    width reports False and callers take the eager path).
    """
    torch = _torch()
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    key = (str(dev), itemsize)
    if key not in _VERIFIED:
        if torch.cuda.is_current_stream_capturing():
            return False
        _VERIFIED[key] = _self_check(dev, itemsize)
        if not _VERIFIED[key]:
            warnings.warn(
                f"fused 2:4 compression does not match torch._cslt_compress on {torch.cuda.get_device_name(dev)} "
                f"(cuSPARSELt {torch.backends.cusparselt.version()}, {8 * itemsize}-bit): using the eager "
                "prune + _cslt_compress path", RuntimeWarning, stacklevel=3)
    return _VERIFIED[key]


def _self_check(device: torch.device, itemsize: int) -> bool:
    return fused_writer_matches(device, itemsize, _torch()._cslt_compress)


def fused_writer_matches(device: Any, itemsize: int, compress: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """True if the fused writer (2: bf16 prune + compress; 1: prune + int8 quantize + compress) gives,
    bit for bit, what ``compress`` (a cuSPARSELt compression of an already pruned matrix) gives.

    Inputs: bf16 of each of the SELF_CHECK_SHAPES from the fixed seeds ``SELF_CHECK_SEED + i``,
    magnitudes 0.5..1 with random signs: every kept value quantizes to |q| >= 64, so cuSPARSELt sees
    exactly two non-zeros in every group (where a kept value rounds to 0 it may pick another
    position: same product, other metadata bytes).
    """
    torch = _torch()
    dev = torch.device(device)
    for index, (rows, k) in enumerate(SELF_CHECK_SHAPES):
        gen = torch.Generator(device=dev).manual_seed(SELF_CHECK_SEED + index)
        magnitude = torch.rand(rows, k, generator=gen, device=dev) * 0.5 + 0.5
        sign = torch.randint(0, 2, (rows, k), generator=gen, device=dev) * 2 - 1
        x = (magnitude * sign).to(torch.bfloat16)
        if itemsize == 2:
            got = _launch_compress24(x, None, rows, DEFAULT_LAUNCH)
            ref = compress(prune_gpu(x, "2:4"))
        else:
            got, _ = _launch_quant_compress24(x, None, rows, DEFAULT_LAUNCH)
            ref = compress(quantize_int8(x, prune_24=True)[0])
        n = gpu_layout.compressed_nbytes(rows, k, itemsize)
        if got.shape != ref.shape or not torch.equal(got.reshape(-1).view(torch.uint8)[:n],
                                                     ref.reshape(-1).view(torch.uint8)[:n]):
            return False
    return True


__all__ = [
    "DEFAULT_LAUNCH", "Launch", "LaunchConfig", "fused_compress_24", "fused_layout_ok", "fused_writer_matches",
    "fused_quant_compress_24_int8", "prune_compress_24", "prune_gpu", "prune_quant_compress_24_int8",
    "quantize_int8",
]
