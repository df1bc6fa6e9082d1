"""Evaluation results: per-query and per-setting frames, the paper-format summary, Markdown tables, saved reports.

Frames (all tidy, one value per row where they hold measures):

- ``per_query``: setting, setting_type, qid, query_lang, doc_lang, n_relevant, best_rank (0-based rank of the first
  relevant candidate), then one column per measure (AP, R@1, R@10, and in the pool RankDistance, PEER@k).
- ``per_setting``: setting, setting_type, query_lang, doc_lang, measure, value, n_queries: the mean of a measure
  over the setting's queries; the multilingual pool has one row per query language (doc_lang ``all``).
- ``summary``: setting_type, measure, value, averaged_over: monolingual values averaged over languages,
  cross-lingual over ordered pairs, multilingual over query languages (macro averages, as in LAReQA); the mean of
  AP is named ``mAP``.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .measures import AP, MAP, RANK_DISTANCE
from .plots import plot_map_heatmap
from .settings import SETTING_TYPES

# A result read back must give the same tables as the one evaluated, so floats are read to the last bit: pandas'
# default parser does so from 3.1 on (which deprecates the option); before 3.1 it can differ in the last digit.
_PANDAS_MINOR = tuple(int(part) for part in pd.__version__.split(".")[:2])
READ_CSV_EXACTLY = {} if _PANDAS_MINOR >= (3, 1) else {"float_precision": "round_trip"}

ID_COLUMNS = ("setting", "setting_type", "qid", "query_lang", "doc_lang", "n_relevant", "best_rank")
SETTING_COLUMNS = ["setting", "setting_type", "query_lang", "doc_lang"]
_AVERAGED_OVER = {"monolingual": "languages", "cross-lingual": "language pairs", "multilingual": "query languages"}


def per_setting_frame(per_query: pd.DataFrame) -> pd.DataFrame:
    """Means of every measure column of ``per_query`` per setting (and per query language in the pool), tidy."""
    measures = [c for c in per_query.columns if c not in ID_COLUMNS]
    long = per_query.melt(id_vars=SETTING_COLUMNS, value_vars=measures, var_name="measure", value_name="value")
    long = long.dropna(subset=["value"])
    grouped = long.groupby(SETTING_COLUMNS + ["measure"], sort=False)["value"]
    frame = pd.DataFrame({"value": grouped.mean(), "n_queries": grouped.size()}).reset_index()
    return frame[SETTING_COLUMNS + ["measure", "value", "n_queries"]]


def summary_frame(per_setting: pd.DataFrame) -> pd.DataFrame:
    """Macro averages per setting type (see the module documentation); AP's mean is reported as ``mAP``."""
    rows = []
    types = [t for t in SETTING_TYPES if t in set(per_setting["setting_type"])]
    types += [t for t in dict.fromkeys(per_setting["setting_type"]) if t not in types]
    for setting_type in types:
        of_type = per_setting[per_setting["setting_type"] == setting_type]
        for measure, values in of_type.groupby("measure", sort=False)["value"]:
            rows.append(
                {
                    "setting_type": setting_type,
                    "measure": MAP if measure == AP else measure,
                    "value": float(values.mean()),
                    "averaged_over": f"{len(values)} {_AVERAGED_OVER.get(setting_type, 'settings')}",
                }
            )
    return pd.DataFrame(rows, columns=["setting_type", "measure", "value", "averaged_over"])


def build_result(*, collection: str, system: str, langs: tuple[str, ...], per_query: pd.DataFrame,
                 notes: tuple[str, ...], keep_per_query: bool = True) -> "EvaluationResult":
    per_setting = per_setting_frame(per_query)
    return EvaluationResult(
        collection=collection,
        system=system,
        langs=langs,
        per_setting=per_setting,
        summary=summary_frame(per_setting),
        per_query=per_query if keep_per_query else None,
        notes=notes,
    )


