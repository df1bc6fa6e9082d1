"""Large collections: memory, disk, encoding speed and approximate search of the streamed FlexIndex path.

A synthetic multilingual corpus recombined from LAReQA sentences (XQuAD-R and MLQA-R candidates, 11 languages): with
a fixed seed, passage i is 1-3 random sentences of one random language. It is generated block by block and streamed
into :class:`pyterrier_hybrid.retrieval.large.ShardedIndex` (never materialised), encoded by a small randomly
initialised BERT with 384 output dimensions (memory does not depend on model quality; the multilingual-e5-small
tokenizer, 1 layer, short max length, so millions of passages encode on 2 shared cores).

Steps (each writes one JSON record under ``--out``; ``report`` tabulates and plots them):

- ``build --size N``: one process builds the N-passage index, then searches it exactly (pyterrier-dr's numpy
  retriever over the memory-mapped vectors) for the measured queries. Records peak resident memory (getrusage
  maxrss, which counts the memory-mapped index pages the search touches, and the peak of RssAnon sampled every
  0.1 s, which leaves the file-backed index pages aside), index size on disk, passages/s and tokens/s.
- ``build --size N`` under ``torchrun --nproc-per-node 2``: the same with 2 shards (tokens/s per process).
- ``ann --index-dir``: HNSW and IVF against exact search on one index: recall@100 of each setting (the fraction of
  the exact top 100 it returns) and latency per query. Settings are chosen on ``--tune-queries`` questions and
  measured on ``--queries`` other questions.
- ``report``: table (Markdown + CSV) and plot (peak memory against corpus size) from the records.

Run (see benchmarks/README.md (g))::

    python benchmarks/large_collection.py build --size 100000 --index-dir /tmp/lc/100k
    torchrun --nproc-per-node 2 benchmarks/large_collection.py build --size 100000 --index-dir /tmp/lc/100k-2p
    python benchmarks/large_collection.py ann --index-dir /tmp/lc/1m
    python benchmarks/large_collection.py report
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from pyterrier_hybrid.experiments.records import RunRecord, provenance, read_record
from pyterrier_hybrid.provenance import git_commit

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "large_collection"
MODEL_DIR = REPO / ".cache" / "large_collection" / "random-bert-384"
LANGS = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]
SEED = 0
BLOCK = 8192
MAX_LENGTH = 32
GIB = 1024 ** 3


# ---------------------------------------------------------------------------------------------------------------
# Corpus and queries


def sentence_pool() -> dict[str, np.ndarray]:
    """LAReQA candidate sentences by language (XQuAD-R and MLQA-R, deduplicated): ~30k sentences, small."""
    from pyterrier_hybrid.datasets import lareqa_collection

    pool: dict[str, set] = {lang: set() for lang in LANGS}
    for name in ("xquad-r", "mlqa-r"):
        candidates = lareqa_collection(name).candidates(None)
        for lang, text in zip(candidates["lang"], candidates["text"]):
            pool[lang].add(text)
    return {lang: np.array(sorted(texts), dtype=object) for lang, texts in pool.items() if texts}


def synthetic_passages(size: int, seed: int = SEED) -> Iterator[dict]:
    """``size`` passages, one at a time: passage i is 1-3 sentences of one language, drawn with a fixed seed in
    blocks of BLOCK (so the first N passages of a bigger corpus are the N-passage corpus)."""
    pool = sentence_pool()
    langs = sorted(pool)
    sizes = np.array([len(pool[lang]) for lang in langs])
    rng = np.random.default_rng(seed)
    for start in range(0, size, BLOCK):
        n = min(BLOCK, size - start)
        lang_idx = rng.integers(0, len(langs), BLOCK)
        counts = rng.integers(1, 4, BLOCK)
        picks = (rng.random((BLOCK, 3)) * sizes[lang_idx][:, None]).astype(np.int64)
        for j in range(n):
            sentences = pool[langs[lang_idx[j]]][picks[j, :counts[j]]]
            yield {"docno": f"p{start + j:09d}", "text": " ".join(sentences), "lang": langs[lang_idx[j]]}


def lareqa_questions(n: int, offset: int = 0):
    """``n`` XQuAD-R questions (all languages, shuffled with the seed), skipping the first ``offset``."""
    import pandas as pd

    from pyterrier_hybrid.datasets import lareqa_collection

    topics = lareqa_collection("xquad-r").topics(None)
    order = np.random.default_rng(SEED + 1).permutation(len(topics))
    chosen = topics.iloc[order[offset:offset + n]]
    return pd.DataFrame({"qid": chosen["qid"].astype(str).to_numpy(), "query": chosen["query"].astype(str).to_numpy()})


# ---------------------------------------------------------------------------------------------------------------
# Model


def random_model(layers: int = 1) -> Path:
    """A randomly initialised BERT (hidden 384, ``layers`` layers) with the embedded default's tokenizer, mean
    pooling and normalisation, saved once as a sentence-transformers folder (seeded: the same weights every time)."""
    path = MODEL_DIR.with_name(f"{MODEL_DIR.name}-l{layers}")
    if (path / "modules.json").is_file():
        return path
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pyterrier_hybrid.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("default"))
    torch.manual_seed(SEED)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=384, num_hidden_layers=layers, num_attention_heads=6,
                        intermediate_size=1536, max_position_embeddings=MAX_LENGTH + 8,
                        pad_token_id=tokenizer.pad_token_id)
    hf_dir = path / "_hf"
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = modules.Transformer(str(hf_dir), max_seq_length=MAX_LENGTH)
    pooling = modules.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, modules.Normalize()],
                                prompts={"query": "query: ", "passage": "passage: "}, device="cpu")
    model.save(str(path))
    return path


class RandomTrigramEncoder:
    """A random bag-of-character-trigrams encoder: each UTF-8 byte trigram hashes to one of ``buckets`` rows of a
    seeded Gaussian table [buckets, dim]; a text's vector is the normalised mean of its trigrams' rows.

    It is what a transformer with no layers computes (mean-pooled random token embeddings) with a tokenizer that
    costs nothing: on this shared 2-core machine the Hugging Face tokenizer alone runs at ~1,000 passages/s, which
    would make a 3M-passage build take hours, while the memory of the streamed build does not depend on the encoder
    (its own memory is the table, constant). Built lazily as a pyterrier-dr BiEncoder (see :func:`make_trigram`).
    """


def make_trigram(dim: int = 384, buckets: int = 1 << 16, seed: int = SEED):
    import pyterrier_dr
    from scipy import sparse

    class _RandomTrigramEncoder(pyterrier_dr.BiEncoder):
        __doc__ = RandomTrigramEncoder.__doc__

        def __init__(self):
            super().__init__(batch_size=1024, text_field="text", verbose=False)
            self.table = np.random.default_rng(seed).standard_normal((buckets, dim), dtype=np.float32)
            self.model_name = f"random-trigram-{dim}d-{buckets}-seed{seed}"
            self.candidate_text = "sentence"
            self.max_length = None
            self.passage_prompt = self.query_prompt = ""

        def _encode(self, texts) -> np.ndarray:
            texts = [str(t) for t in texts]
            rows, cols = [], []
            for i, text in enumerate(texts):
                b = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
                if len(b) < 3:
                    b = np.pad(b, (0, 3 - len(b)))
                h = (b[:-2] * 65599 * 65599 + b[1:-1] * 65599 + b[2:]) % buckets
                rows.append(np.full(len(h), i))
                cols.append(h)
            rows, cols = np.concatenate(rows), np.concatenate(cols)
            counts = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                                       shape=(len(texts), buckets))
            vectors = np.asarray(counts @ self.table, dtype=np.float32)
            return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

        def encode_queries(self, texts, batch_size=None):
            return self._encode(texts)

        def encode_docs(self, texts, batch_size=None):
            return self._encode(texts)

        def doc_encoder(self, verbose=None, batch_size=None):
            return pyterrier_dr.BiDocEncoder(self, verbose=verbose, batch_size=batch_size)

        def __repr__(self):
            return self.model_name

    return _RandomTrigramEncoder()


def encoder_for(model: str, batch_size: int = 128):
    from pyterrier_hybrid.retrieval.biencoder import BiEncoderConfig, SentenceTransformerBiEncoder

    if model == "trigram":
        return make_trigram()
    spec = str(random_model()) if model == "random" else model
    max_length = MAX_LENGTH if model == "random" else None
    return SentenceTransformerBiEncoder(spec, BiEncoderConfig(candidate_text="sentence", batch_size=batch_size,
                                                              max_length=max_length))


def mean_tokens(encoder, sample: int = 4000) -> float:
    """Mean tokens per passage fed to the model (prompt and special tokens included, capped at the limit), on the
    first ``sample`` passages: tokens/s = passages/s x this."""
    texts = [encoder.passage_prompt + d["text"] for d in synthetic_passages(sample)]
    if encoder.max_length is None:  # the trigram encoder: its "tokens" are UTF-8 byte trigrams
        return float(np.mean([max(1, len(t.encode("utf-8")) - 2) for t in texts]))
    return float(np.minimum(encoder._token_counts(texts), encoder.max_length).mean())


# ---------------------------------------------------------------------------------------------------------------
# Memory


class MemorySampler:
    """Peak RssAnon / RssFile / VmRSS of this process, sampled every ``interval`` s in a thread (getrusage's maxrss
    has no split between anonymous memory and file pages)."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(line.split()[1]) * 1024)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------------------------------------------------------
