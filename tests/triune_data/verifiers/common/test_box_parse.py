"""The lenient box parser, on answers shaped like real Qwen2.5-VL / VLM-R1 / Orsta outputs."""

import json

import numpy as np
import pytest

from triune_data.verifiers.common.box_parse import parse_boxes
from triune_data.verifiers.common.box_score import answer_text

DOG = [100.0, 100.0, 300.0, 300.0]

# (answer text, expected boxes, expected labels, invalid, duplicates)
CASES = [
    # VLM-R1 RefCOCO answers: a code fence, often closed with a second "```json"
    ('\n```json\n[\n\t{"bbox_2d": [0, 134, 644, 415], "label": "table with bananas"}\n]\n```json\n',
     [[0, 134, 644, 415]], ["table with bananas"], 0, 0),
    ('\n```json\n[\n  {\n    "bbox_2d": [16, 135, 140, 468],\n    "label": "man standing far left in orange"\n  }\n]\n```\n',
     [[16, 135, 140, 468]], ["man standing far left in orange"], 0, 0),
    # Orsta prompt example: Python-style single quotes
    ("\n[{'bbox_2d': [484, 227, 818, 998], 'label': 'shiba dog'}, {'bbox_2d': [274, 468, 427, 652], 'label': 'dog collar'}]\n",
     [[484, 227, 818, 998], [274, 468, 427, 652]], ["shiba dog", "dog collar"], 0, 0),
    # escaped quotes inside a label (VLM-R1 refcocog); V-Triune strips backslashes and loses the box
    ('[{"bbox_2d": [406, 253, 551, 448], "label": "the chair in front of the bag that says \\" je suis \\""}]',
     [[406, 253, 551, 448]], ['the chair in front of the bag that says " je suis "'], 0, 0),
    # trailing commas inside objects and the list (Qwen2.5-VL cookbook OCR output)
    ('```json\n[\n    {\n        "bbox_2d": [77, 934, 159, 958], "label": "CASH",\n    },\n'
     '    {\n        "bbox_2d": [667, 942, 763, 966], "label": "RM8.75",\n    },\n]\n```',
     [[77, 934, 159, 958], [667, 942, 763, 966]], ["cash", "rm8.75"], 0, 0),
    # truncated generation: complete objects are kept
    ('[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8], "label": "b"}, {"bbox_2d": [9, 10',
     [[1, 2, 3, 4], [5, 6, 7, 8]], ["a", "b"], 0, 0),
    ('\n```json\n[\n\t{"bbox_2d": [12, 40, 300, 310], "label": "largest brown cow looking at the', [], [], 0, 0),
    # nested brackets, label first, extra keys, numbers as strings/floats/exponents
    ('[{"bbox_2d": [[100, 100, 300, 300]], "label": "dog"}]', [DOG], ["dog"], 0, 0),
    ('[[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}]]', [DOG], ["dog"], 0, 0),
    ('[{"label": "dog", "confidence": 0.93, "bbox_2d": [100, 100, 300, 300]}]', [DOG], ["dog"], 0, 0),
    ('[{"bbox_2d": ["100", "100.0", " 3e2", 300], "label": "dog"}]', [DOG], ["dog"], 0, 0),
    ('[{"bbox_2d": [-5.5, 0.25, 1.5e3, +7], "label": "dog"}]', [[-5.5, 0.25, 1500, 7]], ["dog"], 0, 0),
    # unquoted keys and values (JSON5-ish), missing commas between objects
    ("[{bbox_2d: [100, 100, 300, 300], label: dog}]", [DOG], ["dog"], 0, 0),
    ('[{"bbox_2d": [1, 2, 3, 4] "label": "a"} {"bbox_2d": [5, 6, 7, 8], "label": "b"}]',
     [[1, 2, 3, 4], [5, 6, 7, 8]], ["a", "b"], 0, 0),
    # prose around the list, with apostrophes that are not quotes
    ("Here's what I found: [{'bbox_2d': [100, 100, 300, 300], 'label': 'dog'}]. That's all.", [DOG], ["dog"], 0, 0),
    # labels: case, whitespace and unicode
    ('[{"bbox_2d": [100, 100, 300, 300], "label": "  Shiba Dog "}]', [DOG], ["shiba dog"], 0, 0),
    ('[{"bbox_2d": [100, 100, 300, 300], "label": "狗"}, {"bbox_2d": [1, 1, 2, 2], "label": "\\u72d7"}]',
     [DOG, [1, 1, 2, 2]], ["狗", "狗"], 0, 0),
    ('[{"bbox_2d": [1, 1, 2, 2], "label": "STRASSE"}, {"bbox_2d": [1, 1, 3, 3], "label": "Straße"}]',
     [[1, 1, 2, 2], [1, 1, 3, 3]], ["strasse", "strasse"], 0, 0),
    ('[{"bbox_2d": [1, 1, 2, 2], "label": "\\ud83d\\udc36 dog"}]', [[1, 1, 2, 2]], ["🐶 dog"], 0, 0),
    # duplicates: same coordinates (whatever the label) are dropped after the first, as V-Triune
    ('[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}, {"bbox_2d": [100, 100, 300, 300], "label": "dog"},'
     ' {"bbox_2d": [100.0, 100, 300, 300], "label": "cat"}]', [DOG], ["dog"], 0, 2),
    # invalid boxes: unordered, non-finite, wrong arity, non-numeric, missing label
    ('[{"bbox_2d": [300, 100, 100, 300], "label": "dog"}, {"bbox_2d": [100, 100, 300, 300], "label": "dog"}]',
     [DOG], ["dog"], 1, 0),
    ('[{"bbox_2d": [NaN, 1, 2, 3], "label": "a"}, {"bbox_2d": ["nan", 1, 2, 3], "label": "a"},'
     ' {"bbox_2d": [1, 1, Infinity, 3], "label": "a"}, {"bbox_2d": [1, 1, "-inf", 3], "label": "a"},'
     ' {"bbox_2d": [1, 1, 1e999, 3], "label": "a"}]', [], [], 5, 0),
    ('[{"bbox_2d": [1, 2, 3], "label": "a"}, {"bbox_2d": [1, 2, 3, 4, 5], "label": "a"},'
     ' {"bbox_2d": ["x", 2, 3, 4], "label": "a"}, {"bbox_2d": "1, 2, 3, 4", "label": "a"}]', [], [], 4, 0),
    ('[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [1, 2, 3, 4], "label": null}, {"bbox_2d": [1, 2, 3, 4], "label": 7}]',
     [], [], 3, 0),
    # malformed objects are dropped, their well-formed neighbours kept
    ("[{'bbox_2d': [1, 2, 3, 4], 'label': 'man's hat'}, {'bbox_2d': [5, 6, 7, 8], 'label': 'hat'}]",
     [[5, 6, 7, 8]], ["hat"], 0, 0),
    ('[{"bbox_2d": [1, 2, 3, 4], "label": "a"], {"bbox_2d": [5, 6, 7, 8], "label": "b"}]', [[5, 6, 7, 8]], ["b"], 0, 0),
    ('[{"bbox_2d": [1, 2, 3, 4], "label": }, {"bbox_2d": [5, 6, 7, 8], "label": "b"}]', [[5, 6, 7, 8]], ["b"], 0, 0),
    ('[{"bbox_2d" [1, 2, 3, 4], "label": "a"}, {"bbox_2d": (5, 6, 7, 8), "label": "b"}]', [], [], 0, 0),
    # other shapes that are not boxes
    ('```json\n{\n  "bounding_box": [12, 30, 200, 310]\n}\n```', [], [], 0, 0),
    ("The dog is in the middle of the picture.", [], [], 0, 0),
    ("", [], [], 0, 0),
]  # fmt: skip


