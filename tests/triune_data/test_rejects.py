"""Reject reasons: one list, used by name everywhere, documented in docs/rejects.md."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

from triune_data.rejects import REJECT_REASONS, RejectReason, markdown

ROOT = Path(__file__).resolve().parents[2]
# Everything that carries a reason takes it first (or as `reason=`).
CARRIERS = {"Reject", "BadRecord", "ImageProblem", "_Rejected", "RejectRow"}


def reasons_in_code() -> dict[str, list[str]]:
    """Each string that reaches a reason argument in triune_data, with where it is."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "triune_data").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name not in CARRIERS:
                continue
            args = [kw.value for kw in node.keywords if kw.arg == "reason"] or node.args[:1]
            for arg in args:
                for const in ast.walk(arg):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        found.setdefault(const.value, []).append(f"{path.relative_to(ROOT)}:{const.lineno}")
    return found


def test_every_reason_in_the_code_is_listed_and_every_listed_reason_is_used():
    used = reasons_in_code()
    unlisted = {r: where for r, where in used.items() if r not in REJECT_REASONS}
    assert not unlisted, f"reasons missing from triune_data/rejects.py: {unlisted}"
    assert sorted(REJECT_REASONS) == sorted(used), "a listed reason no code produces: remove it"


def test_no_module_names_a_reason_of_its_own():
    """Reasons are written as RejectReason literals, never kept in module constants."""
    for path in sorted((ROOT / "triune_data").rglob("*.py")):
        if path.name == "rejects.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                assert node.value.value not in REJECT_REASONS, f"{path.relative_to(ROOT)}:{node.lineno}"


def test_the_literal_and_the_descriptions_agree():
    assert tuple(REJECT_REASONS) == get_args(RejectReason)
    assert all(text and "\n" not in text for text in REJECT_REASONS.values())


def test_docs_list_every_reason():
    doc = (ROOT / "docs" / "rejects.md").read_text(encoding="utf-8")
    assert doc == markdown(), "docs/rejects.md is stale: python -m triune_data.rejects > docs/rejects.md"
    for reason in REJECT_REASONS:
        assert f"| `{reason}` |" in doc


@pytest.mark.parametrize("reason", ["crowd_region", "duplicate_id"])
def test_inspect_describes_the_reasons_it_finds(reason, tmp_path):
    from triune_data.inspect import describe_reasons

    assert describe_reasons({reason: 3, "made_up": 1}) == ({reason: REJECT_REASONS[reason]}, ["made_up"])
