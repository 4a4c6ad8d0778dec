"""SIMD blocks of the N:M selection, emitted as LLVM vector IR through numba intrinsics.

A *block* is L consecutive channels of one row, L = max(512 bits / key width, M) (a multiple of
M), i.e. one AVX-512 register of keys, or several for M = 32. Per block:

1. load L raw values (float32 bits, or float16/bfloat16 bits);
2. keys: integer images of the score that order like the score:
   - magnitude: the bits with the sign cleared (|x| orders like its bit pattern for every
     non-NaN value, denormals and inf included; -0.0 becomes 0), NaN clamped to one key just
     above inf so all NaNs tie;
   - with a factor: the float32 product |x| * f, keyed the same way;
3. rank of every lane inside its group of M: the number of lanes j that beat it, where j beats i
   iff key_j > key_i, or key_j == key_i and j < i. One "splat lane j of every group" shuffle, a
   compare against ``keys - [i > j]`` and an add per j: M steps for L lanes;
4. keep = rank < N; write the pruned values, the mask, or the compressed values + indices.

The IR is generic vector IR (plus LLVM's generic prefetch and vector-compress intrinsics, which it
lowers or expands for any CPU, and an x86 ``sfence`` after streaming stores), so the code is
correct on AVX2, AVX-512 or NEON; the block width suits AVX-512. The variant (M, storage format,
scored, streaming) travels as a ``BlockSpec`` argument whose numba type carries the values, so
each variant is compiled (and disk-cached) once and dispatched at the usual cost of a typed call.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from llvmlite import ir
from llvmlite.binding import get_default_triple
from numba.core import cgutils, types
from numba.extending import NativeValue, intrinsic, models, register_model, typeof_impl, unbox

# fmt -> (storage bits, magnitude key of every NaN: just above the key of inf)
_FORMATS = {"float32": (32, 0x7F800001), "float16": (16, 0x7C01), "bfloat16": (16, 0x7F81)}
_PREFETCH_BYTES = 2048  # read-ahead distance of the software prefetch (measured, docs/pruner.md)
_I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)


def key_bits(fmt: str, scored: bool) -> int:
    """Width of the integer keys: 16 for magnitude of 16-bit formats, else 32."""
    return 32 if scored or fmt == "float32" else 16


def block_lanes(m: int, fmt: str, scored: bool) -> int:
    """Channels per SIMD block: the most whole groups of m that fit 512 bits of keys (at least one)."""
    return m * max(1, 512 // key_bits(fmt, scored) // m)


@dataclass(frozen=True)
class BlockSpec:
    """A kernel variant: group size m, storage format, whether a factor scales the scores, and
    whether pruned blocks are written with non-temporal (streaming) stores. Streaming needs every
    output block 64-byte aligned; it saves the read-for-ownership of the output's cache lines."""

    m: int
    fmt: str
    scored: bool
    stream: bool = False

    @property
    def lanes(self) -> int:
        return block_lanes(self.m, self.fmt, self.scored)


# numba's disk cache checks only the source file of the cached kernel (kernels_cpu.py), not this
# code generator: its source hash is part of the spec's type, so editing this file retires old
# cache entries.
CODEGEN_ID = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


class BlockSpecType(types.Opaque):
    """numba type of a BlockSpec: the variant is part of the type (one compilation each).

    Its state is plain builtins (pickled into numba's cache index) and its key tolerates
    entries written by older versions, which then simply do not match."""

    def __init__(self, spec: BlockSpec) -> None:
        self.params = (spec.m, spec.fmt, spec.scored, spec.stream)
        self.codegen = CODEGEN_ID
        super().__init__(name=f"BlockSpec({spec.m}, {spec.fmt}, scored={spec.scored}, "
                              f"stream={spec.stream}, codegen={CODEGEN_ID})")

    @property
    def spec(self) -> BlockSpec:
        return BlockSpec(*self.params)

    @property
    def key(self) -> tuple:
        return getattr(self, "params", None), getattr(self, "codegen", None)


register_model(BlockSpecType)(models.OpaqueModel)


