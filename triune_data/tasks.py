"""Per-task defaults, following V-Triune's released data (the Orsta-Data-47k rows, docs/vtriune.md §1).

Reasoning, OCR and counting rows: accuracy 1.0, format 0.0. Detection and grounding rows: 1.0 and
0.1. V-Triune scored counting and OCR with math-verify; triune has dedicated verifiers for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from triune_data.types import TASK_CATEGORY


@dataclass(frozen=True)
class TaskDefaults:
    verifier: str
    accuracy_weight: float
    format_weight: float


TASK_DEFAULTS: dict[str, TaskDefaults] = {
    "math": TaskDefaults("math", 1.0, 0.0),
    "puzzle": TaskDefaults("math", 1.0, 0.0),
    "science": TaskDefaults("math", 1.0, 0.0),
    "chart": TaskDefaults("math", 1.0, 0.0),
    "counting": TaskDefaults("counting", 1.0, 0.0),
    "ocr": TaskDefaults("ocr", 1.0, 0.0),
    "detection": TaskDefaults("detection", 1.0, 0.1),
    "grounding": TaskDefaults("grounding", 1.0, 0.1),
}

assert set(TASK_DEFAULTS) == set(TASK_CATEGORY)
