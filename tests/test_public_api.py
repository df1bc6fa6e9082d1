"""The flat public API: every name of ``pyterrier_hybrid.__all__`` imports from the package itself, lazily (the
package import does not load torch), and the version is written in one place."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import pyterrier_hybrid

REPO_ROOT = Path(__file__).resolve().parents[1]

# The names the README and a first-time user reach for; more may be exported.
ESSENTIAL = {
    "lareqa_collection", "SentenceTransformerBiEncoder", "BiEncoderConfig", "BM25Retriever", "HybridTrainingConfig",
    "train", "evaluate_lareqa", "LAReQAEvaluationConfig", "resolve_model", "UserError",
}


def test_all_holds_the_essential_names():
    assert ESSENTIAL <= set(pyterrier_hybrid.__all__)
    assert len(set(pyterrier_hybrid.__all__)) == len(pyterrier_hybrid.__all__)


@pytest.mark.parametrize("name", pyterrier_hybrid.__all__)
def test_every_public_name_imports_from_the_package(name):
    namespace: dict = {}
    exec(f"from pyterrier_hybrid import {name}", namespace)
    value = namespace[name]
    assert value is getattr(pyterrier_hybrid, name)
    # it is the object its subpackage defines, not a copy
    assert value.__module__.startswith("pyterrier_hybrid.")
    assert value is getattr(importlib.import_module(value.__module__), name)
    assert name in dir(pyterrier_hybrid)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        pyterrier_hybrid.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        exec("from pyterrier_hybrid import no_such_name", {})


def test_importing_the_package_loads_no_heavy_library():
    heavy = ["torch", "transformers", "sentence_transformers", "pyterrier_dr", "faiss", "matplotlib"]
    code = (
        "import sys, pyterrier_hybrid, ir_datasets\n"
        "assert 'lareqa/xquad-r/de' in ir_datasets.registry, 'the LAReQA ids are registered on import'\n"
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "", f"imported by `import pyterrier_hybrid`: {result.stdout.strip()}"


def test_the_version_is_written_once():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "pyterrier_hybrid.__version__"}
    assert pyterrier_hybrid.__version__.count(".") == 2
