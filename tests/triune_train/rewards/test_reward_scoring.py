"""`triune score` library side: JSONL items file, and completions joined to a triune dataset."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from _reward_testkit import PRELOAD, Service

from triune_data.errors import DatasetError, FileAccessError
from triune_data.schema import samples_to_table
from triune_data.types import Box, Image, ImageSize, Message, Provenance, RewardSpec, Sample
from triune_train.rewards.scoring import score_dataset, score_items_file

THINK = "<think>\nThere are 3 red cubes.\n</think>\n<answer>\n\\boxed{3}\n</answer>"


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


ITEM_LINES = [
    orjson.dumps(
        {"id": "s1", "verifier": "format", "completion": THINK, "ground_truth": "3", "data_source": "clevr"}
    ),
    b"",  # blank lines are skipped
    b'{"id": "s2", "verifier": "format", "completion": "3", "ground_truth": "3", "data_source": "clevr"}',
    b'{"id": "s3", "verifier": "format", "completion": "3", "ground_truth": ',  # truncated
    b'["not", "an", "object"]',
    b'{"id": "s5", "verifier": "format", "completion": "3", "ground_truth": "3", "weight": 2, "data_source": "x"}',
    b'{"id": 6, "verifier": "no_such_verifier", "completion": "3", "ground_truth": "3", "data_source": "geo"}',
]


@pytest.mark.parametrize("workers", [0, 2])
def test_items_file_with_malformed_lines(tmp_path: Path, workers: int) -> None:
    src, out = tmp_path / "items.jsonl", tmp_path / "out" / "results.jsonl"
    src.write_bytes(b"\n".join(ITEM_LINES) + b"\n")
    summary = score_items_file(src, out, workers=workers)
    rows = read_jsonl(out)
    assert [r.get("id") for r in rows] == ["s1", "s2", None, None, "s5", 6]
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "error", "error", "error"]
    assert rows[0]["reward"] == 1.0 and rows[1]["reward"] == 0.0
    assert rows[2]["message"].startswith("line 4: not valid JSON")
    assert rows[3]["message"].startswith("line 5: invalid item")
    assert rows[4]["message"].startswith("line 6: invalid item") and "weight" in rows[4]["message"]
    assert "unknown verifier 'no_such_verifier'" in rows[5]["message"]
    assert summary["by_source"]["clevr"] == {
        "count": 2,
        "ok": 2,
        "not_applicable": 0,
        "error": 0,
        "timeout": 0,
        "mean_reward": 0.5,
        "mean_accuracy": 0.5,
    }
    assert summary["by_source"]["geo"]["error"] == 1 and summary["by_source"]["geo"]["mean_reward"] is None
    assert summary["total"]["count"] == 6 and summary["total"]["error"] == 4
    assert [p.name for p in out.parent.iterdir()] == ["results.jsonl"]  # no temp file left behind
    assert "clevr" in summary["by_source"] and summary["total"]["count"] > 0


def test_items_file_through_a_server(tmp_path: Path, service: Service) -> None:
    src, out = tmp_path / "items.jsonl", tmp_path / "results.jsonl"
    src.write_bytes(b"\n".join(ITEM_LINES))
    score_items_file(src, out, server_urls=[service.url])
    local = tmp_path / "local.jsonl"
    score_items_file(src, local, workers=0)
    assert read_jsonl(out) == read_jsonl(local)


def test_failed_run_leaves_no_output(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    with pytest.raises(FileAccessError, match=r"missing\.jsonl: cannot read \(No such file or directory\)"):
        score_items_file(tmp_path / "missing.jsonl", out, workers=0)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def sample(
    sid: str, *, verifier: str, source: str, params: str = "{}", boxes: list[Box] | None = None
) -> Sample:
    return Sample(
        id=sid,
        data_source=source,
        task="detection" if boxes else "counting",
        category="perception",
        split="train",
        images=[Image(bytes=b"\x89PNG fake bytes", path=f"{sid}.png")],
        image_sizes=[ImageSize(width=640, height=480)],
        prompt=[Message(role="user", content="<image>How many red cubes?")],
        answer="3",
        ground_truth="3",
        boxes=boxes or [],
        reward=RewardSpec(verifier=verifier, verifier_params=params, accuracy_weight=1.0, format_weight=0.0),
        sample_weight=1.0,
        difficulty=None,
        provenance=Provenance(source="test", original_id=sid),
    )


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shards = {
        "clevr/train-00000-of-00001.parquet": [
            sample("c1", verifier="format", source="clevr"),
            sample("c2", verifier="format", source="clevr", params='{"format": {"mode": "boxed"}}'),
            sample("c3", verifier="format", source="clevr", params="{broken"),
        ],
        "det/train-00000-of-00001.parquet": [
            sample("d1", verifier="_test_boxes", source="det", boxes=[Box("cube", 10, 20, 110, 220)] * 2),
        ],
    }
    for name, rows in shards.items():
        path = root / "data" / name
        path.parent.mkdir(parents=True)
        pq.write_table(samples_to_table(rows), path)
    return root


def test_score_dataset(tmp_path: Path, dataset: Path) -> None:
    completions = tmp_path / "completions.jsonl"
    lines = [
        {"id": "c1", "completion": THINK},
        {"id": "c1", "completion": "no tags at all"},
        {"id": "c2", "completion": "so \\boxed{3}"},
        {"id": "d1", "completion": "yes"},
        {"id": "zz", "completion": THINK},
        {"id": "c3", "completion": THINK},
        {"completion": "no id"},
    ]
    completions.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n{oops\n")
    out = tmp_path / "scored.jsonl"
    summary = score_dataset(dataset, completions, out, workers=0, preload=[PRELOAD], step=5, total_steps=10)
    rows = read_jsonl(out)
    assert [(r.get("id"), r.get("data_source")) for r in rows] == [
        ("c1", "clevr"),
        ("c1", "clevr"),
        ("c2", "clevr"),
        ("d1", "det"),
        ("zz", None),
        ("c3", "clevr"),
        (None, None),
        (None, None),
    ]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "ok", "error", "error", "error", "error"]
    assert [r["reward"] for r in rows[:4]] == [1.0, 0.0, 1.0, 1.0]
    # Box verifiers get the gold boxes, the stored image size and the training progress.
    assert rows[3]["components"] == {"boxes": 2.0, "first_x2": 110.0, "width": 640.0, "progress": 0.5}
    assert rows[4]["message"] == "line 5: unknown sample id 'zz'"
    assert "sample 'c3'" in rows[5]["message"] and "verifier_params is not JSON" in rows[5]["message"]
    assert rows[6]["message"].startswith("line 7:") and rows[7]["message"].startswith("line 8:")
    assert summary["by_source"]["clevr"]["count"] == 4 and summary["by_source"]["det"]["mean_reward"] == 1.0


def test_score_dataset_needs_shards(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text('{"id": "a", "completion": "x"}\n')
    with pytest.raises(DatasetError, match="no parquet shards"):
        score_dataset(tmp_path, tmp_path / "c.jsonl", tmp_path / "o.jsonl", workers=0)


def test_score_dataset_reads_the_completions_contract(tmp_path: Path, dataset: Path) -> None:
    """`{"id", "completions": [...]}` lines: one result per completion, with its index; every
    problem is an error result naming its line, counted in the summary."""
    lines = [
        orjson.dumps({"id": "c1", "completions": [THINK, "no tags", THINK]}),
        orjson.dumps({"id": "d1", "completions": ["yes", "no"], "model_input_size": [320, 240]}),
        orjson.dumps({"id": "zz", "completions": [THINK, THINK]}),  # unknown id
        orjson.dumps({"id": "c1", "completions": [THINK, None]}),  # a completion that is no string
        orjson.dumps({"id": "c1", "completions": []}),
        orjson.dumps({"id": "c1", "completion": THINK, "completions": [THINK]}),  # which one?
        orjson.dumps({"completions": [THINK]}),  # no id
        b"[1, 2]",
        orjson.dumps({"id": "c3", "completions": [THINK]}),  # the sample's params are broken
    ]
    completions = tmp_path / "completions.jsonl"
    completions.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "scored.jsonl"
    summary = score_dataset(dataset, completions, out, workers=0, preload=[PRELOAD])
    rows = read_jsonl(out)
    assert [(r.get("id"), r.get("data_source"), r.get("index"), r["status"]) for r in rows] == [
        ("c1", "clevr", 0, "ok"),
        ("c1", "clevr", 1, "ok"),
        ("c1", "clevr", 2, "ok"),
        ("d1", "det", 0, "ok"),
        ("d1", "det", 1, "ok"),
        ("zz", None, 0, "error"),
        ("zz", None, 1, "error"),
        ("c1", "clevr", 0, "ok"),
        ("c1", "clevr", 1, "error"),
        ("c1", None, None, "error"),
        ("c1", None, None, "error"),
        (None, None, None, "error"),
        (None, None, None, "error"),
        ("c3", "clevr", 0, "error"),
    ]
    assert [r["reward"] for r in rows[:5]] == [1.0, 0.0, 1.0, 1.0, 0.0]
    assert rows[5]["message"] == rows[6]["message"] == "line 3: unknown sample id 'zz'"
    assert rows[8]["message"] == "line 4: completion 1 is a NoneType, not a string"
    assert rows[9]["message"].startswith("line 5: `completions` is not a non-empty list")
    assert [r["message"].split(":")[0] for r in rows[10:13]] == ["line 6", "line 7", "line 8"]
    assert rows[13]["message"].startswith("sample 'c3': verifier_params is not JSON")
    assert summary["total"] == {**summary["total"], "count": 14, "ok": 6, "error": 8}
    assert summary["by_source"]["(none)"]["error"] == 6 and summary["by_source"]["clevr"]["count"] == 6


def test_score_dataset_passes_the_model_input_size(tmp_path: Path, dataset: Path) -> None:
    completions = tmp_path / "completions.jsonl"
    completions.write_bytes(
        orjson.dumps({"id": "d1", "completion": "yes", "model_input_size": [320, 240]})
        + b"\n"
        + orjson.dumps({"id": "d1", "completion": "yes", "model_input_size": [0, "x"]})
    )
    out = tmp_path / "scored.jsonl"
    score_dataset(dataset, completions, out, workers=0, preload=[PRELOAD])
    rows = read_jsonl(out)
    assert rows[0]["status"] == "ok"
    assert rows[1]["status"] == "error" and rows[1]["message"].startswith("line 2: model_input_size")