@typeof_impl.register(BlockSpec)
def _typeof_spec(value: BlockSpec, context: object) -> BlockSpecType:
    return BlockSpecType(value)


@unbox(BlockSpecType)
def _unbox_spec(typ: BlockSpecType, obj: object, c: object) -> NativeValue:
    return NativeValue(c.context.get_dummy_value())


def _spec(spec) -> tuple[int, str, bool] | None:
    if not isinstance(spec, BlockSpecType):
        return None
    return spec.spec.m, spec.spec.fmt, spec.spec.scored


def _splat(builder, value, vt):
    vec = builder.insert_element(ir.Constant(vt, None), value, ir.Constant(_I32, 0))
    return _take(builder, vec, [0] * vt.count)


def _item_ptr(context, builder, arrty, arr, *index):
    ary = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer2(
        context, builder, ary.data, cgutils.unpack_tuple(builder, ary.shape),
        cgutils.unpack_tuple(builder, ary.strides), arrty.layout, list(index),
    )


def _load(builder, ptr, vt, align):
    return builder.load(builder.bitcast(ptr, vt.as_pointer()), align=align)


def _store(builder, value, ptr, align, stream=False):
    """Store a vector; ``stream``: non-temporal, with ``ptr`` promised aligned to the vector size."""
    nbytes = value.type.count * value.type.element.width // 8
    inst = builder.store(value, builder.bitcast(ptr, value.type.as_pointer()),
                         align=nbytes if stream else align)
    if stream:
        inst.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(_I32, 1)]))


