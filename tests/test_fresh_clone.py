"""The test suite on a fresh clone with no ``../shared`` beside it (see conftest.py).

Each case copies the package and its tests into a temporary folder with nothing beside it and runs a representative
subset of the suite there, in a subprocess: ``SUBSET`` below, the data tests of test_datasets.py (every release file
parsed into ir_datasets and PyTerrier, counts, checksums, the ``datasets`` command) and a command-line test that
damages a copy of the release files. The whole suite would take as long again as ``make test`` itself.

- With ``PYTERRIER_HYBRID_LAREQA_URL`` pointing at a ``file://`` mirror of the release folder, the clone's conftest
  downloads every file once through the package's own download into the clone's ``.cache`` and every test passes.
- With the mirror missing, the tests that need the files are skipped, each with the one-line reason, and the others
  pass.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyterrier_hybrid.datasets.release import LOCAL_DIR_ENV, MIRROR_URL_ENV, sha256_of

REPO_ROOT = Path(__file__).resolve().parents[1]
SUBSET = ["tests/test_datasets.py", "tests/test_cli_errors.py::test_evaluate_checksum_mismatch"]

@pytest.fixture
def clone(tmp_path) -> Path:
    """The package and its tests in ``<tmp>/clone/repo``: no ``shared`` folder beside it, nothing cached."""
    root = tmp_path / "clone" / "repo"
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache")
    for name in ("pyterrier_hybrid", "tests"):
        shutil.copytree(REPO_ROOT / name, root / name, ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    return root


def run_subset(clone: Path, mirror_url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (LOCAL_DIR_ENV, "IR_DATASETS_HOME", "PYTHONPATH")}
    env.update({MIRROR_URL_ENV: mirror_url, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    # `python -m pytest` from the clone imports the clone's package (its folder comes first on the path)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *SUBSET],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=900)


def counts(output: str) -> dict[str, int]:
    summary = output.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)", summary)}


def test_a_fresh_clone_downloads_the_release_files_once_from_a_mirror(clone, lareqa_dir, tmp_path):
    # the mirror is a copy of the release files this suite reads
    mirror = tmp_path / "mirror"
    for collection in ("xquad-r", "mlqa-r"):
        shutil.copytree(lareqa_dir / collection, mirror / collection)
    result = run_subset(clone, mirror.as_uri())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = counts(result.stdout)
    assert found.get("passed", 0) >= 20 and "skipped" not in found and "failed" not in found, result.stdout[-2000:]
    downloaded = clone / ".cache" / "ir_datasets" / "lareqa"
    for collection in ("xquad-r", "mlqa-r"):
        for source in (lareqa_dir / collection).glob("*.json"):
            assert sha256_of(downloaded / collection / source.name) == sha256_of(source)
    assert not list(downloaded.rglob("*.partial"))


def test_a_fresh_clone_without_the_files_skips_the_tests_that_need_them_with_the_reason(clone, tmp_path):
    result = run_subset(clone, (tmp_path / "no-mirror").as_uri())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = counts(result.stdout)
    assert found.get("skipped", 0) >= 10 and found.get("passed", 0) >= 3 and "failed" not in found, result.stdout
    reasons = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert reasons and all("LAReQA release files unavailable" in line and "no-mirror/" in line for line in reasons)
