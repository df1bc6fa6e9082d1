"""Language-bias removal at retrieval time: training-free debiasing alone and on top of trained models.

Steps (each resumable: a result already saved is reused, so the script can be re-run as trained models appear):

    python benchmarks/debias.py langid                       # language-ID accuracy on every LAReQA question
    python benchmarks/debias.py choose-k --collection mlqa-r # k of lir / global, chosen with the base model on the
                                                             # TRAINING collection of a direction (never XQuAD-R
                                                             # for the MLQA-R -> XQuAD-R direction)
    python benchmarks/debias.py run --train mlqa-r --eval xquad-r \\
        --system base=default --system hybrid=benchmarks/results/debias/models/mlqa-r-hybrid ...
    python benchmarks/debias.py report                       # table (md + csv), plot, per-language check

Every system is evaluated with :func:`pyterrier_hybrid.evaluation.evaluate_lareqa` (sentence candidates, all
languages of the evaluation collection, exact full-pool AP) without debiasing and with each method:

- ``mean``: per-language mean centering with the candidates' means on both sides (fitted on each candidate pool
  the evaluation asks for: nothing from the evaluation questions);
- ``mean@TRAIN``: the same with query-side means from the training collection's questions (languages it lacks
  fall back to the candidates' means of that language);
- ``lir:K`` / ``global:K``: LIR per language / label-free top principal directions, K from ``choose-k``;
- ``mean@EVAL`` (transductive, reported apart): query means from the evaluation questions' texts (no relevance).

One DenseRetrieverFactory per model is shared by all its methods, so the pool and the questions are encoded once.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pyterrier_hybrid.evaluation.subsets import TopicSubset
from pyterrier_hybrid.experiments.records import RunRecord, provenance, read_record
from pyterrier_hybrid.provenance import git_commit

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "debias"
K_GRID = (1, 2, 4, 8, 16)
CHOICE_METHODS = ("lir", "global")
SETTING_TYPES = ("monolingual", "cross-lingual", "multilingual")
AIM = {"multilingual mAP": 0.65, "rank distance": 250, "monolingual mAP": 0.79}


def _commit() -> str:
    return git_commit()


def _write_run_json(path: Path, step: str, started: float, **extra) -> None:
    RunRecord({"step": step, **extra}, {"git_commit": _commit(), "wall_time_s": round(time.perf_counter() - started, 1),
                                        "timings": "2 CPU cores shared with other jobs (noisy)", **provenance(),
                                        "command": "python " + " ".join(_script_argv())}).write(path)


def _script_argv() -> list[str]:
    """The command line with the script relative to the repository (no machine paths in the records)."""
    script = Path(sys.argv[0])
    return [str(script.relative_to(REPO)) if script.is_absolute() else sys.argv[0], *sys.argv[1:]]


def _evaluation_record(system: str, method: str, extra: dict) -> RunRecord:
    """An evaluation's record; the result folder is ``<kind>/<collection>/<system>/<method>``, so the system and the
    method are what a saved result must match to be reused."""
    return RunRecord({"system": system, "method": method or "none"}, {**extra, "git_commit": _commit()})


def _finished(out: Path, system: str, method: str) -> dict | None:
    """The record of a finished evaluation in ``out`` of ``system`` with ``method``, or None."""
    saved = read_record(out)
    finished = (out / "summary.json").is_file() and _evaluation_record(system, method, {}).matches(saved)
    return saved if finished else None


# ---------------------------------------------------------------------------------------------------------------------
# language identification


def langid(args) -> None:
    from pyterrier_hybrid.datasets import lareqa_collection
    from pyterrier_hybrid.retrieval.debias_langid import LanguageIdentifier

    started = time.perf_counter()
    rows = []
    for collection in ("xquad-r", "mlqa-r"):
        topics = lareqa_collection(collection).topics()
        langs = sorted(set(topics["lang"]))
        gold = topics["lang"].to_numpy(object)
        for backend in ("py3langid", "lingua"):
            for restricted in (True, False):
                t0 = time.perf_counter()
                identifier = LanguageIdentifier(langs if restricted else None, backend=backend)
                predicted = np.asarray(identifier(topics["query"].tolist()), dtype=object)
                wall = time.perf_counter() - t0
                correct = predicted == gold
                row = {"collection": collection, "backend": backend,
                       "languages": "the collection's" if restricted else "all the library knows",
                       "accuracy": correct.mean(), "questions": len(gold), "wall_s": round(wall, 1)}
                row.update({lang: correct[gold == lang].mean() for lang in langs})
                rows.append(row)
                print(f"{collection} {backend} restricted={restricted}: {correct.mean():.4f} ({wall:.1f} s)")
    frame = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT / "langid.csv", index=False)
    (OUT / "langid.md").write_text(
        "# Language identification of the LAReQA questions (all of them)\n\nAccuracy overall and per language "
        "(ISO 639-1), restricted to the collection's languages or over all the library knows.\n\n"
        + frame.to_markdown(index=False, floatfmt=".4f") + "\n\nChoice: py3langid restricted to the fitted "
        "languages (the default of `LanguageIdentifier`): the most accurate on both collections and in every "
        "language, 4.5 MB in its wheel against lingua's 96 MB, and faster. Unrestricted, py3langid misplaces 10-13% "
        "of the Chinese questions and lingua 8% of the Hindi ones, which is why the debiasing restricts its detector "
        "to the languages it was fitted on.\n", encoding="utf-8")
    _write_run_json(OUT / "langid_run.json", "langid", started)


# ---------------------------------------------------------------------------------------------------------------------
# evaluation


def _options(args):
    from pyterrier_hybrid.retrieval.system_specs import SystemOptions

    return SystemOptions(candidate_text="sentence", precision="auto", batch_size=args.batch_size, verbose=True)


def _result_dir(kind: str, collection: str, system: str, method: str) -> Path:
    from pyterrier_hybrid.retrieval.system_specs import debias_slug

    return OUT / kind / collection / system / (debias_slug(method) if method else "none")


def _evaluate(factory, collection: str, out: Path, system: str, method: str, extra: dict) -> dict:
    """Evaluate (or reuse a saved evaluation) and return the summary row."""
    from pyterrier_hybrid.evaluation import EvaluationResult, LAReQAEvaluationConfig, evaluate_lareqa

    saved = _finished(out, system, method)
    if saved is not None:
        result = EvaluationResult.load(out)
        wall = saved.get("wall_time_s")
    else:
        started = time.perf_counter()
        result = evaluate_lareqa(factory, collection, system=f"{system}+{method}" if method else system,
                                 config=LAReQAEvaluationConfig(per_query=False, cross_check=False))
        wall = round(time.perf_counter() - started, 1)
        result.save(out)
        record = _evaluation_record(system, method, extra)
        record.facts["wall_time_s"] = wall
        record.write(out)  # after the result: a record means the result beside it is complete
    summary = result.summary_dict()
    return {"collection": getattr(collection, "name", collection), "system": system, "method": method or "none",
            **extra,
            "mono mAP": summary["monolingual"]["mAP"], "cross mAP": summary["cross-lingual"]["mAP"],
            "multi mAP": summary["multilingual"]["mAP"], "R@1": summary["multilingual"].get("R@1"),
            "R@10": summary["multilingual"].get("R@10"), "rank distance": summary["multilingual"]["RankDistance"],
            "wall_s": wall}


VECTORS = OUT / "models" / "vectors"  # gitignored (benchmarks/results/**/models/)


def _store(label: str, collection: str, kind: str) -> Path:
    return VECTORS / f"{label}--{collection}--{kind}.npy"


def prefill(base, label: str, candidate_collections=(), query_collections=(), subset=None,
            question_samples: dict | None = None) -> None:
    """Fill the base factory's caches with every candidate / question of the collections, from ``.npy`` files
    saved by an earlier run (the machine is shared and slow: encodings must survive a restart) or by encoding now.

    The stored rows follow the collection's order, which the caches' keys (docno, text) / (qid, query) reproduce.
    """
    from pyterrier_hybrid.datasets import lareqa_collection
    from pyterrier_hybrid.retrieval.biencoder import candidate_texts

    VECTORS.mkdir(parents=True, exist_ok=True)
    for kind, collections in (("candidates", candidate_collections), ("questions", query_collections)):
        for collection in collections:
            coll = subset or lareqa_collection(collection)
            sample = (question_samples or {}).get(collection) if kind == "questions" else None
            coll = sample or coll
            if kind == "candidates":
                frame = coll.candidates()
                texts = candidate_texts(frame, base.encoder.candidate_text, base.encoder.text_field)
                keys, cache, encode = list(zip(frame["docno"].astype(str), texts)), base.candidate_cache, \
                    base.encoder.encode_docs
            else:
                frame = coll.topics()
                texts = frame["query"].astype(str).tolist()
                keys, cache, encode = list(zip(frame["qid"].astype(str), texts)), base.query_cache, \
                    base.encoder.encode_queries
            path = _store(label, collection + ("-subset" if subset else "") + (f"-q{sample.step}" if sample else ""),
                          kind)
            if path.is_file():
                stored = np.load(path)
                if stored.shape[0] != len(keys):
                    raise SystemExit(f"{path}: {stored.shape[0]} vectors for {len(keys)} {kind}; delete it")
                index_of = {key: i for i, key in enumerate(keys)}
                rows = [index_of[key] for key in _new_keys(keys, cache)]
                cache.vectors(keys, texts, lambda _texts: stored[rows])
                print(f"{label}: {len(keys)} {kind} of {collection} from {path.name}", flush=True)
            else:
                print(f"{label}: encoding {len(keys)} {kind} of {collection}", flush=True)
                vectors = cache.vectors(keys, texts, encode)
                np.save(path, vectors)


def _new_keys(keys, cache) -> list:
    seen, out = set(), []
    for key in keys:
        if key not in cache._row_of and key not in seen:
            seen.add(key)
            out.append(key)
    return out


COLLECTION_FIT = "+coll"  # method suffix: fitted once on the collection's whole candidate set, not per pool


def _factory(base, method: str | None, query_topics=None, fit_candidates=None):
    from pyterrier_hybrid.retrieval.debias import DebiasConfig
    from pyterrier_hybrid.retrieval.debias_factory import DebiasedRetrieverFactory

    if not method:
        return base
    name = method.partition("@")[0].removesuffix(COLLECTION_FIT)
    return DebiasedRetrieverFactory(base, DebiasConfig.parse(name), query_topics=query_topics, label=method,
                                    fit_candidates=fit_candidates if method.endswith(COLLECTION_FIT) else None)


class ParallelIdSample(TopicSubset):
    """A LAReQA collection cut to the questions of every ``step``-th parallel id (sorted), in every language: an
    unbiased systematic sample for the mean AP. With ``answer_paragraphs_only`` the pools keep only the sentences of
    the paragraphs that hold those questions' relevant candidates (LAReQA's sentence-level distractors, a pool small
    enough to encode on a shared 2-core machine: the k choice); otherwise every candidate stays."""

    def __init__(self, name: str, step: int, *, answer_paragraphs_only: bool = False):
        from pyterrier_hybrid.datasets import lareqa_collection

        collection = lareqa_collection(name)
        topics = collection.topics()
        ids = set(sorted(set(topics["parallel_id"]))[::step])
        super().__init__(collection, topics.loc[topics["parallel_id"].isin(ids), "qid"], f"1 in {step} parallel ids",
                         answer_paragraphs_only=answer_paragraphs_only)
        self.step = step


def choose_k(args) -> None:
    """Evaluate lir:K and global:K for the base model on a sample of ``--collection`` (every ``--step``-th parallel
    id) and keep the K of best multilingual mAP."""
    from pyterrier_hybrid.retrieval.system_specs import SystemSpec, build_factory

    started = time.perf_counter()
    base = build_factory(SystemSpec("base", args.model), _options(args))
    sample = ParallelIdSample(args.collection, args.sample_step, answer_paragraphs_only=True)
    print(f"k choice on {args.collection}: {len(sample.topics())} questions, {len(sample.candidates())} candidates")
    prefill(base, "default" if args.model == "default" else Path(args.model).name, [args.collection],
            [args.collection], subset=sample)
    rows = [_evaluate(base, sample, _result_dir("k_choice", args.collection, "base", ""), "base", "",
                      {"role": "k choice"})]
    for method in CHOICE_METHODS:
        for k in args.k:
            label = f"{method}:{k}"
            rows.append(_evaluate(_factory(base, label), sample,
                                  _result_dir("k_choice", args.collection, "base", label), "base", label,
                                  {"role": "k choice"}))
            print(pd.DataFrame(rows).tail(1).to_string(index=False))
    frame = pd.DataFrame(rows)
    chosen = {}
    for method in CHOICE_METHODS:
        of = frame[frame["method"].str.startswith(method + ":")]
        best = of.loc[of["multi mAP"].idxmax()]
        chosen[method] = int(best["method"].split(":")[1])
    folder = OUT / "k_choice" / args.collection
    frame.to_csv(folder / "k_choice.csv", index=False)
    (folder / "k_choice.md").write_text(
        f"# k of lir / global chosen on {args.collection} with the untrained base model\n\nSample: every "
        f"{args.sample_step}th parallel id ({len(sample.topics())} questions; the {len(sample.candidates())} "
        f"sentences of the paragraphs holding their answers). Criterion: the best multilingual mAP. Chosen: "
        f"{chosen}.\n\n" + frame.drop(columns=["role"]).to_markdown(index=False, floatfmt=".4f") + "\n",
        encoding="utf-8")
    (folder / "chosen_k.json").write_text(json.dumps(chosen, indent=2) + "\n")
    _write_run_json(folder / "run.json", "choose-k", started, model=args.model, ks=list(args.k), chosen=chosen,
                    step=args.sample_step, questions=len(sample.topics()), candidates=len(sample.candidates()))
    print(f"chosen on {args.collection}: {chosen}")


def chosen_k(train: str) -> dict:
    path = OUT / "k_choice" / train / "chosen_k.json"
    if not path.is_file():
        raise SystemExit(f"no k chosen on {train} yet: run `python benchmarks/debias.py choose-k --collection {train}`")
    return json.loads(path.read_text())


def run(args) -> None:
    from pyterrier_hybrid.datasets import lareqa_collection
    from pyterrier_hybrid.retrieval.system_specs import SystemSpec, build_factory

    started = time.perf_counter()
    methods = ["", "mean", f"mean@{args.train}"]
    if not args.no_transductive:
        methods.append(f"mean@{args.eval}")
    k_source = None
    if args.lir_k and args.global_k:
        methods += [f"lir:{args.lir_k}", f"global:{args.global_k}"]
        k_source = "a priori (--lir-k / --global-k)"
    elif (OUT / "k_choice" / args.train / "chosen_k.json").is_file():
        ks = chosen_k(args.train)
        methods += [f"lir:{ks['lir']}", f"global:{ks['global']}"]
        k_source = args.train
    else:
        print(f"no k chosen on {args.train} yet: lir and global rows left for a later run", flush=True)
    methods += [m for m in args.extra_method if m not in methods]
    if args.methods:
        methods = ["" if m == "none" else m for m in args.methods]
    samples = {c: ParallelIdSample(c, step) for c, step in ((args.eval, args.question_step),
                                                          (args.train, args.stats_step)) if step > 1}
    evaluated = samples.get(args.eval) or args.eval
    queries = {c: (samples[c] if c in samples else lareqa_collection(c)).topics() for c in {args.train, args.eval}}
    rows = []
    for text in args.system:
        spec = SystemSpec.parse(text)
        todo = [m for m in methods if _finished(_result_dir("runs", args.eval, spec.name, m), spec.name, m) is None]
        base = build_factory(SystemSpec(spec.name, spec.model), _options(args))
        if todo:
            prefill(base, "default" if spec.model == "default" else Path(spec.model).name, [args.eval],
                    sorted({args.eval, args.train}), question_samples=samples)
        for method in methods:
            source = method.partition("@")[2].removesuffix(COLLECTION_FIT)
            factory = _factory(base, method, queries[source] if source else None,
                               lareqa_collection(args.eval).candidates())
            extra = {"train": args.train, "transductive": source == args.eval,
                     "k chosen on": k_source if method.startswith(("lir", "global")) else None,
                     "questions": f"1 in {args.question_step} parallel ids" if args.question_step > 1 else "all",
                     "query statistics": (f"1 in {args.stats_step} parallel ids of {source}"
                                          if source and source in samples else (f"all of {source}" if source
                                                                               else None))}
            out = _result_dir("runs", args.eval, spec.name, method)
            rows.append(_evaluate(factory, evaluated, out, spec.name, method, extra))
            print(pd.DataFrame(rows).tail(1).drop(columns=["collection", "train"]).to_string(index=False), flush=True)
        del base
    _write_run_json(OUT / "runs" / args.eval / f"run_{'_'.join(SystemSpec.parse(t).name for t in args.system)}.json",
                    "run", started, train=args.train, eval=args.eval, systems=args.system, methods=methods)


# ---------------------------------------------------------------------------------------------------------------------
# report


def _load_rows() -> pd.DataFrame:
    rows = []
    for summary in sorted((OUT / "runs").glob("*/*/*/summary.json")):
        folder = summary.parent
        record = json.loads((folder / "run.json").read_text())
        data = json.loads(summary.read_text())["summary"]
        rows.append({"eval": folder.parts[-3], "train": record.get("train"), "system": record["system"],
                     "method": record["method"], "transductive": record.get("transductive", False),
                     "questions": _sample_label(record.get("questions", "all")),
                     "k chosen on": record.get("k chosen on"),
                     "mono mAP": data["monolingual"]["mAP"], "cross mAP": data["cross-lingual"]["mAP"],
                     "multi mAP": data["multilingual"]["mAP"], "R@10": data["multilingual"].get("R@10"),
                     "rank distance": data["multilingual"]["RankDistance"], "wall_s": record.get("wall_time_s"),
                     "folder": str(folder.relative_to(OUT))})
    return pd.DataFrame(rows)


SYSTEM_ORDER = ("base", "X-X-mono", "X-Y", "hybrid")


def _sample_label(text: str) -> str:
    """``every 3th parallel id`` (the first runs' wording) -> ``1 in 3 parallel ids``."""
    import re

    match = re.fullmatch(r"every (\d+)th parallel id", text or "")
    return f"1 in {match.group(1)} parallel ids" if match else text


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    system_rank = {s: i for i, s in enumerate(SYSTEM_ORDER)}
    def method_rank(method: str) -> int:
        return 0 if method == "none" else 1 if method.startswith("mean") else 2 if method.startswith("lir") else 3

    frame = frame.assign(_s=frame["system"].map(lambda s: system_rank.get(s, 9)),
                         _m=frame["method"].map(method_rank) + frame["transductive"].astype(int) * 10)
    return frame.sort_values(["eval", "_s", "_m", "method"]).drop(columns=["_s", "_m"])


def per_language_mono(frame: pd.DataFrame) -> pd.DataFrame:
    """Monolingual AP per language, every system x method, with the change against the same system undebiased."""
    rows = []
    for _, row in frame.iterrows():
        per_setting = pd.read_csv(OUT / row["folder"] / "per_setting.csv")
        mono = per_setting[(per_setting["setting_type"] == "monolingual") & (per_setting["measure"] == "AP")]
        for _, setting in mono.iterrows():
            rows.append({"eval": row["eval"], "system": row["system"], "method": row["method"],
                         "transductive": row["transductive"], "lang": setting["query_lang"],
                         "mono AP": setting["value"]})
    long = pd.DataFrame(rows)
    none = long[long["method"] == "none"].set_index(["eval", "system", "lang"])["mono AP"]
    long["change"] = long["mono AP"].to_numpy() - none.reindex(
        pd.MultiIndex.from_frame(long[["eval", "system", "lang"]])).to_numpy()
    return long


def report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = _order(_load_rows())
    if frame.empty:
        raise SystemExit("no results under benchmarks/results/debias/runs yet")
    table = frame.drop(columns=["folder"])
    table["k chosen on"] = table["k chosen on"].fillna("")
    table.to_csv(OUT / "debias.csv", index=False)
    lines = ["# Language-bias removal at retrieval time", "",
             "Sentence candidates, all languages of the evaluation collection, every candidate in every pool, exact "
             "full-pool AP; `questions`: which questions were scored (a systematic sample of parallel ids keeps all "
             "languages of a question). Methods fitted per candidate pool unless `+coll` (fitted once on the "
             "collection's whole candidate set); `@C`: query-side means from collection C's questions. "
             "`transductive` rows fit query statistics on the evaluated questions' texts (never their relevance) and "
             "are reported apart. One run: differences below ~0.01 are within noise.", ""]
    for eval_collection, of in table.groupby("eval", sort=False):
        lines += [f"## evaluation on {eval_collection} (trained on {of['train'].iloc[0]})", "",
                  of.drop(columns=["eval", "train"]).to_markdown(index=False, floatfmt=".4f"), ""]
    mono = per_language_mono(frame)
    mono.to_csv(OUT / "per_language_mono.csv", index=False)
    pivot = mono[~mono["method"].eq("none")].pivot_table(index=["eval", "system", "method"], columns="lang",
                                                         values="change")
    pivot["worst"] = pivot.min(axis=1)
    lines += ["## Does debiasing hurt monolingual search anywhere?", "",
              "Change of monolingual AP per language (debiased minus the same system undebiased):", "",
              pivot.reset_index().to_markdown(index=False, floatfmt="+.4f"), ""]
    (OUT / "debias.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

    plot(table, plt)
    print((OUT / "debias.md").read_text())


REFERENCE = REPO / "benchmarks" / "results" / "paper_comparison" / "cpu"


def _reference_rows(eval_collection: str, train: str) -> pd.DataFrame:
    """The committed cpu comparison's trained systems (no debiasing, all questions), for the plot."""
    path = REFERENCE / f"{train}_to_{eval_collection}" / "table.csv"
    if not path.is_file():
        return pd.DataFrame()
    table = pd.read_csv(path)
    table = table[~table["System"].isin(["BM25", "base (untrained)"])]
    return pd.DataFrame({"label": "(b) " + table["System"] + ", trained, no debiasing",
                         "mono mAP": table["Monolingual mAP"], "cross mAP": table["Cross-lingual mAP"],
                         "multi mAP": table["Multilingual mAP"], "rank distance": table["Rank distance ↓"]})


def plot(table: pd.DataFrame, plt) -> None:
    """One row of panels per evaluation collection: mono / cross / multi mAP and rank distance, one horizontal bar
    per system x method (transductive rows hatched), the committed trained systems in grey, the aim dashed."""
    evals = list(dict.fromkeys(table["eval"]))
    measures = ("mono mAP", "cross mAP", "multi mAP", "rank distance")
    aim = {"mono mAP": AIM["monolingual mAP"], "multi mAP": AIM["multilingual mAP"],
           "rank distance": AIM["rank distance"]}
    heights = [len(table[table["eval"] == e]) + 4 for e in evals]
    fig, axes = plt.subplots(len(evals), 4, figsize=(16, 0.32 * sum(heights) + 1.5), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for row_axes, eval_collection in zip(axes, evals):
        of = table[table["eval"] == eval_collection]
        labels = (of["system"] + " + " + of["method"] + " [" + of["questions"] + "]").tolist()
        colours = ["tab:blue" if m == "none" else "tab:orange" if m.startswith("mean") else
                   "tab:green" if m.startswith("lir") else "tab:red" for m in of["method"]]
        reference = _reference_rows(eval_collection, of["train"].iloc[0])
        labels += reference["label"].tolist() if len(reference) else []
        for axis, measure in zip(row_axes, measures):
            values = of[measure].tolist() + (reference[measure].tolist() if len(reference) else [])
            bars = axis.barh(np.arange(len(values)), values,
                             color=colours + ["0.6"] * (len(values) - len(colours)))
            for bar, transductive in zip(bars, of["transductive"].tolist()):
                if transductive:
                    bar.set_hatch("//")
            if measure in aim and eval_collection == "xquad-r":
                axis.axvline(aim[measure], color="k", ls="--", lw=0.9)
            axis.set_yticks(np.arange(len(values)), labels if measure == measures[0] else [""] * len(values),
                            fontsize=7)
            axis.invert_yaxis()
            axis.set_title(f"{eval_collection}: {measure}" + (" (lower is better)" if "distance" in measure else ""),
                           fontsize=9)
            if "mAP" in measure:
                low = min(values)
                axis.set_xlim(max(0, low - 0.05), max(values) + 0.03 if measure != "multi mAP" else 0.7)
    fig.suptitle("Training-free debiasing of the untrained base and of trained systems (orange: mean, green: LIR, "
                 "red: label-free global; hatched: transductive) and the committed trained systems (grey); dashed: "
                 "the aim",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(OUT / "debias.png", dpi=120)
    plt.close(fig)


def language_variance(args) -> None:
    """Share of each top principal direction's variance that language identity explains (eta squared), for the
    base model's candidate pool: the label-free method's premise."""
    from pyterrier_hybrid.datasets import lareqa_collection
    from pyterrier_hybrid.retrieval.system_specs import SystemSpec, build_factory

    started = time.perf_counter()
    factory = build_factory(SystemSpec("base", args.model), _options(args))
    prefill(factory, "default" if args.model == "default" else Path(args.model).name, args.collections)
    rows = []
    for collection in args.collections:
        candidates = lareqa_collection(collection).candidates()
        retriever = factory(candidates)
        langs = pd.Series(candidates["lang"].to_numpy(object), index=candidates["docno"].astype(str)).reindex(
            retriever.docnos).to_numpy(object)
        centred = retriever.doc_vectors - retriever.doc_vectors.mean(axis=0)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        total = (singular ** 2).sum()
        for i in range(args.k):
            projection = centred @ vt[i]
            by_lang = pd.Series(projection).groupby(langs)
            between = (by_lang.size() * by_lang.mean() ** 2).sum() / (projection ** 2).sum()
            rows.append({"collection": collection, "direction": i + 1,
                         "share of pool variance": singular[i] ** 2 / total, "explained by language (eta^2)": between})
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT / "language_variance.csv", index=False)
    (OUT / "language_variance.md").write_text(
        "# How much of the top principal directions of the candidate pool is language identity?\n\nBase model, "
        "sentence candidates, all languages; eta^2 = between-language share of the variance along the direction.\n\n"
        + frame.to_markdown(index=False, floatfmt=".3f") + "\n", encoding="utf-8")
    _write_run_json(OUT / "language_variance_run.json", "language-variance", started)
    print(frame.to_string(index=False))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("langid", help="language-ID accuracy on all LAReQA questions")
    p = sub.add_parser("choose-k", help="k of lir/global on a training collection, base model")
    p.add_argument("--collection", required=True, choices=["mlqa-r", "xquad-r"])
    p.add_argument("--model", default="default")
    p.add_argument("--k", type=int, nargs="+", default=list(K_GRID))
    p.add_argument("--step", dest="sample_step", type=int, default=5,
                   help="keep every STEP-th parallel id (default 5: a fifth)")
    p.add_argument("--batch-size", type=int, default=64)
    p = sub.add_parser("run", help="systems x methods on one direction")
    p.add_argument("--train", required=True, choices=["mlqa-r", "xquad-r"])
    p.add_argument("--eval", required=True, choices=["mlqa-r", "xquad-r"])
    p.add_argument("--system", action="append", required=True, metavar="NAME=MODEL")
    p.add_argument("--no-transductive", action="store_true")
    p.add_argument("--question-step", type=int, default=1,
                   help="evaluate the questions of every STEP-th parallel id only (all candidates stay)")
    p.add_argument("--stats-step", type=int, default=1,
                   help="query statistics from every STEP-th parallel id of the training collection's questions")
    p.add_argument("--lir-k", type=int, default=None, help="k of lir, fixed a priori (else from choose-k)")
    p.add_argument("--global-k", type=int, default=None, help="k of global, fixed a priori (else from choose-k)")
    p.add_argument("--extra-method", action="append", default=[], help="more methods (sensitivity rows)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="exactly these methods ('none' for no debiasing) instead of the default list")
    p.add_argument("--batch-size", type=int, default=64)
    p = sub.add_parser("language-variance", help="eta^2 of language along the pool's top principal directions")
    p.add_argument("--model", default="default")
    p.add_argument("--collections", nargs="+", default=["xquad-r", "mlqa-r"])
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    sub.add_parser("report", help="table, plot and per-language check from the saved results")
    args = parser.parse_args(argv)
    for name, value in {"HF_HUB_OFFLINE": "1"}.items():
        os.environ.setdefault(name, value)
    {"langid": langid, "choose-k": choose_k, "run": run, "report": report,
     "language-variance": language_variance}[args.step](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
