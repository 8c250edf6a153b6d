"""The registry of filters: every built-in filter registered, named apart from build rejects."""

from typing import get_args

from triune_data.filters import filter_names, filter_reasons, get_filter
from triune_data.rejects import RejectReason

RULE_FILTERS = {
    "choice_answers",
    "answer_symbols",
    "answer_chars",
    "prompt_tokens",
    "boxes_per_category",
    "box_area",
    "single_multi_ratio",
    "category_balance",
    "phrase_complexity",
    "ocr_language",
    "ocr_verifiable",
    "gold_verifies",
    "image_size",
}


def test_no_filter_name_is_a_build_reject_reason() -> None:
    """A reject's reason says which stage dropped it: a filter's name never means a build check."""
    clash = set(filter_names()) & set(get_args(RejectReason))
    assert not clash, clash


def test_rule_filters_are_registered_with_a_reason() -> None:
    assert set(filter_names()) >= RULE_FILTERS
    reasons = filter_reasons()
    for name in RULE_FILTERS:
        assert get_filter(name).name == name
        assert reasons[name] and "\n" not in reasons[name]
        assert get_filter(name).columns, name  # every rule filter declares what it reads
