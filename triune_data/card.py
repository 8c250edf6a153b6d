"""The dataset card (`README.md`), rendered from the manifest alone.

The card's YAML declares one config per data_source plus `default` (all sources), and
`dataset_info.features`, so `datasets.load_dataset(DIR)` works offline with Image features intact.
Its body is a per-source table of rows, reads and rejects, the recipe, and for a derived dataset
its parent and stages. Every producer (`build-dataset`, `filter`) writes it with `write_card`
after `write_manifest`, from the same `Manifest`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from triune_data import atomic
from triune_data.manifest import Manifest
from triune_data.schema import hf_features_dict

CARD = "README.md"


def _yaml_feature(name: str | None, feature: dict[str, Any]) -> dict[str, Any]:
    """One feature in the card's `dataset_info.features` notation (what `datasets` writes)."""
    out: dict[str, Any] = {} if name is None else {"name": name}
    kind = feature.get("_type")
    if kind == "Value":
        out["dtype"] = feature["dtype"]
    elif kind == "Image":
        out["dtype"] = "image"
    elif kind == "List":
        inner = _yaml_feature(None, feature["feature"])
        out["list"] = inner.get("dtype", inner.get("struct"))
    else:  # a struct: a plain dict of sub-features
        out["struct"] = [_yaml_feature(k, v) for k, v in feature.items()]
    return out


def features_yaml() -> list[dict[str, Any]]:
    # Written out here rather than via `datasets` (a second of import time for every build).
    return [_yaml_feature(k, v) for k, v in hf_features_dict().items()]


def _configs(manifest: Manifest) -> list[dict[str, Any]]:
    splits = sorted(manifest.rows_by_split)
    configs: list[dict[str, Any]] = [
        {
            "config_name": "default",
            "data_files": [{"split": s, "path": f"data/*/{s}-*"} for s in splits],
            "default": True,
        }
    ]
    for source, info in sorted(manifest.sources.items()):
        source_splits = sorted(s for s, n in info.rows_by_split.items() if n > 0)
        if source_splits:
            configs.append(
                {
                    "config_name": source,
                    "data_files": [{"split": s, "path": f"data/{source}/{s}-*"} for s in source_splits],
                }
            )
    return configs


def _lineage(manifest: Manifest) -> str:
    if manifest.parent is None:
        return ""
    head = f"Derived from `{manifest.parent.path}` (manifest sha256 `{manifest.parent.manifest_sha256[:12]}`)"
    if not manifest.stages:
        return head + ".\n\n"
    lines = [
        head + " through these stages:",
        "",
        "| # | stage | read | dropped | added | kept | kept / read per data_source |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for i, stage in enumerate(manifest.stages, 1):
        c = stage.sources.values()
        per_source = ", ".join(f"{name} {s.kept}/{s.read}" for name, s in sorted(stage.sources.items()))
        lines.append(
            f"| {i} | `{stage.name}` | {sum(s.read for s in c)} | {sum(s.rejected for s in c)} | "
            f"{sum(s.added for s in c)} | {sum(s.kept for s in c)} | {per_source} |"
        )
    return "\n".join(lines) + "\n\n"


def _loading(manifest: Manifest) -> str:
    """How to load the data, true as written both in the built folder and on the Hub (no placeholder)."""
    example = next(iter(sorted(manifest.sources)), None)
    one = f' (e.g. `"{example}"`)' if example else ""
    return (
        "Load it with `datasets.load_dataset` on this repository's id, or on the folder it was built in: "
        f"the data_source as config name{one} for one source, the default config for all."
    )


def render_card(manifest: Manifest) -> str:
    """The card's text: YAML front matter (configs, features) and a per-source summary."""
    licenses = sorted({lic for s in manifest.sources.values() for lic in s.licenses})
    front: dict[str, Any] = {
        "license": licenses[0].lower() if len(licenses) == 1 else "other",
        "task_categories": ["image-text-to-text"],
        "tags": ["triune", "rlvr", "vision-language", "v-triune"],
        "configs": _configs(manifest),
        "dataset_info": {"features": features_yaml()},
    }
    rows = [
        "| data_source | adapters | rows | read | rejected | licence |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, s in sorted(manifest.sources.items()):
        rows.append(
            f"| {name} | {', '.join(s.adapters)} | {s.kept} | {s.read} | {s.rejected} | "
            f"{', '.join(s.licenses) or 'not stated'} |"
        )
    recipe = manifest.recipe
    body = f"""# {recipe.name}

{recipe.description or "A triune dataset for unified RL of vision-language models."}

Built by triune from recipe `{recipe.name}` (hash `{recipe.hash[:12]}`, seed {recipe.seed}); sample
schema version {manifest.schema_version}. Every row carries its reward spec (`reward.verifier`,
`reward.verifier_params`, accuracy/format weights) and a `sample_weight`. Boxes are absolute float
pixels (x1, y1, x2, y2) of the stored image.

{_lineage(manifest)}{chr(10).join(rows)}

{_loading(manifest)}
`manifest.json` lists every file with its sha256; `rejects/` holds every rejected record with its reason.
"""
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000) + "---\n\n" + body


def write_card(out: Path, manifest: Manifest) -> Path:
    """Write `out/README.md` atomically from `manifest`."""
    path = out / CARD
    atomic.write_bytes(path, render_card(manifest).encode())
    return path


__all__ = ["CARD", "features_yaml", "render_card", "write_card"]
