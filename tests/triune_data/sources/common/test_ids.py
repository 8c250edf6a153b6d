"""The one id rule of every adapter."""

import pytest

from triune_data.sources.common.ids import own_id, record_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a", "a"),
        (" a ", " a "),  # kept as written
        ("0", "0"),
        (0, "0"),
        (-3, "-3"),
        (10**30, str(10**30)),
        ("", None),
        (" ", None),
        ("\t\n", None),
        (None, None),
        (True, None),
        (False, None),
        (1.0, None),
        ([1], None),
        ({"id": 1}, None),
    ],
)
def test_own_id(value, expected):
    assert own_id(value) == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"id": "q1", "question_id": 2}, "q1"),
        ({"id": " ", "question_id": 2}, "2"),  # the first key holding an id
        ({"id": None, "question_id": ""}, "line9"),
        ({}, "line9"),
        ("not a mapping", "line9"),
    ],
)
def test_record_id(record, expected):
    assert record_id(record, ("id", "question_id"), position="line9") == expected
