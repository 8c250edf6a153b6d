"""Evaluation: `triune eval` files, greedy determinism, reward items, and the train/eval/report CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from cli import app
from tests.triune_train._loop_testkit import build_colours
from triune_data.coords import box_from_canonical
from triune_data.filters.completions import index_completions
from triune_data.verifiers import ScoreItem, score
from triune_train.eval import eval_model, per_source_table, reward_item
from triune_train.rewards.scoring import score_dataset
from triune_train.rollout.base import PromptInputs

runner = CliRunner()


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return build_colours(tmp_path_factory.mktemp("colours"), train=8, test=4)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_writes_completions_results_and_a_per_source_table(colours, tmp_path):
    summary = eval_model(
        "tiny:qwen2_5_vl", colours, tmp_path / "out", num_samples=3, max_new_tokens=4, max_prompt_tokens=256
    )
    completions = lines(tmp_path / "out" / "completions.jsonl")
    assert [c["id"] for c in completions] == [f"colours/test-{i:03d}" for i in range(4)]
    assert all(len(c["completions"]) == 3 and c["data_source"] == "colours" for c in completions)
    assert all(len(c["model_input_size"]) == 2 for c in completions)
    # ... exactly the contract `triune filter`'s difficulty_stats reads: every line usable.
    ids = [c["id"] for c in completions]
    index = index_completions(tmp_path / "out" / "completions.jsonl", wanted=ids, known=ids)
    assert (index.lines, index.matched, index.malformed, index.non_string_completions) == (4, 4, 0, 0)
    results = lines(tmp_path / "out" / "results.jsonl")
    assert len(results) == 12 and [r["index"] for r in results[:3]] == [0, 1, 2]
    assert all(r["status"] == "ok" for r in results)
    assert summary["by_source"]["colours"]["count"] == 12
    assert list(summary["by_source"]) == ["colours", "all"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["completions"] == 12

    # `triune score --completions` reads the same file and agrees with the scores eval wrote.
    rescored = score_dataset(
        colours, tmp_path / "out" / "completions.jsonl", tmp_path / "rescored.jsonl", workers=0
    )
    assert rescored["total"]["count"] == 12
    again = lines(tmp_path / "rescored.jsonl")
    assert [(r["id"], r["index"], r["reward"], r["prediction"]) for r in again] == [
        (r["id"], r["index"], r["reward"], r["prediction"]) for r in results
    ]


def test_greedy_eval_is_deterministic(colours, tmp_path):
    for name in ("a", "b"):
        eval_model("tiny:qwen2_5_vl", colours, tmp_path / name, max_new_tokens=6, max_prompt_tokens=256)
    assert (tmp_path / "a" / "completions.jsonl").read_text() == (
        tmp_path / "b" / "completions.jsonl"
    ).read_text()


def detection_answer(boxes) -> str:
    body = json.dumps([{"bbox_2d": [round(v, 6) for v in b], "label": lab} for lab, b in boxes])
    return f"<think>boxes</think>\n<answer>{body}</answer>"


@pytest.mark.parametrize("frame", ["pixel", "norm1000", "norm1"])
def test_reward_item_reads_boxes_in_the_family_frame_of_the_model_input(small_dataset, frame):
    from triune_train.data import read_split

    det = next(s for s in read_split(small_dataset, "train") if s.task == "detection")
    model_size = (112, 84)  # the resized image the model saw, not the stored one
    prompt = PromptInputs(
        sample=det, text="", input_ids=torch.zeros(1, dtype=torch.long), model_input_sizes=[model_size]
    )
    stored = (det.image_sizes[0].width, det.image_sizes[0].height)
    gold = [(b.label, (b.x1, b.y1, b.x2, b.y2)) for b in det.boxes]
    in_frame = [
        (lab, box_from_canonical(box, frame, image_size=stored, model_input_size=model_size))
        for lab, box in gold
    ]
    item = reward_item(prompt, detection_answer(in_frame), step=3, total_steps=10, model_frame=frame)
    assert isinstance(item, ScoreItem)
    assert (item.verifier, item.model_frame, item.id) == ("detection", frame, det.id)
    assert (item.step, item.total_steps) == (3, 10)
    assert item.model_input_size == (112.0, 84.0) and item.image_size == (float(stored[0]), float(stored[1]))
    assert item.ground_truth == list(det.boxes)
    assert item.params == det.reward.verifier_params  # the stored text, parsed by `score`
    result = score(item)
    assert result.status == "ok" and result.accuracy == pytest.approx(1.0, abs=1e-4)  # 6-decimal answer
    # The prediction is reported back in the canonical frame (stored-image pixels).
    read = [v for p in result.prediction for v in p["bbox"]]
    assert read == pytest.approx([v for _, box in gold for v in box], abs=0.05)
    # The same numbers read as stored-image pixels miss: the frame and the model's input size matter.
    wrong = {"model_input_size": None} if frame == "pixel" else {"model_frame": None}
    assert stored != model_size and score(dataclasses.replace(item, **wrong)).accuracy < 0.9


def test_reward_item_of_a_text_task_and_a_prompt_without_images(small_dataset):
    from triune_train.data import read_split

    maths = next(s for s in read_split(small_dataset, "train") if s.task == "math")
    prompt = PromptInputs(sample=maths, text="", input_ids=torch.zeros(1, dtype=torch.long))
    answer = f"<answer>\\boxed{{{maths.ground_truth}}}</answer>"
    item = reward_item(prompt, answer, step=0, total_steps=0, model_frame="pixel")
    assert item.ground_truth == maths.ground_truth and item.model_input_size is None
    assert score(item).accuracy == 1.0


def test_per_source_table_keeps_table_metrics():
    metrics = {"test/a/reward": 0.5, "test/a/iou": 0.3, "test/all/reward": 0.5, "train/a/reward": 1.0}
    assert per_source_table(metrics, split="test") == {"a": {"reward": 0.5}, "all": {"reward": 0.5}}


# ----------------------------------------------------------------------------------------------
# Commands


def write_recipe(tmp_path, data):
    recipe = tmp_path / "train.yaml"
    recipe.write_text(
        "total_steps: 2\ndevice: cpu\nmodel: {path: 'tiny:qwen2_5_vl'}\n"
        f"data: {{path: '{data}', prompts_per_step: 2, max_prompt_tokens: 256}}\n"
        "rollout: {n: 2, max_new_tokens: 4}\ncheckpoint: {every: 0}\n"
        "logging: {tensorboard: false}\n"
    )
    return recipe


def test_train_eval_report_commands(colours, tmp_path):
    recipe = write_recipe(tmp_path, colours)
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(recipe), "--out", str(run), "--set", "optim.lr=1e-3"])
    assert res.exit_code == 0, res.output
    assert "step 2/2" in res.output and "last checkpoint step-000002" in res.output
    assert json.loads((run / "config.json").read_text())["config"]["optim"]["lr"] == 1e-3

    res = runner.invoke(app, ["train", str(recipe), "--out", str(run), "--set", "optim.lr=1e-3", "--resume"])
    assert res.exit_code == 0, res.output  # nothing left to do: already at total_steps

    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    assert (run / "report.html").exists()

    policy = run / "checkpoints" / "step-000002" / "policy"
    res = runner.invoke(
        app,
        ["eval", str(policy), "--data", str(colours), "--out", str(tmp_path / "ev"), "--max-new-tokens", "4"],
    )
    assert res.exit_code == 0, res.output
    assert "colours" in res.output and (tmp_path / "ev" / "completions.jsonl").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "optim.lrr=1"], "--set optim.lrr=1: optim.lrr: unknown key"),
        (["--set", "data.path=/nonexistent"], "dataset directory not found"),
        (["--resume"], "nothing to resume"),
    ],
)
def test_train_errors_are_one_line(colours, tmp_path, args, message):
    recipe = write_recipe(tmp_path, colours)
    proc = subprocess.run(
        [sys.executable, "-c", "import cli; cli.main()", "train", str(recipe), "--out", str(tmp_path / "r"), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
