"""Eager torch N:M pruning on any device: the semantics of ``ampersim.kernels.reference`` in torch ops.

The fallback wherever no fused kernel runs (CUDA without Triton, M not a power of two, other
devices), the "eager torch" implementations the harness measures, and the reference path of the
harness's whole-layer checks. tests/test_prune_equivalence.py demands bit-equality with the numpy
reference, the numba CPU pruner and the Triton kernels.

How: the float32 score (|x|, or |x| * factor in float32) becomes an integer key that orders like
the score (NaN highest, all NaNs equal, -0 == +0); key * M + (M - 1 - position) is unique within a
group and orders like the reference's ranking (ties to the lower channel), so ``topk`` of it picks
exactly the reference's N entries. No host synchronisation: the functions can be captured into a
CUDA graph. The factor is not checked for finiteness or sign (that would synchronise); the CPU
pruner checks it, and any float32 factor is ranked as the reference ranks it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ampersim.core.errors import InvalidArgument
from ampersim.core.patterns import NMPattern

if TYPE_CHECKING:
    import torch

DTYPES = ("float32", "float16", "bfloat16")
_NAN_KEY = 0x7FFFFFFF  # above every finite or infinite float32's key


def _dtype_name(x: torch.Tensor) -> str:
    return str(x.dtype).removeprefix("torch.")


def _check(x: Any, pattern: str | NMPattern, pad: bool) -> NMPattern:
    import torch

    nm = NMPattern.parse(pattern)
    if not isinstance(x, torch.Tensor):
        raise InvalidArgument(f"x must be a torch.Tensor, got {type(x).__name__}", field="x")
    if _dtype_name(x) not in DTYPES:
        raise InvalidArgument(f"x has dtype {_dtype_name(x)}; allowed: {', '.join(DTYPES)}", field="x")
    if x.dim() < 1:
        raise InvalidArgument("x must have at least one dimension (channels last), got a scalar", field="x")
    if x.shape[-1] % nm.m and not pad:
        raise InvalidArgument(f"x's last dimension K={x.shape[-1]} is not a multiple of M={nm.m} (pattern {nm}); "
                              "pad=True treats the last channels as a zero-padded partial group", field="x")
    return nm


def factor_tensor(factor: Any, k: int, device: Any) -> torch.Tensor | None:
    """A per-channel score factor (tensor, array or sequence of length ``k``) as float32 on ``device``."""
    import torch

    if factor is None:
        return None
    f = torch.as_tensor(factor, device=device).to(torch.float32)
    if f.shape != (k,):
        raise InvalidArgument(f"factor must have shape ({k},) (one per channel of x), got {tuple(f.shape)}",
                              field="factor")
    return f


def score_keys(x: torch.Tensor, factor: torch.Tensor | None) -> torch.Tensor:
    """int32 keys whose order is the ranking's score order: float32 |x| (* factor), NaN highest."""
    import torch

    score = x.to(torch.float32).abs()
    if factor is not None:
        score.mul_(factor)
    bits = score.view(torch.int32)
    key = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # negative scores (negative factor) order too
    return key.masked_fill_(score == 0, 0).masked_fill_(score.isnan(), _NAN_KEY)


def keep_mask(x: torch.Tensor, pattern: str | NMPattern, *, factor: Any = None,
              pad: bool = False) -> torch.Tensor:
    """Boolean keep mask (x's shape and device): the N best-ranked entries of every group of M."""
    import torch

    nm = _check(x, pattern, pad)
    k = x.shape[-1]
    keys = score_keys(x, factor_tensor(factor, k, x.device)).to(torch.int64)
    padded = -(-k // nm.m) * nm.m
    if padded != k:  # zero-padded channels: score 0, after every real channel
        keys = torch.nn.functional.pad(keys, (0, padded - k))
    groups = keys.reshape(*x.shape[:-1], padded // nm.m, nm.m)
    later = torch.arange(nm.m - 1, -1, -1, device=x.device, dtype=torch.int64)  # lower channel ranks first
    best = groups.mul_(nm.m).add_(later).topk(nm.n, dim=-1, sorted=False).indices
    keep = torch.zeros(groups.shape, dtype=torch.bool, device=x.device).scatter_(-1, best, True)
    return keep.reshape(*x.shape[:-1], padded)[..., :k]


def prune(x: torch.Tensor, pattern: str | NMPattern, *, factor: Any = None, pad: bool = False) -> torch.Tensor:
    """N:M-pruned copy of ``x`` [..., K] (float32/float16/bfloat16, any device): kept entries
    bit-for-bit, dropped ones +0. ``factor``: per-channel score factor (float32 product)."""
    import torch

    keep = keep_mask(x, pattern, factor=factor, pad=pad)
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


__all__ = ["DTYPES", "factor_tensor", "keep_mask", "prune", "score_keys"]
