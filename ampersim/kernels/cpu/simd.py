"""SIMD blocks of the N:M selection, emitted as LLVM vector IR through numba intrinsics.

A *block* is L whole groups of M consecutive channels of one row, L = 512 bits / key width (16
groups for 32-bit keys, 32 for 16-bit keys): L·M channels, loaded as M registers of L lanes. Per
block:

1. load the M registers (float32 bits, or float16/bfloat16 bits) and key them: integer images of
   the score that order like the score:
   - magnitude: the bits with the sign cleared (|x| orders like its bit pattern for every
     non-NaN value, denormals and inf included; -0.0 becomes 0), NaN clamped to one key just
     above inf so all NaNs tie;
   - with a factor: the float32 product |x| * f, keyed the same way;
2. transpose the keys into M *wires*: wire i holds element i of every group of the block, one
   group per lane (``transpose_plan``: log2 M two-source shuffles per register, plus one q-way
   deinterleave when M = 2^a·q with q odd);
3. threshold T = the N-th largest key of every group: Batcher's odd-even merge sort of the wires,
   an unsigned max and min per comparator for all L groups at once. N is a run-time value: the
   sorted wires go to the stack, positions N - 1 (T) and N are read back;
4. keep, register by register in the loaded layout (one lane shuffle spreads each group's T over
   its channels): key >= T keeps exactly N per group unless the (N+1)-th largest key equals T
   somewhere in the block. Such a block (repeated values, e.g. zeros) applies the reference's
   tie rule instead: walking the wires in channel order gives, per group, the last channel p
   whose key == T is still kept (counting from #(key > T)); keep = key > T, or key == T and
   channel <= p;
5. write, register by register, the pruned values, the mask, or the compressed values + indices.

Cost per element is about (9 + log2 M)/L + 2·S(M)/(L·M) vector ops, S = Batcher comparators
(5, 19, 63, 191 for M = 4 ... 32): nearly flat in M, where counting ranks costs ~5M/L
(docs/pruner.md, item 9). For M = 2 and 4 steps 2-4 are replaced by counting ranks in the
loaded layout (``RANK_MAX_M``): as fast, and without the data-dependent tie branch.

The IR is generic vector IR (plus LLVM's generic prefetch and vector-compress intrinsics, which it
lowers or expands for any CPU, and an x86 ``sfence`` after streaming stores), so the code is
correct on AVX2, AVX-512 or NEON; the register width suits AVX-512. The variant (M, storage
format, scored, streaming) travels as a ``BlockSpec`` argument whose numba type carries the
values, so each variant is compiled (and disk-cached) once and dispatched at the usual cost of a
typed call.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from llvmlite import ir
from llvmlite.binding import get_default_triple
from numba.core import cgutils, types
from numba.extending import NativeValue, intrinsic, models, register_model, typeof_impl, unbox

from ampersim.kernels import networks

# fmt -> (storage bits, magnitude key of every NaN: just above the key of inf)
_FORMATS = {"float32": (32, 0x7F800001), "float16": (16, 0x7C01), "bfloat16": (16, 0x7F81)}
_PREFETCH_BYTES = 2048  # read-ahead distance of the software prefetch (measured, docs/pruner.md)
_LINE_BYTES = 64  # one software prefetch per cache line of the block
RANK_MAX_M = 4  # up to this M, counting ranks in the loaded layout beats the network (docs/pruner.md)
_I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)

Sources = list[tuple[int, int]]  # per output lane: (input register, input lane)


def key_bits(fmt: str, scored: bool) -> int:
    """Width of the integer keys: 16 for magnitude of 16-bit formats, else 32."""
    return 32 if scored or fmt == "float32" else 16


def register_lanes(fmt: str, scored: bool) -> int:
    """Lanes per register, i.e. groups per block: one 512-bit register of keys."""
    return 512 // key_bits(fmt, scored)


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
        """Lanes per register (= groups per block)."""
        return register_lanes(self.fmt, self.scored)

    @property
    def channels(self) -> int:
        """Channels per block: ``lanes`` whole groups."""
        return self.lanes * self.m


def transpose_plan(m: int, lanes: int) -> tuple[list[list[Sources]], list[int]]:
    """Shuffle stages from M registers of L consecutive channels (L groups of M) to M wires.

    Returns (stages, wires): applying the stages in order (each output register gathers its lanes
    from the previous stage's registers) leaves wire i (element i of each group, group g in lane
    g) in register ``wires[i]``. Each stage splits every channel sequence in two (even/odd
    positions: one two-source shuffle per register) or, for an odd number q of registers, into q
    (each output gathers from q registers).
    """
    seqs = [(0, 1, list(range(m)))]  # (first channel, channel step, registers holding it in order)
    stages = []
    while len(seqs[0][2]) > 1:  # all sequences have the same length
        stage: list[Sources] = []
        split = []
        for first, step, regs in seqs:
            parts = 2 if len(regs) % 2 == 0 else len(regs)
            for j in range(parts):
                out = []
                for o in range(len(regs) // parts):
                    elems = [(o * lanes + lane) * parts + j for lane in range(lanes)]
                    out.append(len(stage))
                    stage.append([(regs[e // lanes], e % lanes) for e in elems])
                split.append((first + j * step, step * parts, out))
        stages.append(stage)
        seqs = split
    wires = [0] * m
    for first, _, regs in seqs:
        wires[first] = regs[0]
    return stages, wires


# numba's disk cache checks only the source file of the cached kernel (rows.py), not this code
# generator: the hash of its sources (this file and the comparator network) is part of the spec's
# type, so editing them retires old cache entries.
CODEGEN_ID = hashlib.sha256(b"".join(Path(f).read_bytes() for f in (__file__, networks.__file__))).hexdigest()[:16]


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


def _offset(builder, ptr, elements):
    """``ptr`` advanced by a constant or run-time number of its elements."""
    count = elements if isinstance(elements, ir.Value) else ir.Constant(_I64, elements)
    return builder.gep(ptr, [count])


def _load(builder, ptr, vt, align):
    return builder.load(builder.bitcast(ptr, vt.as_pointer()), align=align)


def _store(builder, value, ptr, align, stream=False):
    """Store a vector; ``stream``: non-temporal, with ``ptr`` promised aligned to the vector size."""
    nbytes = value.type.count * value.type.element.width // 8
    inst = builder.store(value, builder.bitcast(ptr, value.type.as_pointer()),
                         align=nbytes if stream else align)
    if stream:
        inst.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(_I32, 1)]))


def _prefetch(builder, ptr, nbytes):
    """Prefetch every cache line of [ptr, ptr + nbytes) the read-ahead distance ahead."""
    fnty = ir.FunctionType(ir.VoidType(), [ir.PointerType(), _I32, _I32, _I32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
    base = builder.bitcast(ptr, _I8.as_pointer())
    for line in range(0, nbytes, _LINE_BYTES):
        ahead = builder.gep(base, [ir.Constant(_I64, _PREFETCH_BYTES + line)])
        builder.call(fn, [builder.bitcast(ahead, ir.PointerType()), ir.Constant(_I32, 0),
                          ir.Constant(_I32, 3), ir.Constant(_I32, 1)])


def _take(builder, vec, lanes):
    """The given lanes of ``vec``, as a new vector."""
    return builder.shuffle_vector(vec, ir.Constant(vec.type, None),
                                  ir.Constant(ir.VectorType(_I32, len(lanes)), list(lanes)))


def _gather(builder, regs, sources: Sources):
    """A register whose lane l is lane sources[l][1] of regs[sources[l][0]]: one shuffle per
    source register after the first (two-source shuffles, filled lanes carried along)."""
    lanes = len(sources)
    order = list(dict.fromkeys(reg for reg, _ in sources))
    if len(order) == 1:
        picks = [lane for _, lane in sources]
        return regs[order[0]] if picks == list(range(lanes)) else _take(builder, regs[order[0]], picks)
    first = order[0]
    acc = regs[first]
    for reg in order[1:]:
        # lanes still to come keep whatever acc holds there (llvmlite masks have no undef)
        mask = [lanes + src_lane if src == reg else src_lane if src == first else out
                for out, (src, src_lane) in enumerate(sources)]
        acc = builder.shuffle_vector(acc, regs[reg], ir.Constant(ir.VectorType(_I32, lanes), mask))
        first = None  # after the first shuffle, filled lanes sit at their output position
    return acc


def _permute(builder, regs, stages):
    for stage in stages:
        regs = [_gather(builder, regs, sources) for sources in stage]
    return regs


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


def _sorted_at(builder, wires, n):
    """Per lane, the n-th and (n+1)-th largest (n >= 1 run-time, n < len(wires)) of the wires'
    unsigned keys: Batcher's network on the wires padded to a power of two with constant zeros
    (keys are >= 0, so a zero wire never moves up: those comparators fold away here). The sorted
    wires go to the stack, from where positions n - 1 and n are read."""
    vt = wires[0].type
    width = 1 << (len(wires) - 1).bit_length()
    w = list(wires) + [None] * (width - len(wires))  # None: the constant zero wire
    for a, b in networks.batcher_pairs(width):
        if w[b] is None:
            continue
        if w[a] is None:
            w[a], w[b] = w[b], None
            continue
        greater = builder.icmp_unsigned(">", w[a], w[b])
        w[a], w[b] = builder.select(greater, w[a], w[b]), builder.select(greater, w[b], w[a])
    align = vt.element.width // 8
    sorted_ = cgutils.alloca_once(builder, vt, size=len(wires))
    for i in range(len(wires)):
        _store(builder, ir.Constant(vt, None) if w[i] is None else w[i],
               builder.gep(sorted_, [ir.Constant(_I64, i)]), align)
    nth = builder.gep(sorted_, [builder.sub(n, ir.Constant(n.type, 1))])
    return builder.load(nth, align=align), builder.load(builder.gep(sorted_, [n]), align=align)


def _last_tie(builder, wires, threshold, n):
    """Per lane, the channel index p such that the kept entries are those with key > T and those
    with key == T at index <= p: the reference's tie rule (the count starts at #(key > T))."""
    vt = threshold.type
    limit = _splat(builder, builder.trunc(n, vt.element), vt)
    count = ir.Constant(vt, None)
    for w in wires:
        count = builder.add(count, builder.zext(builder.icmp_unsigned(">", w, threshold), vt))
    last = ir.Constant(vt, None)
    for i, w in enumerate(wires):
        tie = builder.icmp_unsigned("==", w, threshold)
        last = builder.select(builder.and_(tie, builder.icmp_unsigned("<", count, limit)),
                              ir.Constant(vt, [i] * vt.count), last)
        count = builder.add(count, builder.zext(tie, vt))
    return last


