"""`prompt_keys`: the normalised prompt's key, the same on its one-message fast path and its
general path, and whitespace collapsed only where there is something to collapse."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from triune_data.filters.image_keys import prompt_keys


def _msg(content: str | None, role: str | None = "user") -> dict[str, Any]:
    return {"role": role, "content": content}


def _keys(*prompts: list[dict[str, Any]] | None) -> list[tuple[int, int]]:
    rows = pl.DataFrame(
        {"prompt": list(prompts)},
        schema={"prompt": pl.List(pl.Struct({"role": pl.Utf8, "content": pl.Utf8}))},
    )
    return list(prompt_keys(rows).iter_rows())


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("<image>What is  this?", "<image>what is this?", True),  # double space, case
        ("<image>What\tis\nthis?", "<image>what is this?", True),  # tab, newline
        ("<image>What\u00a0is this?", "<image>what is this?", True),  # no-break space is whitespace
        ("  <image>What is this?  ", "<image>what is this?", True),  # surrounding spaces
        ("<image>What is this?", "What is this?<image>", False),  # the placeholder's place counts
        ("<image>What is this?", "<image>What is that?", False),
    ],
)
def test_one_message_prompts(a: str, b: str, same: bool) -> None:
    ka, kb = _keys([_msg(a)], [_msg(b)])
    assert (ka == kb) is same


def test_the_fast_path_equals_the_general_path() -> None:
    """A batch of one-message rows (fast path) and the same rows next to a two-message row
    (general path) get the same keys."""
    texts = ["<image>A  b", "x\ty", "plain text", " <image>Q? "]
    fast = _keys(*([_msg(t)] for t in texts))
    general = _keys(*([_msg(t)] for t in texts), [_msg("sys", "system"), _msg("q")])
    assert fast == general[: len(texts)]
    assert len(set(general)) == len(general)


def test_roles_and_messages_count() -> None:
    one, two, system = _keys([_msg("a b")], [_msg("a"), _msg("b")], [_msg("a b", "system")])
    assert len({one, two, system}) == 3


def test_null_parts_take_the_general_path() -> None:
    """A null content makes its message's line null: the row keys as if that line were absent,
    on the one-message path as on the general one."""
    alone = _keys([_msg(None)], [_msg("x")])
    mixed = _keys([_msg(None)], [_msg("x")], [_msg("y"), _msg("z")])
    assert alone == mixed[:2]
    assert alone[0] == _keys([])[0]
