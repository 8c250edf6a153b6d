"""Build throughput: `triune build-dataset` beside the physical limit and the peers' way, one run.

    .venv/bin/python bench/build_bench.py [--images 20000] [--repeat 3] [--peers-images 4000]

On a generated COCO-style source of real JPEGs (bench/_coco_source.py), each variant runs in its
own child process (so imports and memory are its own) and times itself; a sampler in this process
reads the peak proportional resident memory (Pss) of the child's whole process tree from /proc.

(a) triune    `build_dataset` of a coco-adapter recipe, --workers 1 and 2;
(b) limit     pyarrow alone: read each file's bytes and write them with the same fields to
              parquet, no conversion, no checks (chunks of 64 rows, no compression);
(c) peers     `datasets.Dataset.from_generator` yielding PIL images (as verl/EasyR1 preprocessing
              scripts do) and `to_parquet`, which decodes and re-encodes every image.

Rates are MB of source image bytes per second of wall time; the ratios are what to compare (the
machine is shared and noisy). Peak RSS is measured again on a source listed 5x over.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work"
sys.path.insert(0, str(HERE))

from _coco_source import make_source, scaled_annotations  # noqa: E402

# ----------------------------------------------------------------------------------------------
# The variants, each a small script run in a child process; each prints {"seconds": ...}.

TRIUNE = """
import json, sys, time
from triune_data.build import build_dataset
recipe, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
report = build_dataset(recipe, out, workers=workers, overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - t, "rows": sum(c.kept for c in report.sources.values())}))
"""

LIMIT = """
import json, sys, time
import orjson, pyarrow as pa, pyarrow.parquet as pq
from pathlib import Path
ann, images, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
t = time.perf_counter()
coco = orjson.loads(ann.read_bytes())
names = {c["id"]: c["name"] for c in coco["categories"]}
boxes = {}
for a in coco["annotations"]:
    boxes.setdefault(a["image_id"], []).append({"label": names[a["category_id"]], "bbox": a["bbox"]})
writer, rows = None, 0
items = coco["images"]
for s in range(0, len(items), 64):
    part = items[s : s + 64]
    data = [(images / im["file_name"]).read_bytes() for im in part]
    table = pa.table({
        "id": [str(im["id"]) for im in part],
        "image": pa.array(data, pa.binary()),
        "path": [im["file_name"] for im in part],
        "width": [im["width"] for im in part],
        "height": [im["height"] for im in part],
        "boxes": [boxes.get(im["id"], []) for im in part],
    })
    if writer is None:
        writer = pq.ParquetWriter(out, table.schema, compression="NONE", use_dictionary=False, write_statistics=False)
    writer.write_table(table)
    rows += len(part)
writer.close()
print(json.dumps({"seconds": time.perf_counter() - t, "rows": rows}))
"""

PEERS = """
import io, json, sys, time
import orjson
from pathlib import Path
from PIL import Image
import datasets
ann, images, out, limit, cache = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
datasets.disable_progress_bars()
t = time.perf_counter()
coco = orjson.loads(ann.read_bytes())
names = {c["id"]: c["name"] for c in coco["categories"]}
boxes = {}
for a in coco["annotations"]:
    boxes.setdefault(a["image_id"], []).append({"label": names[a["category_id"]], "bbox": a["bbox"]})
items = coco["images"][:limit]
def rows():
    for im in items:
        pil = Image.open(io.BytesIO((images / im["file_name"]).read_bytes()))
        pil.load()
        yield {"id": str(im["id"]), "images": [pil], "width": im["width"], "height": im["height"],
               "boxes": boxes.get(im["id"], [])}
features = datasets.Features({
    "id": datasets.Value("string"), "images": datasets.List(datasets.Image()),
    "width": datasets.Value("int64"), "height": datasets.Value("int64"),
    "boxes": datasets.List({"label": datasets.Value("string"), "bbox": datasets.List(datasets.Value("float64"))}),
})
ds = datasets.Dataset.from_generator(rows, features=features, cache_dir=cache)
ds.to_parquet(out)
print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(items)}))
"""


def _tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants, from /proc.

    Proportional (Pss): pages shared between a parent and its forked workers are split between
    them rather than counted once per process, which would inflate a forked tree's total.
    """
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run_variant(script: str, *args: str, sample_every: float = 0.25) -> dict:
    """Run one variant in a child process; its own timing, plus the tree's peak Pss sampled every
    `sample_every` seconds (reading smaps walks page tables: sampling often slows the variant).
    Dirty pages from the previous variant are flushed first, so writeback does not run under it."""
    os.sync()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(sample_every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"variant failed:\n{err.decode()[-3000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = peak / 2**20
    return result


def _recipe(annotations: Path, name: str, check: str = "header") -> Path:
    path = WORK / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            images: {{check: {check}}}
            prompts: {ROOT / "recipes" / "prompts" / "vtriune.yaml"}
            sources:
              - adapter: coco
                data_source: coco_det
                options: {{annotations: {annotations}, images: {WORK / "coco" / "images"}, mode: detection}}
            """
        )
    )
    return path


def _jsonl_recipe(src: Path, factor: int) -> Path:
    """The source as VQA JSONL rows (one per image, `factor` times over), read by the `vqa` adapter."""
    coco = json.loads((src / "instances.json").read_text())
    rows = WORK / f"vqa_x{factor}.jsonl"
    with open(rows, "w") as fh:
        for k in range(factor):
            for im in coco["images"]:
                row = {
                    "id": f"{k}-{im['id']}",
                    "image": im["file_name"],
                    "question": "How many?",
                    "answer": "3",
                }
                fh.write(json.dumps(row) + "\n")
    path = WORK / f"rss-vqa-{factor}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: rss-vqa-{factor}
            prompts: {ROOT / "recipes" / "prompts" / "vtriune.yaml"}
            sources:
              - adapter: vqa
                data_source: vqa
                options: {{path: {rows}, images: {src / "images"}, task: math}}
            """
        )
    )
    return path


