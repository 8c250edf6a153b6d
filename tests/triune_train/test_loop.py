"""The training loop end to end on the tiny model: metrics, checkpoints, exact resume, bad input."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pyarrow.parquet as pq
import pytest
import torch

from tests.triune_train._loop_testkit import build_colours, metrics_by_step, train_config
from triune_data import atomic
from triune_data.errors import DatasetError, UnknownVerifierError
from triune_data.manifest import sha256_file
from triune_train.checkpoint import latest_checkpoint
from triune_train.data import TrainStream
from triune_train.eval import build_prompts, score_rollouts
from triune_train.loop import RewardFailure, StageTimer, draw_prompts, step_seed, train
from triune_train.models.families import ModelError
from triune_train.models.loading import load_policy
from triune_train.prompts import build_prompt
from triune_train.rewards.client import InProcessBackend
from triune_train.rollout.base import SamplingParams
from triune_train.rollout.hf import HFEngine
from triune_train.update import grpo_update, score_batch


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return build_colours(tmp_path_factory.mktemp("colours"), train=16, test=4)


def test_a_run_logs_per_source_metrics_checkpoints_and_evaluates(colours, tmp_path):
    cfg = train_config(colours, total_steps=2, eval={"every": 1, "before_train": True})
    result = train(cfg, tmp_path / "run", echo=None)
    run = result.run
    assert result.step == 2 and not result.stopped_early
    rows = metrics_by_step(run)
    assert sorted(rows) == [0, 1, 2]
    step = rows[2]
    assert step["train/colours/count"] == 16.0  # 4 prompts × 4 samples, all one source
    for key in ("train/colours/reward", "train/all/accuracy", "train/colours/response_length", "actor/loss",
                "actor/grad_norm", "actor/clip_frac_high", "actor/entropy", "actor/lr", "advantage/masked",
                "timing/rollout", "timing/reward", "timing/update", "perf/rollout_tokens_per_s",
                "perf/update_tokens_per_s", "perf/peak_rss_mb", "test/colours/reward", "timing/eval"):  # fmt: skip
        assert key in step, key
    assert any(k.startswith("layer_grad_norm/") and "layers.1" in k for k in step)
    assert step["params/vision_trainable"] == 0 and step["params/connector_trainable"] == 0
    assert step["params/language_trainable"] > 0 and step["params/frozen"] > 0
    assert "test/colours/reward" in rows[0]  # evaluated before training
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {1, 2} and all(s["data_source"] == "colours" for s in samples)
    evals = [
        json.loads(line)
        for line in (run / "eval" / "step-000002" / "completions.jsonl").read_text().splitlines()
    ]
    assert len(evals) == 4 and all(len(e["completions"]) == 1 for e in evals)
    assert result.checkpoint == run / "checkpoints" / "step-000002"
    reloaded = load_policy(str(result.checkpoint / "policy"))  # a folder a user can load
    assert reloaded.family.name == "qwen2_5_vl"


def test_resume_after_ctrl_c_continues_exactly(colours, tmp_path):
    """Interrupted in step 3 (after its update, before its checkpoint): resuming redoes steps 3 and 4
    with the same losses, and ends with the same weights as the uninterrupted run."""
    # The entropy bonus moves the weights every step, whatever the rewards.
    cfg = train_config(colours, total_steps=4, checkpoint={"every": 2}, algorithm={"entropy_coef": 0.01})
    whole = train(cfg, tmp_path / "whole", echo=None)

    def ctrl_c(step, metrics):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", stop=ctrl_c, echo=None)
    assert latest_checkpoint(tmp_path / "cut").name == "step-000002"
    load_policy(str(latest_checkpoint(tmp_path / "cut") / "policy"))  # still loadable
    resumed = train(cfg, tmp_path / "cut", resume=True, echo=None)
    assert resumed.step == 4

    a, b = metrics_by_step(whole.run), metrics_by_step(resumed.run)
    assert sorted(b) == [1, 2, 3, 4]  # the interrupted step 3 is not logged twice
    for step in (3, 4):
        stable = {k: v for k, v in a[step].items() if not k.startswith(("timing/", "perf/", "time"))}
        assert {k: b[step][k] for k in stable} == stable
    assert a[3]["actor/loss"] != 0
    weights = "checkpoints/step-000004/policy/model.safetensors"
    assert sha256_file(whole.run / weights) == sha256_file(resumed.run / weights)


# ----------------------------------------------------------------------------------------------
# Skipped prompts are replaced from the stream

SMALL_PROMPT_TOKENS, LARGE_PROMPT_TOKENS = 59, 71  # a 56 px and a 112 px colour prompt (checked below)
BUDGET = 64  # between the two: every large image is skipped as prompt_too_long


@pytest.fixture(scope="module")
def colours_large(tmp_path_factory):
    """Every third training image is large: its prompt is over `BUDGET`."""
    return build_colours(tmp_path_factory.mktemp("colours_large"), train=24, test=4, large_every=3)


@pytest.fixture(scope="module")
def tiny_qwen25(tmp_path_factory):
    return load_policy("tiny:qwen2_5_vl", tiny_dir=tmp_path_factory.mktemp("tiny"))


def expected_step(data, *, draws_so_far, n, budget):
    """What one step should draw, by walking the stream one sample at a time: keep the samples that
    fit until `n` are kept or `n + budget` are drawn. Returns (kept ids, skipped count, draws)."""
    stream = TrainStream(data, seed=0)
    stream.next_indices(draws_so_far)
    kept, skipped, draws = [], 0, 0
    while len(kept) < n and draws < n + budget:
        (sample,) = stream.next_batch(1)
        draws += 1
        if sample.image_sizes[0].width > 56:
            skipped += 1
        else:
            kept.append(sample.id)
    return kept, skipped, draws


@pytest.mark.parametrize("budget", [None, 1, 0])
def test_skipped_prompts_are_replaced_by_further_draws(colours_large, tiny_qwen25, budget):
    cfg = train_config(
        colours_large,
        data={"prompts_per_step": 4, "max_prompt_tokens": BUDGET, "max_replacement_draws": budget},
    )
    stream = TrainStream(colours_large, seed=0)
    total_skipped = full_steps = 0
    for _ in range(4):  # several steps: the position carries the replacements over
        before = stream.draws
        kept, skipped, draws = expected_step(
            colours_large, draws_so_far=before, n=4, budget=4 if budget is None else budget
        )
        prompts, skips, replacements = draw_prompts(stream, tiny_qwen25, cfg, StageTimer())
        assert [p.sample.id for p in prompts] == kept
        assert skips == ({("colours", "prompt_too_long"): skipped} if skipped else {})
        assert (replacements, stream.draws - before) == (draws - 4, draws)
        assert all(p.num_tokens == SMALL_PROMPT_TOKENS for p in prompts)
        total_skipped += skipped
        full_steps += len(prompts) == 4
    assert total_skipped >= 2  # the seed draws large images: the test exercises replacement
    if budget is None:  # the default bound (prompts_per_step) is never reached here
        assert full_steps == 4 and stream.draws == 16 + total_skipped
    if budget == 0:  # no replacement: the steps with a skip run short
        assert full_steps < 4 and stream.draws == 16


def test_large_colour_prompts_exceed_the_budget(colours_large, tiny_qwen25):
    samples = TrainStream(colours_large, shuffle=False).next_batch(3)
    built = [build_prompt(s, tiny_qwen25, max_prompt_tokens=1000) for s in samples]
    assert [p.num_tokens for p in built] == [SMALL_PROMPT_TOKENS, SMALL_PROMPT_TOKENS, LARGE_PROMPT_TOKENS]


def test_replaced_prompts_keep_every_step_full_and_resume_exact(colours_large, tmp_path):
    """Steps keep prompts_per_step prompts although some draws are skipped; every skip is counted per
    data_source; interrupted in step 3 and resumed, the run equals the uninterrupted one."""
    cfg = train_config(
        colours_large,
        total_steps=4,
        data={"max_prompt_tokens": BUDGET},
        checkpoint={"every": 2},
        algorithm={"entropy_coef": 0.01},
    )
    whole = train(cfg, tmp_path / "whole", echo=None)
    rows = metrics_by_step(whole.run)
    assert all(rows[s]["train/colours/count"] == 16.0 for s in (1, 2, 3, 4))  # 4 prompts × 4, every step
    skipped = sum(rows[s].get("train/colours/skipped_prompt_too_long", 0.0) for s in (1, 2, 3, 4))
    replaced = sum(rows[s]["data/replacement_draws"] for s in (1, 2, 3, 4))
    assert (
        skipped
        == replaced
        == rows[4]["counters/skipped_prompts"]
        == rows[4]["counters/replacement_draws"]
        > 0
    )

    def ctrl_c(step, metrics):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", stop=ctrl_c, echo=None)
    resumed = train(cfg, tmp_path / "cut", resume=True, echo=None)
    again = metrics_by_step(resumed.run)
    for step in (3, 4):
        stable = {k: v for k, v in rows[step].items() if not k.startswith(("timing/", "perf/", "time"))}
        assert {k: again[step][k] for k in stable} == stable
    state = json.loads((whole.run / "checkpoints" / "step-000004" / "state.json").read_text())
    assert (
        state["data"]
        == json.loads((resumed.run / "checkpoints" / "step-000004" / "state.json").read_text())["data"]
    )
    weights = "checkpoints/step-000004/policy/model.safetensors"
    assert sha256_file(whole.run / weights) == sha256_file(resumed.run / weights)


# ----------------------------------------------------------------------------------------------
# The update on its own


@pytest.fixture(scope="module")
def scored(colours, tmp_path_factory):
    """One step's prompts, rollouts and scored batch on a fresh tiny policy."""
    policy = load_policy("tiny:qwen2_5_vl", tiny_dir=tmp_path_factory.mktemp("tiny"))
    cfg = train_config(colours, algorithm={"entropy_coef": 0.01}, optim={"grad_clip": None})
    samples = TrainStream(colours, seed=0).next_batch(4)
    prompts, _ = build_prompts(samples, policy, max_prompt_tokens=256)
    rollouts = HFEngine(policy).generate(prompts, SamplingParams(n=4, max_new_tokens=6, seed=step_seed(0, 1)))
    with InProcessBackend() as backend:
        results, _ = score_rollouts(backend, prompts, rollouts, step=1, total_steps=2, model_frame="pixel")
    return policy, cfg, prompts, rollouts, results


