"""phrase_complexity on hand-made grounding rows."""

from pathlib import Path

import pytest

from tests.triune_data.filters._rows import context, outcome, rows, sample, with_null
from triune_data.filters.phrases import PhraseComplexity
from triune_data.types import Sample


def ground(id: str, *labels: str) -> Sample:
    return sample(id, task="grounding", answer="", boxes=[(label, 0.0, 0.0, 5.0, 5.0) for label in labels])


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("man on the left", None),
        ("black and white dog", None),  # one joining word is allowed
        (
            "the man who holds a cup and wears a hat",
            "'the man who holds a cup and wears a hat' has 2 joining words (max 1)",
        ),
        ("one two three four five six seven eight nine ten", None),
        (
            "one two three four five six seven eight nine ten eleven",
            "'one two three four five six seven eight nine ten eleven' has 11 words (max 10)",
        ),
        ("", "'' has 0 words (min 1)"),
        ("12 #", "'12 #' has 0 words (min 1)"),  # no word with a letter
        ("Android robot", None),  # "and" inside a word is not a joining word
    ],
)
def test_phrase_complexity(tmp_path: Path, label: str, expected: str | None) -> None:
    verdict = PhraseComplexity().apply(rows(ground("a", label)), context(tmp_path))
    assert outcome(verdict) == [(expected is not None, expected)]


def test_phrase_complexity_params_several_labels_and_nulls(tmp_path: Path) -> None:
    batch = rows(
        ground("a", "red car", "red car"),
        ground("b", "red car", "the car that is parked by the red house"),
        ground("c"),
        ground("d", "red car"),
    )
    batch = with_null(batch, "boxes", 3)
    filt = PhraseComplexity(max_words=4, max_joins=0, min_words=2)
    assert outcome(filt.apply(batch, context(tmp_path))) == [
        (False, None),
        (True, "'the car that is parked by the red house' has 9 words (max 4)"),
        (False, None),  # no expression: nothing to judge
        (False, None),
    ]
    assert outcome(filt.apply(rows(ground("e", "car")), context(tmp_path))) == [
        (True, "'car' has 1 words (min 2)")
    ]
    assert PhraseComplexity().tasks == ["grounding"]
