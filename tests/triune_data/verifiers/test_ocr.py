"""The `ocr` verifier: normalised exact match against any accepted answer, ANLS as a component."""

import random

import pytest

from triune_data.errors import VerifierError
from triune_data.verifiers import ScoreItem, VerifyContext, score
from triune_data.verifiers.ocr import OcrParams, anls, levenshtein, verify_ocr

CTX = VerifyContext()


def think(answer_part: str) -> str:
    return f"<think>\nThe red octagonal sign at the corner has white letters.\n</think>\n{answer_part}"


@pytest.mark.parametrize(
    ("completion", "gold", "params", "exact", "anls_value"),
    [
        # extraction: block, box inside the block, box, text after </think>, the whole completion
        ("<answer>STOP</answer>", "stop", {}, 1.0, 1.0),
        (think("<answer>\n\\boxed{\\text{STOP}}\n</answer>"), "stop", {}, 1.0, 1.0),
        ("The sign says \\boxed{\\textbf{Stop}}.", "STOP", {}, 1.0, 1.0),
        (think('"Stop."'), "STOP", {}, 1.0, 1.0),
        ("Coca-Cola", "coca-cola", {}, 1.0, 1.0),
        ("<answer>\n\\boxed{EXIT}\n</answer>", "\\boxed{exit}", {}, 1.0, 1.0),  # Orsta: gold boxed too
        # normalisation: NFKC, case, whitespace, surrounding quotes and markdown
        ("<answer>ＳＴＯＰ</answer>", "stop", {}, 1.0, 1.0),  # full-width letters
        ("<answer>  New   York\n</answer>", "new york", {}, 1.0, 1.0),
        ("<answer>**“Main St.”**</answer>", "main st", {}, 1.0, 1.0),
        ("<answer>-5</answer>", "5", {}, 0.0, 0.0),  # signs are kept (distance 1/2 reaches the threshold)
        ("<answer>Stop</answer>", "STOP", {"case_sensitive": True}, 0.0, 0.0),
        ("<answer>555-1234</answer>", "555 1234", {}, 0.0, 0.875),
        ("<answer>555-1234</answer>", "555 1234", {"remove_punctuation": True}, 1.0, 1.0),
        # alternatives (TextVQA keeps every voted spelling)
        ("<answer>stop sign</answer>", "stop", {"alternatives": ["stop sign", "halt"]}, 1.0, 1.0),
        ("<answer>halt</answer>", "stop", {"alternatives": ["stop sign", "halt"]}, 1.0, 1.0),
        # near misses: ANLS partial credit, 0 at or past the threshold
        ("<answer>stp</answer>", "stop", {}, 0.0, 0.75),
        ("<answer>Coca Cola</answer>", "coca-cola", {}, 0.0, 8 / 9),
        ("<answer>pots</answer>", "stop", {}, 0.0, 0.0),  # distance 4/4 (an anagram is not the word)
        ("<answer>yield</answer>", "stop", {}, 0.0, 0.0),
        ("<answer>stop stop stop</answer>", "stop", {}, 0.0, 0.0),
        ("<answer>stp</answer>", "stop", {"anls_threshold": 0.2}, 0.0, 0.0),
        # malformed
        ("<answer></answer>", "stop", {}, 0.0, 0.0),
        ("", "stop", {}, 0.0, 0.0),
        ("<answer>STOP", "stop", {}, 0.0, 0.0),  # unclosed: the whole text "answer>stop" is the answer
        ("I cannot read the sign. It might say stop.", "stop", {}, 0.0, 0.0),
    ],
)  # fmt: skip
def test_ocr_table(completion, gold, params, exact, anls_value):
    verdict = verify_ocr(completion, gold, OcrParams(**params), CTX)
    assert verdict.status == "ok"
    assert verdict.components == {"exact": exact, "anls": pytest.approx(anls_value)}
    assert verdict.accuracy == exact


def test_accuracy_can_be_anls():
    params = OcrParams(accuracy="anls")
    assert verify_ocr("<answer>stp</answer>", "stop", params, CTX).accuracy == pytest.approx(0.75)
    result = score(
        ScoreItem(
            verifier="ocr",
            completion="<answer>stp</answer>",
            ground_truth="stop",
            params={"accuracy": "anls"},
        )
    )
    assert result.reward == pytest.approx(0.75)


def _reference_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_bit_parallel_levenshtein_matches_the_textbook_table():
    rng = random.Random(7)
    for _ in range(400):
        a = "".join(rng.choice("abcé ") for _ in range(rng.randint(0, 90)))
        b = "".join(rng.choice("abcd ") for _ in range(rng.randint(0, 90)))
        assert levenshtein(a, b) == _reference_distance(a, b) == levenshtein(b, a)
    assert levenshtein("kitten", "sitting") == 3


@pytest.mark.parametrize(
    ("pred", "gold", "threshold", "expected"),
    [("stop", "stop", 0.5, 1.0), ("", "", 0.5, 1.0), ("stp", "stop", 0.5, 0.75), ("ab", "abcd", 0.5, 0.0),
     ("ab", "abcd", 0.6, 0.5), ("x" * 10, "x" * 100, 0.5, 0.0)],
)  # fmt: skip
def test_anls(pred, gold, threshold, expected):
    assert anls(pred, gold, threshold) == pytest.approx(expected)


def test_long_answers_are_bounded():
    page = "lorem ipsum " * 2000
    verdict = verify_ocr(f"<answer>{page}</answer>", page.strip(), OcrParams(), CTX)
    assert verdict.accuracy == 1.0 and verdict.components["anls"] == 1.0
    verdict = verify_ocr(f"<answer>{page}x</answer>", page.strip(), OcrParams(), CTX)
    assert verdict.accuracy == 0.0 and "longer than" in verdict.message
    near = verify_ocr(f"<answer>{page[:3000]}x</answer>", page[:3000], OcrParams(), CTX)
    assert near.components["anls"] == pytest.approx(1 - 2 / 3001)  # " x" appended to 2999 characters


@pytest.mark.parametrize(
    ("gold", "params"), [("", {}), ("  ", {}), ('""', {}), ("stop", {"alternatives": ["ok", "..."]})]
)
def test_empty_accepted_answers_are_errors(gold, params):
    with pytest.raises(VerifierError, match="empty after normalisation"):
        verify_ocr("<answer>stop</answer>", gold, OcrParams(**params), CTX)
    assert (
        score(
            ScoreItem(verifier="ocr", completion="<answer>stop</answer>", ground_truth=gold, params=params)
        ).status
        == "error"
    )


@pytest.mark.parametrize("params", [{"anls_threshold": 0}, {"accuracy": "f1"}, {"alternatives": "stop"}])
def test_bad_params_are_errors(params):
    result = score(
        ScoreItem(verifier="ocr", completion="<answer>stop</answer>", ground_truth="stop", params=params)
    )
    assert result.status == "error" and "verifier_params" in result.message


def test_score_combines_format():
    completion = "<think>\nIt reads STOP.\n</think>\n<answer>\nSTOP\n</answer>"
    result = score(
        ScoreItem(
            verifier="ocr", completion=completion, ground_truth="stop", accuracy_weight=1.0, format_weight=1.0
        )
    )
    assert (result.accuracy, result.format, result.reward) == (1.0, 1.0, 1.0)
    result = score(
        ScoreItem(
            verifier="ocr",
            completion="<answer>GO</answer>",
            ground_truth="stop",
            accuracy_weight=1.0,
            format_weight=1.0,
        )
    )
    assert (result.accuracy, result.format, result.reward) == (0.0, 0.0, 0.0)
