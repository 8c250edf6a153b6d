"""`triune push`: upload a finished dataset directory to the Hugging Face Hub.

A push is one `upload_folder` call of the directory's layout (the single seam tests intercept),
after checking every file against the manifest. The card it uploads is the one the producer wrote
(`triune_data.card`). The token comes from the environment (HF_TOKEN) and is never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from triune_data.errors import DatasetError
from triune_data.manifest import read_manifest, verify_files

PUSH_PATTERNS = ["README.md", "manifest.json", "recipe.json", "data/**/*.parquet", "rejects/*.parquet"]


def push_files(root: Path) -> list[Path]:
    files: set[Path] = set()
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
        commit_message=f"triune: {manifest.recipe.name} ({manifest.recipe.hash[:12]})",
    )
    return files
