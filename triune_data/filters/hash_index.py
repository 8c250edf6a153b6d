"""Near pairs of 64-bit hashes without comparing all pairs: multi-index hashing (pigeonhole).

Two hashes within Hamming distance t agree exactly on at least one of any t + 1 disjoint chunks
of their bits (t differing bits cannot touch t + 1 chunks). So: split the 64 bits into t + 1
chunks; for each chunk sort the hashes by (group, chunk value); every pair inside a run of equal
values is a candidate; keep the candidates whose full distance is within t. Pairs are generated
with numpy in bounded blocks (no Python loop per pair), and identical signatures are collapsed
first, so a thousand copies of one image cost one entry, not half a million pairs.

A signature is a row of K hashes (one per image of a sample); two signatures are at the largest
distance of their images, and only signatures of the same `group` are compared (the filters put
the image count and, where asked, the prompt into the group). The chunks index image 0 only; the
other images are checked when a candidate is verified.

Cost: about N * (N / 2^(64/(t+1))) / 2 candidates per chunk for N well-spread hashes, e.g. 50,000
hashes at t = 6 (7 chunks of 9-10 bits): ~2M candidates; all-pairs would be 1.25 billion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from triune_data.filters.phash import hamming

BLOCK_PAIRS = 1 << 22  # candidates generated and verified at a time (~100 MB of temporaries)


def chunk_spans(max_hamming: int) -> list[tuple[int, int]]:
    """(shift, width) of max_hamming + 1 disjoint chunks covering the 64 bits, widths within one."""
    parts = max_hamming + 1
    if not 1 <= parts <= 64:
        raise ValueError(f"max_hamming must be within 0..63, not {max_hamming}")
    widths = [64 // parts + (1 if k < 64 % parts else 0) for k in range(parts)]
    shifts = np.cumsum([0, *widths[:-1]]).tolist()
    return list(zip(shifts, widths, strict=True))


def _runs(keys: tuple[np.ndarray, ...], block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All index pairs (a, b), a != b, that agree on every array of `keys`, in blocks."""
    n = len(keys[0])
    if n < 2:
        return
    order = np.lexsort(keys[::-1])  # by keys[0], then keys[1], ...
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for k in keys:
        s = k[order]
        change[1:] |= s[1:] != s[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n)
    end_of = np.repeat(ends, ends - starts)  # for each sorted position, the end of its run
    later = end_of - np.arange(n) - 1  # how many positions after it in its run
    total = np.cumsum(later)
    p = 0
    while p < n:
        # the longest stretch of positions whose pairs fit in `block` (at least one position)
        base = total[p - 1] if p else 0
        q = max(p + 1, int(np.searchsorted(total, base + block, side="right")))
        counts = later[p:q]
        m = int(counts.sum())
        if m:
            left = np.repeat(np.arange(p, q), counts)
            first = np.repeat(np.cumsum(counts) - counts, counts)
            right = left + (np.arange(m) - first) + 1
            yield order[left], order[right]
        p = q


@dataclass(frozen=True)
class NearPairs:
    """Signatures collapsed to distinct ones, and the near pairs among those.

    `unique_of[row]` is the row's distinct signature; (a, b, distance) with a < b lists every
    pair of distinct signatures (same group) within the threshold, each pair once."""

    unique_of: np.ndarray  # int64, one per row
    a: np.ndarray  # int64
    b: np.ndarray  # int64
    distance: np.ndarray  # uint8