def _warm(images: Path) -> None:
    for p in images.iterdir():
        with open(p, "rb") as fh:
            fh.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a) and (b); the median is reported")
    ap.add_argument("--peers-images", type=int, default=4_000, help="images for (c), which is slow")
    ap.add_argument("--scale", type=int, default=5, help="source growth factor for the memory check")
    args = ap.parse_args()

    src = WORK / "coco"
    info = make_source(src, args.images)
    mb = info["image_bytes"] / 1e6
    per_image = mb / args.images
    ann, images = src / "instances.json", src / "images"
    out = WORK / "out"
    out.mkdir(parents=True, exist_ok=True)
    _warm(images)
    print(
        f"source: {args.images} JPEGs, {mb:.0f} MB ({per_image * 1000:.0f} KB each), {info['annotations']} boxes"
    )

    recipe = _recipe(ann, "bench-coco")
    runs: dict[str, list[dict]] = {"limit": [], "triune_w1": [], "triune_w2": []}
    for _ in range(args.repeat):  # interleaved, so drift in machine load hits every variant alike
        runs["limit"].append(run_variant(LIMIT, str(ann), str(images), str(out / "limit.parquet")))
        runs["triune_w1"].append(run_variant(TRIUNE, str(recipe), str(out / "triune"), "1"))
        runs["triune_w2"].append(run_variant(TRIUNE, str(recipe), str(out / "triune"), "2"))
    with tempfile.TemporaryDirectory(dir=WORK) as cache:  # fresh: datasets would reuse a cached generator
        peers = run_variant(
            PEERS, str(ann), str(images), str(out / "peers.parquet"), str(args.peers_images), cache
        )

    # The same build with every image fully decoded (`images.check: decode`): CPU-bound, where
    # worker processes pay off even on two cores.
    decode = _recipe(ann, "bench-coco-decode", check="decode")
    runs["decode_w1"] = [run_variant(TRIUNE, str(decode), str(out / "triune"), "1")]
    runs["decode_w2"] = [run_variant(TRIUNE, str(decode), str(out / "triune"), "2")]

    def rate(rs: list[dict], megabytes: float) -> float:
        return megabytes / statistics.median(r["seconds"] for r in rs)

    limit = rate(runs["limit"], mb)
    w1, w2 = rate(runs["triune_w1"], mb), rate(runs["triune_w2"], mb)
    peer = rate([peers], per_image * args.peers_images)
    rows = [
        ("(b) pyarrow, no conversion (limit)", limit, runs["limit"]),
        ("(a) triune build-dataset --workers 1", w1, runs["triune_w1"]),
        ("(a) triune build-dataset --workers 2", w2, runs["triune_w2"]),
        (f"(c) datasets from_generator + PIL ({args.peers_images} images)", peer, [peers]),
        ("(a') triune --workers 1, images.check: decode", rate(runs["decode_w1"], mb), runs["decode_w1"]),
        ("(a') triune --workers 2, images.check: decode", rate(runs["decode_w2"], mb), runs["decode_w2"]),
    ]
    print("\n| variant | MB/s | seconds (median) | every run | peak RSS MB |\n|---|---:|---:|---|---:|")
    for name, r, rs in rows:
        secs = [x["seconds"] for x in rs]
        every = ", ".join(f"{x:.2f}" for x in secs)
        print(
            f"| {name} | {r:.0f} | {statistics.median(secs):.2f} | {every} | {max(x['peak_rss_mb'] for x in rs):.0f} |"
        )
    best = max(w1, w2)
    print(f"\ntriune / limit: {best / limit:.2f} (target >= 0.50)")
    print(f"triune / peers: {best / peer:.1f}x (target >= 3)")
    print(
        f"workers 2 / workers 1: {w2 / w1:.2f} header check, {rate(runs['decode_w2'], mb) / rate(runs['decode_w1'], mb):.2f} decode check (target > 1)"
    )

    # Memory when the source grows: a COCO file is one JSON document, parsed whole up to
    # STREAM_ABOVE_BYTES and streamed above (keeping only the annotation index); a JSONL source
    # streams. Same images, listed `scale` times over.
    from triune_data.sources.base import STREAM_ABOVE_BYTES

    big = scaled_annotations(src, args.scale)
    how = {False: "parsed whole", True: "streamed"}
    print(f"\npeak memory (Pss of the process tree) as the source grows {args.scale}x:")
    print(
        f"coco annotations: 1x {ann.stat().st_size / 1e6:.0f} MB ({how[ann.stat().st_size > STREAM_ABOVE_BYTES]}),"
        f" {args.scale}x {big.stat().st_size / 1e6:.0f} MB ({how[big.stat().st_size > STREAM_ABOVE_BYTES]})"
    )
    print(f"| source | workers | 1x MB | {args.scale}x MB | ratio |\n|---|---:|---:|---:|---:|")
    recipes = {
        "coco": (_recipe(ann, "rss-coco-1"), _recipe(big, "rss-coco-n")),
        "vqa jsonl (streamed)": (_jsonl_recipe(src, 1), _jsonl_recipe(src, args.scale)),
    }
    for name, (one, many) in recipes.items():
        for workers in ("1", "2"):
            a = run_variant(TRIUNE, str(one), str(out / "rss"), workers, sample_every=0.02)["peak_rss_mb"]
            b = run_variant(TRIUNE, str(many), str(out / "rss"), workers, sample_every=0.02)["peak_rss_mb"]
            print(f"| {name} | {workers} | {a:.0f} | {b:.0f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