def updated(scored, *, micro_batch_size=16, results=None, nan=False, **alg):
    policy, cfg, prompts, rollouts, base_results = scored
    cfg = cfg.model_copy(
        update={
            "optim": cfg.optim.model_copy(update={"micro_batch_size": micro_batch_size}),
            "algorithm": cfg.algorithm.model_copy(update=alg),
        }
    )
    batch = score_batch(cfg, prompts, rollouts, results or base_results)
    if nan:
        batch.advantages[0] = float("nan")
    policy = copy.copy(policy)
    policy.model = copy.deepcopy(policy.model)
    optimizer = torch.optim.SGD([p for p in policy.model.parameters() if p.requires_grad], lr=1.0)
    stats = grpo_update(policy, None, prompts, rollouts, batch, optimizer, cfg, seed=1)
    return policy.model.state_dict(), stats


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_micro_batches_add_up_to_the_full_batch(scored, agg):
    """Gradient accumulation over micro-batches of 1 gives the update of one batch of 16: every loss
    is divided by the global token (or sequence) count of the mini-batch."""
    one, s1 = updated(scored, micro_batch_size=1, loss_agg=agg)
    full, s16 = updated(scored, micro_batch_size=16, loss_agg=agg)
    assert s1["loss"] == pytest.approx(s16["loss"], rel=1e-5, abs=1e-7)
    for name in one:
        torch.testing.assert_close(one[name], full[name], rtol=1e-5, atol=1e-6)