def near_pairs(
    signatures: np.ndarray, groups: np.ndarray, max_hamming: int, *, block: int = BLOCK_PAIRS
) -> NearPairs:
    """Pairs of distinct signatures (rows of the uint64 array `signatures`, shape (n, K)) of equal
    `groups` (int64, shape (n,)) whose distance (the largest over their K hashes) is <= max_hamming."""
    sig = np.ascontiguousarray(signatures, dtype=np.uint64).reshape(len(groups), -1)
    table = np.column_stack([groups.astype(np.int64).view(np.uint64), sig])
    distinct, first, unique_of = np.unique(table, axis=0, return_index=True, return_inverse=True)
    # number distinct signatures in order of first appearance, so results follow dataset order
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    distinct = distinct[np.argsort(rank, kind="stable")]
    unique_of = rank[unique_of.ravel()]
    group, hashes = distinct[:, 0], distinct[:, 1:]
    found_a, found_b, found_d = [], [], []
    for shift, width in chunk_spans(max_hamming):
        mask = np.uint64((1 << width) - 1)
        chunk = (hashes[:, 0] >> np.uint64(shift)) & mask
        for x, y in _runs((group, chunk), block):
            d = hamming(hashes[x], hashes[y]).max(axis=1)
            near = d <= max_hamming
            a, b = np.minimum(x[near], y[near]), np.maximum(x[near], y[near])
            found_a.append(a)
            found_b.append(b)
            found_d.append(d[near])
    if not found_a:
        empty = np.zeros(0, dtype=np.int64)
        return NearPairs(unique_of, empty, empty, np.zeros(0, dtype=np.uint8))
    a, b, d = np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_d)
    # a pair that agrees on several chunks was found several times: keep it once
    key = a * len(distinct) + b
    _, once = np.unique(key, return_index=True)
    return NearPairs(unique_of, a[once], b[once], d[once].astype(np.uint8))


def brute_force_pairs(hashes: np.ndarray, max_hamming: int) -> set[tuple[int, int]]:
    """All index pairs (i < j) of a 1-D uint64 array within max_hamming, by all-pairs comparison
    (the reference the index is tested and benchmarked against)."""
    out: set[tuple[int, int]] = set()
    for i in range(len(hashes) - 1):
        d = hamming(hashes[i], hashes[i + 1 :])
        out.update((i, i + 1 + int(j)) for j in np.flatnonzero(d <= max_hamming))
    return out


def first_of_clusters(near: NearPairs) -> tuple[np.ndarray, np.ndarray]:
    """For every row, the earlier row it is a near-copy of (-1 for rows kept) and their distance.

    Leader clustering in dataset order: the first row not yet covered is kept, and every row of
    its own signature or of a signature within the threshold of it, not yet covered, is a copy of
    it. Unlike connected components (union-find) this never chains: each dropped row is within the
    threshold of the row it is said to copy, so `near-copy of X (hamming d)` is always true."""
    n = len(near.unique_of)
    keeper = np.full(n, -1, dtype=np.int64)
    distance = np.zeros(n, dtype=np.uint8)
    order = np.argsort(near.unique_of, kind="stable")
    sorted_u = near.unique_of[order]
    bounds = np.flatnonzero(np.r_[True, sorted_u[1:] != sorted_u[:-1], True])
    rows_of = {int(sorted_u[s]): order[s:e] for s, e in pairwise(bounds.tolist())}
    neighbours: dict[int, list[tuple[int, int]]] = {}
    for a, b, d in zip(near.a.tolist(), near.b.tolist(), near.distance.tolist(), strict=True):
        neighbours.setdefault(a, []).append((b, d))
        neighbours.setdefault(b, []).append((a, d))
    shared = {u for u, rows in rows_of.items() if len(rows) > 1} | set(neighbours)
    candidates = sorted(r for u in shared for r in rows_of[u].tolist())
    is_keeper = np.zeros(n, dtype=bool)
    for r in candidates:
        if keeper[r] >= 0:
            continue
        is_keeper[r] = True
        u = int(near.unique_of[r])
        for s in rows_of[u].tolist():
            if s != r and keeper[s] < 0 and not is_keeper[s]:
                keeper[s] = r
        for v, d in neighbours.get(u, ()):
            for s in rows_of[v].tolist():
                if keeper[s] < 0 and not is_keeper[s]:
                    keeper[s], distance[s] = r, d
    return keeper, distance


__all__ = ["NearPairs", "brute_force_pairs", "chunk_spans", "first_of_clusters", "near_pairs"]