@pytest.mark.parametrize(("text", "boxes", "labels", "invalid", "duplicates"), CASES)
def test_parse_table(text, boxes, labels, invalid, duplicates):
    parsed = parse_boxes(text)
    np.testing.assert_array_equal(parsed.boxes, np.array(boxes, dtype=float).reshape(-1, 4))
    assert list(parsed.labels) == labels
    assert (parsed.invalid, parsed.duplicates) == (invalid, duplicates)
    assert not parsed.capped and not parsed.aborted


@pytest.mark.parametrize(
    ("text", "boxes"),
    [
        ("[0,1,208,314]", [[0, 1, 208, 314]]),  # a VLM-R1 answer without any object
        ("[[0, 1, 208, 314], [10, 10, 20, 20]]", [[0, 1, 208, 314], [10, 10, 20, 20]]),
        ('```json\n[\n\t{"bbox_2d": [12, 40, 300, 310]}\n]\n```', [[12, 40, 300, 310]]),
        ("[1, 2, 3, 4, 5]", []),
        ('["a", "b", "c", "d"]', []),
    ],
)
def test_unlabelled_boxes_when_labels_are_not_required(text, boxes):
    parsed = parse_boxes(text, require_label=False)
    np.testing.assert_array_equal(parsed.boxes, np.array(boxes, dtype=float).reshape(-1, 4))
    assert parsed.labels == (None,) * len(boxes)
    # with labels required the same boxes are invalid, never silently labelled
    assert len(parse_boxes(text, require_label=True)) == 0


@pytest.mark.parametrize(("text", "explicit_empty"), [("[]", True), ("\n```json\n[]\n```\n", True), ("[ ]", True),
                                                      ("{}", False), ("[[]]", False), ("none", False)])  # fmt: skip
def test_explicit_empty_answer(text, explicit_empty):
    parsed = parse_boxes(text)
    assert len(parsed) == 0 and parsed.explicit_empty is explicit_empty


