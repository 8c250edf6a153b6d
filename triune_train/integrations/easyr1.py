"""triune's verifiers as EasyR1's reward function (`worker.reward.reward_function=PATH:compute_score`).

EasyR1 loads this file by path and calls ``compute_score(reward_inputs, **reward_function_kwargs)``
with one ``{"response", "response_length", "ground_truth"}`` per rollout (`REWARD_TYPE = "batch"`).
Nothing else of the row reaches it, so the row's reward spec must arrive as the ground truth:
`triune export --format easyr1` writes it in the `triune_reward` column and EasyR1 is told
`data.answer_key=triune_reward`. A ground truth that is not a spec stops with that advice.

Each result has the same float keys: `overall` (the reward), `accuracy`, `format` and one 0/1
`status_*` per status; EasyR1 averages every key into `reward/<key>` (validation: `val/<key>_reward`),
so `reward/status_error` is the share of rows whose reward was an error (scored 0, logged).

>>> import json
>>> spec = {"verifier": "counting", "ground_truth": "3", "data_source": "count", "id": "c/1", "split": "test"}
>>> compute_score([{"response": "<answer>4</answer>", "response_length": 5, "ground_truth": json.dumps(spec)}])
[{'overall': 0.0, 'accuracy': 0.0, 'format': 0.0, 'status_ok': 1.0, 'status_not_applicable': 0.0, 'status_error': 0.0, 'status_timeout': 0.0}]
"""

from __future__ import annotations

from typing import Any

from triune_train.integrations.common import Settings, parse_spec, score_rows, status_flags

REWARD_NAME = "triune"
REWARD_TYPE = "batch"


def compute_score(reward_inputs: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, float]]:
    """Score EasyR1's batch of rollouts; one dict of floats per rollout."""
    settings = Settings.from_kwargs("easyr1", kwargs)
    specs = [parse_spec(r["ground_truth"]) for r in reward_inputs]
    results = score_rows(specs, [r["response"] for r in reward_inputs], settings)
    return [
        {"overall": r.reward, "accuracy": r.accuracy, "format": r.format, **status_flags(r)} for r in results
    ]
