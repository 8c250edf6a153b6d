"""Filter recipes: an ordered list of registered filters with their params, validated with file:line.

    name: vtriune
    seed: 0
    description: V-Triune's rule filters (paper §5.1.1.1)
    stages:
      - filter: answer_chars      # a registered filter (docs/filtering.md lists them)
        max_chars: 20             # its params, and its scope (`tasks`, `data_sources`)

The JSON Schema (`schemas/filter-recipe.schema.json`) is generated from the registered filters:
one if/then branch per filter, whose `then` is that filter's pydantic schema. Errors read like a
build recipe's: `FILE:LINE: stages[2].max_chars: ...`, before any work. The recipe hash is the
sha256 of the resolved recipe (validated, every default filled), so a changed default changes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triune_data.errors import RecipeError
from triune_data.filters.base import Filter, filter_names, get_filter
from triune_data.recipe import NAME_PATTERN, OutputModel, dotted_path, read_yaml, validate_yaml, yaml_line


class FilterRecipe(BaseModel):
    """The recipe's own keys; `stages` are checked against each filter's model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    seed: int = Field(0, description="Every random choice of every filter derives from it.")
    output: OutputModel = Field(default_factory=OutputModel)
    stages: list[dict[str, Any]] = Field(
        min_length=1, description="Filters in the order they run: `filter: NAME` and its params."
    )


def filter_recipe_json_schema() -> dict[str, Any]:
    """The filter recipe schema: the recipe's keys plus, per registered filter, its params."""
    schema = FilterRecipe.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.setdefault("$defs", {})
    names = filter_names()
    branches = []
    for name in names:
        cls = get_filter(name)
        sub = cls.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        sub["properties"] = {"filter": {"const": name}, **sub.get("properties", {})}
        sub.setdefault("required", [])
        sub["required"] = ["filter", *sub["required"]]
        sub["additionalProperties"] = False
        defs[f"filter_{name}"] = sub
        branches.append(
            {
                "if": {"properties": {"filter": {"const": name}}, "required": ["filter"]},
                "then": {"$ref": f"#/$defs/filter_{name}"},
            }
        )
    schema["properties"]["stages"]["items"] = {
        "type": "object",
        "required": ["filter"],
        "properties": {"filter": {"enum": names, "description": "A registered filter."}},
        "allOf": branches,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://triune.dev/schemas/filter-recipe.schema.json",
        **schema,
    }


@dataclass(frozen=True)
class LoadedFilterRecipe:
    """A validated filter recipe: its filters, built, and its resolved form and hash."""

    recipe: FilterRecipe
    path: Path
    filters: tuple[Filter, ...]
    resolved: dict[str, Any]
    hash: str

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def resolve(recipe: FilterRecipe, filters: tuple[Filter, ...]) -> dict[str, Any]:
    """The recipe with every default filled: what the hash covers and `recipe.json` holds."""
    out = recipe.model_dump(mode="json")
    out["stages"] = [{"filter": f.name, **f.model_dump(mode="json")} for f in filters]
    return out


def recipe_hash(resolved: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()


def load_filter_recipe(path: str | Path) -> LoadedFilterRecipe:
    """Read and validate a filter recipe; RecipeError names file, line and field on any problem."""
    path = Path(path)
    data, node = read_yaml(path)

    def fail(loc: list[Any], message: str) -> RecipeError:
        line = yaml_line(node, loc) if node is not None else 0
        return RecipeError(f"{path}:{line}: {dotted_path(loc)}: {message}")

    if not isinstance(data, dict):
        raise RecipeError(f"{path}:1: a filter recipe is a mapping with at least `name` and `stages`")
    # An unknown filter first, in words: the schema would only say "not one of [...]".
    for i, stage in enumerate(data.get("stages") or []):
        name = stage.get("filter") if isinstance(stage, dict) else None
        if isinstance(name, str) and name not in filter_names():
            known = ", ".join(filter_names())
            raise fail(["stages", i, "filter"], f"unknown filter {name!r} (known: {known})")
    validate_yaml(data, node, filter_recipe_json_schema(), path)
    recipe = FilterRecipe.model_validate(data)
    filters = []
    for i, stage in enumerate(recipe.stages):
        params = {k: v for k, v in stage.items() if k != "filter"}
        try:
            filters.append(get_filter(stage["filter"]).model_validate(params))
        except ValidationError as exc:  # a model validator the schema cannot express
            err = exc.errors(include_url=False)[0]
            raise fail(["stages", i, *err["loc"]], err["msg"]) from None
    built = tuple(filters)
    resolved = resolve(recipe, built)
    return LoadedFilterRecipe(recipe, path, built, resolved, recipe_hash(resolved))


__all__ = [
    "FilterRecipe",
    "LoadedFilterRecipe",
    "filter_recipe_json_schema",
    "load_filter_recipe",
    "recipe_hash",
    "resolve",
]
