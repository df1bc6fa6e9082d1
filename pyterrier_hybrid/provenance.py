"""Where a result came from: the git commit, the library versions, the time, for every ``run.json``.

One place for these facts, so that every result folder (``pyterrier-hybrid compare``, ``robustness``, training
records) describes its run the same way. The package's own version is :data:`pyterrier_hybrid.__version__` (its
single source); the others are read from the installed distributions.

This module imports nothing heavy and nothing from the package's subpackages: every layer may use it.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["command_line", "git_commit", "git_facts", "machine", "shown_path", "utc_now", "versions", "write_json"]

#: The distributions whose versions a run records by default.
RECORDED_PACKAGES: tuple[str, ...] = (
    "python-terrier", "pyterrier-dr", "sentence-transformers", "transformers", "torch", "bm25s", "ir-measures",
    "ir-datasets",
)
#: The folder the package was imported from lives in this checkout (when it is one).
_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def _git(*command: str, cwd: Path) -> str | None:
    try:
        return subprocess.run(["git", *command], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def git_facts(repo: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": HEAD's sha or None, "uncommitted_changes": bool or None}`` of the git checkout ``repo`` (default:
    the checkout the package was imported from; None values outside a git checkout, e.g. after ``pip install``).
    Untracked files do not count as changes."""
    root = Path(repo) if repo is not None else _SOURCE_ROOT
    if repo is None and not (root / "pyproject.toml").is_file():  # an installed package, not a source checkout
        return {"commit": None, "uncommitted_changes": None}
    commit = _git("rev-parse", "HEAD", cwd=root)
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=root) if commit else None
    return {"commit": commit, "uncommitted_changes": None if status is None else bool(status)}


def git_commit(repo: str | Path | None = None) -> str:
    """HEAD's commit, with ``+dirty`` when tracked files have changes ("unknown" outside a git checkout)."""
    facts = git_facts(repo)
    if facts["commit"] is None:
        return "unknown"
    return facts["commit"] + ("+dirty" if facts["uncommitted_changes"] else "")


def versions(packages: Iterable[str] = RECORDED_PACKAGES) -> dict[str, str]:
    """Python, this package (``pyterrier_hybrid.__version__``) and every installed distribution of ``packages``."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    found = {"python": platform.python_version(), "pyterrier-hybrid": __version__}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def machine() -> dict[str, Any]:
    """The processor architecture, platform string and number of CPUs."""
    return {"machine": platform.machine(), "platform": platform.platform(), "cpu_count": os.cpu_count()}


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def command_line() -> str:
    """The command that started this process (``sys.argv`` joined); a program given by an absolute path is shown
    relative to the working directory, or by its name outside it, so that records name no machine's folders."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if program is not None and program.is_absolute():
        program = _relative_to(program, Path.cwd()) or Path(program.name)
    return " ".join([str(program) if program is not None else "", *sys.argv[1:]]).strip()


def shown_path(path: str | Path) -> str:
    """How a record names a folder or file: relative to the working directory when inside it, ``~/...`` when under
    the home folder, else as given (a hub id or a relative path is kept as typed), so that records name no machine's
    folders."""
    path = Path(path)
    if not path.is_absolute():
        return str(path)
    in_cwd = _relative_to(path, Path.cwd())
    if in_cwd is not None:
        return str(in_cwd)
    in_home = _relative_to(path, Path.home())
    return str(Path("~") / in_home) if in_home is not None else str(path)


def _relative_to(path: Path, root: Path) -> Path | None:
    """``path`` relative to ``root``, or None when it lies outside it."""
    try:
        return path.relative_to(root)
    except ValueError:
        return None


def write_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented UTF-8 JSON (values JSON cannot hold are written as their ``str``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path
