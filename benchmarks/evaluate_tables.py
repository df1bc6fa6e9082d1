"""Collects the output folders of ``pyterrier-hybrid evaluate`` runs into one table and one plot.

Benchmark (a) of the retrieval issue runs the main job with the embedded default and BM25 on XQuAD-R and MLQA-R,
candidates as the sentence alone and as sentence + context (one ``evaluate`` call each, see
benchmarks/README.md). Each call writes ``<out>/<system>/summary.csv`` and ``run.json`` (with its wall time);
this script reads every ``<root>/<collection>_<candidate-text>/<system>/`` and writes
``<root>/evaluate.md`` (the paper-format table per collection and candidate text, with wall times) and
``<root>/evaluate_map.png`` (mAP per setting type, a panel per collection)::

    python benchmarks/evaluate_tables.py benchmarks/results/evaluate
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pyterrier_hybrid.evaluation.report import markdown_table  # noqa: E402

COLUMNS = [("monolingual", "mAP"), ("cross-lingual", "mAP"), ("multilingual", "mAP"), ("multilingual", "R@1"),
           ("multilingual", "R@10"), ("multilingual", "RankDistance")]
HEADERS = ["Monolingual mAP", "Cross-lingual mAP", "Multilingual mAP", "R@1 (pool)", "R@10 (pool)",
           "Rank distance ↓"]


def collect(root: Path) -> pd.DataFrame:
    rows = []
    for summary in sorted(root.glob("*/*/summary.csv")):
        system_dir = summary.parent
        run = json.loads((system_dir / "run.json").read_text())
        values = pd.read_csv(summary).set_index(["setting_type", "measure"])["value"]
        row = {"collection": run["collection"], "candidate_text": run["candidate_text"], "system": run["system"],
               "wall_time_s": run.get("wall_time_s")}
        for (setting_type, measure), header in zip(COLUMNS, HEADERS):
            row[header] = values.get((setting_type, measure))
        rows.append(row)
    if not rows:
        raise SystemExit(f"no <collection>_<candidate-text>/<system>/summary.csv under {root}")
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    lines = []
    for (collection, candidate_text), group in frame.groupby(["collection", "candidate_text"], sort=True):
        group = group.sort_values("system")
        cells = pd.DataFrame({"System": group["system"].tolist()})
        for h in HEADERS:
            cells[h] = [f"{v:.1f}" if h.startswith("Rank") else f"{v:.4f}" for v in group[h]]
        cells["wall time (s)"] = [f"{v:.0f}" for v in group["wall_time_s"]]
        lines += [f"### {collection}, candidates: {candidate_text}", "", markdown_table(cells), ""]
    return "\n".join(lines)


def plot(frame: pd.DataFrame, path: Path) -> None:
    collections = sorted(frame["collection"].unique())
    fig, axes = plt.subplots(1, len(collections), figsize=(6 * len(collections), 4), squeeze=False)
    for ax, collection in zip(axes[0], collections):
        group = frame[frame["collection"] == collection]
        table = group.set_index(group["system"] + "\n" + group["candidate_text"])[HEADERS[:3]].sort_index()
        table.columns = ["mono", "cross", "multi"]
        table.plot.bar(ax=ax, rot=0)
        ax.set_title(collection)
        ax.set_ylabel("mAP")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder holding <collection>_<candidate-text>/<system>/ folders")
    args = parser.parse_args(argv)
    frame = collect(args.root)
    (args.root / "evaluate.md").write_text(markdown(frame), encoding="utf-8")
    frame.to_csv(args.root / "evaluate.csv", index=False)
    plot(frame, args.root / "evaluate_map.png")
    print(markdown(frame))
    print(f"written: {args.root / 'evaluate.md'}, evaluate.csv, evaluate_map.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
