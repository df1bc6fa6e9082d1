"""Streamed irds: training sources, their sampler and mixtures of sources, on the synthetic parallel collection
registered in ir_datasets (``pyterrier-hybrid-synthetic/SIZE/LANG``): mMARCO-shaped, generated from ids."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ir_datasets
import numpy as np
import pytest

from pyterrier_hybrid.datasets.synthetic import LANGUAGES, synthetic_id
from pyterrier_hybrid.training.batching.hybrid import SamplerDataError
from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig
from pyterrier_hybrid.training.sources.streaming import StreamedParallelSource, StreamedSourceError

SIZE = 400


def irds_source(size: int = SIZE, langs=LANGUAGES, variant: dict | None = None) -> str:
    variant = variant or {}
    return "irds:" + ",".join(f"{lang}={synthetic_id(size, lang, variant.get(lang))}" for lang in langs)


@pytest.fixture(scope="module")
def source() -> StreamedParallelSource:
    return StreamedParallelSource(irds_source(), hard_negatives=True, max_queries=200)


def sampler_for(source, rows, **kwargs):
    from pyterrier_hybrid.training.batching.streamed import StreamedHybridBatchSampler

    dataset = source.dataset(rows)
    kwargs.setdefault("batch_size", 8)
    return dataset, StreamedHybridBatchSampler(dataset, seed=kwargs.pop("seed", 3), rows=rows, **kwargs)


def test_synthetic_collection_is_parallel_and_deterministic():
    en, de = ir_datasets.load(synthetic_id(50, "en")), ir_datasets.load(synthetic_id(50, "de"))
    assert [q.query_id for q in en.queries_iter()] == [q.query_id for q in de.queries_iter()]
    assert [q.text for q in en.queries_iter()] != [q.text for q in de.queries_iter()]
    assert list(en.qrels_iter()) == list(de.qrels_iter()) and len(list(en.qrels_iter())) == 50
    assert next(iter(en.docpairs_iter())) == ("q0", "d0", "d50")
    assert en.docs_store().get("d7").text == next(d for d in en.docs_iter() if d.doc_id == "d7").text
    assert not ir_datasets.load(synthetic_id(50, "en", "no-docpairs")).has_docpairs()
    assert next(iter(ir_datasets.load(synthetic_id(50, "en", "disjoint")).queries_iter())).query_id == "q50"


def test_streamed_rows_read_their_texts_in_the_languages_of_the_key(source):
    rows, _ = source.split(0, seed=0)
    assert rows.num_rows == 200 and len(rows) == 200 * 9  # --max-queries: the first 200 judged queries
    dataset = source.dataset(rows)
    assert dataset.column_names == ["row", "pair"]
    datasets = {lang: ir_datasets.load(synthetic_id(SIZE, lang)) for lang in LANGUAGES}
    index = np.array([5, 17, 199])
    q, p = np.array([0, 1, 2]), np.array([1, 1, 0])  # en->de, de->de, fr->en
    keys = rows.key(index, q, p).tolist()
    batch = dataset[keys]
    for i, key in enumerate(keys):
        row, query_lang, passage_lang = rows.decode(key)
        query_id = source.query_ids[source.row_query[row]].decode()
        (query,) = [x.text for x in datasets[query_lang].queries_iter() if x.query_id == query_id]
        number = int(query_id[1:])
        store = datasets[passage_lang].docs_store()
        assert batch["anchor"][i] == query
        assert batch["positive"][i] == store.get(f"d{number}").text
        assert batch["negative"][i] == store.get(f"d{SIZE + number}").text  # doc_id_b of the query's docpair


def test_batches_are_seeded_and_follow_the_hybrid_rules(source):
    rows, _ = source.split(0, seed=0)
    dataset, sampler = sampler_for(source, rows, alpha=0.5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 200 // 8
    assert batches == list(sampler_for(source, rows, alpha=0.5)[1])  # the same seed, the same batches
    assert batches != list(sampler_for(source, rows, alpha=0.5, seed=4)[1])
    kinds = []
    for batch in batches:
        decoded = [rows.decode(k) for k in batch]
        queries = [int(source.row_query[r]) for r, _, _ in decoded]
        docs = [source.row_docs[r] for r, _, _ in decoded] + [source.row_negatives[r] for r, _, _ in decoded]
        assert len(set(queries)) == len(queries) and len(set(docs)) == len(docs)  # no parallel id or document twice
        pairs = {(q, p) for _, q, p in decoded}
        if all(q == p for q, p in pairs):
            assert len(pairs) == 1  # monolingual: one language
            kinds.append("mono")
        else:
            assert all(q != p for q, p in pairs)  # cross-lingual: every row
            kinds.append("cross")
    assert 0 < kinds.count("mono") < len(kinds)
    sampler.set_epoch(1)
    assert list(sampler) != batches


@pytest.mark.parametrize("alpha, kind", [(1.0, "mono"), (0.0, "cross")])
def test_alpha_one_and_zero_give_one_batch_type(source, alpha, kind):
    rows, _ = source.split(0, seed=0)
    _, sampler = sampler_for(source, rows, alpha=alpha)
    for batch in sampler:
        pairs = [rows.decode(k)[1:] for k in batch]
        assert all((q == p) == (kind == "mono") for q, p in pairs)
    # alpha is respected over many steps: the batch types of 2,000 steps at alpha 0.3
    _, sampler = sampler_for(source, rows, alpha=0.3)
    mono = sum(sampler.batch_type(step)[0] == "monolingual" for step in range(2000))
    assert abs(mono / 2000 - 0.3) < 0.04


def test_every_rank_computes_the_same_global_batch(source):
    rows, _ = source.split(0, seed=0)
    # Two processes of a 2-rank run: each builds its own sampler; accelerate gives batch i to rank i % 2.
    _, rank0 = sampler_for(source, rows, batch_size=4, num_replicas=2)
    _, rank1 = sampler_for(source, rows, batch_size=4, num_replicas=2)
    a, b = list(rank0), list(rank1)
    assert a == b and len(a) == 2 * (200 // 8)
    for step in range(len(a) // 2):
        together = a[2 * step] + a[2 * step + 1]
        assert together == rank0.global_batch(step)
        decoded = [rows.decode(k) for k in together]
        assert len({int(source.row_query[r]) for r, _, _ in decoded}) == 8  # distinct across both ranks
        kinds = {q == p for _, q, p in decoded}
        assert len(kinds) == 1  # one batch type across the ranks
        if kinds == {True}:
            assert len({q for _, q, _ in decoded}) == 1  # one language across the ranks


def test_a_resumed_run_sees_the_batches_of_an_uninterrupted_one(source):
    rows, _ = source.split(0, seed=0)
    _, sampler = sampler_for(source, rows, alpha=0.5)
    sampler.set_epoch(2)
    uninterrupted = list(sampler)
    _, restarted = sampler_for(source, rows, alpha=0.5)  # a new process: nothing drawn before
    restarted.set_epoch(2)
    assert [restarted.global_batch(step) for step in range(5, len(uninterrupted))] == uninterrupted[5:]


def test_held_out_queries_are_not_trained_on(source):
    train, held_out = source.split(0.1, seed=0)
    assert len(np.unique(held_out.queries)) == 20
    assert not set(train.queries.tolist()) & set(held_out.queries.tolist())


def test_reading_in_small_chunks_gives_the_same_source(source, monkeypatch):
    """Chunk boundaries inside the qrels, the queries and the docpairs (where reading stops early once every judged
    query has its negative) change nothing."""
    from pyterrier_hybrid.training.sources import streamed_reading

    monkeypatch.setattr(streamed_reading, "CHUNK", 7)
    chunked = StreamedParallelSource(irds_source(), hard_negatives=True, max_queries=200)
    assert np.array_equal(chunked.query_ids, source.query_ids)
    for name in ("row_query", "row_docs", "row_negatives"):
        assert np.array_equal(getattr(chunked, name), getattr(source, name)), name
    batch = {"row": [0, 57, 199], "pair": [0, 4, 7]}
    assert chunked.fetch_texts(batch) == source.fetch_texts(batch)


def test_source_errors():
    with pytest.raises(StreamedSourceError, match="docpairs"):
        StreamedParallelSource(irds_source(variant={"en": "no-docpairs", "de": "no-docpairs", "fr": "no-docpairs"}),
                               hard_negatives=True)
    with pytest.raises(StreamedSourceError, match="share query ids"):
        StreamedParallelSource(irds_source(langs=("en", "de"), variant={"de": "disjoint"}))
    with pytest.raises(StreamedSourceError, match="unknown ir_datasets id"):
        StreamedParallelSource("irds:en=pyterrier-hybrid-synthetic/10/xx")
    source = StreamedParallelSource(irds_source(langs=("en",)), max_queries=20)
    rows, _ = source.split(0, seed=0)
    from pyterrier_hybrid.training.batching.streamed import check_streamed_feasible

    with pytest.raises(SamplerDataError, match="cross-lingual"):
        check_streamed_feasible(rows, alpha=0.5, batch_size=4)
    with pytest.raises(SamplerDataError, match="fewer than one batch"):
        check_streamed_feasible(rows, alpha=1.0, batch_size=32)


def test_train_from_the_cli_on_a_streamed_source_with_hard_negatives(tiny_model_path, tmp_path):
    from pyterrier_hybrid.cli import main

    # in this process: the command's parsing and run are what is tested here, not a fresh interpreter's imports
    out = tmp_path / "out"
    assert main(["train", "--base-model", str(tiny_model_path), "--train", irds_source(langs=("en", "de")),
                 "--hard-negatives", "--max-queries", "50", "--max-steps", "3", "--batch-size", "8",
                 "--candidate-text", "sentence", "--max-seq-length", "32", "--eval-fraction", "0.2", "--eval-steps",
                 "3", "--save-steps", "3", "-o", str(out)]) == 0
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["config"]["max_queries"] == 50 and saved["config"]["hard_negatives"] is True
    run = saved["run"]
    assert run["global_steps"] == 3 and run["languages"] == ["de", "en"]
    assert run["train_parallel_ids"] == 40 and run["eval_examples"] == 10  # 50 queries, 20% held out
    assert run["best_validation_loss"] is not None


@pytest.mark.parametrize("mixture", ["round-robin", "proportional"])
def test_a_mixture_draws_each_batch_from_one_source(tiny_model_path, tmp_path, mixture):
    from pyterrier_hybrid.training.trainer import prepare_training

    jsonl = tmp_path / "qa.jsonl"
    rows = [{"parallel_id": f"p{i}", "query_lang": q, "query": f"frage {i} {q}?", "passage_lang": p,
             "passage_sentence": f"antwort {i} {p}."} for i in range(40) for q in ("de", "en") for p in ("de", "en")]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = HybridTrainingConfig(
        base_model=str(tiny_model_path), train=irds_source(langs=("en", "de")), extra_train=(str(jsonl),),
        mixture=mixture, max_queries=60, batch_size=4, max_steps=4, warmup=0.0, candidate_text="sentence",
        max_seq_length=32, eval_fraction=0.0, save_steps=1000, output_dir=str(tmp_path / "out"),
    )
    prepared = prepare_training(config)
    trainer = prepared.trainer
    loader = trainer._build_dataloader(trainer.train_dataset, 4, dataset_kind="train")
    sizes = [len(d) for d in trainer.train_dataset.values()]
    batches = list(loader.batch_sampler)
    for batch in batches:
        assert len({index >= sizes[0] for index in batch}) == 1  # one source per batch
    sources = [int(batch[0] >= sizes[0]) for batch in batches]
    per_source = [60 // 4, 40 // 4]  # batches per epoch of each source: its queries / parallel ids over the batch
    if mixture == "round-robin":
        assert sources == [0, 1] * min(per_source)
    else:
        assert sources.count(0) == per_source[0] and sources.count(1) == per_source[1]
        assert sources != sorted(sources)  # interleaved at random
    prepared.run()
    run = json.loads((tmp_path / "out" / CONFIG_FILE).read_text())["run"]
    assert run["global_steps"] == 4 and run["steps_per_epoch"] == len(batches)


def test_distributed_training_on_a_streamed_source(tiny_model_path, tmp_path):
    """A real DDP run (gloo, 2 processes) on a streamed source: at every step both ranks train on one batch type
    (and language), on different queries, and end with the same weights."""
    import socket

    from test_training import DDP_SCRIPT

    size, langs = 100, ("en", "de", "fr")
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    # the script runs from its own folder: import this checkout's package, whatever is installed
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(port), str(script), str(tiny_model_path), irds_source(size, langs), str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert np.allclose(ranks[0]["weights"], ranks[1]["weights"], rtol=1e-6)

    query_of, doc_of = {}, {}
    for lang in langs:
        dataset = ir_datasets.load(synthetic_id(size, lang))
        query_of.update({q.text: (q.query_id, lang) for q in dataset.queries_iter()})
        doc_of.update({d.text: (d.doc_id, lang) for d in dataset.docs_iter()})
    for step in range(6):  # accelerate prefetches one batch beyond the last step
        rows = [[(*query_of[q], doc_of[p][1]) for q, p in ranks[r]["batches"][step]] for r in range(2)]
        pairs = [(q, p) for rank in rows for _, q, p in rank]
        if pairs[0][0] == pairs[0][1]:
            assert len(set(pairs)) == 1  # monolingual, one language on both ranks
        else:
            assert all(q != p for q, p in pairs)
        queries = [{qid for qid, _, _ in rank} for rank in rows]
        assert len(queries[0]) == len(queries[1]) == 4 and not queries[0] & queries[1]
