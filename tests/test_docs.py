"""The repository explains itself: every file it cites is in it, every doc link resolves.

A comment or doc that points at notes outside the repository (a team's reference files, a sibling
checkout) leaves a reader of the repository alone with a dead end; so does a link to a doc that was
renamed, or a named test or module that does not exist (yet). Facts from outside live in `docs/`
or cite the paper (arXiv 2505.18129) by section.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Notes that lived outside the repository, by file name (built from parts so that this file does
# not name them itself). A mention must resolve to a file of the repository (docs/ has its own
# page on the paper under one of these names), else it cites the outside copy.
STEMS = ("vtriune", "stack", "peers", "style")
EXTERNAL_NAMES = {f"{stem}.md" for stem in STEMS}
EXTERNAL_MARKERS = (".." + "/shared", "shared/" + "reference", "tiny_vlm" + "_probe")
MD_TOKEN = re.compile(r"[\w./-]+\.md\b")

# Paths of the project named in prose: `tests/...`, `triune_data/...`, `docs/...` and so on.
PATH_TOKEN = re.compile(
    r"(?<![\w/.-])((?:tests|triune_data|triune_train|scripts|bench|recipes|docs|schemas)/[\w./-]*\w)"
)
# Markdown links [text](target), targets without a scheme.
LINK = re.compile(r"\]\(([^)\s]+)\)")


@cache
def tracked() -> tuple[str, ...]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return tuple(p for p in out.splitlines() if (ROOT / p).is_file())


def text_files() -> list[tuple[str, str]]:
    files = []
    for path in tracked():
        try:
            files.append((path, (ROOT / path).read_text(encoding="utf-8")))
        except UnicodeDecodeError:  # images and other binaries
            continue
    return files


def docs() -> list[str]:
    return [p for p in tracked() if p.endswith(".md") and ("/" not in p or p.startswith("docs/"))]


def resolves(mention: str, in_file: str) -> bool:
    """The mention names a tracked file, read from the repository root or the mentioning file's folder."""
    files = set(tracked())
    here = Path(in_file).parent
    for base in (Path(), here):
        candidate = (ROOT / base / mention).resolve()
        if candidate.is_relative_to(ROOT) and str(candidate.relative_to(ROOT)) in files:
            return True
    return False


def test_no_file_cites_notes_outside_the_repository() -> None:
    bad = []
    for path, text in text_files():
        for n, line in enumerate(text.splitlines(), 1):
            bad += [f"{path}:{n}: {m}" for m in EXTERNAL_MARKERS if m in line]
            for token in MD_TOKEN.findall(line):
                if token.rsplit("/", 1)[-1] in EXTERNAL_NAMES and not resolves(token, path):
                    bad.append(f"{path}:{n}: {token}")
    assert not bad, "cites files outside the repository:\n" + "\n".join(bad)


def test_the_checker_sees_outside_citations() -> None:
    """The rule itself: the same name is fine for docs/'s own file and an error for the outside one."""
    paper, stack = (f"{stem}.md" for stem in STEMS[:2])
    assert resolves(f"docs/{paper}", "triune_data/coords.py")
    assert resolves(paper, "docs/training.md")
    assert not resolves(paper, "triune_data/coords.py")
    assert not resolves(stack, "docs/training.md")
    assert not resolves(f"{EXTERNAL_MARKERS[0]}/{paper}", "docs/training.md")


@pytest.mark.parametrize("doc", docs())
def test_relative_links_resolve(doc: str) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    bad = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor in the same file
        path = target.split("#", 1)[0]
        if not (ROOT / Path(doc).parent / path).exists():
            bad.append(target)
    assert not bad, f"{doc}: links to missing files: {bad}"


def test_named_project_paths_exist() -> None:
    """A path of the project named in a doc, docstring or comment is a real file or folder."""
    bad = []
    for path, text in text_files():
        if not path.endswith((".md", ".py", ".sh", ".yaml", ".toml")):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for token in PATH_TOKEN.findall(line):
                token = token.rstrip(".")
                if any(c in token for c in "*{<") or token.endswith("/") or re.search(r"[A-Z]{3}", token):
                    continue  # a glob or a template (`test_NAME.py`), not one path
                here = (ROOT / Path(path).parent / token).exists()
                if not ((ROOT / token).exists() or here):
                    bad.append(f"{path}:{n}: {token}")
    assert not bad, "names files that do not exist:\n" + "\n".join(bad)
