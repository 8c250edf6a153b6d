"""`triune push`: upload a finished dataset directory to the Hugging Face Hub.

A push is one `upload_folder` call of the directory's layout (the single seam tests intercept),
after checking every file against the manifest. The card it uploads is the one the producer wrote
(`triune_data.card`). The token comes from the environment (HF_TOKEN) and is never printed.

Every call to the Hub goes through `_hub`, which turns what the Hub (or the way to it) answers
into a `HubError` with one line naming the repository and the cause: a bad repo id, offline
(HF_HUB_OFFLINE, no network), no token or one without access, a repository that does not exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from triune_data.errors import DatasetError, HubError
from triune_data.manifest import read_manifest, verify_files

T = TypeVar("T")
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
    _hub(repo_id, _validate_repo_id, repo_id)  # locally, so that a dry run says it too
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
    _hub(repo_id, api.create_repo, repo_id, repo_type="dataset", private=private, exist_ok=True)
    _hub(
        repo_id,
        api.upload_folder,
        folder_path=str(root),
        repo_id=repo_id,
        repo_type="dataset",
        allow_patterns=PUSH_PATTERNS,
        commit_message=f"triune: {manifest.recipe.name} ({manifest.recipe.hash[:12]})",
    )
    return files


def _validate_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import validate_repo_id

    validate_repo_id(repo_id)


def _hub(repo_id: str, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`call(*args, **kwargs)`, with the Hub's failures as one-line HubErrors (see the module docstring)."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        error = _hub_error(repo_id, exc)
        if error is None:
            raise
        raise error from None


def _hub_error(repo_id: str, exc: Exception) -> HubError | None:
    from huggingface_hub import errors as hf

    what = f"datasets/{repo_id}"
    said = " ".join(str(exc).split("\n", 1)[0].split())[:300]
    if isinstance(exc, hf.HFValidationError):
        return HubError(f"bad repo id {repo_id!r}: {said}")
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return HubError(f"{what}: offline mode is on (HF_HUB_OFFLINE=1): unset it to push")
    if isinstance(exc, hf.LocalTokenNotFoundError):
        return HubError(f"{what}: no Hugging Face token: set HF_TOKEN to a token with write access")
    if isinstance(exc, hf.HfHubHTTPError):
        status = getattr(exc.response, "status_code", None)
        if isinstance(exc, hf.RepositoryNotFoundError) or status == 404:
            return HubError(
                f"{what}: not found (HTTP {status}): check the repo id, and that HF_TOKEN may use it"
            )
        if status in (401, 403) or isinstance(exc, hf.GatedRepoError):
            return HubError(
                f"{what}: not allowed (HTTP {status}): HF_TOKEN is missing, invalid or cannot write to it"
            )
        return HubError(f"{what}: the Hub answered HTTP {status}: {said}")
    if isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in (
        "httpx",
        "httpx2",
        "httpcore",
        "requests",
    ):
        return HubError(f"{what}: cannot reach the Hub ({type(exc).__name__}: {said}); are you offline?")
    return None
