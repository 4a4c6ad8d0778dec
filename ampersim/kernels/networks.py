"""Comparator networks shared by the CPU (numba) and GPU (Triton) selection kernels: plain Python,
evaluated when a kernel is generated, never at run time."""
from __future__ import annotations


def batcher_pairs(p: int) -> tuple[tuple[int, int], ...]:
    """Comparators (a < b) of Batcher's odd-even merge sort of p = 2^k wires, in order: applying
    each as (max to a, min to b) sorts any input in descending order. 5, 19, 63, 191 comparators
    for p = 4, 8, 16, 32."""
    pairs = []
    run = 1  # length of the sorted runs being merged
    while run < p:
        dist = run
        while dist >= 1:
            for j in range(dist % run, p - dist, 2 * dist):
                for i in range(min(dist, p - j - dist)):
                    if (i + j) // (2 * run) == (i + j + dist) // (2 * run):
                        pairs.append((i + j, i + j + dist))
            dist //= 2
        run *= 2
    return tuple(pairs)
