"""Build recipes: typed, validated against `schemas/recipe.schema.json`, errors with file:line.

A recipe is sparse YAML over the defaults below. Each source names an adapter and gives that
adapter's typed `options`; the JSON Schema is generated from these models and the registered
adapters' options models (a test fails if the committed file drifts).

    name: demo
    seed: 0
    prompts: prompts/vtriune.yaml        # optional: a file, an inline mapping task -> pool, or
                                         # (omitted) the pools shipped in triune_data/prompts/
    sources:
      - adapter: coco
        data_source: coco_det
        split: train
        options: {annotations: coco/instances.json, images: coco/images, mode: detection}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from triune_data.errors import RecipeError
from triune_data.images import MAX_IMAGE_BYTES
from triune_data.sources.base import PromptPool, get_source, source_names

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RewardOverride(_Model):
    """Override the task defaults for every sample of a source."""

    verifier: str | None = Field(None, description="Registered verifier name (default: the task's verifier).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Verifier params; checked by the verifier."
    )
    accuracy_weight: Annotated[float, Field(ge=0)] | None = None
    format_weight: Annotated[float, Field(ge=0)] | None = None


class SourceEntry(_Model):
    adapter: str = Field(description="Registered source adapter name.")
    data_source: str = Field(
        pattern=NAME_PATTERN, description="Key for per-source metrics, configs and files."
    )
    split: str = Field("train", pattern=NAME_PATTERN)
    limit: Annotated[int, Field(ge=0)] | None = Field(None, description="Read at most this many records.")
    sample_weight: Annotated[float, Field(gt=0)] = 1.0
    license: str | None = None
    revision: str | None = None
    reward: RewardOverride = Field(default_factory=RewardOverride)
    options: dict[str, Any] = Field(default_factory=dict, description="The adapter's own options.")


class PoolModel(_Model):
    templates: list[str] = Field(min_length=1, description="Paraphrases of the instruction; `{field}` slots.")
    suffixes: list[Annotated[list[str], Field(min_length=1)]] = Field(
        default_factory=list, description="Pools of sentences appended in order, one picked from each."
    )
    joiner: str = "\n\n"
    image_prefix: str = "<image>"


class ImagesModel(_Model):
    check: Literal["header", "decode"] = Field(
        "header", description="header: size and end marker; decode: full decode."
    )
    max_pixels: Annotated[int, Field(gt=0)] = 89_478_485
    max_aspect_ratio: Annotated[float, Field(ge=1)] = 200.0
    max_bytes: Annotated[int, Field(gt=0)] = Field(
        MAX_IMAGE_BYTES, description="Images with more bytes are rejected (image_too_large), unread."
    )
    allow_outside_root: bool = Field(
        False,
        description="Accept image paths outside their images folder (`../`, absolute); default: path_outside_root.",
    )
    exif_box_frame: Literal["reject", "displayed", "stored"] = Field(
        "reject",
        description=(
            "Boxes on an image with an EXIF rotation or flip were drawn on: the image as viewers show it "
            "(displayed), or its stored pixels (stored, turned into the displayed frame); reject: unknown."
        ),
    )
    box_tolerance_px: Annotated[float, Field(ge=0)] = Field(
        2.0,
        description="Boxes overshooting the image by at most this are clipped; beyond, the row is rejected.",
    )


class OutputModel(_Model):
    shard_size_mb: Annotated[float, Field(gt=0)] = 256.0
    row_group_mb: Annotated[float, Field(gt=0)] = 32.0


DEFAULT_PROMPTS = Path(__file__).resolve().parent / "prompts" / "vtriune.yaml"


class Recipe(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    seed: int = 0
    prompts: str | dict[str, PoolModel] | None = Field(
        None,
        description="Prompt pools per task: a YAML file (relative to the recipe) or inline; "
        "default: V-Triune's pools, shipped with triune (triune_data/prompts/vtriune.yaml).",
    )
    check_ground_truth: Literal["fast", "full"] = Field(
        "fast",
        description="fast: every verifier's cheap ground-truth check; full: also parse each math "
        "ground truth with math-verify, as scoring will (about 2 ms a row, see docs/decisions.md).",
    )
    images: ImagesModel = Field(default_factory=ImagesModel)
    output: OutputModel = Field(default_factory=OutputModel)
    sources: list[SourceEntry] = Field(min_length=1)


class LoadedRecipe:
    """A validated recipe with its prompt pools resolved and typed adapter options."""

    def __init__(self, recipe: Recipe, path: Path, prompts: dict[str, PoolModel], options: list[Any]):
        self.recipe = recipe
        self.path = path
        self.base_dir = path.parent
        self.prompts = {
            task: PromptPool(
                tuple(p.templates), tuple(tuple(s) for s in p.suffixes), p.joiner, p.image_prefix
            )
            for task, p in prompts.items()
        }
        self.options = options
        resolved = recipe.model_dump(mode="json")
        resolved["prompts"] = {k: v.model_dump(mode="json") for k, v in sorted(prompts.items())}
        self.resolved = resolved
        self.hash = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# JSON Schema


def recipe_json_schema() -> dict[str, Any]:
    """The recipe schema: the generic structure plus, per adapter, the schema of its options."""
    schema = Recipe.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.setdefault("$defs", {})
    names = source_names()
    entry = defs["SourceEntry"]
    entry["properties"]["adapter"]["enum"] = names
    branches = []
    for name in names:
        opts = get_source(name).options
        sub = opts.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[opts.__name__] = sub
        branches.append(
            {
                "if": {"properties": {"adapter": {"const": name}}, "required": ["adapter"]},
                "then": {"properties": {"options": {"$ref": f"#/$defs/{opts.__name__}"}}},
            }
        )
    entry["allOf"] = branches
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://triune.dev/schemas/recipe.schema.json",
        **schema,
    }


def prompts_json_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": {"$ref": "#/$defs/PoolModel"},
        "$defs": {"PoolModel": PoolModel.model_json_schema()},
    }


# ----------------------------------------------------------------------------------------------
# Loading with line numbers


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """`path` parsed as YAML: (the data, its node tree for `yaml_line`; None for an empty file).

    Any problem is a one-line RecipeError naming the file (and the line, for a syntax error).
    Shared by every recipe reader (build, train, filter) so their messages read alike.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read ({exc})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    return data, node


