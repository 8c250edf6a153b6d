"""Near pairs of 64-bit hashes without comparing all pairs: multi-index hashing (pigeonhole).

Split the 64 bits into m disjoint chunks. Two hashes within Hamming distance t differ in at most
r = t // m bits of at least one chunk (if every chunk differed in r + 1 or more bits, they would
differ in m (r + 1) > t). So for each chunk: sort the hashes by (group, chunk value) and look up
each hash's chunk value and every value within r bits of it (its probes); every hash found is a
candidate; keep the candidates whose full distance is within t. With m = t + 1 chunks, r = 0 and
the lookups are exact buckets; fewer, wider chunks with r = 1 or 2 make the buckets far smaller
for more probes per hash. `plan` picks m for the number of hashes (t = 6: 7 chunks of 9-10 bits
for a few hundred hashes, 4 chunks of 16 bits with r = 1 from a few thousand on).

Pairs are generated with numpy in bounded blocks (no Python loop per pair), and identical
signatures are collapsed first, so a thousand copies of one image cost one entry, not half a
million pairs.

A signature is a row of K hashes (one per image of a sample); two signatures are at the largest
distance of their images, and only signatures of the same `group` are compared (the filters put
the image count and, where asked, the prompt into the group). The chunks index image 0 only; the
other images are checked when a candidate is verified.

Cost: about m * probes * N^2 / 2^(w+1) candidates for N well-spread hashes in chunks of w bits;
50,000 hashes at t = 6 in 4 chunks of 16 bits (17 probes each): ~1.3M candidates, where all
pairs are 1.25 billion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations, pairwise

import numpy as np

from triune_data.filters.phash import hamming

BLOCK_PAIRS = 1 << 20  # candidates generated and verified at a time (~60 MB of temporaries)


def chunk_spans(parts: int) -> list[tuple[int, int]]:
    """(shift, width) of `parts` disjoint chunks covering the 64 bits, widths within one."""
    if not 2 <= parts <= 64:
        raise ValueError(f"the 64 bits split into 2..64 chunks, not {parts}")
    widths = [64 // parts + (1 if k < 64 % parts else 0) for k in range(parts)]
    shifts = np.cumsum([0, *widths[:-1]]).tolist()
    return list(zip(shifts, widths, strict=True))


def probe_masks(width: int, radius: int) -> np.ndarray:
    """Every mask of at most `radius` set bits among `width` bits (0 first)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << b for b in bits) for bits in combinations(range(width), r)]
    return np.array(masks, dtype=np.uint64)


def plan(max_hamming: int, n: int) -> tuple[int, int]:
    """(chunks m, probe radius max_hamming // m) with the least expected work for n hashes:
    probing (m * probes * n) plus verifying candidates (m * probes * n^2 / 2^(w+1))."""
    if not 0 <= max_hamming <= 63:
        raise ValueError(f"max_hamming must be within 0..63, not {max_hamming}")
    best: tuple[float, int, int] | None = None
    for m in range(2, max(2, min(64, max_hamming + 1)) + 1):
        radius, width = max_hamming // m, 64 // m
        if radius > 2 or width > 32:  # past 2 the probes explode; 32 bits leave room for the group
            continue
        probes = len(probe_masks(width, radius))
        cost = m * probes * (n + n * n / 2 ** (width + 1))
        if best is None or cost < best[0]:
            best = (cost, m, radius)
    if best is None:
        raise ValueError(f"max_hamming {max_hamming} is too large to index")
    return best[1], best[2]