def _prefetch(builder, ptr):
    fnty = ir.FunctionType(ir.VoidType(), [ir.PointerType(), _I32, _I32, _I32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
    ahead = builder.gep(builder.bitcast(ptr, _I8.as_pointer()), [ir.Constant(_I64, _PREFETCH_BYTES)])
    builder.call(fn, [builder.bitcast(ahead, ir.PointerType()), ir.Constant(_I32, 0),
                      ir.Constant(_I32, 3), ir.Constant(_I32, 1)])


def _umin(builder, vec, limit):
    lim = ir.Constant(vec.type, [limit] * vec.type.count)
    return builder.select(builder.icmp_unsigned("<", vec, lim), vec, lim)


def _half_magnitude_to_float(builder, magnitude):
    """Exact float32 of non-negative float16 bit patterns, in integer arithmetic: ``fpext half``
    becomes a compiler-rt call on CPUs without F16C, which numba's JIT cannot resolve."""
    lanes = magnitude.type.count
    i32, f32 = ir.VectorType(_I32, lanes), ir.VectorType(ir.FloatType(), lanes)
    wide = builder.zext(magnitude, i32)

    def splat(v):
        return ir.Constant(i32, [v] * lanes)

    # normal: exponent rebased from 15 to 127, mantissa moved up 13 bits
    normal = builder.add(builder.shl(wide, splat(13)), splat(112 << 23))
    inf_nan = builder.add(normal, splat(112 << 23))  # exponent 31 + 112 -> 255, payload kept
    # zero / denormal: mantissa * 2**-24, exact in float32
    tiny = builder.fmul(builder.sitofp(wide, f32), ir.Constant(f32, [2.0 ** -24] * lanes))
    bits = builder.select(builder.icmp_unsigned(">=", wide, splat(0x7C00)), inf_nan,
                          builder.select(builder.icmp_unsigned("<", wide, splat(0x0400)),
                                         builder.bitcast(tiny, i32), normal))
    return builder.bitcast(bits, f32)


def _keys(builder, bits, fmt, scored, factor_ptr, lanes):
    """Integer keys that order like the scores (see module docstring)."""
    store_bits, nan_key = _FORMATS[fmt]
    sign_off = (1 << (store_bits - 1)) - 1
    magnitude = builder.and_(bits, ir.Constant(bits.type, [sign_off] * lanes))
    if not scored:
        return _umin(builder, magnitude, nan_key)
    f32 = ir.VectorType(ir.FloatType(), lanes)
    i32 = ir.VectorType(_I32, lanes)
    if fmt == "float32":
        value = builder.bitcast(magnitude, f32)
    elif fmt == "bfloat16":
        wide = builder.shl(builder.zext(magnitude, i32), ir.Constant(i32, [16] * lanes))
        value = builder.bitcast(wide, f32)
    else:
        value = _half_magnitude_to_float(builder, magnitude)
    score = builder.fmul(value, _load(builder, factor_ptr, f32, 4))
    # |x| * f >= 0, but a NaN product may carry a sign bit: clear it before keying.
    key = builder.and_(builder.bitcast(score, i32), ir.Constant(i32, [0x7FFFFFFF] * lanes))
    return _umin(builder, key, _FORMATS["float32"][1])


def _keep(builder, keys, m, n):
    """<lanes x i1>: lane ranks below n inside its group of m lanes."""
    vt = keys.type
    lanes = vt.count
    rank = ir.Constant(vt, [0] * lanes)
    for j in range(m):
        key_j = _take(builder, keys, [(lane // m) * m + j for lane in range(lanes)])
        # j beats i iff key_j > key_i - [j < i]   (keys are >= 0, so no overflow)
        earlier = ir.Constant(vt, [1 if lane % m > j else 0 for lane in range(lanes)])
        beats = builder.icmp_signed(">", key_j, builder.sub(keys, earlier))
        rank = builder.add(rank, builder.zext(beats, vt))
    return builder.icmp_unsigned("<", rank, _splat(builder, builder.trunc(n, vt.element), vt))


def _select(context, builder, sig, args, m, fmt, scored):
    """Shared front half of every block: pointers, load, keys, keep mask."""
    x_ty, factor_ty = sig.args[0], sig.args[6] if len(sig.args) > 6 else None
    x, row, col = args[0], args[1], args[2]
    lanes = block_lanes(m, fmt, scored)
    store_bits = _FORMATS[fmt][0]
    px = _item_ptr(context, builder, x_ty, x, row, col)
    _prefetch(builder, px)
    bits = _load(builder, px, ir.VectorType(ir.IntType(store_bits), lanes), store_bits // 8)
    factor_ptr = None
    if scored:
        factor, fcol = args[6], args[7]
        factor_ptr = _item_ptr(context, builder, factor_ty, factor, fcol)
    keys = _keys(builder, bits, fmt, scored, factor_ptr, lanes)
    return bits, _keep(builder, keys, m, args[8])


def _take(builder, vec, lanes):
    """The given lanes of ``vec``, as a new vector."""
    return builder.shuffle_vector(vec, ir.Constant(vec.type, None),
                                  ir.Constant(ir.VectorType(_I32, len(lanes)), list(lanes)))


def _compress_store(builder, value, ptr, mask):
    """Pack the lanes of ``value`` selected by ``mask`` to the front and store the *whole* vector
    at ``ptr``: lanes past the selected ones are garbage that the caller must overwrite later or
    keep inside its buffer. Compressing in registers avoids the memory form of the x86 compress
    instruction. Vectors wider than 512 bits are done in two halves (LLVM 22 miscompiled the
    compress of a 1024-bit vector)."""
    vt = value.type
    if vt.count * vt.element.width > 512:
        lo, hi = range(vt.count // 2), range(vt.count // 2, vt.count)
        lo_mask = _take(builder, mask, lo)
        _compress_store(builder, _take(builder, value, lo), ptr, lo_mask)
        mask_bits = ir.IntType(len(lo))
        ctpop = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(mask_bits, [mask_bits]), f"llvm.ctpop.i{len(lo)}")
        kept_lo = builder.zext(builder.call(ctpop, [builder.bitcast(lo_mask, mask_bits)]), _I64)
        at = builder.gep(builder.bitcast(ptr, vt.element.as_pointer()), [kept_lo])
        _compress_store(builder, _take(builder, value, hi), at, _take(builder, mask, hi))
        return
    name = f"llvm.experimental.vector.compress.v{vt.count}i{vt.element.width}"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, mask.type, vt]), name)
    _store(builder, builder.call(fn, [value, mask, ir.Constant(vt, None)]), ptr, vt.element.width // 8)


@intrinsic
def lanes_of(typingctx, spec_ty):
    """Compile-time constant: channels per block of the variant."""
    spec = _spec(spec_ty)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, block_lanes(*spec))

    return types.intp(spec_ty), codegen


@intrinsic
def group_of(typingctx, spec_ty):
    """Compile-time constant: the group size M of the variant."""
    spec = _spec(spec_ty)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, spec[0])

    return types.intp(spec_ty), codegen


@intrinsic
def stream_fence(typingctx, spec_ty):
    """After streaming stores: a store fence (x86 ``sfence``; elsewhere a full fence) so they are
    globally visible before the thread pool's join; nothing if the variant does not stream."""
    if not isinstance(spec_ty, BlockSpecType):
        return None

    def codegen(context, builder, sig, args):
        if spec_ty.spec.stream:
            if get_default_triple().startswith(("x86_64", "i686", "i386")):
                fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                    "llvm.x86.sse.sfence")
                builder.call(fn, [])
            else:
                builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(spec_ty), codegen


@intrinsic
def prune_block(typingctx, x, row, col, out, out_row, out_col, factor, factor_col, n, spec_ty):
    """out[out_row, out_col:+L] = x[row, col:+L] with the non-kept lanes set to 0."""
    spec = _spec(spec_ty)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        bits, keep = _select(context, builder, sig, args, *spec)
        po = _item_ptr(context, builder, sig.args[3], args[3], args[4], args[5])
        pruned = builder.select(keep, bits, ir.Constant(bits.type, [0] * bits.type.count))
        _store(builder, pruned, po, bits.type.element.width // 8, stream=sig.args[-1].spec.stream)
        return context.get_dummy_value()

    return types.void(x, row, col, out, out_row, out_col, factor, factor_col, n, spec_ty), codegen


@intrinsic
def mask_block(typingctx, x, row, col, mask, mask_row, mask_col, factor, factor_col, n, spec_ty):
    """mask[mask_row, mask_col:+L] = keep (bool) for x[row, col:+L]."""
    spec = _spec(spec_ty)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        _, keep = _select(context, builder, sig, args, *spec)
        pm = _item_ptr(context, builder, sig.args[3], args[3], args[4], args[5])
        _store(builder, builder.zext(keep, ir.VectorType(_I8, keep.type.count)), pm, 1)
        return context.get_dummy_value()

    return types.void(x, row, col, mask, mask_row, mask_col, factor, factor_col, n, spec_ty), codegen


@intrinsic
def compress_block(typingctx, x, row, col, values, indices, out_row, out_col, factor, factor_col, n,
                   spec_ty):
    """values/indices[out_row, out_col:+L*N/M] = kept lanes of x[row, col:+L] and their in-group
    index; also writes (garbage) up to out_col + L, which must lie inside the arrays."""
    spec = _spec(spec_ty)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        # Reorder to the (x, row, col, _, _, _, factor, factor_col, n) layout _select expects.
        front_sig = types.void(sig.args[0], sig.args[1], sig.args[2], sig.args[3], sig.args[4],
                               sig.args[5], sig.args[7], sig.args[8], sig.args[9])
        front = [args[0], args[1], args[2], args[3], args[4], args[5], args[7], args[8], args[9]]
        bits, keep = _select(context, builder, front_sig, front, *spec)
        pv = _item_ptr(context, builder, sig.args[3], args[3], args[5], args[6])
        pi = _item_ptr(context, builder, sig.args[4], args[4], args[5], args[6])
        lanes, m_ = keep.type.count, spec[0]
        in_group = ir.Constant(ir.VectorType(_I8, lanes), [lane % m_ for lane in range(lanes)])
        _compress_store(builder, bits, pv, keep)
        _compress_store(builder, in_group, pi, keep)
        return context.get_dummy_value()

    sig = types.void(x, row, col, values, indices, out_row, out_col, factor, factor_col, n, spec_ty)
    return sig, codegen