def yaml_line(node: yaml.Node, path: Sequence[Any]) -> int:
    r"""1-based line of the value at key `path` in a `read_yaml` node tree (the deepest that exists).

    >>> tree = yaml.compose("a:\n  b: 1\n  c:\n    - x\n    - y\n", Loader=yaml.SafeLoader)
    >>> yaml_line(tree, ["a", "c", 1]), yaml_line(tree, ["a", "missing"])
    (5, 2)
    """
    for key in path:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    node = v
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node.start_mark.line + 1


def dotted_path(path: Sequence[Any]) -> str:
    """A key path as a reader writes it in a message.

    >>> dotted_path(["sources", 2, "options", "mode"]), dotted_path([])
    ('sources[2].options.mode', '(top level)')
    """
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def validate_yaml(data: Any, node: yaml.Node | None, schema: dict[str, Any], path: Path) -> None:
    """Check `data` (read by `read_yaml`) against a JSON Schema; the most specific error becomes one
    RecipeError line `FILE:LINE: key.path: message`. Shared by build and filter recipes."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    if not errors:
        return
    # The deepest error is the most specific one ("count: -1 is less than 1", not "if/then failed").
    err = max(errors, key=lambda e: len(e.absolute_path))
    loc = list(err.absolute_path)
    line = yaml_line(node, loc) if node is not None else 0
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise RecipeError(f"{path}:{line}: {dotted_path(loc)}: {err.message}{more}")


def _check_rewards(recipe: Recipe, node: yaml.Node | None, path: Path) -> None:
    """Each source's `reward`: a registered verifier that scores the adapter's tasks, and params
    that verifier accepts (fields the adapter fills in per record may be missing here)."""
    from triune_data.tasks import TASK_DEFAULTS
    from triune_data.verifiers.base import get_verifier, verifier_names

    def fail(loc: list[Any], message: str) -> RecipeError:
        line = yaml_line(node, loc) if node is not None else 0
        return RecipeError(f"{path}:{line}: {dotted_path(loc)}: {message}")

    for i, entry in enumerate(recipe.sources):
        reward, tasks = entry.reward, get_source(entry.adapter).tasks
        if reward.verifier is not None:
            if reward.verifier not in verifier_names():
                known = ", ".join(verifier_names())
                raise fail(
                    ["sources", i, "reward", "verifier"],
                    f"unknown verifier {reward.verifier!r} (known: {known})",
                )
            spec = get_verifier(reward.verifier)
            if not set(tasks) & set(spec.tasks):
                raise fail(
                    ["sources", i, "reward", "verifier"],
                    f"{spec.name} scores {', '.join(spec.tasks)} samples; adapter {entry.adapter} makes "
                    f"{', '.join(tasks)}",
                )
            candidates = [spec.name]
        else:  # a record may name its verifier: any verifier of the adapter's tasks, defaults first
            candidates = list(dict.fromkeys(TASK_DEFAULTS[t].verifier for t in tasks))
            candidates += [
                n for n in verifier_names(aliases=False) if set(get_verifier(n).tasks) & set(tasks)
            ]
        if not reward.params:
            continue
        problems = [_params_problem(name, reward.params) for name in dict.fromkeys(candidates)]
        if all(problems):
            loc, message = problems[0] or ([], "")
            raise fail(["sources", i, "reward", "params", *loc], message)


def _params_problem(verifier: str, params: dict[str, Any]) -> tuple[list[Any], str] | None:
    """(location, message) of the first error `verifier`'s params model finds, ignoring missing fields."""
    from pydantic import ValidationError

    from triune_data.verifiers.base import get_verifier

    try:
        get_verifier(verifier).params.model_validate(params)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            if err["type"] != "missing":
                return list(err["loc"]), f"{err['msg']} (verifier {verifier})"
    return None


def load_recipe(path: str | Path) -> LoadedRecipe:
    """Read, validate and resolve a recipe; RecipeError names file, line and field on any problem."""
    path = Path(path)
    data, node = read_yaml(path)
    if not isinstance(data, dict):
        raise RecipeError(f"{path}:1: a recipe is a mapping with at least `name` and `sources`")
    validate_yaml(data, node, recipe_json_schema(), path)
    recipe = Recipe.model_validate(data)
    _check_rewards(recipe, node, path)
    if recipe.prompts is None or isinstance(recipe.prompts, str):
        ppath = DEFAULT_PROMPTS if recipe.prompts is None else path.parent / recipe.prompts
        pdata, pnode = read_yaml(ppath)
        validate_yaml(pdata, pnode, prompts_json_schema(), ppath)
        prompts = {k: PoolModel.model_validate(v) for k, v in (pdata or {}).items()}
    else:
        prompts = dict(recipe.prompts)
    options = [get_source(s.adapter).options.model_validate(s.options) for s in recipe.sources]
    return LoadedRecipe(recipe, path, prompts, options)
