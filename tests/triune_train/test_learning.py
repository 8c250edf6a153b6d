"""It learns, shown honestly: the tiny random-init model learns to name the colour of an image.

Setting (the calibration in docs/training.md): tiny Qwen2.5-VL from random initialisation, vision
tower and connector frozen, 8 prompts × 8 samples a step, 4 new tokens, temperature 1, lr 3e-4,
grad clip 1, on-policy, one torch thread. Images are solid red or blue; the `mcq` verifier gives 1
to an answer naming the right colour. Every answer that ignores the image is right half of the
time at best, so the bar is a 5-step mean reward above 0.8, from under 0.2, within 400 steps — and
the greedy answers on the held-out test images must reach 0.8 too. No mocked model, no hand-set
rewards: the loop, the engine, the verifier and the data pipeline are the real ones.
"""

from __future__ import annotations

import time
from collections import deque

import pytest

from tests.triune_train._loop_testkit import build_colours, metrics_by_step, train_config
from triune_train.loop import train

THRESHOLD, START_BELOW, WINDOW, MAX_STEPS = 0.8, 0.2, 5, 400


@pytest.mark.slow
def test_reward_rises_from_chance_to_reading_the_image(tmp_path):
    data = build_colours(tmp_path, train=32, test=8)
    cfg = train_config(
        data,
        total_steps=MAX_STEPS,
        threads=1,
        data={"prompts_per_step": 8},
        rollout={"n": 8, "max_new_tokens": 4},
        algorithm={"eps": 1e-4},
        optim={"lr": 3e-4, "grad_clip": 1.0, "micro_batch_size": 64},
        eval={"every": MAX_STEPS},  # evaluated once, where training stops
        logging={"samples_every": 0},
    )
    rewards: list[float] = []
    window: deque[float] = deque(maxlen=WINDOW)

    def reached(step: int, metrics: dict[str, float]) -> bool:
        rewards.append(metrics["train/colours/reward"])
        window.append(rewards[-1])
        return len(window) == WINDOW and sum(window) / WINDOW >= THRESHOLD

    t0 = time.perf_counter()
    result = train(cfg, tmp_path / "run", stop=reached, echo=None)
    seconds = time.perf_counter() - t0
    print(
        f"learning test: {result.step} steps, {seconds:.0f} s, first 5 {rewards[:5]}, last 5 {rewards[-5:]}"
    )
    assert sum(rewards[:WINDOW]) / WINDOW < START_BELOW
    assert result.stopped_early, f"5-step mean reward stayed below {THRESHOLD} for {MAX_STEPS} steps"
    assert result.metrics["train/colours/reward"] > 0.5
    held_out = metrics_by_step(result.run)[result.step]["test/colours/reward"]
    assert held_out >= THRESHOLD, f"greedy reward on unseen test images {held_out}"