def test_non_finite_grad_norm_skips_the_step(scored):
    before = scored[0].model.state_dict()
    after, stats = updated(scored, nan=True)
    assert stats["skipped_updates"] == 1.0 and stats["optimizer_steps"] == 0.0
    for name in before:
        assert torch.equal(before[name], after[name])


def test_failed_rewards_are_masked_not_scored_zero(scored):
    _, cfg, prompts, rollouts, results = scored
    failed = [dataclasses.replace(r, status="timeout") if i % 4 == 0 else r for i, r in enumerate(results)]
    batch = score_batch(cfg, prompts, rollouts, failed)
    assert batch.valid.tolist() == [i % 4 != 0 for i in range(16)]
    assert (batch.advantages[~batch.valid] == 0).all()
    _, stats = updated(scored, results=failed)
    assert stats["seqs"] == 12.0  # the 4 failed rows are not in the loss at all


def test_several_mini_batches_and_epochs_run_off_policy(scored):
    _, stats = updated(scored, epochs=2, mini_batches=2)
    assert stats["optimizer_steps"] == 4.0 and stats["ratio_max"] > 1.0 - 1e-6


# ----------------------------------------------------------------------------------------------
# Bad input: one line, before heavy work


def test_missing_dataset_fails_before_the_model_is_built(tmp_path):
    cfg = train_config(tmp_path / "nope")
    with pytest.raises(DatasetError, match="dataset directory not found"):
        train(cfg, tmp_path / "run", echo=None)
    assert not (tmp_path / "run" / "base_model").exists()


