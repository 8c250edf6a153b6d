"""The TRL reward function, called as GRPOTrainer._calculate_rewards calls reward functions.

TRL passes ``prompts``, ``completions``, ``completion_ids`` and every other column of the batch as a
list keyword (here: the columns of a stored triune dataset), plus ``trainer_state``, ``log_extra``
and ``log_metric``. The last test runs TRL's own `_calculate_rewards` where TRL is installed.
"""

from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from tests.triune_train.integrations._kit import answer
from triune_data.schema import row_to_sample
from triune_data.verifiers.common.wire import reward_spec
from triune_train.integrations.common import Settings
from triune_train.integrations.trl import make_reward_function, to_trl, triune_reward


@pytest.fixture(scope="module")
def stored(small_dataset):
    return [
        r for p in sorted((small_dataset / "data").glob("*/*.parquet")) for r in pq.read_table(p).to_pylist()
    ]


class Recorder:
    def __init__(self):
        self.metrics, self.extra = {}, {}

    def log_metric(self, name, value):
        self.metrics.setdefault(name, []).append(value)

    def log_extra(self, column, values):
        self.extra.setdefault(column, []).extend(values)


def call(fn, rows, completions, *, step=0, max_steps=0, recorder=None):
    """GRPOTrainer._calculate_rewards' call: columns but prompt/completion/completion_ids as lists."""
    keys = [k for k in rows[0] if k not in ("prompt", "completion", "completion_ids")]
    reward_kwargs = {k: [row[k] for row in rows] for k in keys}
    reward_kwargs["trainer_state"] = SimpleNamespace(global_step=step, max_steps=max_steps)
    if recorder is not None:
        reward_kwargs["log_extra"] = recorder.log_extra
        reward_kwargs["log_metric"] = recorder.log_metric
    prompts = [to_trl(r)["prompt"] for r in rows]
    conversational = [[{"role": "assistant", "content": c}] for c in completions]
    return fn(prompts=prompts, completions=conversational, completion_ids=[[1]] * len(rows), **reward_kwargs)


def right_answers(rows, family="qwen2_5_vl"):
    settings = Settings.from_kwargs("trl", {"model_family": family})
    specs = [reward_spec(row_to_sample(r)) for r in rows]
    return [
        answer(s, settings.model_frame or "pixel", settings.model_input_size(s.get("image_size")))
        for s in specs
    ]


def test_routes_each_row_to_its_verifier(stored):
    fn = make_reward_function(model_family="qwen2_5_vl")
    recorder = Recorder()
    rewards = call(fn, stored, right_answers(stored), recorder=recorder)
    assert len(rewards) == len(stored) and all(r == pytest.approx(1.0, abs=1e-4) for r in rewards)
    assert fn.__name__ == "triune"
    assert recorder.metrics["triune/ok"] == [1.0] and recorder.metrics["triune/error"] == [0.0]
    assert recorder.metrics["triune/synth_det/ok"] == [1.0] and "triune/synth_math/reward" in recorder.metrics
    assert recorder.extra["triune_status"] == ["ok"] * len(stored)


def test_none_where_the_verifier_does_not_apply(stored):
    fn = make_reward_function(verifiers=["detection"], model_family="qwen3_vl", name="boxes")
    rewards = call(fn, stored, right_answers(stored, "qwen3_vl"))
    for row, r in zip(stored, rewards, strict=True):
        assert (r is None) == (row["reward"]["verifier"] != "detection")
    assert fn.__name__ == "boxes"


def test_errors_are_none_and_counted(stored):
    rows = [dict(r) for r in stored[:3]]
    rows[1]["reward"] = {**rows[1]["reward"], "verifier_params": "{not json"}
    recorder = Recorder()
    rewards = call(
        make_reward_function(model_family="qwen2_5_vl"), rows, right_answers(stored[:3]), recorder=recorder
    )
    assert rewards[1] is None and rewards[0] is not None and rewards[2] is not None
    assert recorder.extra["triune_status"] == ["ok", "error", "ok"]
    assert "params" in recorder.extra["triune_message"][1]
    source = rows[1]["data_source"]
    assert recorder.metrics["triune/error"] == [pytest.approx(1 / 3)]
    assert recorder.metrics[f"triune/{source}/error"] == [pytest.approx(1 / 3)]


def test_the_step_comes_from_the_trainer_state(stored):
    """A box off by 5% of its width (IoU 0.905) counts at τ = 0.85 (first 10%) and not at τ = 0.99."""
    det = [r for r in stored if r["data_source"] == "synth_det"][:1]
    spec = reward_spec(row_to_sample(det[0]))
    near = [answer(spec, "norm1000", jitter=0.05)]
    fn = make_reward_function(model_family="qwen3_vl")
    early = call(fn, det, near, step=0, max_steps=100)[0]
    late = call(fn, det, near, step=50, max_steps=100)[0]
    assert early > 0.6 and late < 0.35


def test_to_trl_prompt_and_the_environment_default(stored, monkeypatch):
    row = next(r for r in stored if r["data_source"] == "synth_math")
    [message] = to_trl(row)["prompt"]
    assert message["role"] == "user" and message["content"][0] == {"type": "image", "text": None}
    assert message["content"][1]["text"] == row["prompt"][0]["content"].removeprefix("<image>")
    assert call(triune_reward, [row], [f"\\boxed{{{row['ground_truth']}}}"])[0] == 1.0


def test_trl_own_calculate_rewards(stored):
    """TRL's GRPOTrainer._calculate_rewards with our function: None becomes NaN (an unscorable row)."""
    torch = pytest.importorskip("torch")
    trl = pytest.importorskip("trl")
    torch.set_num_threads(1)
    from accelerate import PartialState

    PartialState()
    recorder = Recorder()
    fn = make_reward_function(verifiers=["math"], model_family="qwen2_5_vl")
    rows = stored[18:22]  # two synth_det rows, then two synth_math rows
    assert [r["data_source"] for r in rows] == ["synth_det"] * 2 + ["synth_math"] * 2
    trainer = SimpleNamespace(
        accelerator=SimpleNamespace(device=torch.device("cpu"), is_main_process=True),
        args=SimpleNamespace(report_to=[]),
        state=SimpleNamespace(global_step=0, max_steps=10),
        reward_funcs=[fn],
        reward_processing_classes=[None],
        reward_func_names=[fn.__name__],
        environments=None,
        _log_completion_extra=recorder.log_extra,
        _log_metric=recorder.log_metric,
    )
    completions = [[{"role": "assistant", "content": c}] for c in right_answers(rows)]
    prompts = [to_trl(r)["prompt"] for r in rows]
    out = trl.GRPOTrainer._calculate_rewards(trainer, rows, prompts, completions, [[1]] * len(rows))
    expected = [1.0 if r["reward"]["verifier"] == "math" else float("nan") for r in rows]
    assert out[:, 0].tolist() == pytest.approx(expected, nan_ok=True)
    assert recorder.extra["triune_status"] == ["ok" if e == 1.0 else "skipped" for e in expected]
