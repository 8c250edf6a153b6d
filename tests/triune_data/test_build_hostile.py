"""Whole builds over hostile inputs: no crash, no hang, no lost row, the same bytes every way."""

from __future__ import annotations

import io
import json
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.triune_data.test_build import RECIPE as SYNTH_RECIPE
from tests.triune_data.test_build import snapshot
from tests.triune_data.test_exif import RED, STORED, jpeg, shown
from tests.triune_data.test_files import deadline
from triune_data.build import build_dataset
from triune_data.coords import orient_box
from triune_data.errors import DatasetError
from triune_data.writer import read_rejects

PROMPTS = Path(__file__).resolve().parents[2] / "recipes" / "prompts" / "vtriune.yaml"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (40, 30), noise: bool = False) -> bytes:
    buf = io.BytesIO()
    im = Image.effect_noise(size, 80).convert("RGB") if noise else Image.new("RGB", size, (0, 90, 200))
    im.save(buf, fmt)
    return buf.getvalue()


def recipe(tmp: Path, sources: str, images: str = "") -> Path:
    p = tmp / "recipe.yaml"
    text = f"name: hostile\nseed: 3\nprompts: {PROMPTS}\n{images}sources:\n{textwrap.indent(textwrap.dedent(sources), '  ')}"
    p.write_text(text)
    return p


def jsonl(path: Path, lines: Sequence[bytes | dict]) -> None:
    path.write_bytes(b"".join((json.dumps(x).encode() if isinstance(x, dict) else x) + b"\n" for x in lines))


def counts(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())["sources"]


def reasons(out: Path, source: str) -> dict[str, str]:
    rows = read_rejects(out).to_pylist()
    return {r["id"].split("/", 1)[1]: r["reason"] for r in rows if r["data_source"] == source}


