"""Near-duplicate images: our pHash and index beside `imagehash` and all-pairs, in one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/near_dup_bench.py [--images 50000]

Generates `--images` small photo-like JPEGs (~256x192, ~6.5 KB: a random colour grid upscaled,
plus filled shapes), 2% of them near-copies of an earlier one (resized, re-encoded at quality 50,
PNG, or cropped 1.5% a side), into a triune dataset of 5,000-row shards in `--cache` (generated
once, reused by later runs). Then, side by side:

1. hashing, on the same `--imagehash-images` bytes in memory: `phash.phashes` (JPEG draft decode,
   batched DCT), the same with `exact=True`, and `imagehash.phash` in a plain loop;
2. the `near_dedup` filter end to end (read shards, hash, index, cluster) on the first 10k, 25k
   and all rows, each in a fresh child process with an empty work folder: seconds, images/s and
   the child's peak RSS (ru_maxrss) and its RSS just before the filter ran (imports, row table);
3. the pair search on the hashes of all rows: the multi-index (`near_pairs`) beside brute-force
   all-pairs (numpy, one row against the rest at a time; on the first `--brute-images`, default
   all): the two pair sets must be equal; planted copies found, and pairs of different originals
   (false positives);
4. the pair search alone on synthetic 64-bit hashes (2% near-copies) at 50k, 200k and 1M, with
   all-pairs beside it up to 200k: how each grows.

Needs `imagehash` (the `bench` extra).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw

SHARD_ROWS = 5000
SIZE = (256, 192)
COPY_EVERY = 50  # one row in 50 is a near-copy of an earlier one


def generated(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    im = Image.fromarray(grid).resize(SIZE, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(im)
    w, h = SIZE
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return im


def encoded(im: Image.Image, fmt: str = "JPEG", quality: int = 85) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def row_image(i: int) -> tuple[bytes, int]:
    """Row i's image bytes and the row it copies (-1: an original)."""
    if i % COPY_EVERY != COPY_EVERY - 1:
        return encoded(generated(i)), -1
    rng = np.random.default_rng(10_000_000 + i)
    source = int(rng.integers(0, i))
    while source % COPY_EVERY == COPY_EVERY - 1:
        source -= 1
    im = generated(source)
    w, h = SIZE
    kind = i // COPY_EVERY % 4
    if kind == 0:
        return encoded(im.resize((w * 3 // 4, h * 3 // 4), Image.Resampling.BICUBIC)), source
    if kind == 1:
        return encoded(im, quality=50), source
    if kind == 2:
        return encoded(im, "PNG"), source
    dx, dy = round(w * 0.015), round(h * 0.015)
    return encoded(im.crop((dx, dy, w - dx, h - dy))), source


def generate(root: Path, n: int) -> None:
    from triune_data.manifest import FileEntry, Manifest, RecipeInfo, SourceCounts, write_manifest
    from triune_data.schema import samples_to_table
    from triune_data.types import Image as Img
    from triune_data.types import ImageSize, Message, Provenance, RewardSpec, Sample
    from triune_data.writer import write_rejects, write_table

    files = []
    shards = (n + SHARD_ROWS - 1) // SHARD_ROWS
    copies: list[int] = []
    with multiprocessing.Pool(2) as pool:
        for k in range(shards):
            lo, hi = k * SHARD_ROWS, min(n, (k + 1) * SHARD_ROWS)
            made = pool.map(row_image, range(lo, hi), chunksize=100)
            copies += [c for _, c in made]
            samples = [
                Sample(
                    id=f"gen-{lo + j}",
                    data_source="gen",
                    task="detection",
                    category="perception",
                    split="train",
                    images=[Img(data, None)],
                    image_sizes=[ImageSize(*SIZE)],
                    prompt=[Message("user", "<image>Detect every shape.")],
                    answer="",
                    ground_truth="[]",
                    boxes=[],
                    reward=RewardSpec("detection_map", "{}", 1.0, 0.0),
                    sample_weight=1.0,
                    difficulty=None,
                    provenance=Provenance("bench", str(lo + j)),
                )
                for j, (data, _) in enumerate(made)
            ]
            path = f"data/gen/train-{k:05d}-of-{shards:05d}.parquet"
            write_table(samples_to_table(samples), root / path)
            files.append(FileEntry.of(root, path, rows=len(samples), data_source="gen", split="train"))
            print(f"  generated {hi:,} / {n:,}", file=sys.stderr)
    counts = SourceCounts(read=n, kept=n, rows_by_split={"train": n})
    manifest = Manifest(
        recipe=RecipeInfo(name="near-dup-bench", hash="0" * 64, seed=0),
        files=files,
        rejects=write_rejects(root, []),
        sources={"gen": counts},
    )
    write_manifest(root, manifest)
    np.save(root / "copies.npy", np.array(copies, dtype=np.int64))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(root: Path, rows: int, work: Path, max_hamming: int, hashes_out: Path | None) -> dict[str, Any]:
    """Run near_dedup on the first `rows` rows (fresh work folder); report time and memory."""
    import polars as pl

    from triune_data.filters.base import FILE, POS, ROW, Context
    from triune_data.filters.image_keys import phash_signatures
    from triune_data.filters.near_dedup import NearDedup
    from triune_data.manifest import read_manifest

    manifest = read_manifest(root)
    files = tuple(root / f.path for f in manifest.files)
    frames = []
    for k, path in enumerate(files):
        frame = pl.read_parquet(path, columns=["id", "data_source", "prompt"])
        frames.append(frame.with_columns(pl.lit(k).alias(FILE), pl.int_range(frame.height).alias(POS)))
    table = pl.concat(frames).with_row_index(ROW).head(rows)
    table = table.with_columns(pl.col(ROW).cast(pl.Int64), pl.col(POS).cast(pl.Int64))
    ctx = Context(root=root, files=files, recipe_dir=root, seed=0, work=work)
    before = rss_mb()
    t = time.perf_counter()
    verdict = NearDedup(max_hamming=max_hamming).apply(table, ctx)
    seconds = time.perf_counter() - t
    if hashes_out is not None:
        sig, _, _ = phash_signatures(ctx, table)  # from the cache the filter wrote
        np.save(hashes_out, sig[:, 0])
    return {
        "rows": rows,
        "seconds": seconds,
        "dropped": int(verdict.drop.sum()),
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--imagehash-images", type=int, default=5_000)
    ap.add_argument("--brute-images", type=int, default=0, help="all-pairs on this many (0: all)")
    ap.add_argument("--max-hamming", type=int, default=6)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/triune-near-dup-bench"))
    ap.add_argument(
        "--scale", type=lambda v: [int(x) for x in v.split(",")], default=[50_000, 200_000, 1_000_000]
    )
    ap.add_argument("--scale-brute", type=int, default=200_000, help="all-pairs up to this many hashes")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        root, rows, work, hashes_out = args.child
        out = child(
            Path(root), int(rows), Path(work), args.max_hamming, Path(hashes_out) if hashes_out else None
        )
        print(json.dumps(out))
        return

    import imagehash

    from triune_data.filters.hash_index import brute_force_pairs, near_pairs
    from triune_data.filters.phash import phashes
    from triune_data.writer import read_shard

    n = args.images
    root = args.cache / f"images-{n}"
    if not (root / "manifest.json").exists():
        t = time.perf_counter()
        generate(root, n)
        print(f"generated {n:,} images in {time.perf_counter() - t:.0f} s into {root}", file=sys.stderr)
    copies = np.load(root / "copies.npy")
    shard0 = root / "data/gen" / f"train-00000-of-{(n + SHARD_ROWS - 1) // SHARD_ROWS:05d}.parquet"
    images = [r[0]["bytes"] for r in read_shard(shard0, columns=["images"]).column("images").to_pylist()]
    sample = images[: args.imagehash_images]

    # 1. hashing, same bytes in memory
    rates: dict[str, float] = {}
    for label, fn in [
        ("ours (draft decode)", lambda: phashes(sample)),
        ("ours (exact=True)", lambda: phashes(sample, exact=True)),
        ("imagehash.phash loop", lambda: [imagehash.phash(Image.open(io.BytesIO(b))) for b in sample]),
    ]:
        t = time.perf_counter()
        fn()
        rates[label] = len(sample) / (time.perf_counter() - t)
        print(f"{label}: {rates[label]:,.0f} images/s", file=sys.stderr)
    ours, _ = phashes(sample, exact=True)
    reference = np.array(
        [int(str(imagehash.phash(Image.open(io.BytesIO(b)))), 16) for b in sample], np.uint64
    )
    draft, _ = phashes(sample)
    agreement = {
        "exact_identical": float((ours == reference).mean()),
        "draft_identical": float((draft == reference).mean()),
        "draft_mean_bits": float(np.bitwise_count(draft ^ reference).mean()),
    }

    # 2. the filter end to end, one child per size
    runs = []
    sizes = sorted({s for s in (10_000, 25_000, n) if s <= n})
    hashes_file = args.cache / "hashes.npy"
    for rows in sizes:
        work = args.cache / f"work-{rows}"
        subprocess.run(["rm", "-rf", str(work)], check=True)
        cmd = [sys.executable, __file__, "--max-hamming", str(args.max_hamming)]
        cmd += ["--child", str(root), str(rows), str(work), str(hashes_file) if rows == n else ""]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        out["images_per_s"] = rows / out["seconds"]
        runs.append(out)
        print(json.dumps(out), file=sys.stderr)

    # 3. pair search
    hashes = np.load(hashes_file)
    groups = np.zeros(len(hashes), dtype=np.int64)
    m = min(args.brute_images or len(hashes), len(hashes))
    t = time.perf_counter()
    brute = brute_force_pairs(hashes[:m], args.max_hamming)
    brute_s = time.perf_counter() - t
    t = time.perf_counter()
    near = near_pairs(hashes[:m, None], groups[:m], args.max_hamming)
    index_s = time.perf_counter() - t
    indexed = _row_pairs(near)
    t = time.perf_counter()
    near_all = near_pairs(hashes[:, None], groups, args.max_hamming)
    index_all_s = time.perf_counter() - t
    all_pairs = _row_pairs(near_all)
    planted = {(int(c), i) for i, c in enumerate(copies) if c >= 0}
    found = planted & all_pairs
    original = np.where(copies >= 0, copies, np.arange(len(copies)))
    false_pairs = {(a, b) for a, b in all_pairs if original[a] != original[b]}
    result = {
        "images": n,
        "max_hamming": args.max_hamming,
        "hashing_images_per_s": rates,
        "agreement_with_imagehash": agreement,
        "filter_runs": runs,
        "pairs": {
            "subset": m,
            "brute_force_s": brute_s,
            "index_s": index_s,
            "equal": brute == indexed,
            "pairs_in_subset": len(brute),
            "index_all_s": index_all_s,
            "pairs_all": len(all_pairs),
            "planted": len(planted),
            "planted_found": len(found),
            "pairs_of_different_originals": len(false_pairs),
        },
    }
    result["pair_search_scaling"] = scaling(args.max_hamming, args.scale, args.scale_brute)
    print(json.dumps(result, indent=2))


def scaling(max_hamming: int, sizes: list[int], brute_up_to: int) -> list[dict[str, Any]]:
    """The pair search alone on synthetic hashes (uniform random, 2% near-copies with 0-6 bits
    flipped) at growing sizes; all-pairs beside it up to `brute_up_to`."""
    from triune_data.filters.hash_index import brute_force_pairs, near_pairs, plan

    out = []
    for n in sizes:
        rng = np.random.default_rng(n)
        hashes = rng.integers(0, 2**64, n, dtype=np.uint64)
        copies = rng.choice(n, n // 50, replace=False)
        for i in copies:
            value = hashes[rng.integers(0, n)]
            for bit in rng.choice(64, int(rng.integers(0, max_hamming + 1)), replace=False):
                value ^= np.uint64(1) << np.uint64(bit)
            hashes[i] = value
        t = time.perf_counter()
        near = near_pairs(hashes[:, None], np.zeros(n, dtype=np.int64), max_hamming)
        entry: dict[str, Any] = {
            "hashes": n,
            "plan": plan(max_hamming, n),
            "index_s": time.perf_counter() - t,
        }
        if n <= brute_up_to:
            t = time.perf_counter()
            brute = brute_force_pairs(hashes, max_hamming)
            entry["brute_force_s"] = time.perf_counter() - t
            entry["equal"] = brute == _row_pairs(near)
        out.append(entry)
        print(json.dumps(entry), file=sys.stderr)
    return out


def _row_pairs(near: Any) -> set[tuple[int, int]]:
    """Row-level pairs (i < j) from distinct-signature pairs plus rows sharing a signature."""
    rows_of: dict[int, list[int]] = {}
    for row, u in enumerate(near.unique_of.tolist()):
        rows_of.setdefault(u, []).append(row)
    out: set[tuple[int, int]] = set()
    for rows in rows_of.values():
        out.update((a, b) for k, a in enumerate(rows) for b in rows[k + 1 :])
    for a, b in zip(near.a.tolist(), near.b.tolist(), strict=True):
        out.update((min(x, y), max(x, y)) for x in rows_of[a] for y in rows_of[b])
    return out


if __name__ == "__main__":
    main()
