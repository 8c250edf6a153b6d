"""Fixtures of the dedup tests: seeded photo-like images, and a real tiny triune dataset on disk
from hand-made samples with its rows as a filter sees them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image as PILImage
from PIL import ImageDraw

from triune_data.filters.base import FILE, POS, ROW, Context
from triune_data.manifest import FileEntry, Manifest, RecipeInfo, SourceCounts, read_manifest, write_manifest
from triune_data.schema import samples_to_table
from triune_data.types import (
    TASK_CATEGORY,
    Image,
    ImageSize,
    Message,
    Provenance,
    RewardSpec,
    Sample,
    Task,
)
from triune_data.writer import write_rejects, write_table

PROMPT = "<image>Detect every shape and give its box."


def photo(seed: int, size: tuple[int, int] = (256, 192)) -> PILImage.Image:
    """An RGB image that looks nothing like another seed's: a random two-colour gradient at a
    random angle, 3-8 filled shapes, a smooth texture and pixel noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h + 1) / 2
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    base = c0 * (1 - t[..., None]) + c1 * t[..., None]
    fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6)
    base += 30 * np.sin(fx * 2 * np.pi * xx / w + fy * 2 * np.pi * yy / h + phase)[..., None]
    im = PILImage.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.uniform(-0.1, 0.9) * w, rng.uniform(-0.1, 0.9) * h
        x1, y1 = x0 + rng.uniform(0.1, 0.5) * w, y0 + rng.uniform(0.1, 0.5) * h
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    noisy = np.asarray(im, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3))
    return PILImage.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def encode(im: PILImage.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" and not kwargs else kwargs))
    return buf.getvalue()


def sample(
    id: str,
    images: list[bytes | str],
    *,
    prompt: str = PROMPT,
    answer: str = "",
    data_source: str = "src",
    split: str = "train",
    task: Task = "detection",
) -> Sample:
    """A sample whose images are the given bytes (or, for a str, an image stored by that path)."""
    return Sample(
        id=id,
        data_source=data_source,
        task=task,
        category=TASK_CATEGORY[task],
        split=split,
        images=[Image(None, im) if isinstance(im, str) else Image(im, None) for im in images],
        image_sizes=[ImageSize(8, 8) for _ in images],
        prompt=[Message("system", "Think, then answer."), Message("user", prompt)],
        answer=answer,
        ground_truth=answer,
        boxes=[],
        reward=RewardSpec("exact_match", "{}", 1.0, 0.0),
        sample_weight=1.0,
        difficulty=None,
        provenance=Provenance("handmade", id),
    )


def write_dataset(root: Path, samples: list[Sample], *, rows_per_file: int = 1000) -> Path:
    """Shards `data/{data_source}/{split}-NNNNN-of-MMMMM.parquet` (samples in the given order
    within each), an empty rejects shard and a manifest whose ledger adds up."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.data_source, s.split), []).append(s)
    files: list[FileEntry] = []
    sources: dict[str, SourceCounts] = {}
    for (source, split), group in groups.items():
        parts = [group[k : k + rows_per_file] for k in range(0, len(group), rows_per_file)]
        for k, part in enumerate(parts):
            path = f"data/{source}/{split}-{k:05d}-of-{len(parts):05d}.parquet"
            write_table(samples_to_table(part), root / path)
            files.append(FileEntry.of(root, path, rows=len(part), data_source=source, split=split))
        counts = sources.setdefault(source, SourceCounts(read=0, kept=0))
        counts.read += len(group)
        counts.kept += len(group)
        counts.rows_by_split[split] = counts.rows_by_split.get(split, 0) + len(group)
    rejects = write_rejects(root, [])
    manifest = Manifest(
        recipe=RecipeInfo(name="handmade", hash="0" * 64, seed=0),
        files=files,
        rejects=rejects,
        sources=sources,
    )
    write_manifest(root, manifest)
    return root


def rows_of(root: Path, work: Path, columns: tuple[str, ...]) -> tuple[pl.DataFrame, Context]:
    """The rows of a dataset (the given columns plus ROW, FILE, POS, in dataset order) and a
    Context on it, as the runner hands them to a filter."""
    manifest = read_manifest(root)
    files = tuple(root / f.path for f in manifest.files)
    frames = []
    for k, path in enumerate(files):
        frame = pl.read_parquet(path, columns=list(columns))
        frames.append(frame.with_columns(pl.lit(k).alias(FILE), pl.int_range(frame.height).alias(POS)))
    rows = pl.concat(frames).with_row_index(ROW).select(*columns, ROW, FILE, POS)
    ctx = Context(root=root, files=files, recipe_dir=root.parent, seed=0, work=work)
    return rows.with_columns(pl.col(ROW).cast(pl.Int64), pl.col(POS).cast(pl.Int64)), ctx
