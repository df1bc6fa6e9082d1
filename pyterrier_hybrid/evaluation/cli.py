"""``pyterrier-hybrid evaluate``: score retrievers in every LAReQA setting (the package's main job).

For each ``--model`` it writes, under ``--out/<system>/``, the per-setting CSV, the summary (Markdown, CSV, JSON)
and the mAP heatmap (query language x document language); with several models also ``comparison.md`` and the
comparison plots. Any other ir_datasets id with queries, docs and qrels is evaluated as one plain setting.
``--max-queries N`` evaluates a whole LAReQA collection on the questions of N parallel ids only (drawn with a fixed
seed, every candidate kept: the pools are the full collection's), for quick runs; with ``--answer-paragraphs-only``
the pools keep only the sentences of those questions' answer paragraphs (tiny pools, a smoke test whose numbers do not
compare with the full collection's).

What can be checked without a model is checked first (:func:`check_request`: the model folders, the collection,
the languages, the release files' checksums), so a bad request is reported in a second, not after a model build.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..cli_args import add_answer_paragraphs_option, add_language_option, positive_int
from ..errors import UserError

LAREQA_PREFIX = "lareqa/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", dest="models", metavar="[NAME=]MODEL",
                        help="bm25, default (the embedded multilingual-e5-small), a sentence-transformers folder or a "
                             "hub id; repeatable. Default: the embedded default model")
    parser.add_argument("--collection", default="lareqa/xquad-r",
                        help="lareqa/xquad-r, lareqa/mlqa-r, or any ir_datasets id with queries, docs and qrels")
    add_language_option(parser, "--langs", default=None,
                        help="LAReQA languages to evaluate, 'de en' or 'de,en' (default: all)")
    parser.add_argument("--candidate-text", choices=["sentence", "sentence+context"], default="sentence+context",
                        help="what is encoded (dense) or indexed (BM25) for a candidate; LAReQA uses sentence+context")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="auto: bfloat16 autocast where the processor supports it, else float32")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="texts encoded at once (default: 64)")
    parser.add_argument("--out", default="results", help="output folder")
    parser.add_argument("--max-queries", type=positive_int, default=None, metavar="N",
                        help="LAReQA collections: evaluate the questions (in every language) of N parallel ids drawn "
                             "with a fixed seed, against every candidate (quick runs; default: every question)")
    add_answer_paragraphs_option(parser)
    parser.add_argument("--debias", default=None, metavar="METHOD[,METHOD]",
                        help="also evaluate each dense system debiased by each method (LAReQA only): mean, lir:K, "
                             "global:K, optionally @COLLECTION for query statistics (see docs/language-bias.md); "
                             "or name one system MODEL+debias:METHOD")
    large = parser.add_argument_group(
        "dense retrieval on ir_datasets collections (not LAReQA)",
        "documents stream through the encoder into a FlexIndex on disk; memory per retriever for n documents of d "
        "dimensions (vectors = n x d x 4 bytes): exact scans the memory-mapped vectors block by block (little "
        "memory); faiss-flat holds the vectors; faiss-hnsw the vectors + a graph of ~n x 64 x 8 bytes; faiss-ivf "
        "the vectors + centroids")
    large.add_argument("--index-dir", default=None,
                       help="index folder, reused when built from the same collection, model and candidate text "
                            "(e.g. by 'pyterrier-hybrid index' under torchrun); default: OUT/SYSTEM/index; with "
                            "several --model, one subfolder per system")
    large.add_argument("--overwrite-index", action="store_true",
                       help="delete an index folder built from something else (or unfinished) and build again")
    # default None, not "exact": a --retriever given where it does not apply is refused, so it must be told apart
    large.add_argument("--retriever", choices=["exact", "faiss-flat", "faiss-hnsw", "faiss-ivf"], default=None,
                       help="exact (default) and faiss-flat give exact scores; faiss-hnsw and faiss-ivf approximate")
    large.add_argument("--hnsw-ef-search", type=positive_int, default=None,
                       help="faiss-hnsw candidate list per query (higher: better recall, slower)")
    large.add_argument("--ivf-nprobe", type=positive_int, default=None,
                       help="faiss-ivf lists searched per query (higher: better recall, slower)")
    large.add_argument("--ivf-nlist", type=positive_int, default=None, help="faiss-ivf lists (default: ~sqrt(n))")


def is_whole_lareqa(collection: str) -> bool:
    """``lareqa/xquad-r`` or ``lareqa/mlqa-r``: a whole collection, scored in every setting (a single setting such as
    ``lareqa/xquad-r/de`` is evaluated like any ir_datasets id)."""
    return collection.startswith(LAREQA_PREFIX) and collection.count("/") == 1


def check_request(args: argparse.Namespace) -> tuple[list, str, tuple[str, ...] | None]:
    """(system specs, collection id, languages) of the request, after checking everything that needs no model.

    Raises :class:`~pyterrier_hybrid.errors.UserError` (or a subclass naming the problem) for a malformed or
    duplicate ``--model``, a model folder that does not exist or holds no model, an unknown collection or
    language, ``--langs`` with a collection that is not LAReQA, and a missing or corrupt release file.
    """
    from ..datasets import ReleaseFiles
    from ..datasets.irds import setting_of
    from ..retrieval.system_specs import (
        SystemSpecError,
        check_model,
        check_unique_names,
        parse_system,
        with_debias_rows,
    )

    try:
        specs = [parse_system(text) for text in args.models or ["default"]]
    except SystemSpecError as e:
        raise UserError(f"--model: {e}") from None
    if getattr(args, "debias", None):
        specs = with_debias_rows(specs, [m.strip() for m in args.debias.split(",") if m.strip()])
    check_unique_names(specs)
    for spec in specs:
        check_model(spec.model)  # a local folder must exist and hold a model; "default" is built later

    collection = args.collection.removeprefix("irds:")
    langs = args.langs
    if is_whole_lareqa(collection):
        name = collection[len(LAREQA_PREFIX):]
        ReleaseFiles().verify(name, langs)  # unknown collection or language, missing or corrupt release file
    elif args.max_queries is not None or args.answer_paragraphs_only:
        flag = "--max-queries" if args.max_queries is not None else "--answer-paragraphs-only"
        raise UserError(f"{flag} applies to the LAReQA collections (lareqa/xquad-r, lareqa/mlqa-r), not "
                        f"{collection}")
    elif any(spec.debias for spec in specs):
        raise UserError(f"debiasing needs the candidates' languages: it applies to lareqa/xquad-r and lareqa/mlqa-r, "
                        f"not {collection}")
    elif langs:
        raise UserError(f"--langs applies to the LAReQA collections (lareqa/xquad-r, lareqa/mlqa-r), not {collection}")
    elif collection.startswith(LAREQA_PREFIX):
        setting = setting_of(collection)
        ReleaseFiles().verify(setting.collection, sorted(set(setting.query_langs) | set(setting.doc_langs)))
    else:
        _check_irds_id(collection)
    if args.answer_paragraphs_only and args.max_queries is None:
        raise UserError("--answer-paragraphs-only keeps the answer paragraphs of the --max-queries questions: give "
                        "--max-queries N with it")
    check_index_options(args, collection, specs)
    return specs, collection, langs


#: The index and retriever options (flag, argument name, the retriever it tunes or None for every retriever).
INDEX_OPTIONS = (
    ("--index-dir", "index_dir", None),
    ("--overwrite-index", "overwrite_index", None),
    ("--retriever", "retriever", None),
    ("--hnsw-ef-search", "hnsw_ef_search", "faiss-hnsw"),
    ("--ivf-nprobe", "ivf_nprobe", "faiss-ivf"),
    ("--ivf-nlist", "ivf_nlist", "faiss-ivf"),
)


def check_index_options(args: argparse.Namespace, collection: str, specs) -> None:
    """Refuse an index or retriever option that the request would ignore: a whole LAReQA collection scores every
    candidate pool exactly in memory, BM25 holds its index in memory, and each FAISS parameter tunes one retriever.
    Silently ignoring one would report results of another retrieval than the one asked for."""
    given = [(flag, kind) for flag, name, kind in INDEX_OPTIONS if getattr(args, name, None) not in (None, False)]
    if not given:
        return
    flags = " and ".join(flag for flag, _ in given)
    applies = "applies" if len(given) == 1 else "apply"
    if is_whole_lareqa(collection):
        raise UserError(f"{flags} {applies} to dense retrieval through an index on ir_datasets collections, not to "
                        f"{collection}, whose candidate pools are scored exactly in memory (a single setting such as "
                        f"{collection}/de goes through an index)")
    if all(spec.is_bm25 for spec in specs):
        raise UserError(f"{flags} {applies} to dense systems; BM25 holds its own index in memory")
    retriever = args.retriever or "exact"
    for flag, kind in given:
        if kind is not None and kind != retriever:
            raise UserError(f"{flag} tunes --retriever {kind}, not {retriever}")


def _check_irds_id(dataset_id: str) -> None:
    from ..datasets.irds import load_irds_dataset

    try:
        dataset = load_irds_dataset(dataset_id)
    except KeyError:
        raise UserError(f"unknown collection {dataset_id!r}: expected lareqa/xquad-r, lareqa/mlqa-r or an "
                        "ir_datasets id") from None
    missing = [part for part in ("docs", "queries", "qrels") if not getattr(dataset, f"has_{part}")()]
    if missing:
        raise UserError(f"ir_datasets dataset {dataset_id!r} has no {' or '.join(missing)}; evaluation needs docs, "
                        "queries and qrels")


#: The seed of the parallel ids that ``--max-queries`` draws (the one ``compare --max-queries`` uses).
QUERY_SAMPLE_SEED = 0


def _lareqa_collection(name: str, langs, max_queries: int | None, answer_paragraphs_only: bool = False):
    """The LAReQA collection ``name``, or with ``max_queries`` its questions of that many parallel ids (asked in
    ``langs``) against every candidate: the pools, and so the difficulty of each setting, stay the full ones; with
    ``answer_paragraphs_only`` against the sentences of their answer paragraphs only."""
    from ..datasets import lareqa_collection
    from .subsets import TopicSubset

    collection = lareqa_collection(name)
    if max_queries is None:
        return collection
    return TopicSubset.sample_parallel_ids(collection, collection.check_languages(langs), max_queries,
                                           seed=QUERY_SAMPLE_SEED, answer_paragraphs_only=answer_paragraphs_only)


def _irds_config(args: argparse.Namespace, spec, n_systems: int):
    from ..retrieval.large import RetrieverConfig
    from .irds_runner import IrdsEvaluationConfig

    tuning = {"hnsw_ef_search": args.hnsw_ef_search, "ivf_n_probe": args.ivf_nprobe, "ivf_n_list": args.ivf_nlist}
    index_dir = Path(args.index_dir) if args.index_dir else Path(args.out) / spec.name / "index"
    if args.index_dir and n_systems > 1:
        index_dir = index_dir / spec.name
    return IrdsEvaluationConfig(
        index_dir=str(index_dir), overwrite_index=args.overwrite_index,
        retriever=RetrieverConfig(args.retriever or "exact", **{k: v for k, v in tuning.items() if v is not None}))


def run(args: argparse.Namespace) -> int:
    specs, collection, langs = check_request(args)

    from ..retrieval.system_specs import SystemOptions, build_factory
    from . import evaluate_irds, evaluate_lareqa
    from .plots import plot_rank_distance_bars, plot_setting_bars
    from .report import results_markdown

    options = SystemOptions(candidate_text=args.candidate_text, precision=args.precision, batch_size=args.batch_size)
    out = Path(args.out)
    whole_lareqa = is_whole_lareqa(collection)
    lareqa = (_lareqa_collection(collection[len(LAREQA_PREFIX):], langs, args.max_queries, args.answer_paragraphs_only)
              if whole_lareqa else None)
    if args.max_queries is not None:
        asked = len(lareqa.topics(lareqa.check_languages(langs)))
        pool = (f"the {len(lareqa.candidates(lareqa.check_languages(langs)))} candidates of their answer paragraphs"
                if args.answer_paragraphs_only else "every candidate")
        print(f"{collection}: {lareqa.description}: {asked} questions against {pool}")
    results = []
    dense_factories: dict = {}  # a system and its debiased variants encode once
    for spec in specs:
        started = time.perf_counter()
        factory = build_factory(spec, options, dense_factories=dense_factories)
        if whole_lareqa:
            result = evaluate_lareqa(factory, lareqa, langs, system=spec.name)
        else:
            result = evaluate_irds(factory, collection, system=spec.name, config=_irds_config(args, spec, len(specs)))
        wall = time.perf_counter() - started
        paths = result.save(out / spec.name)
        (out / spec.name / "run.json").write_text(json.dumps({
            "system": spec.name, "model": spec.model, "debias": spec.debias, "collection": collection,
            "langs": list(langs) if langs else None, "max_queries": args.max_queries,
            "answer_paragraphs_only": args.answer_paragraphs_only,
            "questions": lareqa.description if args.max_queries is not None else "all",
            "candidate_text": args.candidate_text, "precision": args.precision, "wall_time_s": round(wall, 1),
        }, indent=2) + "\n")
        files = ", ".join(p.name for p in paths.values())
        print(f"\n{spec.name}: {wall:.0f} s; results in {out / spec.name} ({files})")
        results.append(result)
    table = results_markdown(results)
    print("\n" + table)
    if len(results) > 1:
        (out / "comparison.md").write_text(table + "\n", encoding="utf-8")
        if collection.startswith(LAREQA_PREFIX):
            plot_setting_bars(results, path=out / "settings_bars.png")
            plot_rank_distance_bars(results, path=out / "rank_distance_bars.png")
        print(f"comparison: {out / 'comparison.md'}; plots: {out}/*.png")
    return 0
