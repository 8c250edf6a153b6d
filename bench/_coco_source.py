"""A generated COCO-style detection source of real JPEGs (20–60 KB each) for the build benchmark.

Drawing and encoding 20,000 distinct photos would take minutes, so a few hundred base JPEGs are
drawn (gradients, noise, rectangles) and every file is a base with its own COM segment: distinct
bytes, real JPEG structure, the decode cost of a real image. Sizes and boxes come from the bases.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES = ["person", "car", "dog", "cat", "bicycle", "chair", "bottle", "bird", "bus", "cup"]


def _base_jpeg(rng: np.random.Generator) -> tuple[bytes, int, int]:
    w, h = int(rng.integers(360, 560)), int(rng.integers(280, 420))
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack(
        [
            (x * rng.uniform(0.2, 0.8) + y * rng.uniform(0.1, 0.5)) % 256,
            (x * 0.3 + rng.uniform(0, 255)) % 256,
            (y * 0.6) % 256,
        ],
        -1,
    )
    arr = np.clip(base + rng.normal(0, rng.uniform(8, 22), (h, w, 3)), 0, 255).astype("uint8")
    im = Image.fromarray(arr)
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        draw.rectangle(
            [x0, y0, x0 + int(rng.integers(20, 140)), y0 + int(rng.integers(20, 140))],
            fill=tuple(int(c) for c in rng.integers(0, 255, 3)),
        )
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(rng.integers(78, 92)))
    return buf.getvalue(), w, h


def _with_comment(jpeg: bytes, text: bytes) -> bytes:
    """Insert a COM segment right after SOI: distinct bytes, same pixels."""
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + jpeg[2:]


def make_source(root: Path, n_images: int, *, n_bases: int = 240, seed: int = 0) -> dict:
    """Write `n_images` JPEGs and `instances.json` under `root` (reused if already complete)."""
    images_dir = root / "images"
    ann_path = root / "instances.json"
    done = root / f".done-{n_images}-{n_bases}-{seed}"
    if done.exists():
        return json.loads(done.read_text())
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bases = [_base_jpeg(rng) for _ in range(n_bases)]
    images, annotations, total = [], [], 0
    for i in range(n_images):
        data, w, h = bases[i % n_bases]
        data = _with_comment(data, f"triune-bench image {i}".encode())
        name = f"{i:07d}.jpg"
        (images_dir / name).write_bytes(data)
        total += len(data)
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        for _ in range(int(rng.integers(1, 7))):
            bw, bh = float(rng.uniform(10, w / 3)), float(rng.uniform(10, h / 3))
            x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(rng.integers(1, len(CATEGORIES) + 1)),
                    "bbox": [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)],
                    "area": round(bw * bh, 2),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n, "supercategory": "thing"} for i, n in enumerate(CATEGORIES)]
    ann_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    info = {"images": n_images, "image_bytes": total, "annotations": len(annotations)}
    done.write_text(json.dumps(info))
    return info


def scaled_annotations(root: Path, factor: int) -> Path:
    """The same source listed `factor` times over (new ids, same files): a source that grows
    `factor`× without writing more image files."""
    src = json.loads((root / "instances.json").read_text())
    n = len(src["images"])
    images, annotations = [], []
    for k in range(factor):
        images += [{**im, "id": im["id"] + k * n} for im in src["images"]]
        annotations += [
            {**a, "id": a["id"] + k * len(src["annotations"]), "image_id": a["image_id"] + k * n}
            for a in src["annotations"]
        ]
    out = root / f"instances_x{factor}.json"
    out.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": src["categories"]})
    )
    return out