# ----------------------------------------------------------------------------------------------
# One corpus of hostile inputs, every kind in one build.


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    img = src / "images"
    img.mkdir(parents=True)
    (img / "ok.png").write_bytes(image_bytes())
    (img / "trailer.jpg").write_bytes(image_bytes("JPEG") + b"camera trailer " * 300)
    (img / "trailer.png").write_bytes(image_bytes() + b"data after IEND" * 40)
    (img / "rot6.jpg").write_bytes(jpeg(6))
    crc = bytearray(image_bytes())
    crc[29] ^= 0xFF  # the IHDR checksum
    (img / "badcrc.png").write_bytes(bytes(crc))
    os.mkfifo(img / "fifo.png")
    (img / "zero.png").symlink_to("/dev/zero")
    (img / "dir.png").mkdir()
    with open(img / "sparse.png", "wb") as fh:
        fh.truncate(8 << 30)
    (img / "big.png").write_bytes(image_bytes(size=(300, 300), noise=True))
    (src / "secret.png").write_bytes(image_bytes())

    def q(i: int, image: str, **kw: object) -> dict:
        return {"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1), "image": image, **kw}

    jsonl(
        src / "vqa.jsonl",
        [
            q(1, "ok.png"),
            q(2, "trailer.jpg"),
            q(3, "trailer.png"),
            q(4, "rot6.jpg"),
            q(5, "badcrc.png"),
            q(6, "fifo.png"),
            q(7, "zero.png"),
            q(8, "dir.png"),
            q(9, "sparse.png"),
            q(10, "big.png"),
            q(11, "../secret.png"),
            q(12, str(img / "ok.png")),
            q(13, "a\0.png"),
            q(14, "ok.png", answer=math.nan),
            b"[" * 100_000 + b"]" * 100_000,
            b'{"id": "q16", "answer": ' + b"7" * 5000 + b"}",
            b'{"id": "q17", "question": "caf\xe9?", "answer": "1", "image": "ok.png"}',
            q(18, "missing.png"),
            q(19, "ok.png", answer="\ud800"),
            q(20, "ok.png", id="x\udce9"),
        ],
    )
    jsonl(
        src / "refs.jsonl",
        [
            {"id": "r1", "image": "ok.png", "expression": "the blue image", "bbox": [1, 1, 20, 20]},
            {"id": "r2", "image": "rot6.jpg", "expression": "the red box", "bbox": list(RED)},
            {"id": "r3", "image": "ok.png", "expression": "beyond", "bbox": [1, 1, 400, 20]},
        ],
    )
    sources = """\
        - adapter: vqa
          data_source: hostile_vqa
          options: {path: src/vqa.jsonl, images: src/images, task: math}
        - adapter: refcoco
          data_source: hostile_refs
          options: {path: src/refs.jsonl, images: src/images, bbox_format: xyxy}
    """
    return recipe(tmp_path, sources, "images: {max_bytes: 100000}\n")


EXPECTED_VQA = {
    "q5": "corrupt_image",
    "q6": "not_a_regular_file",
    "q7": "not_a_regular_file",
    "q8": "not_a_regular_file",
    "q9": "image_too_large",
    "q10": "image_too_large",
    "q11": "path_outside_root",
    "q12": "path_outside_root",
    "q13": "malformed_record",
    "q14": "non_finite_number",
    "line15": "malformed_record",
    "line16": "malformed_record",
    "line17": "invalid_text_encoding",
    "q18": "missing_image_file",
    "q19": "invalid_text_encoding",
    "x\\udce9": "invalid_text_encoding",
}


def test_a_hostile_corpus_builds_without_a_crash_a_hang_or_a_lost_row(corpus, tmp_path):
    with deadline(300):
        build_dataset(corpus, tmp_path / "one", workers=1)
        build_dataset(corpus, tmp_path / "two", workers=2)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two")
    out = tmp_path / "one"
    c = counts(out)
    assert c["hostile_vqa"]["read"] == 20 and c["hostile_vqa"]["kept"] == 4
    assert c["hostile_refs"]["read"] == 3 and c["hostile_refs"]["kept"] == 1
    for s in c.values():
        assert s["read"] == s["kept"] + s["rejected"]
    assert reasons(out, "hostile_vqa") == EXPECTED_VQA
    assert reasons(out, "hostile_refs") == {"r2-0": "exif_rotated_boxes", "r3-0": "box_outside_image"}
    rows = pq.read_table(out / "data/hostile_vqa").to_pylist()
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {f"hostile_vqa/q{i}" for i in (1, 2, 3, 4)}
    assert by_id["hostile_vqa/q4"]["image_sizes"] == [{"width": 30, "height": 60}]  # as shown: rotated
    assert by_id["hostile_vqa/q2"]["images"][0]["bytes"].endswith(b"camera trailer ")  # bytes untouched
    for r in read_rejects(out).to_pylist():
        assert str(tmp_path) not in r["detail"] and not (r["file"] or "").startswith("/")
        assert len(r["detail"]) < 400


def test_the_same_recipe_from_another_directory_writes_the_same_bytes(corpus, tmp_path, monkeypatch):
    with deadline(300):
        monkeypatch.chdir(corpus.parent)
        build_dataset("recipe.yaml", tmp_path / "here")
        monkeypatch.chdir("/")
        build_dataset(str(corpus), tmp_path / "there")
    assert snapshot(tmp_path / "here") == snapshot(tmp_path / "there")


# ----------------------------------------------------------------------------------------------
# EXIF orientation in a build: sizes as shown; boxes rejected, or moved, as the recipe says.


@pytest.fixture
def oriented(tmp_path: Path) -> Path:
    img = tmp_path / "images"
    img.mkdir()
    refs = []
    for o in range(1, 9):
        (img / f"o{o}.jpg").write_bytes(jpeg(o))
        refs.append({"id": f"o{o}", "image": f"o{o}.jpg", "expression": "the red box", "bbox": list(RED)})
    jsonl(tmp_path / "refs.jsonl", refs)
    return tmp_path


def _refs_recipe(tmp: Path, frame: str | None) -> Path:
    images = f"images: {{exif_box_frame: {frame}}}\n" if frame else ""
    sources = """\
        - adapter: refcoco
          data_source: oriented
          options: {path: refs.jsonl, images: images, bbox_format: xyxy}
    """
    return recipe(tmp, sources, images)


def test_boxes_on_rotated_images_are_rejected_unless_the_recipe_names_their_frame(oriented):
    out = oriented / "out"
    build_dataset(_refs_recipe(oriented, None), out)
    assert reasons(out, "oriented") == {f"o{o}-0": "exif_rotated_boxes" for o in range(2, 9)}
    assert counts(out)["oriented"]["kept"] == 1


def test_boxes_drawn_on_stored_pixels_land_on_the_object_a_loader_shows(oriented):
    import datasets

    out = oriented / "out"
    build_dataset(_refs_recipe(oriented, "stored"), out)
    rows = pq.read_table(out / "data/oriented").to_pylist()
    assert len(rows) == 8
    for row in rows:
        o = int(row["id"].rsplit("/o", 1)[1].split("-")[0])
        data = row["images"][0]["bytes"]
        assert data == jpeg(o)  # bytes untouched
        image = datasets.Image().decode_example({"bytes": data, "path": None})  # what training sees
        assert (row["image_sizes"][0]["width"], row["image_sizes"][0]["height"]) == image.size
        box = row["boxes"][0]
        expected = orient_box(RED, o, stored_size=STORED)
        assert (box["x1"], box["y1"], box["x2"], box["y2"]) == expected
        cx, cy = (box["x1"] + box["x2"]) / 2, (box["y1"] + box["y2"]) / 2
        r, g, b = image.convert("RGB").getpixel((int(cx), int(cy)))
        assert r > 200 and g < 60 and b < 60, (o, (r, g, b))  # red: the box is on the object


def test_boxes_drawn_on_the_shown_image_are_kept_as_they_are(oriented):
    out = oriented / "out"
    build_dataset(_refs_recipe(oriented, "displayed"), out)
    rows = pq.read_table(out / "data/oriented").to_pylist()
    assert len(rows) == 8
    for row in rows:
        o = int(row["id"].rsplit("/o", 1)[1].split("-")[0])
        box = row["boxes"][0]
        assert (box["x1"], box["y1"], box["x2"], box["y2"]) == RED
        assert (row["image_sizes"][0]["width"], row["image_sizes"][0]["height"]) == shown(jpeg(o)).size


# ----------------------------------------------------------------------------------------------
# A full disk: one line, and the build resumes to the bytes of an uninterrupted one.


@pytest.fixture
def synth(tmp_path: Path) -> Path:
    p = tmp_path / "synth.yaml"
    p.write_text(SYNTH_RECIPE.format(prompts=PROMPTS))
    return p


def _full_disk_at(monkeypatch: pytest.MonkeyPatch, seam: str, after: int) -> None:
    """Make the `after`-th call at `seam` fail as a full disk does (pyarrow: no errno, only text)."""
    import triune_data.atomic as atomic
    import triune_data.writer as writer

    calls = {"n": 0}

    def failing(real):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == after:
                if seam == "parquet-write":
                    raise OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")
                raise OSError(28, "No space left on device", str(args[-1]) if args else None)
            return real(*args, **kwargs)

        return call

    if seam == "parquet-write":
        real_writer = writer._parquet_writer

        def make(path, schema):
            w = real_writer(path, schema)
            w.write_table = failing(w.write_table)
            return w

        monkeypatch.setattr(writer, "_parquet_writer", make)
    elif seam == "publish":
        monkeypatch.setattr(atomic, "publish", failing(atomic.publish))
    elif seam == "state":
        monkeypatch.setattr(atomic, "write_json", failing(atomic.write_json))


@pytest.mark.parametrize(
    "seam, after",
    [("parquet-write", 3), ("publish", 2), ("publish", 7), ("state", 3)],
    ids=["shard-write", "shard-publish", "late-publish", "state-save"],
)
def test_a_full_disk_is_one_line_and_the_build_resumes(synth, tmp_path, monkeypatch, seam, after):
    build_dataset(synth, tmp_path / "clean")
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _full_disk_at(m, seam, after)
        with pytest.raises(DatasetError) as exc:
            build_dataset(synth, out)
    message = str(exc.value)
    assert "no space left on device" in message and "--resume" in message and "\n" not in message
    assert not list((out / ".work").rglob("*.tmp"))
    build_dataset(synth, out, resume=True)
    assert snapshot(out) == snapshot(tmp_path / "clean")
