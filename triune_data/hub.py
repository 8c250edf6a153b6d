"""The Hugging Face Hub side: the dataset card, and `triune push`.

The card's YAML declares one config per data_source plus `default` (all sources), and
`dataset_info.features`, so `datasets.load_dataset(DIR)` works offline with Image features intact.
A push is one `upload_folder` call of the same layout (the single seam tests intercept); the token
comes from the environment (HF_TOKEN) and is never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from triune_data.errors import DatasetError
from triune_data.manifest import read_manifest, verify_files
from triune_data.schema import SCHEMA_VERSION, hf_features_dict

PUSH_PATTERNS = ["README.md", "manifest.json", "recipe.json", "data/**/*.parquet", "rejects/*.parquet"]


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


def _configs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    splits = sorted(manifest["rows_by_split"])
    configs = [
        {
            "config_name": "default",
            "data_files": [{"split": s, "path": f"data/*/{s}-*"} for s in splits],
            "default": True,
        }
    ]
    for source, info in sorted(manifest["sources"].items()):
        source_splits = sorted(s for s, n in info["rows_by_split"].items() if n > 0)
        if source_splits:
            configs.append(
                {
                    "config_name": source,
                    "data_files": [{"split": s, "path": f"data/{source}/{s}-*"} for s in source_splits],
                }
            )
    return configs


def render_card(manifest: dict[str, Any], recipe: dict[str, Any]) -> str:
    licenses = sorted({lic for s in manifest["sources"].values() for lic in s["licenses"]})
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
    for name, s in sorted(manifest["sources"].items()):
        rows.append(
            f"| {name} | {', '.join(s['adapters'])} | {s['kept']} | {s['read']} | {s['rejected']} | "
            f"{', '.join(s['licenses']) or 'not stated'} |"
        )
    body = f"""# {recipe["name"]}

{recipe.get("description") or "A triune dataset for unified RL of vision-language models."}

Built by [triune](https://github.com/) from recipe `{recipe["name"]}` (hash `{manifest["recipe"]["hash"][:12]}`,
seed {manifest["recipe"]["seed"]}); sample schema version {SCHEMA_VERSION}. Every row carries its reward
spec (`reward.verifier`, `reward.verifier_params`, accuracy/format weights) and a `sample_weight`.
Boxes are absolute float pixels (x1, y1, x2, y2) of the stored image.

{chr(10).join(rows)}

Load one source with `datasets.load_dataset(PATH, "<data_source>")`, or all with the default config.
`manifest.json` lists every file with its sha256; `rejects/` holds every rejected record with its reason.
"""
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000) + "---\n\n" + body


def push_files(root: Path) -> list[Path]:
    files = set()
    for pattern in PUSH_PATTERNS:
        files.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(files)


def push(
    path: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    api: Any | None = None,
    token_env: str = "HF_TOKEN",
) -> list[tuple[str, int]]:
    """Upload a finished dataset directory as one commit. Returns (relative path, bytes) pushed."""
    root = Path(path)
    manifest = read_manifest(root)
    problems = verify_files(root, manifest)
    if problems:
        raise DatasetError(
            f"{root}: refusing to push, {problems[0]}"
            + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    files = [(str(p.relative_to(root)), p.stat().st_size) for p in push_files(root)]
    if dry_run:
        return files
    token = os.environ.get(token_env) or None
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(root),
        repo_id=repo_id,
        repo_type="dataset",
        allow_patterns=PUSH_PATTERNS,
        commit_message=f"triune: {manifest['recipe']['name']} ({manifest['recipe']['hash'][:12]})",
    )
    return files
