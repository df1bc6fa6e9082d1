"""Every ```python block of README.md runs as written, so an example that stops working fails the build.

Each block runs on its own in a fresh interpreter, in an empty temporary working folder (files an example writes,
such as an index or a trained model, land there), with the test session's environment: the LAReQA files, the
ir_datasets home and the model cache that ``make test`` sets, offline. Examples are written small enough to run
so (a few minutes at most on 2 CPU cores); where one says how to scale it up, it says so in a comment.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TIMEOUT_S = 900  # per block; a block this slow should be made smaller, not the limit raised


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block, in order."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in PYTHON_BLOCK.finditer(text)]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 3
    # the extraction sees every fence that opens a python block
    assert len(BLOCKS) == len(re.findall(r"^```python", README.read_text(encoding="utf-8"), re.MULTILINE))


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
@pytest.mark.lareqa
def test_readme_example_runs_as_written(line, code, tmp_path):
    script = tmp_path / f"readme_line_{line}.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert result.returncode == 0, (
        f"the README example at line {line} failed (exit {result.returncode}):\n{code}\n--- stderr (last 3000 "
        f"characters) ---\n{result.stderr[-3000:]}"
    )