@pytest.mark.parametrize(
    ("completion", "required", "expected"),
    [
        ("<think>\nhm\n</think>\n<answer>\n[1, 2, 3, 4]\n</answer>", True, "\n[1, 2, 3, 4]\n"),
        ("<answer>a</answer><answer>b</answer>", True, "a"),
        ("<think>\nhm\n</think>\n```json\n[1, 2, 3, 4]\n```", True, None),
        (
            "<think>\n[5, 5, 6, 6]\n</think>\n```json\n[1, 2, 3, 4]\n```",
            False,
            "\n```json\n[1, 2, 3, 4]\n```",
        ),
        ("```json\n[1, 2, 3, 4]\n```", False, "```json\n[1, 2, 3, 4]\n```"),
        ("</answer> <answer> [1, 2, 3, 4]", True, None),
    ],
)
def test_answer_text(completion, required, expected):
    assert answer_text(completion, required=required) == expected


def test_answer_text_without_closing_tag_is_linear():
    # The plain `<answer>(.*?)</answer>` search is quadratic here (every opening tag scans to the end).
    completion = "</answer>" + "<answer>" * 125_000
    assert answer_text(completion) is None


def test_cap_on_box_count():
    text = json.dumps([{"bbox_2d": [i, i, i + 10, i + 10], "label": "dog"} for i in range(10_000)])
    parsed = parse_boxes(text, max_boxes=1000)
    assert parsed.capped and len(parsed) == 1000
    assert parsed.boxes[-1].tolist() == [999, 999, 1009, 1009]
    assert "more than 1000 boxes" in "; ".join(parsed.notes(1000))
    assert not parse_boxes(text, max_boxes=10_000).capped


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 5000 + "1, 2, 3, 4" + "]" * 5000, "nesting deeper"),
        ('{"a": ' * 5000, "nesting deeper"),
        ("[" + "," * 1_000_000 + "]", "tokens"),
        ("[" + '"a",' * 250_000 + "]", "tokens"),
        ("'" * 1_000_000, "tokens"),
    ],
)
def test_pathological_inputs_stop_early(text, reason):
    parsed = parse_boxes(text)
    assert len(parsed) == 0 and reason in parsed.aborted


def test_boxes_before_the_limit_survive_deep_nesting():
    text = '[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}, ' + "[" * 100
    parsed = parse_boxes(text)
    assert parsed.boxes.tolist() == [DOG] and "nesting" in parsed.aborted


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "1" * 1_000_000,
        '"' + "x" * 1_000_000,
        "[" + "9" * 1_000_000 + ", 1, 2, 3]",
        "{" * 20 + "}" * 1_000_000,
        "\\" * 1_000_000,
    ],
)
def test_megabyte_strings_parse_to_nothing(text):
    parsed = parse_boxes(text)
    assert len(parsed) == 0


@pytest.mark.parametrize(
    ("text", "label"),
    [
        (
            '[{"bbox_2d": [77, 886, 263, 910], "text_content": "Payment Mode",},]',
            "payment mode",
        ),  # Qwen2.5-VL OCR
        ('[{"bbox_2d": [1, 2, 3, 4], "text": "STOP"}]', "stop"),
        ('[{"bbox_2d": [1, 2, 3, 4], "category": "dog"}]', "dog"),
        ('[{"bbox_2d": [1, 2, 3, 4], "name": "dog"}]', "dog"),
        ('[{"bbox_2d": [1, 2, 3, 4], "class": "dog"}]', "dog"),
        ('[{"bbox_2d": [1, 2, 3, 4], "ref": "the left man"}]', "the left man"),
        ('[{"bbox_2d": [1, 2, 3, 4], "caption": "a red car"}]', "a red car"),
        ("[{'bbox_2d': [1, 2, 3, 4], 'Category': 'dog'}]", "dog"),  # any case, Python quotes
        ('[{"bbox_2d": [1, 2, 3, 4], "name": "cat", "label": "dog"}]', "dog"),  # `label` first
        ('[{"bbox_2d": [1, 2, 3, 4], "label": 3, "name": "dog"}]', "dog"),  # text beats a class id
        ('[{"bbox_2d": [1, 2, 3, 4], "text_content": "A", "text": "B"}]', "a"),  # list order
        ('[{"bbox_2d": [1, 2, 3, 4], "text": "dog"}, {"bbox_2d": [5', "dog"),  # tokenizer path: truncated
        ('[{"bbox_2d": [1, 2, 3, 4], "category": "dog"} oops', "dog"),
    ],
)
def test_label_aliases(text, label):
    parsed = parse_boxes(text)
    assert parsed.labels == (label,) and parsed.invalid == 0, parsed


def test_every_label_key_is_read_on_both_paths():
    from triune_data.verifiers.common.box_parse import LABEL_KEYS

    for key in LABEL_KEYS:
        plain = parse_boxes(f'[{{"bbox_2d": [1, 2, 3, 4], "{key}": "x"}}]')
        tolerant = parse_boxes(f'[{{"bbox_2d": [1, 2, 3, 4], "{key}": "x",}} junk')
        assert plain.labels == tolerant.labels == ("x",), key
