"""Run records: what a result folder's ``run.json`` says was run, and whether a saved result may be reused.

A :class:`RunRecord` has two parts. Its *identity* is what decides the result (the model, the data, the settings):
a saved result is reusable exactly when its record holds the same identity (:meth:`RunRecord.differences` is
empty): the one rule by which every experiment and benchmark resumes. Its *facts* say how the run went (wall time,
counts, provenance from :mod:`pyterrier_hybrid.provenance`) and are never compared.

On disk a record is one flat JSON object, identity and facts side by side, written after the result it describes,
so that a ``run.json`` beside a result means that result is complete::

    record = RunRecord({"model": "mlqa-r-alpha1-seed42", "langs": ["en", "de"]}, {"wall_time_s": 12.3})
    saved = read_record(folder)
    if record.matches(saved):
        ...  # reuse the result in ``folder``
    record.write(folder)
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..provenance import command_line, git_facts, machine, utc_now, versions, write_json

__all__ = ["RUN_FILE", "RunRecord", "differences", "provenance", "read_record"]

#: The file name of a result folder's record.
RUN_FILE = "run.json"


def differences(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """How a saved record differs from the ``wanted`` values, one ``key: saved ..., wanted ...`` per key."""
    return [f"{key}: saved {saved.get(key)!r}, wanted {value!r}" for key, value in wanted.items()
            if saved.get(key) != value]


def provenance() -> dict[str, Any]:
    """Where a run came from: the git commit (and whether tracked files had changes), the library versions, the
    machine, the command and the time, under the keys every ``run.json`` of the package uses."""
    return {**git_facts(), "date": utc_now(), "versions": versions(), **machine(), "command": command_line()}


def _record_path(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".json" else path / RUN_FILE


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The record at ``path`` (a ``.json`` file, or a folder holding :data:`RUN_FILE`), or None when there is none
    (then the result beside it is not complete)."""
    path = _record_path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@dataclass
class RunRecord:
    """What was run (``identity``: compared when deciding whether to reuse a result) and how it went (``facts``:
    never compared). Keys of ``facts`` do not repeat keys of ``identity``."""

    identity: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON object written to disk."""
        return {**self.identity, **self.facts}

    def differences(self, saved: Mapping[str, Any] | None) -> list[str] | None:
        """How ``saved`` differs from this record's identity (empty: the same run); None when nothing was saved."""
        return None if saved is None else differences(saved, self.identity)

    def matches(self, saved: Mapping[str, Any] | None) -> bool:
        """Whether ``saved`` is the record of the same run: its result may be reused."""
        return self.differences(saved) == []

    def write(self, path: str | Path) -> Path:
        """Writes the record to ``path`` (a ``.json`` file, or a folder: its :data:`RUN_FILE`); write it after the
        result it describes."""
        return write_json(_record_path(path), self.to_dict())
