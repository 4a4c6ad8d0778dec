"""Zero-copy views of numpy arrays and torch CPU tensors as 2-D rows of raw 16/32-bit storage.

The CPU pruner works on the bit patterns of float32 / float16 / bfloat16 values: ``x[..., K]``
becomes an unsigned integer array ``bits[rows, K]`` sharing x's memory (leading dimensions
flattened). bfloat16 is reached through its 16-bit storage, so no tensor is ever upcast.
torch is never imported here: a torch tensor is recognised only if torch is already loaded.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ampersim.core.errors import InvalidArgument

FORMATS = ("float32", "float16", "bfloat16")
STORAGE = {"float32": np.dtype(np.uint32), "float16": np.dtype(np.uint16), "bfloat16": np.dtype(np.uint16)}
_SIGNED = {4: np.int32, 2: np.int16}


@dataclass(frozen=True)
class Rows:
    """``bits``: [rows, K] unsigned view of the input's storage; ``like`` rebuilds outputs."""

    bits: np.ndarray
    fmt: str
    shape: tuple[int, ...]
    source: Any  # the original array/tensor (for the output's type and dtype)
    copied: bool  # True if the input had to be copied to get unit stride along K

    @property
    def is_torch(self) -> bool:
        return _is_torch(self.source)


def _torch() -> Any:
    return sys.modules.get("torch")


def _is_torch(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _torch_formats(torch: Any) -> dict[Any, str]:
    return {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def _numpy_format(dtype: np.dtype) -> str | None:
    if dtype == np.float32:
        return "float32"
    if dtype == np.float16:
        return "float16"
    if dtype.name == "bfloat16" and dtype.itemsize == 2:  # ml_dtypes.bfloat16
        return "bfloat16"
    return None


def _bad_dtype(name: str, dtype: Any) -> InvalidArgument:
    return InvalidArgument(f"{name} has dtype {dtype}; allowed: {', '.join(FORMATS)}")


def storage_view(x: Any, name: str) -> tuple[np.ndarray, str]:
    """Unsigned-integer numpy view of x's storage (same shape and strides) and x's format name."""
    if _is_torch(x):
        torch = _torch()
        if x.device.type != "cpu":
            raise InvalidArgument(f"{name} is on device {x.device}; the CPU pruner needs a CPU tensor")
        if x.layout != torch.strided:
            raise InvalidArgument(
                f"{name} has layout {x.layout}; the CPU pruner needs a dense (strided) tensor")
        fmt = _torch_formats(torch).get(x.dtype)
        if fmt is None:
            raise _bad_dtype(name, x.dtype)
        signed = torch.int32 if fmt == "float32" else torch.int16
        view = x.detach().view(signed).numpy()
    elif isinstance(x, np.ndarray):
        fmt = _numpy_format(x.dtype)
        if fmt is None:
            raise _bad_dtype(name, x.dtype)
        view = x
    else:
        raise InvalidArgument(f"{name} must be a numpy array or a torch CPU tensor, got {type(x).__name__}")
    if view.ndim == 0:
        raise InvalidArgument(f"{name} must have at least one dimension (channels last), got a scalar")
    return view.view(STORAGE[fmt]), fmt


def _row_stride(shape: tuple[int, ...], strides: tuple[int, ...]) -> int | None:
    """Stride of the flattened leading dimensions if they collapse into one without a copy."""
    lead = [(n, s) for n, s in zip(shape[:-1], strides[:-1]) if n != 1]
    if not lead:
        return strides[-1] * shape[-1] if shape[-1] else 0
    for (_, outer), (n_in, inner) in zip(lead, lead[1:]):
        if outer != inner * n_in:
            return None
    return lead[-1][1]


def as_rows(x: Any, name: str, *, writable: bool = False) -> Rows:
    """View ``x[..., K]`` as ``bits[rows, K]`` without copying.

    Any row stride is accepted; K must have unit stride and the leading dimensions must collapse
    into one. Otherwise a contiguous copy is made, except for ``writable=True`` (in-place output),
    which raises InvalidArgument naming ``name``.
    """
    bits, fmt = storage_view(x, name)
    shape = tuple(int(n) for n in bits.shape)
    k = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    if writable and not bits.flags.writeable:
        raise InvalidArgument(f"{name} is read-only; it cannot be written in place")
    item = bits.itemsize
    row_stride = _row_stride(shape, bits.strides)
    if (bits.strides[-1] == item or k <= 1) and row_stride is not None:
        view = np.lib.stride_tricks.as_strided(bits, (rows, k), (row_stride, item),
                                               writeable=bits.flags.writeable)
        return Rows(view, fmt, shape, x, copied=False)
    if writable:
        raise InvalidArgument(
            f"{name} (shape {shape}, strides {bits.strides} bytes) is not contiguous along its last "
            f"dimension or its leading dimensions do not flatten without a copy, so it cannot be "
            f"written in place; pass a contiguous array/tensor (e.g. .contiguous()) or inplace=False"
        )
    return Rows(np.ascontiguousarray(bits).reshape(rows, k), fmt, shape, x, copied=True)


def empty_rows(rows: int, k: int, dtype: np.dtype) -> np.ndarray:
    """Uninitialised [rows, k] array whose data starts on a 64-byte boundary (cache line)."""
    dtype = np.dtype(dtype)
    raw = np.empty(rows * k * dtype.itemsize + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + rows * k * dtype.itemsize].view(dtype).reshape(rows, k)


def wrap_like(bits: np.ndarray, rows: Rows) -> Any:
    """Return ``bits`` (same storage dtype, any shape with rows' size) as rows' input type/dtype/shape."""
    bits = bits.reshape(rows.shape)
    if rows.is_torch:
        torch = _torch()
        return torch.from_numpy(bits.view(_SIGNED[bits.itemsize])).view(rows.source.dtype)
    return bits.view(rows.source.dtype)


def decode_float32(bits: np.ndarray, fmt: str) -> np.ndarray:
    """Exact float32 values of raw float32/float16/bfloat16 bit patterns (a new array)."""
    if fmt == "float32":
        return bits.view(np.float32).copy()
    if fmt == "float16":
        return bits.view(np.float16).astype(np.float32)
    if fmt == "bfloat16":
        return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)
    raise InvalidArgument(f"unknown storage format '{fmt}'; allowed: {', '.join(FORMATS)}")


def as_factor(factor: Any, k: int) -> np.ndarray:
    """Validate a per-channel score factor: 1-D, length ``k``, finite and >= 0 -> float32 copy."""
    if _is_torch(factor):
        if factor.device.type != "cpu":
            raise InvalidArgument(f"factor is on device {factor.device}; the CPU pruner needs a CPU tensor")
        factor = factor.detach().float().numpy()
    try:
        f = np.array(factor, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"factor must be a 1-D float array of length K={k}: {exc}") from None
    if f.shape != (k,):
        raise InvalidArgument(
            f"factor must be a 1-D array of length K={k} (x's last dimension), got shape {f.shape}"
        )
    bad = np.flatnonzero(~(np.isfinite(f) & (f >= 0)))
    if bad.size:
        raise InvalidArgument(
            f"factor must be finite and >= 0; channel {int(bad[0])} is {float(f[bad[0]])}"
        )
    return f
