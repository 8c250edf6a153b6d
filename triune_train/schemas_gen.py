"""Every committed JSON Schema: the data side's (`triune_data.schemas_gen`) and the train recipe's.

`triune_data` never imports `triune_train`, so the collection that includes the training side's
schemas lives here; `triune schemas` and tests/test_schemas.py use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from triune_data.schemas_gen import data_generators


def all_generators() -> dict[str, Callable[[], dict[str, Any]]]:
    """Schema file name -> builder, for every schema committed in `schemas/`."""
    from triune_train.config import train_recipe_json_schema

    return {**data_generators(), "train_recipe.schema.json": train_recipe_json_schema}