@dataclass
class EvaluationResult:
    """What :func:`evaluate_lareqa` / :func:`evaluate_irds` measured for one system on one collection."""

    collection: str
    system: str
    langs: tuple[str, ...]
    per_setting: pd.DataFrame
    summary: pd.DataFrame
    per_query: pd.DataFrame | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def settings(self) -> list[str]:
        return list(dict.fromkeys(self.per_setting["setting"]))

    def summary_dict(self) -> dict[str, dict[str, float]]:
        """``{setting_type: {measure: value}}``, e.g. ``result.summary_dict()["multilingual"]["mAP"]``."""
        out: dict[str, dict[str, float]] = {}
        for row in self.summary.itertuples(index=False):
            out.setdefault(row.setting_type, {})[row.measure] = row.value
        return out

    def value(self, setting_type: str, measure: str) -> float:
        """One summary value; ``measure`` as in the summary (``mAP``, ``R@10``, ``RankDistance``...)."""
        try:
            return self.summary_dict()[setting_type][measure]
        except KeyError:
            raise KeyError(f"no {measure!r} for setting type {setting_type!r} in this result; it has "
                           f"{ {t: sorted(m) for t, m in self.summary_dict().items()} }") from None

    def to_markdown(self) -> str:
        return results_markdown([self])

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write per_setting.csv, per_query.csv.gz (when kept), summary.csv, summary.json, summary.md and, for a
        LAReQA result, map_heatmap.png (mAP over query language x document language). Returns the paths by name."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "per_setting": out / "per_setting.csv",
            "summary_csv": out / "summary.csv",
            "summary_json": out / "summary.json",
            "summary_md": out / "summary.md",
        }
        self.per_setting.to_csv(paths["per_setting"], index=False)
        self.summary.to_csv(paths["summary_csv"], index=False)
        paths["summary_json"].write_text(
            json.dumps(
                {"collection": self.collection, "system": self.system, "langs": list(self.langs),
                 "summary": self.summary_dict(), "notes": list(self.notes)},
                indent=2, ensure_ascii=False,
            ),
            encoding="utf-8",
        )
        paths["summary_md"].write_text(self.to_markdown(), encoding="utf-8")
        if self.per_query is not None:
            paths["per_query"] = out / "per_query.csv.gz"
            self.per_query.to_csv(paths["per_query"], index=False)
        if _is_lareqa(self):
            paths["heatmap"] = out / "map_heatmap.png"
            plot_map_heatmap(self, path=paths["heatmap"])
        return paths

    @classmethod
    def load(cls, out_dir: str | Path) -> "EvaluationResult":
        """Read back a folder written by :meth:`save` (per_query only when it was saved), e.g. to compare systems
        evaluated in separate runs without evaluating them again."""
        folder = Path(out_dir)
        needed = [folder / "summary.json", folder / "summary.csv", folder / "per_setting.csv"]
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"not a saved evaluation result: {', '.join(missing)} missing "
                                    "(written by EvaluationResult.save)")
        meta = json.loads(needed[0].read_text(encoding="utf-8"))
        per_query_path = folder / "per_query.csv.gz"
        read = functools.partial(pd.read_csv, **READ_CSV_EXACTLY)
        return cls(
            collection=meta["collection"],
            system=meta["system"],
            langs=tuple(meta["langs"]),
            per_setting=read(needed[2]),
            summary=read(needed[1]),
            per_query=read(per_query_path) if per_query_path.is_file() else None,
            notes=tuple(meta.get("notes", ())),
        )


def _is_lareqa(result: EvaluationResult) -> bool:
    return bool(set(result.per_setting["setting_type"]) & set(SETTING_TYPES))


# ---------------------------------------------------------------------------------------------------------------
# Tables


def comparison_table(results: Sequence[EvaluationResult] | Mapping[str, EvaluationResult]) -> pd.DataFrame:
    """The paper's Table-1 layout: one row per system (and collection), columns

    Monolingual mAP | Cross-lingual mAP | Multilingual mAP | R@k (pool) ... | Rank distance | PEER@k (pool).

    R@k and PEER are those of the multilingual pool (LAReQA's own setting); per-type R@k are in each result's
    ``summary``. Results that are not LAReQA evaluations (:func:`evaluate_irds`) get one column per measure.
    Mapping keys, when given, name the systems.
    """
    items = list(results.items()) if isinstance(results, Mapping) else [(r.system, r) for r in results]
    rows = []
    for name, result in items:
        row = {"System": name}
        if len({r.collection for _, r in items}) > 1:
            row["Collection"] = result.collection
        summary = result.summary_dict()
        if _is_lareqa(result):
            for setting_type, label in (("monolingual", "Monolingual"), ("cross-lingual", "Cross-lingual"),
                                        ("multilingual", "Multilingual")):
                row[f"{label} mAP"] = summary.get(setting_type, {}).get(MAP, np.nan)
            pool = summary.get("multilingual", {})
            for measure in pool:
                if measure.startswith("R@"):
                    row[f"{measure} (pool)"] = pool[measure]
            row["Rank distance ↓"] = pool.get(RANK_DISTANCE, np.nan)
            for measure in pool:
                if measure.startswith("PEER"):
                    row[f"{measure} (pool)"] = pool[measure]
        else:
            for values in summary.values():
                row.update(values)
        rows.append(row)
    return pd.DataFrame(rows)


def per_type_table(result: EvaluationResult) -> pd.DataFrame:
    """One row per setting type, one column per summary measure (mAP, R@k, ...), plus what was averaged."""
    table = result.summary.pivot(index="setting_type", columns="measure", values="value")
    order = [t for t in SETTING_TYPES if t in table.index] + [t for t in table.index if t not in SETTING_TYPES]
    table = table.loc[order]
    averaged = result.summary.drop_duplicates("setting_type").set_index("setting_type")["averaged_over"]
    columns = [c for c in result.summary["measure"].drop_duplicates() if c in table.columns]
    table = table[columns]
    table.insert(0, "averaged over", averaged.reindex(table.index))
    table.index.name = "setting type"
    return table.reset_index()


def results_markdown(results: Sequence[EvaluationResult] | Mapping[str, EvaluationResult]) -> str:
    """Table 1 (see :func:`comparison_table`), then each result's per-type table and notes."""
    items = list(results.values()) if isinstance(results, Mapping) else list(results)
    parts = [markdown_table(comparison_table(results))]
    for result in items:
        parts.append(f"\n**{result.system}** on {result.collection}"
                     + (f" ({' '.join(result.langs)})" if result.langs else "") + ", per setting type:\n")
        parts.append(markdown_table(per_type_table(result)))
        if result.notes:
            parts.append("\n" + "\n".join(f"- {note}" for note in result.notes))
    return "\n".join(parts) + "\n"


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub Markdown table: floats with ``digits`` decimals, NaN as an empty cell, ``|`` in text escaped. The one
    table writer of every report and benchmark (``DataFrame.to_markdown`` pads cells to the column width, which
    makes the committed reports' diffs noisy, and prints NaN as "nan")."""

    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
