import pytest
import torch

from triune_train.rollout.base import RolloutError, SamplingParams, finish_rollout, neutralize


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n": 0}, "n must be >= 1"),
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"temperature": 0.0}, "temperature must be > 0 when sampling"),
        ({"temperature": float("nan")}, "temperature must be > 0"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, "top_p must be in"),
        ({"top_k": -1}, "top_k must be >= 0"),
    ],
)
def test_bad_sampling_params(kwargs: dict, error: str) -> None:
    with pytest.raises(RolloutError, match=error):
        SamplingParams(**{"n": 2, "max_new_tokens": 8, **kwargs})


def test_greedy_ignores_temperature() -> None:
    assert SamplingParams(n=1, max_new_tokens=4, greedy=True, temperature=0.0).greedy


@pytest.mark.parametrize(
    ("ids", "banned", "expected", "count"),
    [
        ([1, 2, 3], [9], [1, 2, 3], 0),
        ([9, 2, 9, 8], [9, 8], [0, 2, 0, 0], 3),
        ([], [9], [], 0),
    ],
)
def test_neutralize(ids: list[int], banned: list[int], expected: list[int], count: int) -> None:
    out, n = neutralize(torch.tensor(ids, dtype=torch.long), banned, 0)
    assert out.tolist() == expected and n == count


EOS, EOT, PAD, IMG, SPACE = 50, 51, 51, 60, 0


@pytest.mark.parametrize(
    ("generated", "completion", "truncated", "neutralized"),
    [
        ([5, 6, EOS, PAD, PAD], [5, 6, EOS], False, 0),  # EOS kept, padding after it dropped
        ([5, EOT, 7], [5, EOT], False, 0),  # any EOS id ends it
        ([EOS], [EOS], False, 0),
        ([5, 6, 7], [5, 6, 7], True, 0),  # no EOS: truncated
        ([5, IMG, 7, IMG, EOS], [5, SPACE, 7, SPACE, EOS], False, 2),  # placeholders neutralised, counted
        ([5, EOS, IMG], [5, EOS], False, 0),  # nothing after EOS counts
    ],
)
def test_finish_rollout(
    generated: list[int], completion: list[int], truncated: bool, neutralized: int
) -> None:
    logps = torch.arange(len(generated), dtype=torch.float32)
    rollout = finish_rollout(
        3,
        torch.tensor(generated),
        eos_ids=[EOS, EOT],
        banned_ids=[IMG],
        neutral_id=SPACE,
        decode=lambda ids: ",".join(map(str, ids)),
        engine_logprobs=logps,
    )
    assert rollout.prompt_index == 3 and rollout.completion_ids.tolist() == completion
    assert rollout.truncated is truncated and rollout.neutralized == neutralized
    assert rollout.text == ",".join(map(str, completion))
    assert (
        rollout.engine_logprobs is not None
        and rollout.engine_logprobs.tolist() == logps[: len(completion)].tolist()
    )
