"""ocr_language and ocr_verifiable on hand-made OCR rows."""

from pathlib import Path

import pytest

from tests.triune_data.filters._rows import context, outcome, rows, sample, with_null
from triune_data.filters.ocr import OcrLanguage, OcrVerifiable
from triune_data.types import Sample


def ocr(answer: str, id: str = "a") -> Sample:
    return sample(id, task="ocr", answer=answer, verifier="ocr")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("STOP", None),
        ("Café 12:30 $4.99!", None),  # accented Latin, digits, punctuation and symbols
        ("EXIT 出口", "'出' is not Latin"),
        ("Привет", "'П' is not Latin"),
        ("", None),
        ("→ 42 ©", None),
    ],
)
def test_ocr_language(tmp_path: Path, answer: str, expected: str | None) -> None:
    verdict = OcrLanguage().apply(rows(ocr(answer)), context(tmp_path))
    assert outcome(verdict) == [(expected is not None, expected)]


def test_ocr_language_scripts_and_null(tmp_path: Path) -> None:
    batch = with_null(rows(ocr("EXIT 出口", "a"), ocr("Привет", "b"), ocr("x", "c")), "answer", 2)
    assert outcome(OcrLanguage(scripts=["Latin", "Han"]).apply(batch, context(tmp_path))) == [
        (False, None),
        (True, "'П' is not Latin/Han"),
        (False, None),
    ]
    assert OcrLanguage().tasks == ["ocr"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("STOP", None),
        ("555-1234", None),
        ("", "empty"),
        ("   ", "empty"),
        ("###", "placeholder '###'"),
        (" Unanswerable ", "placeholder 'Unanswerable'"),
        ("<unk>", "placeholder '<unk>'"),
        ("...", "no letter or digit in '...'"),
        ("?!", "no letter or digit in '?!'"),
        ("a" * 100, None),
        ("a" * 101, "101 chars"),
    ],
)
def test_ocr_verifiable(tmp_path: Path, answer: str, expected: str | None) -> None:
    verdict = OcrVerifiable().apply(rows(ocr(answer)), context(tmp_path))
    assert outcome(verdict) == [(expected is not None, expected)]


def test_ocr_verifiable_params_and_null(tmp_path: Path) -> None:
    batch = with_null(
        rows(ocr("STOP", "a"), ocr("N/A", "b"), ocr("blurry", "c"), ocr("abcdef", "d")), "answer"
    )
    filt = OcrVerifiable(placeholders=["BLURRY"], max_chars=5)
    assert outcome(filt.apply(batch, context(tmp_path))) == [
        (True, "empty"),  # a null label has nothing to verify
        (False, None),  # "n/a" is no longer a placeholder
        (True, "placeholder 'blurry'"),
        (True, "6 chars"),
    ]
    assert OcrVerifiable().tasks == ["ocr"]
