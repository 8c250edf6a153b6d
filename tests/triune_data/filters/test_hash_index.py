"""The multi-index pair search finds exactly the pairs all-pairs comparison finds."""

from __future__ import annotations

import numpy as np
import pytest

from triune_data.filters import hash_index
from triune_data.filters.hash_index import brute_force_pairs, first_of_clusters, near_pairs


def planted_hashes(n: int, seed: int) -> np.ndarray:
    """Random hashes with 30% of them near-copies (0-12 bits flipped) of others, some identical."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64)
    for _ in range(n * 3 // 10):
        flips = rng.choice(64, int(rng.integers(0, 13)), replace=False)
        value = hashes[rng.integers(0, n)]
        for bit in flips:
            value ^= np.uint64(1) << np.uint64(bit)
        hashes[rng.integers(0, n)] = value
    return hashes


def row_pairs(near: hash_index.NearPairs) -> set[tuple[int, int]]:
    rows_of: dict[int, list[int]] = {}
    for row, u in enumerate(near.unique_of.tolist()):
        rows_of.setdefault(u, []).append(row)
    out = {(a, b) for rows in rows_of.values() for k, a in enumerate(rows) for b in rows[k + 1 :]}
    for a, b in zip(near.a.tolist(), near.b.tolist(), strict=True):
        out |= {(min(x, y), max(x, y)) for x in rows_of[a] for y in rows_of[b]}
    return out


@pytest.mark.parametrize(
    ("max_hamming", "parts"),
    [(0, 2), (2, 3), (4, 5), (4, 3), (6, 7), (6, 4), (6, 3), (8, 5), (10, 4), (12, 5)],
)
def test_index_equals_all_pairs_for_every_chunking(
    max_hamming: int, parts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every (chunks, radius) the planner may pick, with tiny blocks so pairs come in many."""
    hashes = planted_hashes(1500, seed=max_hamming * 100 + parts)
    monkeypatch.setattr(hash_index, "plan", lambda t, n: (parts, t // parts))
    near = near_pairs(hashes[:, None], np.zeros(len(hashes), dtype=np.int64), max_hamming, block=97)
    expected = brute_force_pairs(hashes, max_hamming)
    assert len(expected) > 20  # the test has pairs to find
    assert row_pairs(near) == expected
    first_row = np.array([np.flatnonzero(near.unique_of == u)[0] for u in range(near.unique_of.max() + 1)])
    distance = np.bitwise_count(hashes[first_row[near.a]] ^ hashes[first_row[near.b]])
    assert (distance == near.distance).all() and (distance <= max_hamming).all()


def test_groups_are_never_compared_across() -> None:
    hashes = np.array([5, 5, 7, 5], dtype=np.uint64)[:, None]
    near = near_pairs(hashes, np.array([0, 1, 0, 1]), 2)
    assert near.unique_of.tolist() == [0, 1, 2, 1]  # rows 1 and 3: same group, same hash
    assert list(zip(near.a.tolist(), near.b.tolist(), strict=True)) == [(0, 2)]  # 5 ~ 7 in group 0


def test_multi_image_signatures_take_the_largest_distance() -> None:
    sig = np.array([[0, 0], [1, 3], [1, 255]], dtype=np.uint64)
    near = near_pairs(sig, np.zeros(3, dtype=np.int64), 2)
    assert list(zip(near.a.tolist(), near.b.tolist(), near.distance.tolist(), strict=True)) == [(0, 1, 2)]


def test_leaders_never_chain() -> None:
    """0 ~ 1 ~ 2 but 0 and 2 are 8 bits apart: 2 is kept, not called a copy of 0."""
    hashes = np.array([0x00, 0x0F, 0xFF, 0x00, 0x0F], dtype=np.uint64)[:, None]
    near = near_pairs(hashes, np.zeros(5, dtype=np.int64), 4)
    keeper, distance = first_of_clusters(near)
    assert keeper.tolist() == [-1, 0, -1, 0, 0]
    assert distance.tolist() == [0, 4, 0, 0, 4]
