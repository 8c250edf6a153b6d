"""`strip_units`: one table of Latin, superscript and Chinese units, and what must survive it."""

import pytest

from triune_data.verifiers import ScoreItem, score
from triune_data.verifiers.common.units import UNITS, strip_units


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        # Latin, plain and with exponents
        ("12 cm", "12"),
        ("12cm", "12"),
        ("12cm²", "12"),
        ("12 m²", "12"),
        ("12 dm³", "12"),
        ("12 cm^2", "12"),
        ("12 cm^{2}", "12"),
        ("12 m^2", "12"),
        ("12 square meters", "12"),
        ("12 sq cm", "12"),
        ("3 hours.", "3."),
        ("12 kg", "12"),
        ("12 mL", "12"),
        ("12°C", "12"),
        ("5 m/s", "5"),
        ("5 m/s^2", "5"),
        ("12 km/h", "12"),
        # LaTeX wrappers and spacing
        ("12 \\text{cm}^2", "12"),
        ("12\\,\\mathrm{cm^2}", "12"),
        ("$12\\text{ cm}$", "$12$"),
        ("\\boxed{12 cm^2}", "\\boxed{12}"),
        ("\\frac{1}{2} m", "\\frac{1}{2}"),
        # after π
        ("4πcm", "4π"),
        ("4\\pi cm", "4\\pi"),
        ("4\\pi \\text{ cm}^2", "4\\pi"),
        # Chinese
        ("6米", "6"),
        ("12海里", "12"),
        ("12平方米", "12"),
        ("12平方厘米", "12"),
        ("12立方米", "12"),
        ("3小时", "3"),
        ("12千米/小时", "12"),
        ("12千米每小时", "12"),
        ("5个", "5"),
        ("12元", "12"),
        ("60度", "60°"),
        # not units: left as they are
        ("2m + 3", "2m + 3"),
        ("12 more apples", "12 more apples"),
        ("in 3 steps", "in 3 steps"),
        ("x^2 + 12", "x^2 + 12"),
        ("12%", "12%"),
        ("2^{10}", "2^{10}"),
        ("3\\sqrt{2}", "3\\sqrt{2}"),
        ("60°", "60°"),
    ],
)
def test_strip_units_table(text, stripped):
    assert strip_units(text) == stripped


def test_every_unit_of_the_table_is_stripped_after_a_number():
    for kind, units in UNITS.items():
        for unit in units:
            expected = "7°" if unit == "度" else "7"
            assert strip_units(f"7{unit}") == expected, (kind, unit)
            assert strip_units(f"7 {unit}.") == expected + ".", (kind, unit)


GOLDS = [
    "12cm²",
    "12 cm^{2}",
    "12cm^2",
    "12 m^2",
    "12 m²",
    "12 dm³",
    "12 mL",
    "12 km/h",
    "12海里",
    "12千米/小时",
]


@pytest.mark.parametrize("gold", GOLDS)
def test_math_scores_a_number_against_a_gold_with_units_and_the_reverse(gold):
    for completion, ground_truth in [
        ("\\boxed{12}", gold),
        (f"\\boxed{{{gold}}}", "12"),
        (f"\\boxed{{{gold}}}", gold),
    ]:
        result = score(ScoreItem(verifier="math", completion=completion, ground_truth=ground_truth))
        assert (result.status, result.accuracy) == ("ok", 1.0), (completion, ground_truth, result.message)


def test_math_reads_a_unit_after_pi():
    result = score(ScoreItem(verifier="math", completion="\\boxed{4\\pi}", ground_truth="4πcm"))
    assert (result.status, result.accuracy) == ("ok", 1.0)
