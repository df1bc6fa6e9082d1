"""``pyterrier-hybrid datasets``: list every registered LAReQA id with its numbers of queries, candidates, qrels."""
from __future__ import annotations

import argparse

import pandas as pd

from .irds import LAReQASetting, settings
from .lareqa import COLLECTIONS, LAReQACollection
from .release import ReleaseFiles


def dataset_table(collections=None, local_dir=None) -> pd.DataFrame:
    """One row per registered id: id, setting kind, query and document languages, queries, candidates, qrels."""
    files = ReleaseFiles(local_dir=local_dir)
    loaded: dict[str, LAReQACollection] = {}
    rows = []
    for dataset_id, setting in settings().items():
        if collections and setting.collection not in collections:
            continue
        collection = loaded.setdefault(setting.collection, LAReQACollection(setting.collection, files))
        rows.append(_row(dataset_id, setting, collection))
    return pd.DataFrame(rows)


def _row(dataset_id: str, setting: LAReQASetting, collection: LAReQACollection) -> dict:
    queries = collection.questions(setting.query_langs, setting.doc_langs)
    qrels = collection.qrels(setting.query_langs, setting.doc_langs)
    return {
        "id": dataset_id,
        "setting": setting.kind,
        "query_langs": " ".join(setting.query_langs),
        "doc_langs": " ".join(setting.doc_langs),
        "queries": len(queries),
        "candidates": len(collection.candidates(setting.doc_langs)),
        "qrels": len(qrels),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collection", action="append", choices=COLLECTIONS,
                        help="only this collection (repeatable); default: both")
    parser.add_argument("--lareqa-dir", default=None,
                        help="local copy of the LAReQA release folder (default: $PYTERRIER_HYBRID_LAREQA_DIR, "
                             "else the ir_datasets home, downloading when needed)")
    parser.add_argument("--format", choices=["markdown", "csv"], default="markdown")


def run(args: argparse.Namespace) -> int:
    files = ReleaseFiles(local_dir=args.lareqa_dir)
    for collection in args.collection or COLLECTIONS:
        files.verify(collection)  # a missing or corrupt release file is reported before anything is parsed
    table = dataset_table(args.collection, args.lareqa_dir)
    print(table.to_markdown(index=False) if args.format == "markdown" else table.to_csv(index=False), end="\n")
    return 0
