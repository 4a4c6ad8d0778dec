"""Persistent cuSPARSELt plans for the 2:4 activation-sparse GEMM, bound through ctypes.

``torch._cslt_sparse_mm`` builds descriptors, an algorithm selection, a plan and a workspace on
every call and destroys them again (about 1 ms of host time per call on an H200 host, measured in
docs/validation.md), which makes eager prefill with sparse linears host-bound. Here they are built
once per :class:`PlanKey` (rows, N, K, data types, alpha mode, device, algorithm) and reused: a call
costs one ``cusparseLtMatmul``.

Operands are those of ``torch._cslt_sparse_mm(c, weight.t())``: ``c`` the compressed 2:4 activation
of ``rows`` x K (row-major, as ``torch._cslt_compress`` and the fused Triton writer produce it),
``weight`` the dense [N, K] row-major weight used transposed, the result [rows, N] row-major. The
descriptors are the ones torch uses for these operands, so the compressed layout is the one of
``_cslt_compress``; :func:`layout_ok` checks that on the device by compressing with this module's
own descriptor and comparing bytes with the fused writer.

Algorithms: ``"searched"`` runs ``cusparseLtMatmulSearch`` once on the first call's operands and
rebuilds the plan with the configuration it picked (algorithm id, split-K); ``"default"`` is
cuSPARSELt's default configuration (what ``torch._cslt_sparse_mm`` without ``alg_id`` and
``to_sparse_semi_structured`` users get). A plan is made outside CUDA-graph capture (the search
synchronizes); inside a capture a missing plan is an error that says to run once before capturing.

The library is the one torch loaded (found in ``/proc/self/maps``), else the ``nvidia-cusparselt``
wheel's, else ``libcusparseLt.so.0`` by name. Every status is checked; a failure raises
:class:`CusparseLtError` naming the function and cuSPARSELt's error string.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ampersim.core.errors import InvalidArgument, MissingDependency

if TYPE_CHECKING:
    import torch

ALGORITHMS = ("searched", "default")
LIBRARY_NAME = "libcusparseLt.so.0"
_OPAQUE_BYTES = 1024  # cuSPARSELt 0.8 opaque structs are 512 bytes, 16-byte aligned; room to spare
# Enumerations of cusparseLt.h / cusparse.h / library_types.h (cuSPARSELt 0.8).
_ORDER_ROW = 2
_OP_N, _OP_T = 0, 1
_SPARSITY_50 = 0
_COMPUTE = {"int32": 0, "float32": 2}  # CUSPARSE_COMPUTE_32I, CUSPARSE_COMPUTE_32F
_CUDA_TYPE = {"float16": 2, "bfloat16": 14, "int8": 3, "int32": 10, "float32": 0}
_ALPHA_VECTOR_SCALING = 5  # cusparseLtMatmulDescAttribute_t
_ALG_CONFIG_ID, _ALG_SPLIT_K, _ALG_SPLIT_K_MODE = 0, 3, 4  # cusparseLtMatmulAlgAttribute_t
_ALIGNMENT = 16


class CusparseLtError(RuntimeError):
    """A cuSPARSELt call returned an error status."""


@dataclass(frozen=True)
class PlanKey:
    """What a plan is specific to. ``rows`` is the (padded) token count of the compressed operand."""

    rows: int
    n: int
    k: int
    dtype: str       # operand type: float16, bfloat16, int8
    out_dtype: str   # result type: the operand type, or bfloat16/float16/int32 for int8
    alpha_vector: bool  # per-row alpha (int8 per-token scales) instead of the scalar 1
    device: int
    algorithm: str   # "searched" | "default"


class _Opaque:
    """A zeroed, 16-byte-aligned buffer for one cuSPARSELt opaque struct; ``.ptr`` is its address."""

    __slots__ = ("_raw", "ptr")

    def __init__(self) -> None:
        self._raw = ctypes.create_string_buffer(_OPAQUE_BYTES + 16)
        base = ctypes.addressof(self._raw)
        self.ptr = base + (-base % 16)


class _Library:
    """The cuSPARSELt shared library with the argument types of the functions used here."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lib = ctypes.CDLL(path)
        P, I64, U32, I32, SZ = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint32, ctypes.c_int, ctypes.c_size_t
        signatures = {
            "cusparseLtInit": [P],
            "cusparseLtGetProperty": [I32, P],
            "cusparseLtDenseDescriptorInit": [P, P, I64, I64, I64, U32, I32, I32],
            "cusparseLtStructuredDescriptorInit": [P, P, I64, I64, I64, U32, I32, I32, I32],
            "cusparseLtMatDescriptorDestroy": [P],
            "cusparseLtMatmulDescriptorInit": [P, P, I32, I32, P, P, P, P, I32],
            "cusparseLtMatmulDescSetAttribute": [P, P, I32, P, SZ],
            "cusparseLtMatmulAlgSelectionInit": [P, P, P, I32],
            "cusparseLtMatmulAlgSelectionDestroy": [P],
            "cusparseLtMatmulAlgSetAttribute": [P, P, I32, P, SZ],
            "cusparseLtMatmulAlgGetAttribute": [P, P, I32, P, SZ],
            "cusparseLtMatmulPlanInit": [P, P, P, P],
            "cusparseLtMatmulPlanDestroy": [P],
            "cusparseLtMatmulGetWorkspace": [P, P, P],
            "cusparseLtMatmul": [P, P, P, P, P, P, P, P, P, P, I32],
            "cusparseLtMatmulSearch": [P, P, P, P, P, P, P, P, P, P, I32],
            "cusparseLtSpMMACompressedSize2": [P, P, P, P],
            "cusparseLtSpMMACompress2": [P, P, I32, I32, P, P, P, P],
        }
        for name, argtypes in signatures.items():
            fn = getattr(self.lib, name)
            fn.argtypes = argtypes
            fn.restype = ctypes.c_int
        self.lib.cusparseLtGetErrorString.argtypes = [ctypes.c_int]
        self.lib.cusparseLtGetErrorString.restype = ctypes.c_char_p
        self.matmul = self.lib.cusparseLtMatmul

    def check(self, status: int, what: str) -> None:
        if status != 0:
            text = self.lib.cusparseLtGetErrorString(status) or b"unknown"
            raise CusparseLtError(f"{what} failed: status {status} ({text.decode(errors='replace')})")

    def call(self, name: str, *args: Any) -> None:
        self.check(getattr(self.lib, name)(*args), name)

    def version(self) -> str:
        parts = []
        for prop in range(3):  # MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
            value = ctypes.c_int()
            self.call("cusparseLtGetProperty", prop, ctypes.byref(value))
            parts.append(str(value.value))
        return ".".join(parts)