# Steps


def step_build(args) -> dict:
    import torch

    from pyterrier_hybrid.retrieval.large import RetrieverConfig, ShardedIndex, index_identity
    from pyterrier_hybrid.retrieval.sharded import all_gather_objects, build_distributed

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world_size > 1
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("gloo")
    rank = int(os.environ.get("RANK", "0"))
    threads = max(1, (os.cpu_count() or 1) // world_size)
    torch.set_num_threads(threads)
    encoder = encoder_for(args.model)
    tokens_per_passage = mean_tokens(encoder)
    index = ShardedIndex(args.index_dir)
    identity = index_identity(f"synthetic-lareqa-{args.size}-seed{SEED}", encoder)
    with MemorySampler() as memory:
        started = time.perf_counter()
        stats = build_distributed(
            index, encoder, synthetic_passages(args.size), identity=identity, overwrite=True,
            chunk_size=args.chunk_size, rank=rank, world_size=world_size,
            barrier=dist.barrier if distributed else None, gather=all_gather_objects if distributed else None,
            show_progress=rank == 0)
        build_seconds = time.perf_counter() - started
        memory_after_build = dict(memory.peak)
        search = {}
        if rank == 0 and args.queries:
            topics = lareqa_questions(args.queries)
            pipeline = encoder.query_encoder() >> index.retriever(RetrieverConfig("exact", num_results=100))
            started = time.perf_counter()
            results = pipeline(topics)
            search = {"exact_queries": len(topics), "exact_seconds": round(time.perf_counter() - started, 2),
                      "exact_results": int(len(results))}
    if distributed:
        dist.destroy_process_group()
    if rank != 0:
        return {}
    shards = stats["shards"]
    passages_per_s = [s["doc_count"] / s["seconds"] for s in shards]
    return {
        "step": "build", "size": args.size, "model": args.model, "world_size": world_size, "threads": threads,
        "max_length": encoder.max_length, "tokens_per_passage": round(tokens_per_passage, 2),
        "build_seconds": round(build_seconds, 1), "shards": shards,
        "passages_per_s_per_process": [round(p, 1) for p in passages_per_s],
        "tokens_per_s_per_process": [round(p * tokens_per_passage) for p in passages_per_s],
        "index_bytes": index.disk_bytes(), "vec_bytes": sum((index.path / s["dir"] / "vecs.f4").stat().st_size
                                                            for s in index.manifest()["shards"]),
        "peak_rss_anon_build_bytes": memory_after_build["RssAnon"],
        "peak_rss_anon_bytes": memory.peak["RssAnon"], "peak_rss_file_bytes": memory.peak["RssFile"],
        "maxrss_bytes": maxrss_bytes(), "rank0_only_memory": distributed, **search,
    }


def step_ann(args) -> dict:
    import pandas as pd
    import torch

    from pyterrier_hybrid.retrieval.large import RetrieverConfig, ShardedIndex

    torch.set_num_threads(os.cpu_count() or 1)
    index = ShardedIndex(args.index_dir)
    encoder = encoder_for(args.model)
    tune = lareqa_questions(args.tune_queries)
    measured = lareqa_questions(args.queries, offset=args.tune_queries)
    k = 100
    vectors = {}
    for name, topics in (("tune", tune), ("measured", measured)):
        vectors[name] = encoder.query_encoder()(topics)

    def search(config: RetrieverConfig, name: str) -> tuple[pd.DataFrame, float, float]:
        retriever = index.retriever(config)  # builds (and caches on disk) the FAISS structure on first use
        build_started = time.perf_counter()
        retriever(vectors[name].iloc[:1])
        warm = time.perf_counter() - build_started
        started = time.perf_counter()
        results = retriever(vectors[name])
        return results, (time.perf_counter() - started) / len(vectors[name]) * 1000, warm

    def recall(results: pd.DataFrame, exact: dict) -> float:
        got = results.groupby("qid")["docno"].apply(set).to_dict()
        return float(np.mean([len(got.get(q, set()) & docs) / len(docs) for q, docs in exact.items()]))

    exact_sets, records = {}, []
    for name in ("tune", "measured"):
        results, ms, _ = search(RetrieverConfig("exact", num_results=k), name)
        exact_sets[name] = results.groupby("qid")["docno"].apply(set).to_dict()
        records.append({"retriever": "exact", "sample": name, "setting": "", "ms_per_query": round(ms, 2),
                        "recall@100": 1.0})
        flat, ms, warm = search(RetrieverConfig("faiss-flat", num_results=k), name)
        records.append({"retriever": "faiss-flat", "sample": name, "setting": "", "ms_per_query": round(ms, 2),
                        "recall@100": round(recall(flat, exact_sets[name]), 4)})
    grids = {
        "faiss-hnsw": [("hnsw_ef_search", v) for v in (128, 256, 512, 1024, 2048, 4096)],
        "faiss-ivf": [("ivf_n_probe", v) for v in (16, 32, 64, 128, 256, 512)],
    }
    fixed = {"faiss-ivf": {},
             "faiss-hnsw": {"hnsw_neighbours": args.hnsw_neighbours,
                            "hnsw_ef_construction": args.hnsw_ef_construction}}
    chosen = {}
    for kind, grid in grids.items():
        if args.only and kind != args.only:
            continue
        build_started = time.perf_counter()
        index.retriever(RetrieverConfig(kind, num_results=k, **fixed[kind]))  # build once, timed
        build_seconds = time.perf_counter() - build_started
        print(f"{kind} structure built in {build_seconds:.0f} s", flush=True)
        for param, value in grid:
            config = RetrieverConfig(kind, num_results=k, **fixed[kind], **{param: value})
            results, ms, _ = search(config, "tune")
            r = recall(results, exact_sets["tune"])
            records.append({"retriever": kind, "sample": "tune", "setting": f"{param}={value}",
                            "ms_per_query": round(ms, 2), "recall@100": round(r, 4)})
            print(records[-1], flush=True)
            if r >= args.target_recall and kind not in chosen:
                chosen[kind] = (param, value)
        param, value = chosen.get(kind, grid[-1])
        results, ms, _ = search(RetrieverConfig(kind, num_results=k, **fixed[kind], **{param: value}), "measured")
        records.append({"retriever": kind, "sample": "measured", "setting": f"{param}={value}",
                        "ms_per_query": round(ms, 2), "recall@100": round(recall(results, exact_sets["measured"]), 4),
                        "structure_build_seconds": round(build_seconds, 1)})
        print(records[-1], flush=True)
    return {"step": "ann", "index_dir": str(args.index_dir), "doc_count": len(index),
            "index_bytes": index.disk_bytes(), "tune_queries": len(tune), "measured_queries": len(measured),
            "target_recall": args.target_recall, "hnsw_neighbours": args.hnsw_neighbours,
            "hnsw_ef_construction": args.hnsw_ef_construction,
            "chosen": {k: f"{p}={v}" for k, (p, v) in chosen.items()},
            "maxrss_bytes": maxrss_bytes(), "records": records}


def step_slice(args) -> dict:
    """The first ``--size`` passages of an index as an index of their own (``--out-index``): by construction of
    :func:`synthetic_passages` they are the ``--size``-passage corpus, so no re-encoding is needed."""
    from npids import Lookup

    from pyterrier_hybrid.retrieval.large import ShardedIndex

    source = ShardedIndex(args.index_dir)
    manifest = source.manifest()
    if len(manifest["shards"]) != 1:
        raise SystemExit("slice takes a one-shard index")
    flex, = source.shards()
    docnos, vectors, meta = flex.payload()
    target = ShardedIndex(args.out_index)
    shard = target.path / manifest["shards"][0]["dir"]
    shard.mkdir(parents=True)
    with open(shard / "vecs.f4", "wb") as out:
        for start in range(0, args.size, 65536):
            out.write(np.ascontiguousarray(vectors[start:min(start + 65536, args.size)]).tobytes())
    with Lookup.builder(shard / "docnos.npids") as builder:
        for docno in docnos.fwd[np.arange(args.size)]:
            builder.add(docno)
    (shard / "pt_meta.json").write_text(json.dumps(dict(meta, doc_count=args.size)))
    identity = dict(manifest["identity"], dataset=manifest["identity"]["dataset"].replace(
        str(manifest["doc_count"]), str(args.size)))
    target.write_manifest(identity, [args.size], meta["vec_size"])
    return {}


def step_report(args) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    records = [read_record(p) for p in sorted(args.out.glob("build-*.json"))]
    rows = []
    for r in records:
        rows.append({
            "passages": r["size"], "model": r["model"], "processes": r["world_size"],
            "threads/process": r["threads"],
            "peak RssAnon (GiB)": round(r["peak_rss_anon_bytes"] / GIB, 3),
            "peak RssAnon while building (GiB)": round(r["peak_rss_anon_build_bytes"] / GIB, 3),
            "maxrss incl. mapped index (GiB)": round(r["maxrss_bytes"] / GIB, 3),
            "index on disk (GiB)": round(r["index_bytes"] / GIB, 3),
            "build (s)": r["build_seconds"],
            "passages/s per process": " / ".join(str(t) for t in r["passages_per_s_per_process"]),
            "tokens/s per process": " / ".join(str(t) for t in r["tokens_per_s_per_process"]),
            "tokens/passage": r["tokens_per_passage"],
            "exact search of 200 queries (s)": r.get("exact_seconds", ""),
        })
    table = pd.DataFrame(rows).sort_values(["model", "processes", "passages"])
    table.to_csv(args.out / "large_collection.csv", index=False)
    lines = [_markdown(table)]
    ann_paths = sorted(args.out.glob("ann-*.json"))
    ann = [read_record(p) for p in ann_paths]
    for path, a in zip(ann_paths, ann):
        frame = pd.DataFrame(a["records"]).fillna("")
        frame.to_csv(args.out / f"{path.stem}.csv", index=False)
        lines += ["", f"Approximate search on {a['doc_count']:,} passages ({a['tune_queries']} tuning questions, "
                      f"{a['measured_queries']} measured questions; chosen: {a['chosen']}):", "", _markdown(frame)]
    (args.out / "large_collection.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    runs = [{k: r.get(k) for k in ("command", "commit", "wall_s", "date")} for r in records + ann]
    RunRecord({"runs": runs}, {"report_commit": _commit()}).write(args.out)
    single = table[table["processes"] == 1].sort_values("passages")
    if len(single):
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for model, rows in single.groupby("model"):
            ax.plot(rows["passages"], rows["peak RssAnon (GiB)"], "o-", label=f"{model}: peak RssAnon (index aside)")
            ax.plot(rows["passages"], rows["maxrss incl. mapped index (GiB)"], "s--",
                    label=f"{model}: maxrss (incl. memory-mapped index pages)")
            ax.plot(rows["passages"], rows["index on disk (GiB)"], "^:", label=f"{model}: index on disk")
        ax.set_xscale("log")
        ax.set_xlabel("passages (synthetic LAReQA corpus)")
        ax.set_ylabel("GiB")
        ax.set_title("Streamed build + exact search: one process")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out / "peak_memory.png", dpi=120)
    print("\n".join(lines))
    return {}


def _markdown(frame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _commit() -> str:
    return git_commit()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["build", "ann", "slice", "report"])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--index-dir", type=Path)
    parser.add_argument("--model", default="random",
                        help="random (the 384-d random BERT), trigram (RandomTrigramEncoder) or default")
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--tune-queries", type=int, default=100)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--hnsw-neighbours", type=int, default=32, help="HNSW graph degree M (ann step)")
    parser.add_argument("--hnsw-ef-construction", type=int, default=40, help="HNSW build candidate list (ann step)")
    parser.add_argument("--only", choices=["faiss-hnsw", "faiss-ivf"], default=None, help="ann: one kind only")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--out-index", type=Path, help="slice: the new index folder")
    parser.add_argument("--tag", default="", help="suffix of the record's file name")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    record = {"build": step_build, "ann": step_ann, "slice": step_slice, "report": step_report}[args.step](args)
    if record:
        facts = {**provenance(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
                 "wall_s": round(time.perf_counter() - started, 1), "cpus": os.cpu_count(),
                 "timings": "shared machine (noisy)"}
        name = (f"build-{args.model}-{args.size}-{record['world_size']}p" if args.step == "build"
                else f"ann-{args.index_dir.name}") + (f"-{args.tag}" if args.tag else "")
        print(RunRecord(record, facts).write(args.out / f"{name}.json").read_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