def test_prompts_over_the_budget_fail_in_one_line(colours, tmp_path):
    cfg = train_config(colours, data={"max_prompt_tokens": 8})
    with pytest.raises(
        DatasetError, match=r"data_source 'colours': prompts exceed data\.max_prompt_tokens \(\d+ tokens"
    ):
        train(cfg, tmp_path / "run", echo=None)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_model_without_vision_tower_fails_in_one_line(colours, tmp_path):
    from transformers import Qwen2Config

    Qwen2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                intermediate_size=64, vocab_size=400).save_pretrained(tmp_path / "text_only")  # fmt: skip
    cfg = train_config(colours, model={"path": str(tmp_path / "text_only")})
    with pytest.raises(ModelError, match="model type 'qwen2' has no vision tower"):
        train(cfg, tmp_path / "run", echo=None)


def test_a_verifier_the_backend_does_not_know_fails_in_one_line(colours, tmp_path):
    data = tmp_path / "data"
    import shutil

    shutil.copytree(colours, data)
    manifest = json.loads((data / "manifest.json").read_text())
    for f in manifest["files"]:
        table = pq.read_table(data / f["path"])
        rows = table.to_pylist()
        for r in rows:
            r["reward"]["verifier"] = "no_such_verifier"
        pq.write_table(table.from_pylist(rows, schema=table.schema), data / f["path"])
        f["bytes"], f["sha256"] = (data / f["path"]).stat().st_size, sha256_file(data / f["path"])
    atomic.write_json(data / "manifest.json", manifest)
    with pytest.raises(UnknownVerifierError, match="data_source 'colours': the reward backend does not know"):
        train(train_config(data), tmp_path / "run", echo=None)
    assert not (tmp_path / "run" / "base_model").exists()


def test_a_reward_service_that_goes_away_stops_the_run_with_the_checkpoint_intact(colours, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    service = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve-rewards", "--port", str(port), "--workers", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TRIUNE_REWARD_TOKEN": ""},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "reward service did not start"
                time.sleep(0.1)

        def kill_after_2(step, metrics):
            if step == 2:
                service.terminate()
                service.wait(timeout=20)

        cfg = train_config(
            colours,
            total_steps=4,
            checkpoint={"every": 1},
            reward={"servers": [url], "retries": 1, "timeout_s": 2.0},
        )
        with pytest.raises(
            RewardFailure, match=r"step 3: 16 of 16 rewards failed .*Last checkpoint: step-000002, intact"
        ):
            train(cfg, tmp_path / "run", stop=kill_after_2, echo=None)
    finally:
        service.kill()
    assert latest_checkpoint(tmp_path / "run").name == "step-000002"
    load_policy(str(latest_checkpoint(tmp_path / "run") / "policy"))