_LOCK = threading.Lock()
_LIB: _Library | None = None
_HANDLES: dict[int, _Opaque] = {}
_PLANS: dict[tuple, Plan] = {}


def library_path() -> str:
    """Path of the cuSPARSELt library to bind: torch's loaded copy, the wheel's, or the soname."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    for line in maps.splitlines():
        if "libcusparseLt.so" in line:
            return line.split(maxsplit=5)[-1].strip()
    try:
        spec = importlib.util.find_spec("nvidia.cusparselt")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(folder, "lib", LIBRARY_NAME)
        if os.path.exists(candidate):
            return candidate
    return LIBRARY_NAME


def library() -> _Library:
    """The bound library (loaded once per process)."""
    global _LIB
    if _LIB is None:
        with _LOCK:
            if _LIB is None:
                path = library_path()
                try:
                    _LIB = _Library(path)
                except OSError as exc:
                    raise MissingDependency(
                        f"cannot load cuSPARSELt ({path}): install a CUDA build of torch with cuSPARSELt "
                        "or the nvidia-cusparselt wheel") from exc
    return _LIB


def _handle(device: int) -> int:
    handle = _HANDLES.get(device)
    if handle is None:
        import torch

        lib = library()
        handle = _Opaque()
        with torch.cuda.device(device):
            lib.call("cusparseLtInit", handle.ptr)
        _HANDLES[device] = handle
    return handle.ptr


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _stream(device: int) -> int:
    """The current CUDA stream of ``device`` as an integer handle (torch's raw getter when it has one)."""
    import torch

    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    return raw(device) if raw is not None else torch.cuda.current_stream(device).cuda_stream


class Plan:
    """Descriptors, algorithm selection, plan and workspace for one :class:`PlanKey`.

    ``run`` launches the GEMM on a stream; ``alg_id``/``split_k``/``split_k_mode`` record the
    configuration (read back from cuSPARSELt), ``build_s``/``search_s`` the host time it took.
    """

    def __init__(self, key: PlanKey, a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor | None) -> None:
        import torch

        self.key = key
        self._lib = library()
        self._handle = _handle(key.device)
        started = time.perf_counter()
        self._mat = [_Opaque() for _ in range(3)]
        self._matmul = _Opaque()
        self._alpha_one = ctypes.c_float(1.0)
        self._beta = ctypes.c_float(0.0)
        self._streams = (ctypes.c_void_p * 1)()
        self._describe()
        self.search_s = 0.0
        self._build(None)
        if key.algorithm == "searched":
            if torch.cuda.is_current_stream_capturing():
                raise InvalidArgument("a searched cuSPARSELt plan cannot be made during CUDA graph capture: "
                                      "run the model once before capturing")
            out = torch.empty((key.rows, key.n), dtype=getattr(torch, key.out_dtype), device=a.device)
            t0 = time.perf_counter()
            self._streams[0] = _stream(key.device)
            self._lib.call("cusparseLtMatmulSearch", self._handle, self._plan.ptr, self._alpha(alpha), a.data_ptr(),
                           b.data_ptr(), ctypes.addressof(self._beta), out.data_ptr(), out.data_ptr(),
                           self._workspace_ptr(), ctypes.addressof(self._streams), 1)
            self.search_s = time.perf_counter() - t0
            found = (self._get(_ALG_CONFIG_ID), self._get(_ALG_SPLIT_K), self._get(_ALG_SPLIT_K_MODE))
            self._destroy_plan()
            self._build(found)
        self.alg_id = self._get(_ALG_CONFIG_ID)
        self.split_k = self._get(_ALG_SPLIT_K)
        self.split_k_mode = self._get(_ALG_SPLIT_K_MODE)
        self.build_s = time.perf_counter() - started

    def _describe(self) -> None:
        k, lib, h = self.key, self._lib, self._handle
        a, b, c = (m.ptr for m in self._mat)
        in_type, out_type = _CUDA_TYPE[k.dtype], _CUDA_TYPE[k.out_dtype]
        lib.call("cusparseLtStructuredDescriptorInit", h, a, k.rows, k.k, k.k, _ALIGNMENT, in_type, _ORDER_ROW,
                 _SPARSITY_50)
        lib.call("cusparseLtDenseDescriptorInit", h, b, k.n, k.k, k.k, _ALIGNMENT, in_type, _ORDER_ROW)
        lib.call("cusparseLtDenseDescriptorInit", h, c, k.rows, k.n, k.n, _ALIGNMENT, out_type, _ORDER_ROW)
        compute = _COMPUTE["int32" if k.dtype == "int8" else "float32"]
        lib.call("cusparseLtMatmulDescriptorInit", h, self._matmul.ptr, _OP_N, _OP_T, a, b, c, c, compute)
        if k.alpha_vector:
            on = ctypes.c_int(1)
            lib.call("cusparseLtMatmulDescSetAttribute", h, self._matmul.ptr, _ALPHA_VECTOR_SCALING,
                     ctypes.byref(on), ctypes.sizeof(on))

    def _build(self, config: tuple[int, int, int] | None) -> None:
        """Algorithm selection (default, or the searched ``(alg_id, split_k, split_k_mode)``), plan, workspace."""
        import torch

        lib, h = self._lib, self._handle
        self._alg = _Opaque()
        self._plan = _Opaque()
        lib.call("cusparseLtMatmulAlgSelectionInit", h, self._alg.ptr, self._matmul.ptr, 0)
        if config is not None:
            alg_id, split_k, split_k_mode = config
            self._set(_ALG_CONFIG_ID, alg_id)
            if split_k > 1:  # as torch does: only an explicit split sets split-K and its mode
                self._set(_ALG_SPLIT_K, split_k)
                self._set(_ALG_SPLIT_K_MODE, split_k_mode)
        lib.call("cusparseLtMatmulPlanInit", h, self._plan.ptr, self._matmul.ptr, self._alg.ptr)
        size = ctypes.c_size_t()
        lib.call("cusparseLtMatmulGetWorkspace", h, self._plan.ptr, ctypes.byref(size))
        self.workspace = (torch.empty(size.value, dtype=torch.uint8, device=f"cuda:{self.key.device}")
                          if size.value else None)

    def _set(self, attribute: int, value: int) -> None:
        v = ctypes.c_int(value)
        self._lib.call("cusparseLtMatmulAlgSetAttribute", self._handle, self._alg.ptr, attribute, ctypes.byref(v),
                       ctypes.sizeof(v))

    def _get(self, attribute: int) -> int:
        v = ctypes.c_int()
        self._lib.call("cusparseLtMatmulAlgGetAttribute", self._handle, self._alg.ptr, attribute, ctypes.byref(v),
                       ctypes.sizeof(v))
        return v.value

    def _workspace_ptr(self) -> int | None:
        return None if self.workspace is None else self.workspace.data_ptr()

    def _alpha(self, alpha: torch.Tensor | None) -> int:
        return alpha.data_ptr() if self.key.alpha_vector else ctypes.addressof(self._alpha_one)

    def _destroy_plan(self) -> None:
        self._lib.call("cusparseLtMatmulPlanDestroy", self._plan.ptr)
        self._lib.call("cusparseLtMatmulAlgSelectionDestroy", self._alg.ptr)

    def run(self, a: int, b: int, d: int, alpha: int | None, stream: int) -> None:
        """D = alpha · A_sparse @ B^T on ``stream`` (pointers as integers; ``alpha`` a device vector or None)."""
        self._streams[0] = stream
        status = self._lib.matmul(self._handle, self._plan.ptr,
                                  alpha if alpha is not None else ctypes.addressof(self._alpha_one),
                                  a, b, ctypes.addressof(self._beta), d, d, self._workspace_ptr(),
                                  ctypes.addressof(self._streams), 1)
        if status:
            self._lib.check(status, "cusparseLtMatmul")

    def describe(self) -> dict[str, Any]:
        return {"algorithm": self.key.algorithm, "alg_id": self.alg_id, "split_k": self.split_k,
                "split_k_mode": self.split_k_mode, "workspace_bytes": 0 if self.workspace is None else
                int(self.workspace.numel()), "build_s": self.build_s, "search_s": self.search_s}


def _check_operands(c: torch.Tensor, weight: torch.Tensor, rows: int, alpha: torch.Tensor | None,
                    out_dtype: str) -> None:
    from ampersim.kernels.gpu import cslt_layout

    if not (c.is_cuda and weight.is_cuda and c.device == weight.device):
        raise InvalidArgument("sparse_mm: the compressed operand and the weight must be CUDA tensors on one device")
    if weight.dim() != 2 or not weight.is_contiguous():
        raise InvalidArgument(f"sparse_mm: weight must be a contiguous [N, K] matrix, got shape {tuple(weight.shape)}")
    if c.dtype != weight.dtype:
        raise InvalidArgument(f"sparse_mm: operand dtype {c.dtype} differs from weight dtype {weight.dtype}")
    name = _dtype_name(c.dtype)
    if name not in ("float16", "bfloat16", "int8"):
        raise InvalidArgument(f"sparse_mm: dtype {name} not supported (float16, bfloat16, int8)")
    multiple = 32 if name == "int8" else 16
    n, k = weight.shape
    if rows % multiple or n % multiple or k % cslt_layout.K_MULTIPLE:
        raise InvalidArgument(f"sparse_mm: rows {rows} and N {n} must be multiples of {multiple}, "
                              f"K {k} of {cslt_layout.K_MULTIPLE}")
    need = cslt_layout.compressed_nbytes(rows, k, c.element_size())
    if not c.is_contiguous() or c.numel() * c.element_size() < need:
        raise InvalidArgument(f"sparse_mm: compressed operand holds {c.numel() * c.element_size()} bytes, "
                              f"a [{rows}, {k}] operand needs {need} (contiguous)")
    if name != "int8" and out_dtype != name:
        raise InvalidArgument(f"sparse_mm: {name} operands give {name} results, not {out_dtype}")
    if alpha is not None and (alpha.dtype != _torch_float32() or alpha.numel() < rows or not alpha.is_cuda):
        raise InvalidArgument(f"sparse_mm: alpha must be a float32 CUDA vector of at least {rows} values")


def _torch_float32() -> Any:
    import torch

    return torch.float32


def get_plan(c: torch.Tensor, weight: torch.Tensor, *, out_dtype: torch.dtype | None = None,
             alpha: torch.Tensor | None = None, algorithm: str = "searched") -> Plan:
    """The cached plan for these operands, made (and searched on them) on first use."""
    if algorithm not in ALGORITHMS:
        raise InvalidArgument(f"sparse_mm: unknown algorithm '{algorithm}'; allowed: {', '.join(ALGORITHMS)}",
                              field="algorithm")
    rows = c.shape[0]
    out = _dtype_name(out_dtype or c.dtype)
    cache_key = (rows, weight.shape[0], weight.shape[1], c.dtype, out, alpha is not None, c.device.index, algorithm)
    plan = _PLANS.get(cache_key)
    if plan is None:
        _check_operands(c, weight, rows, alpha, out)
        key = PlanKey(rows=rows, n=weight.shape[0], k=weight.shape[1], dtype=_dtype_name(c.dtype), out_dtype=out,
                      alpha_vector=alpha is not None, device=c.device.index, algorithm=algorithm)
        plan = _PLANS[cache_key] = Plan(key, c, weight, alpha)
    return plan


def sparse_mm(c: torch.Tensor, weight: torch.Tensor, *, out_dtype: torch.dtype | None = None,
              alpha: torch.Tensor | None = None, algorithm: str = "searched") -> torch.Tensor:
    """``torch._cslt_sparse_mm(c, weight.t(), alpha=alpha, out_dtype=out_dtype)`` with a cached plan.

    ``c``: compressed 2:4 operand of ``c.shape[0]`` rows (a multiple of 16, 32 for int8) and K =
    ``weight.shape[1]``; ``weight``: contiguous [N, K] of c's dtype; ``alpha``: float32 per-row scales
    (int8 with a 16-bit ``out_dtype``). Returns [rows, N] of ``out_dtype`` (default: c's dtype).
    """
    import torch

    plan = get_plan(c, weight, out_dtype=out_dtype, alpha=alpha, algorithm=algorithm)
    out = torch.empty((plan.key.rows, plan.key.n), dtype=out_dtype or c.dtype, device=c.device)
    plan.run(c.data_ptr(), weight.data_ptr(), out.data_ptr(), None if alpha is None else alpha.data_ptr(),
             _stream(plan.key.device))
    return out


def compress(x: torch.Tensor) -> torch.Tensor:
    """cuSPARSELt's own compression of a 2:4-pruned [rows, K] matrix with this module's A descriptor
    (``cusparseLtSpMMACompress2``): the layout :func:`sparse_mm` reads. Not for hot paths."""
    import torch

    from ampersim.kernels.gpu import cslt_layout

    lib = library()
    rows, k = x.shape
    device = x.device.index
    h = _handle(device)
    desc = _Opaque()
    lib.call("cusparseLtStructuredDescriptorInit", h, desc.ptr, rows, k, k, _ALIGNMENT, _CUDA_TYPE[_dtype_name(x.dtype)],
             _ORDER_ROW, _SPARSITY_50)
    try:
        size, buffer = ctypes.c_size_t(), ctypes.c_size_t()
        lib.call("cusparseLtSpMMACompressedSize2", h, desc.ptr, ctypes.byref(size), ctypes.byref(buffer))
        itemsize = x.element_size()
        if size.value < cslt_layout.compressed_nbytes(rows, k, itemsize):
            raise CusparseLtError(f"cuSPARSELt reports {size.value} compressed bytes for [{rows}, {k}], the layout "
                                  f"module {cslt_layout.compressed_nbytes(rows, k, itemsize)}")
        out = torch.empty(cslt_layout.compressed_shape(rows, k, itemsize), dtype=x.dtype, device=x.device)
        scratch = torch.empty(max(buffer.value, 1), dtype=torch.uint8, device=x.device)
        lib.call("cusparseLtSpMMACompress2", h, desc.ptr, 1, _OP_N, x.contiguous().data_ptr(), out.data_ptr(),
                 scratch.data_ptr(), _stream(device))
    finally:
        lib.call("cusparseLtMatDescriptorDestroy", desc.ptr)
    return out


def layout_ok(device: Any, itemsize: int) -> bool:
    """True if the fused Triton writer produces, bit for bit, what :func:`compress` (this module's A
    descriptor) writes, on the fixed inputs of ``pruner.fused_writer_matches``.
    ``itemsize`` 2: bf16 (prune + compress), 1: int8 (prune + per-token quantize + compress)."""
    from ampersim.kernels.gpu import pruner as kernels_gpu

    return kernels_gpu.fused_writer_matches(device, itemsize, compress)


def plans() -> list[dict[str, Any]]:
    """Every cached plan: its key and configuration (for measurement records)."""
    return [{**vars(p.key), **p.describe()} for p in _PLANS.values()]


def clear_plans() -> None:
    """Drop every cached plan (their workspaces are freed with them)."""
    for plan in _PLANS.values():
        plan._destroy_plan()
        for m in plan._mat:
            plan._lib.call("cusparseLtMatDescriptorDestroy", m.ptr)
    _PLANS.clear()


__all__ = ["ALGORITHMS", "CusparseLtError", "Plan", "PlanKey", "clear_plans", "compress", "get_plan", "layout_ok", "library",
           "library_path", "plans", "sparse_mm"]
