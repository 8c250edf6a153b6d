"""Fixtures for the training tests: tiny offline Qwen2.5-VL / Qwen3-VL folders, built once a session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from triune_train.models.loading import Policy


@pytest.fixture(autouse=True)
def _one_torch_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"qwen2_5_vl": folder, "qwen3_vl": folder}``: tiny models saved as HF folders (seed 0)."""
    from triune_train.models.tiny import TINY_FAMILIES, TinySpec, build_tiny

    root = tmp_path_factory.mktemp("tiny_models")
    return {family: build_tiny(TinySpec(family=family), root / family) for family in TINY_FAMILIES}


@pytest.fixture
def tiny_policy(tiny_model_dirs: dict[str, Path]) -> Callable[..., Policy]:
    """``tiny_policy("qwen3_vl")``: a freshly loaded `Policy` (tests may change its weights)."""
    from triune_train.models.loading import load_policy

    def load(family: str = "qwen2_5_vl") -> Policy:
        return load_policy(str(tiny_model_dirs[family]))

    return load
