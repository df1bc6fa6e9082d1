"""Every runnable example of README.md and of the docs/ pages runs as written, so an example that stops working fails
the build.

The language of a fenced block says whether it runs (docs/README.md states the convention for writers):

- ```` ```python ````: run as a script with this interpreter;
- ```` ```bash ````: run with ``bash -e`` (every command must succeed), with this interpreter's ``bin`` folder first
  on ``PATH`` so that ``pyterrier-hybrid``, ``torchrun`` and ``python`` are the ones of the environment under test;
- ```` ```console ```` and ```` ```text ````: shown, not run (hour-long runs, downloads, synopses of options).

Each block runs on its own in a fresh interpreter or shell, in an empty temporary working folder (files an example
writes, such as an index or a trained model, land there), with the test session's environment: the LAReQA files, the
ir_datasets home and the model cache that ``make test`` sets, offline. Examples are written small enough to run so
(seconds to a minute or two on 2 CPU cores); where one can be scaled up, its page says how.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
RUNNABLE = {"python", "bash"}
SHOWN = {"console", "text"}
TIMEOUT_S = 900  # per block; a block this slow should be made smaller, not the limit raised


@dataclass(frozen=True)
class Example:
    page: str  # relative to the repository root, e.g. docs/training.md
    line: int  # line of the block's first line of code
    language: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def fenced_blocks(path: Path) -> list[Example]:
    """Every fenced block of a Markdown page, in order."""
    text = path.read_text(encoding="utf-8")
    page = path.relative_to(REPO_ROOT).as_posix()
    return [Example(page, text.count("\n", 0, m.start(2)) + 1, m.group(1), m.group(2)) for m in FENCE.finditer(text)]


BLOCKS = [block for page in PAGES for block in fenced_blocks(page)]
EXAMPLES = [block for block in BLOCKS if block.language in RUNNABLE]


def test_every_page_is_read():
    names = {block.page for block in EXAMPLES}
    assert "README.md" in names
    assert {"docs/datasets.md", "docs/retrieval-and-evaluation.md", "docs/training.md", "docs/language-bias.md",
            "docs/robustness.md", "docs/reproducing.md"} <= names


def test_every_block_says_whether_it_runs():
    unmarked = [f"{block.id} ({block.language or 'no language'})" for block in BLOCKS
                if block.language not in RUNNABLE | SHOWN]
    assert not unmarked, f"fenced blocks must be python or bash (run) or console or text (shown): {unmarked}"
    # the extraction sees every fence that opens a block
    for page in PAGES:
        opening_fences = re.findall(r"^```\w*[ \t]*$", page.read_text(encoding="utf-8"), re.MULTILINE)
        assert len(opening_fences) == 2 * len(fenced_blocks(page)), page.name


def test_the_readme_has_runnable_examples_and_links_every_page():
    readme = [block for block in EXAMPLES if block.page == "README.md"]
    assert {"python", "bash"} <= {block.language for block in readme}
    assert len(readme) >= 3
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [page.name for page in PAGES[1:] if page.name != "README.md" and f"(docs/{page.name})" not in text]
    assert not missing, f"README.md does not link to {missing}"


def command(example: Example, script: Path) -> list[str]:
    if example.language == "python":
        return [sys.executable, script.name]
    return ["bash", "-e", script.name]


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
@pytest.mark.lareqa
def test_example_runs_as_written(example, tmp_path):
    suffix = {"python": "py", "bash": "sh"}[example.language]
    script = tmp_path / f"{example.id.replace('/', '_').replace(':', '_line_')}.{suffix}"
    script.write_text(example.code, encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    result = subprocess.run(command(example, script), cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert result.returncode == 0, (
        f"the example at {example.id} failed (exit {result.returncode}):\n{example.code}\n--- stderr (last 3000 "
        f"characters) ---\n{result.stderr[-3000:]}"
    )