class _SortedKeys:
    """Keys sorted once, with the end of each run of equal keys, for lookups by value."""

    def __init__(self, keys: np.ndarray):
        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]
        n = len(keys)
        starts = (
            np.flatnonzero(np.r_[True, self.sorted[1:] != self.sorted[:-1]]) if n else np.zeros(0, np.int64)
        )
        ends = np.append(starts[1:], n)
        self.run_end = np.append(np.repeat(ends, ends - starts), n)  # per sorted position; sentinel

    def pairs(self, probes: np.ndarray, block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (a, b) with keys[b] == probes[a], in blocks of about `block` pairs."""
        n = len(self.sorted)
        lo = np.searchsorted(self.sorted, probes, side="left")
        hit = self.sorted[np.minimum(lo, n - 1)] == probes
        counts = np.where(hit & (lo < n), self.run_end[lo] - lo, 0)
        total = np.cumsum(counts)
        p = 0
        while p < len(probes):
            # the longest stretch of probes whose pairs fit in `block` (at least one probe)
            base = total[p - 1] if p else 0
            q = max(p + 1, int(np.searchsorted(total, base + block, side="right")))
            c = counts[p:q]
            m = int(c.sum())
            if m:
                first = np.repeat(np.cumsum(c) - c, c)
                yield (
                    np.repeat(np.arange(p, q), c),
                    self.order[np.repeat(lo[p:q], c) + (np.arange(m) - first)],
                )
            p = q


@dataclass(frozen=True)
class NearPairs:
    """Signatures collapsed to distinct ones, and the near pairs among those.

    `unique_of[row]` is the row's distinct signature (numbered in order of first appearance);
    (a, b, distance) with a < b lists every pair of distinct signatures (same group) within the
    threshold, each pair once."""

    unique_of: np.ndarray  # int64, one per row
    a: np.ndarray  # int64
    b: np.ndarray  # int64
    distance: np.ndarray  # uint8


def near_pairs(
    signatures: np.ndarray, groups: np.ndarray, max_hamming: int, *, block: int = BLOCK_PAIRS
) -> NearPairs:
    """Pairs of distinct signatures (rows of the uint64 array `signatures`, shape (n, K)) of equal
    `groups` (int64, shape (n,)) whose distance (the largest over their K hashes) is <= max_hamming."""
    empty = np.zeros(0, dtype=np.int64)
    if len(groups) == 0:
        return NearPairs(empty, empty, empty, np.zeros(0, dtype=np.uint8))
    sig = np.ascontiguousarray(signatures, dtype=np.uint64).reshape(len(groups), -1)
    table = np.column_stack([groups.astype(np.int64).view(np.uint64), sig])
    distinct, first, unique_of = np.unique(table, axis=0, return_index=True, return_inverse=True)
    # number distinct signatures in order of first appearance, so results follow dataset order
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    distinct = distinct[np.argsort(rank, kind="stable")]
    unique_of = rank[unique_of.ravel()]
    hashes = distinct[:, 1:]
    group = np.unique(distinct[:, 0], return_inverse=True)[1].ravel().astype(np.uint64)  # dense ids
    found_a, found_b, found_d = [], [], []
    parts, radius = plan(max_hamming, len(distinct))
    for shift, width in chunk_spans(parts):
        chunk = (hashes[:, 0] >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        keys = (group << np.uint64(width)) | chunk
        index = _SortedKeys(keys)
        for mask in probe_masks(width, radius):
            for x, y in index.pairs(keys ^ mask, block):
                forward = x < y  # both ends probe each other: keep one, and no self-pairs
                x, y = x[forward], y[forward]
                d = hamming(hashes[x], hashes[y]).max(axis=1)
                near = d <= max_hamming
                found_a.append(x[near])
                found_b.append(y[near])
                found_d.append(d[near])
    if not found_a:
        return NearPairs(unique_of, empty, empty, np.zeros(0, dtype=np.uint8))
    a, b, d = np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_d)
    # a pair close in several chunks was found several times: keep it once
    _, once = np.unique(a * len(distinct) + b, return_index=True)
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
    if n == 0:
        return keeper, distance
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


__all__ = [
    "NearPairs",
    "brute_force_pairs",
    "chunk_spans",
    "first_of_clusters",
    "near_pairs",
    "plan",
    "probe_masks",
]
