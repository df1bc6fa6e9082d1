"""Encoding throughput (tokens/s) of the pyterrier-hybrid bi-encoder against pyterrier-dr and sentence-transformers,
on one model and the same texts, with the retrieval quality (mAP) each encoder's vectors give.

Encoders, all on the same sentence-transformers folder (default: the embedded multilingual-e5-small):

- ``hybrid`` -- :class:`pyterrier_hybrid.retrieval.biencoder.SentenceTransformerBiEncoder`, precision "auto"
  (bfloat16 autocast where the CPU supports it), texts sorted by token count;
- ``hybrid-fp32`` -- the same in float32 (what the sorting alone brings);
- ``pyterrier-dr-sbert`` -- ``pyterrier_dr.SBertBiEncoder(path)`` as constructed by default (batch 32, no prompts:
  it does not read the model's prompts);
- ``pyterrier-dr-e5`` -- ``pyterrier_dr.E5(path)``: pyterrier-dr's E5 class, the same model with the "query: " /
  "passage: " prompts (the like-for-like baseline: same inputs, same vectors up to precision);
- ``sentence-transformers`` -- ``SentenceTransformer.encode(texts, prompt=..., batch_size=32)``.

Texts: the candidates (sentence + " " + context, LAReQA's setting) of the mAP language first, then candidates of
the other XQuAD-R languages up to ``--texts``. Throughput counts the tokens each encoder actually feeds the model
(its prompt + text, special tokens included, capped at the model's limit).

The machine is shared, so the encoders run interleaved: the texts are cut into ``--rounds`` chunks and every
encoder encodes each chunk in turn (the order rotating per chunk), so background load falls on all of them alike.

mAP: XQuAD-R monolingual retrieval in ``--map-lang`` (its questions against its candidates, the first block of the
texts; ``--map-articles`` keeps the first N articles only), exact dot-product ranking of the whole pool, measured
with ir_measures.

Run::

    python benchmarks/encoding_throughput.py                       # writes benchmarks/results/encoding_throughput.*
    python benchmarks/encoding_throughput.py --model PATH --texts 1500 --rounds 3
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_LAREQA_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lareqa"


@dataclass
class EncoderUnderTest:
    """One encoder: how it encodes passages and queries, and the prompts it feeds (for token counting)."""

    name: str
    description: str
    encode_passages: Callable[[list[str]], np.ndarray]
    encode_queries: Callable[[list[str]], np.ndarray]
    passage_prompt: str
    query_prompt: str
    batch_size: int
    precision: str
    seconds: float = 0.0
    chunks: list[np.ndarray] = field(default_factory=list)


def build_encoders(model_path: str, names: list[str]) -> list[EncoderUnderTest]:
    import pyterrier_dr
    from sentence_transformers import SentenceTransformer

    from pyterrier_hybrid.retrieval.biencoder import SentenceTransformerBiEncoder

    encoders = []
    for name in names:
        if name in ("hybrid", "hybrid-fp32"):
            precision = "auto" if name == "hybrid" else "fp32"
            enc = SentenceTransformerBiEncoder(model_path, precision=precision, device="cpu")
            used = "bf16 autocast" if enc.autocast_dtype is not None else "fp32"
            encoders.append(EncoderUnderTest(
                name, f"pyterrier-hybrid SentenceTransformerBiEncoder(precision={precision!r})",
                enc.encode_docs, enc.encode_queries, enc.passage_prompt, enc.query_prompt, enc.batch_size, used))
        elif name == "pyterrier-dr-sbert":
            enc = pyterrier_dr.SBertBiEncoder(model_path, device="cpu")
            encoders.append(EncoderUnderTest(
                name, "pyterrier_dr.SBertBiEncoder(path) (defaults: batch 32, no prompts)",
                enc.encode_docs, enc.encode_queries, "", "", enc.batch_size, "fp32"))
        elif name == "pyterrier-dr-e5":
            enc = pyterrier_dr.E5(model_path, device="cpu")
            encoders.append(EncoderUnderTest(
                name, "pyterrier_dr.E5(path) (defaults: batch 32, E5 prompts)",
                lambda texts, enc=enc: np.asarray(enc.encode_docs(texts), dtype=np.float32),
                lambda texts, enc=enc: np.asarray(enc.encode_queries(texts), dtype=np.float32),
                "passage: ", "query: ", enc.batch_size, "fp32"))
        elif name == "sentence-transformers":
            model = SentenceTransformer(model_path, device="cpu")
            encoders.append(EncoderUnderTest(
                name, "SentenceTransformer.encode(texts, prompt=..., batch_size=32)",
                lambda texts, m=model: m.encode(texts, prompt="passage: ", batch_size=32),
                lambda texts, m=model: m.encode(texts, prompt="query: ", batch_size=32),
                "passage: ", "query: ", 32, "fp32"))
        else:
            raise ValueError(f"unknown encoder {name!r}")
    return encoders


def token_count(tokenizer, texts: list[str], prompt: str, max_length: int) -> int:
    ids = tokenizer([prompt + t for t in texts], truncation=True, max_length=max_length)["input_ids"]
    return int(sum(len(x) for x in ids))


def dense_map(query_vectors: np.ndarray, doc_vectors: np.ndarray, qids: list[str], docnos: list[str],
              qrels) -> float:
    """mAP of the exact dot-product ranking of all candidates (ir_measures' AP)."""
    import pandas as pd

    from pyterrier_hybrid.evaluation.measures import mean_average_precision

    scores = query_vectors @ doc_vectors.T
    run = pd.DataFrame({
        "qid": np.repeat(np.asarray(qids, dtype=object), len(docnos)),
        "docno": np.tile(np.asarray(docnos, dtype=object), len(qids)),
        "score": scores.ravel().astype(np.float64),
    })
    return mean_average_precision(run, qrels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="sentence-transformers folder (default: the embedded default)")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--map-lang", default="de")
    parser.add_argument("--map-articles", type=int, default=None,
                        help="restrict the mAP pool to the first N articles (default: all 48) to save time")
    parser.add_argument("--rounds", type=int, default=4, help="chunks the texts are cut into, encoders interleaved")
    parser.add_argument("--encoders", default="hybrid,pyterrier-dr-sbert,pyterrier-dr-e5,sentence-transformers",
                        help="comma-separated, from: hybrid, hybrid-fp32, pyterrier-dr-sbert, pyterrier-dr-e5, "
                             "sentence-transformers")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "encoding_throughput")
    args = parser.parse_args(argv)

    if DEFAULT_LAREQA_DIR.is_dir():
        os.environ.setdefault("PYTERRIER_HYBRID_LAREQA_DIR", str(DEFAULT_LAREQA_DIR))
    warnings.filterwarnings("ignore", message=".*truncated.*")  # contexts over 512 tokens are expected
    import torch
    from tqdm.auto import tqdm

    from pyterrier_hybrid.datasets import lareqa_collection
    from pyterrier_hybrid.models import resolve_model
    from pyterrier_hybrid.provenance import shown_path
    from pyterrier_hybrid.retrieval.biencoder import candidate_texts

    model_path = resolve_model(args.model)
    collection = lareqa_collection("xquad-r")
    own = collection.candidates([args.map_lang])
    if args.map_articles is not None:
        own = own[own["title"].isin(list(dict.fromkeys(own["title"]))[: args.map_articles])].reset_index(drop=True)
    others = collection.candidates([lang for lang in collection.languages if lang != args.map_lang])
    fill = max(0, args.texts - len(own))
    candidates = own.iloc[: args.texts]
    if fill:
        import pandas as pd

        candidates = pd.concat([own, others.sample(n=min(fill, len(others)), random_state=0)], ignore_index=True)
    texts = candidate_texts(candidates, "sentence+context")
    topics = collection.topics([args.map_lang], doc_langs=[args.map_lang])
    qrels = collection.qrels([args.map_lang], [args.map_lang])
    qrels = qrels[qrels["docno"].isin(set(own["docno"]))]
    topics = topics[topics["qid"].isin(set(qrels["qid"]))].reset_index(drop=True)
    queries = topics["query"].tolist()
    map_ready = len(candidates) >= len(own)

    encoders = build_encoders(model_path, args.encoders.split(","))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    max_length = min(tokenizer.model_max_length, 512)
    for enc in encoders:  # warm-up: first calls pay one-off kernel selection
        enc.encode_passages(texts[:4])
        enc.encode_queries(queries[:4])

    chunk_bounds = np.linspace(0, len(texts), args.rounds + 1).astype(int)
    load_before = os.getloadavg()
    progress = tqdm(total=len(texts) * len(encoders), desc="Encoding (interleaved)", unit="text")
    for round_index, (start, stop) in enumerate(zip(chunk_bounds[:-1], chunk_bounds[1:])):
        chunk = texts[start:stop]
        order = encoders[round_index % len(encoders):] + encoders[: round_index % len(encoders)]
        for enc in order:
            began = time.perf_counter()
            enc.chunks.append(np.asarray(enc.encode_passages(chunk), dtype=np.float32))
            enc.seconds += time.perf_counter() - began
            progress.update(len(chunk))
    progress.close()
    load_after = os.getloadavg()

    reference = next((e for e in encoders if e.name == "sentence-transformers"), encoders[-1])
    reference_vectors = np.concatenate(reference.chunks)
    rows = []
    for enc in encoders:
        vectors = np.concatenate(enc.chunks)
        tokens = token_count(tokenizer, texts, enc.passage_prompt, max_length)
        cosines = (vectors * reference_vectors).sum(1) / (
            np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference_vectors, axis=1))
        row = {
            "encoder": enc.name,
            "description": enc.description,
            "precision": enc.precision,
            "batch_size": enc.batch_size,
            "texts": len(texts),
            "tokens": tokens,
            "seconds": round(enc.seconds, 2),
            "tokens_per_s": round(tokens / enc.seconds, 1),
            f"min_cosine_to_{reference.name}": round(float(cosines.min()), 6),
        }
        if map_ready:
            began = time.perf_counter()
            query_vectors = np.asarray(enc.encode_queries(queries), dtype=np.float32)
            row["query_seconds"] = round(time.perf_counter() - began, 2)
            row[f"map_xquad-r_{args.map_lang}"] = round(dense_map(
                query_vectors, vectors[: len(own)], topics["qid"].tolist(), own["docno"].tolist(), qrels), 4)
        rows.append(row)
    by_name = {r["encoder"]: r for r in rows}
    for row in rows:
        for base in ("pyterrier-dr-sbert", "pyterrier-dr-e5"):
            if base in by_name:
                row[f"speedup_vs_{base}"] = round(row["tokens_per_s"] / by_name[base]["tokens_per_s"], 2)

    environment = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "model": shown_path(model_path),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "load_average_before": " ".join(f"{x:.2f}" for x in load_before),
        "load_average_after": " ".join(f"{x:.2f}" for x in load_after),
        "rounds": args.rounds,
        "map_pool": f"XQuAD-R {args.map_lang}: {len(own)} candidates, {len(topics)} questions"
                    + (f" (first {args.map_articles} articles)" if args.map_articles else " (all articles)"),
        "command": "python benchmarks/encoding_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    write_results(args.out, rows, environment, args.map_lang)
    for row in rows:
        print({k: v for k, v in row.items() if k != "description"})
    return 0


def write_results(out: Path, rows: list[dict], environment: dict, map_lang: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(out.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    shown = [c for c in columns if c != "description"]
    lines = [
        "# Encoding throughput: pyterrier-hybrid bi-encoder vs pyterrier-dr vs sentence-transformers",
        "",
        f"Candidates of XQuAD-R encoded as sentence + context; mAP = XQuAD-R {map_lang} monolingual, exact ranking "
        "of the whole pool. Encoders interleaved chunk by chunk on a shared machine (see load averages).",
        "",
        "| " + " | ".join(shown) + " |",
        "| " + " | ".join("---" for _ in shown) + " |",
    ]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in shown) + " |" for row in rows]
    lines += ["", "Encoders:", ""] + [f"- `{row['encoder']}`: {row['description']}" for row in rows]
    lines += ["", "Environment:", ""] + [f"- {k}: {v}" for k, v in environment.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