def _rank_keep(builder, keys, m, n):
    """<lanes x i1>: the lane's rank inside its group of m lanes is below n, where j beats i iff
    key_j > key_i, or key_j == key_i and j < i: one splat of lane j per group, a compare and an
    add per j (the small-M path: M steps, no transposes, no data-dependent branch)."""
    vt = keys.type
    lanes = vt.count
    rank = ir.Constant(vt, None)
    for j in range(m):
        key_j = _take(builder, keys, [(lane // m) * m + j for lane in range(lanes)])
        # j beats i iff key_j > key_i - [j < i]   (keys are >= 0, so no overflow)
        earlier = ir.Constant(vt, [1 if lane % m > j else 0 for lane in range(lanes)])
        beats = builder.icmp_signed(">", key_j, builder.sub(keys, earlier))
        rank = builder.add(rank, builder.zext(beats, vt))
    return builder.icmp_unsigned("<", rank, _splat(builder, builder.trunc(n, vt.element), vt))


def _select(context, builder, sig, args, m, fmt, scored):
    """Shared front half of every block: the input pointer, the register type and the keep mask
    of each of the block's M registers."""
    x_ty, factor_ty = sig.args[0], sig.args[6]
    x, row, col, n = args[0], args[1], args[2], args[8]
    lanes = register_lanes(fmt, scored)
    store_bits = _FORMATS[fmt][0]
    vt = ir.VectorType(ir.IntType(store_bits), lanes)
    px = _item_ptr(context, builder, x_ty, x, row, col)
    _prefetch(builder, px, lanes * m * store_bits // 8)
    factor_ptr = _item_ptr(context, builder, factor_ty, args[6], args[7]) if scored else None
    keys = []
    for h in range(m):
        bits = _load(builder, _offset(builder, px, h * lanes), vt, store_bits // 8)
        f_ptr = None if factor_ptr is None else _offset(builder, factor_ptr, h * lanes)
        keys.append(_keys(builder, bits, fmt, scored, f_ptr, lanes))
    if m <= RANK_MAX_M and lanes % m == 0:  # whole groups per register
        return px, vt, [_rank_keep(builder, key, m, n) for key in keys]
    stages, order = transpose_plan(m, lanes)
    wires = _permute(builder, keys, stages)
    wires = [wires[order[i]] for i in range(m)]
    threshold, below = _sorted_at(builder, wires, n)

    def spread(vec, h):  # the value of each channel's group, for register h
        return _take(builder, vec, [(h * lanes + lane) // m for lane in range(lanes)])

    # Exactly n entries reach the threshold unless the (n+1)-th largest ties with it somewhere.
    tied = builder.bitcast(builder.icmp_unsigned("==", threshold, below), ir.IntType(lanes))
    with builder.if_else(builder.icmp_unsigned("!=", tied, ir.Constant(tied.type, 0))) as (slow, fast):
        with slow:
            last = _last_tie(builder, wires, threshold, n)
            keep_slow = []
            for h, key in enumerate(keys):
                t = spread(threshold, h)
                channel = ir.Constant(key.type, [(h * lanes + lane) % m for lane in range(lanes)])
                early = builder.icmp_unsigned("<=", channel, spread(last, h))
                keep_slow.append(builder.or_(builder.icmp_unsigned(">", key, t),
                                             builder.and_(builder.icmp_unsigned("==", key, t), early)))
            slow_end = builder.block
        with fast:
            keep_fast = [builder.icmp_unsigned(">=", key, spread(threshold, h))
                         for h, key in enumerate(keys)]
            fast_end = builder.block
    keep = []
    for flags_slow, flags_fast in zip(keep_slow, keep_fast, strict=True):
        phi = builder.phi(flags_slow.type)
        phi.add_incoming(flags_slow, slow_end)
        phi.add_incoming(flags_fast, fast_end)
        keep.append(phi)
    return px, vt, keep


def _compress_store(builder, value, ptr, mask):
    """Pack the lanes of ``value`` selected by ``mask`` to the front and store the *whole* vector
    at ``ptr``: lanes past the selected ones are garbage that the caller must overwrite later or
    keep inside its buffer. Compressing in registers avoids the memory form of the x86 compress
    instruction."""
    vt = value.type
    name = f"llvm.experimental.vector.compress.v{vt.count}i{vt.element.width}"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, mask.type, vt]), name)
    _store(builder, builder.call(fn, [value, mask, ir.Constant(vt, None)]), ptr, vt.element.width // 8)


def _popcount(builder, mask):
    """Number of set lanes of an <L x i1> mask, as i64."""
    bits = ir.IntType(mask.type.count)
    ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(bits, [bits]),
                                           f"llvm.ctpop.i{mask.type.count}")
    return builder.zext(builder.call(ctpop, [builder.bitcast(mask, bits)]), _I64)


@intrinsic
def channels_of(typingctx, spec_ty):
    """Compile-time constant: channels per block of the variant."""
    spec = _spec(spec_ty)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, spec_ty.spec.channels)

    return types.intp(spec_ty), codegen


@intrinsic
def lanes_of(typingctx, spec_ty):
    """Compile-time constant: lanes per register (groups per block) of the variant."""
    spec = _spec(spec_ty)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, spec_ty.spec.lanes)

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
    """out[out_row, out_col:+C] = x[row, col:+C] with the non-kept channels set to 0 (C channels
    per block). x is read again register by register right before each store, so out may be x."""
    spec = _spec(spec_ty)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        px, vt, keep = _select(context, builder, sig, args, *spec)
        po = _item_ptr(context, builder, sig.args[3], args[3], args[4], args[5])
        align, lanes = vt.element.width // 8, vt.count
        for h, flags in enumerate(keep):
            bits = _load(builder, _offset(builder, px, h * lanes), vt, align)
            pruned = builder.select(flags, bits, ir.Constant(vt, None))
            _store(builder, pruned, _offset(builder, po, h * lanes), align, stream=spec_ty.spec.stream)
        return context.get_dummy_value()

    return types.void(x, row, col, out, out_row, out_col, factor, factor_col, n, spec_ty), codegen


@intrinsic
def mask_block(typingctx, x, row, col, mask, mask_row, mask_col, factor, factor_col, n, spec_ty):
    """mask[mask_row, mask_col:+C] = keep (bool) for x[row, col:+C]."""
    spec = _spec(spec_ty)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        _, vt, keep = _select(context, builder, sig, args, *spec)
        pm = _item_ptr(context, builder, sig.args[3], args[3], args[4], args[5])
        for h, flags in enumerate(keep):
            _store(builder, builder.zext(flags, ir.VectorType(_I8, vt.count)),
                   _offset(builder, pm, h * vt.count), 1)
        return context.get_dummy_value()

    return types.void(x, row, col, mask, mask_row, mask_col, factor, factor_col, n, spec_ty), codegen


@intrinsic
def compress_block(typingctx, x, row, col, values, indices, out_row, out_col, factor, factor_col, n,
                   spec_ty):
    """values/indices[out_row, out_col:+C*N/M] = kept channels of x[row, col:+C] and their
    in-group index; also writes (garbage) up to L slots further, which must lie inside the
    arrays (L = lanes per register)."""
    spec = _spec(spec_ty)
    if spec is None:
        return None

    def codegen(context, builder, sig, args):
        # Reorder to the (x, row, col, _, _, _, factor, factor_col, n) layout _select expects.
        front_sig = types.void(sig.args[0], sig.args[1], sig.args[2], sig.args[3], sig.args[4],
                               sig.args[5], sig.args[7], sig.args[8], sig.args[9])
        front = [args[0], args[1], args[2], args[3], args[4], args[5], args[7], args[8], args[9]]
        px, vt, keep = _select(context, builder, front_sig, front, *spec)
        pv = _item_ptr(context, builder, sig.args[3], args[3], args[5], args[6])
        pi = _item_ptr(context, builder, sig.args[4], args[4], args[5], args[6])
        lanes, m_ = vt.count, spec[0]
        at = ir.Constant(_I64, 0)
        for h, flags in enumerate(keep):
            bits = _load(builder, _offset(builder, px, h * lanes), vt, vt.element.width // 8)
            in_group = ir.Constant(ir.VectorType(_I8, lanes), [(h * lanes + lane) % m_ for lane in range(lanes)])
            _compress_store(builder, bits, _offset(builder, pv, at), flags)
            _compress_store(builder, in_group, _offset(builder, pi, at), flags)
            at = builder.add(at, _popcount(builder, flags))
        return context.get_dummy_value()

    sig = types.void(x, row, col, values, indices, out_row, out_col, factor, factor_col, n, spec_ty)
    return sig, codegen
