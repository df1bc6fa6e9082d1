"""Hybrid batch training: data sources, configuration, and real (tiny) training runs on LAReQA examples.

The runs use the tiny random model of ``tiny_model_path`` with one torch thread (on a shared 2-core machine, two
threads of a tiny model spend most of their time waiting for each other).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from pyterrier_hybrid.datasets import ParallelExample
from pyterrier_hybrid.training import cli
from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig, TrainingConfigError
from pyterrier_hybrid.training.sources.data import (
    JsonlFormatError,
    candidate_text,
    configured_training_data,
    ir_datasets_parallel_examples,
    lareqa_training_data,
    load_training_data,
    read_jsonl,
    split_by_article,
)

LANGS = ("en", "de", "es")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def subset(lareqa_dir):
    """Real XQuAD-R examples (en/de/es, every ordered pair) of 64 questions spread over many articles, each with a
    hard negative (another sentence of its paragraph)."""
    data = lareqa_training_data("xquad-r", langs=LANGS, hard_negatives=True, seed=0)
    ids = sorted({e.parallel_id for e in data.examples})[::18][:64]
    wanted = set(ids)
    return data.select(i for i, e in enumerate(data.examples) if e.parallel_id in wanted)


def write_jsonl(path: Path, data, with_negatives: bool = True) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i, example in enumerate(data.examples):
            record = dataclasses.asdict(example)
            if with_negatives and data.negatives is not None:
                record["negative_sentence"] = data.negatives[i].sentence
                record["negative_context"] = data.negatives[i].context
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def subset_jsonl(subset, tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "subset.jsonl", subset)


def tiny_config(model: Path, train: Path, out: Path, **overrides) -> HybridTrainingConfig:
    settings = dict(
        base_model=str(model), train=str(train), batch_size=8, learning_rate=2e-3, warmup=0.0,
        candidate_text="sentence", max_seq_length=48, eval_fraction=0.0, save_steps=1000, logging_steps=5,
        output_dir=str(out), seed=13,
    )
    settings.update(overrides)
    return HybridTrainingConfig(**settings)


def parameters(path: Path):
    from sentence_transformers import SentenceTransformer

    return {name: p.detach().clone() for name, p in SentenceTransformer(str(path)).named_parameters()}


# --- data -------------------------------------------------------------------------------------------------------------


def test_candidate_text_joins_sentence_space_context():
    assert candidate_text("A sentence.", "The paragraph.", "sentence+context") == "A sentence. The paragraph."
    assert candidate_text("A sentence.", "The paragraph.", "sentence") == "A sentence."
    with pytest.raises(ValueError, match="candidate_text"):
        candidate_text("a", "b", "context")


def test_lareqa_hard_negatives_are_other_sentences_of_the_same_paragraph(subset):
    assert subset.negatives is not None and len(subset.negatives) == len(subset.examples)
    for example, negative in zip(subset.examples, subset.negatives):
        assert negative.context == example.passage_context
        assert negative.sentence != example.passage_sentence
        assert negative.sentence in example.passage_context


def test_jsonl_round_trip(subset, subset_jsonl):
    plain = read_jsonl(subset_jsonl)
    assert plain.examples == subset.examples and plain.negatives is None
    with_negatives = load_training_data(subset_jsonl, hard_negatives=True)
    assert with_negatives.negatives == subset.negatives
    only_en_de = load_training_data(subset_jsonl, langs=["en", "de"])
    assert {(e.query_lang, e.passage_lang) for e in only_en_de.examples} == {
        ("en", "en"), ("en", "de"), ("de", "en"), ("de", "de")
    }


def test_jsonl_optional_fields_default(tmp_path):
    path = tmp_path / "min.jsonl"
    path.write_text(
        json.dumps({"parallel_id": "p", "query_lang": "en", "query": "q?", "passage_lang": "de",
                    "passage_sentence": "s."}) + "\n\n",
        encoding="utf-8",
    )
    (example,) = read_jsonl(path).examples
    assert example == ParallelExample("p", "en", "q?", "de", "s.", "", "p")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"parallel_id": "p", "query_lang": "en"', "line 2: not valid JSON"),
        ('["a list"]', "line 2: expected a JSON object"),
        ('{"parallel_id": "p", "query_lang": "en", "query": "q"}',
         "line 2: missing field(s) passage_lang, passage_sentence"),
        ('{"parallel_id": "p", "query_lang": "en", "query": " ", "passage_lang": "de", "passage_sentence": "s"}',
         "line 2: field 'query' is empty"),
        ('{"parallel_id": 3, "query_lang": "en", "query": "q", "passage_lang": "de", "passage_sentence": "s"}',
         "line 2: field 'parallel_id' must be a string"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, line, message):
    good = {"parallel_id": "p0", "query_lang": "en", "query": "q", "passage_lang": "en", "passage_sentence": "s"}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(JsonlFormatError) as error:
        read_jsonl(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_jsonl_without_negatives_cannot_give_hard_negatives(subset, tmp_path):
    path = write_jsonl(tmp_path / "plain.jsonl", subset, with_negatives=False)
    with pytest.raises(JsonlFormatError, match="negative_sentence"):
        load_training_data(path, hard_negatives=True)


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="unknown training source"):
        load_training_data("lareqa-mlqa")


@pytest.fixture(scope="module")
def fake_mmarco():
    """Two tiny ir_datasets collections (en, de) sharing query and doc ids, registered under fresh names."""
    import ir_datasets
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.formats import BaseDocs, BaseQrels, BaseQueries, GenericDoc, GenericQrel, GenericQuery

    class Docs(BaseDocs):
        def __init__(self, docs):
            self.docs = docs

        def docs_iter(self):
            return iter(self.docs)

        def docs_count(self):
            return len(self.docs)

    class Queries(BaseQueries):
        def __init__(self, queries):
            self.queries = queries

        def queries_iter(self):
            return iter(self.queries)

    class Qrels(BaseQrels):
        def __init__(self, qrels):
            self.qrels = qrels

        def qrels_iter(self):
            return iter(self.qrels)

        def qrels_defs(self):
            return {0: "not relevant", 1: "relevant"}

    texts = {
        "en": ({"q1": "what is a cat", "q2": "capital of france", "q3": "boiling point of water"},
               {"d1": "a cat is an animal", "d2": "paris is the capital", "d3": "water boils at 100 c", "d9": "noise"}),
        "de": ({"q1": "was ist eine katze", "q2": "hauptstadt von frankreich", "q3": "siedepunkt von wasser"},
               # d3 has no German translation: its pairs with German passages are skipped
               {"d1": "eine katze ist ein tier", "d2": "paris ist die hauptstadt", "d9": "rauschen"}),
    }
    qrels = [GenericQrel("q1", "d1", 1), GenericQrel("q1", "d9", 0), GenericQrel("q2", "d2", 1),
             GenericQrel("q3", "d3", 1)]
    prefix = f"pyterrier-hybrid-test-{uuid.uuid4().hex[:8]}"
    ids = {}
    for lang, (queries, docs) in texts.items():
        ids[lang] = f"{prefix}/{lang}"
        ir_datasets.registry.register(
            ids[lang],
            Dataset(
                Docs([GenericDoc(k, v) for k, v in docs.items()]),
                Queries([GenericQuery(k, v) for k, v in queries.items()]),
                Qrels(qrels),
            ),
        )
    return ids, texts


def test_ir_datasets_source_joins_languages_by_ids(fake_mmarco):
    ids, texts = fake_mmarco
    examples = ir_datasets_parallel_examples(ids)
    # q1-d1 and q2-d2 in all 4 ordered pairs; q3-d3 only with the English passage (2 pairs); d9 is not relevant
    assert len(examples) == 4 + 4 + 2
    for e in examples:
        queries, _ = texts[e.query_lang]
        _, docs = texts[e.passage_lang]
        assert e.query == queries[e.parallel_id]
        assert e.passage_sentence == docs[{"q1": "d1", "q2": "d2", "q3": "d3"}[e.parallel_id]]
        assert e.article == e.parallel_id
    cross_only = ir_datasets_parallel_examples(ids, pairs=[("de", "en")], max_queries=2)
    assert [(e.parallel_id, e.query_lang, e.passage_lang) for e in cross_only] == [("q1", "de", "en"),
                                                                                   ("q2", "de", "en")]
    from_spec = load_training_data(f"irds:en={ids['en']},de={ids['de']}", langs=["en", "de"])
    assert list(from_spec.examples) == examples


def test_ir_datasets_source_errors(fake_mmarco):
    ids, _ = fake_mmarco
    with pytest.raises(ValueError, match="unknown ir_datasets id"):
        ir_datasets_parallel_examples({"en": ids["en"], "fr": ids["en"] + "-missing"})
    with pytest.raises(ValueError, match="irds:LANG=DATASET_ID"):
        load_training_data("irds:en")
    with pytest.raises(ValueError, match="hard negatives"):
        load_training_data(f"irds:en={ids['en']}", hard_negatives=True)


def test_split_by_article_holds_out_whole_articles(lareqa_dir):
    data = lareqa_training_data("mlqa-r", langs=["en", "de"])
    train, held_out = split_by_article(data, 0.1, seed=1)
    assert len(train) + len(held_out) == len(data)
    train_articles = {e.article for e in train.examples}
    held_out_articles = {e.article for e in held_out.examples}
    assert not train_articles & held_out_articles
    assert not {e.parallel_id for e in train.examples} & {e.parallel_id for e in held_out.examples}
    total = len(train_articles | held_out_articles)
    assert len(held_out_articles) == -(-total // 10)
    assert split_by_article(data, 0.1, seed=1)[1].examples == held_out.examples
    assert split_by_article(data, 0.1, seed=2)[1].examples != held_out.examples


def test_max_parallel_ids_keeps_every_example_of_the_ids_drawn(lareqa_dir):
    # a quick run's slice: 30 parallel ids drawn with a fixed seed, with all of their examples, whatever the run's seed
    whole = lareqa_training_data("mlqa-r", langs=["en", "de"])
    config = HybridTrainingConfig(train="lareqa/mlqa-r", train_langs=("en", "de"), max_parallel_ids=30)
    sliced = configured_training_data(config)
    ids = {e.parallel_id for e in sliced.examples}
    assert sliced.num_parallel_ids == 30 and ids <= {e.parallel_id for e in whole.examples}
    assert sliced.examples == tuple(e for e in whole.examples if e.parallel_id in ids)
    # both languages, and cross-lingual pairs to fill hybrid batches (the first ids of the source are English only)
    assert {e.query_lang for e in sliced.examples} == {"en", "de"}
    assert any(e.query_lang != e.passage_lang for e in sliced.examples)
    assert configured_training_data(dataclasses.replace(config, seed=7)).examples == sliced.examples
    assert configured_training_data(dataclasses.replace(config, max_parallel_ids=None)).examples == whole.examples
    with pytest.raises(TrainingConfigError, match="max_parallel_ids must be a positive integer"):
        dataclasses.replace(config, max_parallel_ids=0)


# --- configuration and CLI ------------------------------------------------------------------------------------------


def test_config_defaults_are_the_papers():
    config = HybridTrainingConfig()
    assert (config.alpha, config.batch_size, config.learning_rate, config.weight_decay) == (0.5, 100, 3e-5, 0.01)
    assert (config.loss, config.scale, config.candidate_text) == ("mnrl", 20.0, "sentence+context")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"alpha": 1.5}, "alpha"),
        ({"loss": "triplet"}, "loss"),
        ({"batch_size": 0}, "batch_size"),
        ({"candidate_text": "context"}, "candidate_text"),
        ({"early_stopping_patience": 2, "eval_fraction": 0.0}, "validation split"),
        ({"early_stopping_patience": 2, "eval_steps": 3, "save_steps": 10}, "multiple of eval_steps"),
        ({"max_eval_batches": 0}, "max_eval_batches"),
    ],
)
def test_config_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        HybridTrainingConfig(**overrides)


def test_config_json_round_trip(tmp_path):
    config = HybridTrainingConfig(train_langs=("en", "de"), max_steps=7, bf16=True)
    config.save(tmp_path / "c.json", seed=config.seed)
    assert HybridTrainingConfig.load(tmp_path / "c.json") == config


def test_cli_arguments_map_to_the_config():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        ["--base-model", "default", "--train", "lareqa/xquad-r", "--train-langs", "en,de", "--alpha", "0.25",
         "--batch-size", "32", "--lr", "1e-5", "--max-steps", "50", "--bf16", "--freeze-word-embeddings",
         "--loss", "cached-mnrl", "--mini-batch-size", "8", "--candidate-text", "sentence", "--max-eval-batches",
         "20", "-o", "out"]
    )
    config = cli.config_from_args(args)
    assert config == HybridTrainingConfig(
        base_model=None, train="lareqa/xquad-r", train_langs=("en", "de"), alpha=0.25, batch_size=32,
        learning_rate=1e-5, max_steps=50, bf16=True, freeze_word_embeddings=True, loss="cached-mnrl",
        mini_batch_size=8, candidate_text="sentence", max_eval_batches=20, output_dir="out",
    )
    assert not args.resume


def test_cli_reports_unusable_data_as_a_user_error(tiny_model_path, tmp_path, lareqa_dir):
    from pyterrier_hybrid.errors import UserError

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    # one language and alpha < 1: there is no cross-lingual pair to draw (the command prints it and exits 2)
    args = parser.parse_args(["--base-model", str(tiny_model_path), "--train", "lareqa/xquad-r", "--train-langs",
                              "de", "--eval-fraction", "0", "-o", str(tmp_path / "out"), "--batch-size", "8"])
    with pytest.raises(UserError, match="cross-lingual"):
        cli.run(args)


# --- training runs --------------------------------------------------------------------------------------------------


def test_prompts_are_applied_exactly_once(tiny_model_path, subset_jsonl, tmp_path):
    from pyterrier_hybrid.training.trainer import prepare_training

    prepared = prepare_training(tiny_config(tiny_model_path, subset_jsonl, tmp_path / "out"))
    assert prepared.prompts == ("query: ", "passage: ")  # the tiny model's own prompts
    # the loss sees the text columns only; languages and parallel ids stay in the sampler
    assert prepared.train_dataset.column_names == ["anchor", "positive"]
    model = prepared.trainer.model
    features = [prepared.train_dataset[i] for i in range(3)]
    assert not any(f["anchor"].startswith("query: ") for f in features)  # raw texts in the dataset
    batch = prepared.trainer.data_collator(features)
    for column, prompt in (("anchor", "query: "), ("positive", "passage: ")):
        once = model.preprocess([prompt + f[column] for f in features])["input_ids"]
        twice = model.preprocess([prompt + prompt + f[column] for f in features])["input_ids"]
        assert batch[f"{column}_input_ids"].tolist() == once.tolist()
        assert batch[f"{column}_input_ids"].tolist() != twice.tolist()


def test_prompts_already_in_the_data_are_refused(tiny_model_path, subset, tmp_path):
    from pyterrier_hybrid.training.trainer import prepare_training

    prefixed = dataclasses.replace(
        subset, examples=tuple(dataclasses.replace(e, query="query: " + e.query) for e in subset.examples)
    )
    path = write_jsonl(tmp_path / "prefixed.jsonl", prefixed)
    with pytest.raises(ValueError, match="already starts with the prompt"):
        prepare_training(tiny_config(tiny_model_path, path, tmp_path / "out"))


def mean_rank_of_parallel_passage(model_path: Path, data) -> float:
    """German questions against the English answer sentences of the same questions: mean 0-based rank of the
    translation's answer by cosine (0 = always first)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path))
    queries = {e.parallel_id: e.query for e in data.examples if e.query_lang == "de"}
    passages = {e.parallel_id: e.passage_sentence for e in data.examples if e.passage_lang == "en"}
    ids = sorted(set(queries) & set(passages))
    assert len(ids) > 30
    scores = model.encode_query([queries[i] for i in ids]) @ model.encode_document([passages[i] for i in ids]).T
    return float((scores > scores.diagonal()[:, None]).sum(axis=1).mean())


def test_training_lowers_the_loss_and_improves_cross_lingual_retrieval(tiny_model_path, subset, subset_jsonl, tmp_path):
    from sentence_transformers import SentenceTransformer

    from pyterrier_hybrid.training import train

    before = mean_rank_of_parallel_passage(tiny_model_path, subset)
    out = train(tiny_config(tiny_model_path, subset_jsonl, tmp_path / "run", max_steps=60, logging_steps=10))
    after = mean_rank_of_parallel_passage(out, subset)
    assert after < before / 2, (before, after)

    with (out / "loss_curve.csv").open() as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f) if row["loss"]]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0]
    # a normal sentence-transformers folder, with its prompts, configuration, curve and card
    model = SentenceTransformer(str(out))
    assert model.prompts["query"] == "query: " and model.prompts["passage"] == "passage: "
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["config"]["seed"] == 13 and saved["run"]["seed"] == 13
    assert HybridTrainingConfig.from_dict(saved["config"]).max_steps == 60
    assert saved["run"]["global_steps"] == 60 and saved["run"]["languages"] == sorted(LANGS)
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "alpha=0.5" in (out / "README.md").read_text()


class StopAt:
    """Simulates an interruption: training stops after ``step`` (the checkpoint of that step is written)."""

    def __new__(cls, step):
        from transformers import TrainerCallback

        class _StopAt(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step >= step:
                    control.should_training_stop = True

        return _StopAt()


def test_resume_reaches_the_weights_of_an_uninterrupted_run(tiny_model_path, subset, tmp_path):
    import torch

    from pyterrier_hybrid.training import train

    # 20 questions in 3 languages with batches of 8: 2 steps per epoch, so the resumed run starts in epoch 2
    few = subset.select(i for i, e in enumerate(subset.examples) if e.parallel_id in
                        sorted({e.parallel_id for e in subset.examples})[:20])
    data = write_jsonl(tmp_path / "few.jsonl", few)
    settings = dict(max_steps=8, save_steps=5, logging_steps=1)
    whole = train(tiny_config(tiny_model_path, data, tmp_path / "whole", **settings))
    config = tiny_config(tiny_model_path, data, tmp_path / "split", **settings)
    train(config, callbacks=[StopAt(5)])
    assert json.loads((tmp_path / "split" / CONFIG_FILE).read_text())["run"]["global_steps"] == 5
    with pytest.raises(FileExistsError, match="resume"):
        train(config)  # a fresh run into a folder with checkpoints
    with pytest.raises(ValueError, match="learning_rate"):
        train(dataclasses.replace(config, learning_rate=1e-4), resume=True)
    resumed = train(config, resume=True)
    assert json.loads((resumed / CONFIG_FILE).read_text())["run"]["resumed_from"].endswith("checkpoint-5")

    a, b = parameters(whole), parameters(resumed)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    # and training did move the weights (the comparison is not trivially true)
    start = parameters(tiny_model_path)
    assert max((a[k] - start[k]).abs().max().item() for k in a) > 1e-3
    with (whole / "loss_curve.csv").open() as f1, (resumed / "loss_curve.csv").open() as f2:
        assert [r["loss"] for r in csv.DictReader(f1)] == [r["loss"] for r in csv.DictReader(f2)]
    assert torch.get_num_threads() == 1


def test_resume_without_checkpoint_is_an_error(tiny_model_path, subset_jsonl, tmp_path):
    from pyterrier_hybrid.training import train

    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny_config(tiny_model_path, subset_jsonl, tmp_path / "none"), resume=True)


def test_early_stopping_keeps_the_best_checkpoint(tiny_model_path, subset_jsonl, tmp_path):
    from pyterrier_hybrid.training import train

    # a learning rate far too high: the validation loss stops improving quickly
    config = tiny_config(tiny_model_path, subset_jsonl, tmp_path / "es", learning_rate=0.5, max_steps=40,
                         eval_fraction=0.3, eval_steps=2, save_steps=2, early_stopping_patience=2, logging_steps=2)
    out = train(config)
    run = json.loads((out / CONFIG_FILE).read_text())["run"]
    assert run["global_steps"] < 40
    with (out / "loss_curve.csv").open() as f:
        evals = {int(r["step"]): float(r["eval_loss"]) for r in csv.DictReader(f) if r["eval_loss"]}
    best_step = min(evals, key=evals.get)
    assert run["best_checkpoint"].endswith(f"checkpoint-{best_step}")
    final, best = parameters(out), parameters(Path(run["best_checkpoint"]))
    assert all(np.allclose(final[k].numpy(), best[k].numpy()) for k in final)


def test_cpu_options_hard_negatives_and_cached_loss_from_the_cli(tiny_model_path, subset_jsonl, tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / "cli"
    args = parser.parse_args(
        ["--base-model", str(tiny_model_path), "--train", str(subset_jsonl), "--batch-size", "8", "--max-steps", "3",
         "--lr", "1e-2", "--bf16", "--freeze-word-embeddings", "--hard-negatives", "--loss", "cached-mnrl",
         "--mini-batch-size", "4", "--candidate-text", "sentence+context", "--max-seq-length", "32",
         "--eval-fraction", "0", "-o", str(out)]
    )
    assert cli.run(args) == 0
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["config"]["loss"] == "cached-mnrl" and saved["config"]["hard_negatives"] is True
    assert saved["run"]["global_steps"] == 3
    before, after = parameters(tiny_model_path), parameters(out)
    embeddings = [k for k in before if "word_embeddings" in k]
    assert embeddings and all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in embeddings)
    assert any(not np.allclose(before[k].numpy(), after[k].numpy()) for k in before if k not in embeddings)


DDP_SCRIPT = r'''
import json, os, sys
import torch
torch.set_num_threads(1)
from pyterrier_hybrid.training.config import HybridTrainingConfig
from pyterrier_hybrid.training.trainer import prepare_training

model, data, out = sys.argv[1:4]
config = HybridTrainingConfig(base_model=model, train=data, batch_size=4, learning_rate=2e-3, warmup=0.0,
                              max_steps=6, candidate_text="sentence", max_seq_length=32, eval_fraction=0.0,
                              save_steps=1000, logging_steps=2, output_dir=out, seed=5)
prepared = prepare_training(config)
rank = prepared.trainer.args.process_index
collate = prepared.trainer.data_collator
seen = []

class Recording:  # records the rows each rank trains on
    def __getattr__(self, name):
        return getattr(collate, name)
    def __call__(self, features):
        seen.append([[f["anchor"], f["positive"]] for f in features])
        return collate(features)

prepared.trainer.data_collator = Recording()
prepared.run()
weights = torch.cat([p.detach().flatten() for p in prepared.trainer.model.parameters()]).double()
with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
    json.dump({"world_size": prepared.world_size, "batches": seen,
               "weights": [weights.sum().item(), weights.abs().sum().item()]}, f)
'''


def test_distributed_training_on_two_cpu_processes(tiny_model_path, subset_jsonl, subset, tmp_path):
    """A real DDP run (torch.distributed, gloo, 2 processes): at every step both ranks train on the same batch
    type (and language), on disjoint questions, and end with the same weights."""
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(port), str(script), str(tiny_model_path), str(subset_jsonl), str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert json.loads((out / CONFIG_FILE).read_text())["run"]["world_size"] == 2
    assert np.allclose(ranks[0]["weights"], ranks[1]["weights"], rtol=1e-6)

    by_texts = {}
    for e in subset.examples:
        by_texts.setdefault((e.query, e.passage_sentence), set()).add((e.parallel_id, e.query_lang, e.passage_lang))
    # accelerate prefetches one batch beyond the last step: compare the 6 trained ones
    for step in range(6):
        described = []
        for r in range(2):
            batch = ranks[r]["batches"][step]
            assert len(batch) == 4
            described.append(set.union(*(by_texts[tuple(pair)] for pair in batch)))
        langs = [{(q, p) for _, q, p in rows} for rows in described]
        monolingual = [all(q == p for q, p in pairs) for pairs in langs]
        assert monolingual[0] == monolingual[1]
        if monolingual[0]:
            assert len({q for pairs in langs for q, _ in pairs}) == 1  # one language on both ranks
        else:
            assert all(q != p for pairs in langs for q, p in pairs)
        ids = [{pid for pid, _, _ in rows} for rows in described]
        assert len(ids[0]) == len(ids[1]) == 4 and not ids[0] & ids[1]


def test_validation_batches_shrink_when_questions_share_an_answer_sentence():
    """Regression: MLQA-R's held-out zh questions included several asked about one sentence; the validation batch
    size counted parallel ids only and the sampler then could not fill a batch of distinct passages."""
    from pyterrier_hybrid.training.batching.pairs import build_training_dataset
    from pyterrier_hybrid.training.batching.validation import validation_batch_size
    from pyterrier_hybrid.training.sources.data import TrainingData

    examples = []
    for i in range(6):
        # Questions 0-3 share their answer sentence in both languages: at most 3 distinct passages per language.
        sentence = "shared sentence" if i < 4 else f"sentence {i}"
        for qlang in ("en", "de"):
            for plang in ("en", "de"):
                examples.append(ParallelExample(f"p{i}", qlang, f"{qlang} question {i}?", plang,
                                                f"{plang} {sentence}.", "", f"p{i}"))
    dataset, rows = build_training_dataset(TrainingData(tuple(examples)), "sentence", ("", ""))
    config = HybridTrainingConfig(batch_size=6, alpha=0.5)
    size = validation_batch_size(dataset, rows, config, world_size=1)
    assert size == 3
    from pyterrier_hybrid.training.batching.hybrid import HybridBatchSampler

    batches = list(HybridBatchSampler(dataset, size, seed=config.seed, rows=rows, alpha=0.5, batches_per_epoch=8))
    for batch in batches:
        passages = [dataset[i]["positive"] for i in batch]
        assert len(set(passages)) == len(passages)


def test_max_eval_batches_caps_the_validation_pass_to_its_first_batches(tiny_model_path, subset_jsonl, tmp_path):
    from pyterrier_hybrid.training.trainer import prepare_training

    def eval_batches(**overrides):
        config = tiny_config(tiny_model_path, subset_jsonl, tmp_path / str(len(overrides)), eval_fraction=0.3,
                             max_steps=2, **overrides)
        prepared = prepare_training(config)
        return [list(batch) for batch in prepared.trainer.get_eval_dataloader().batch_sampler]

    full = eval_batches()
    capped = eval_batches(max_eval_batches=2)
    assert len(full) > 2
    assert capped == full[:2]


def test_fused_optimizer_makes_the_update_of_the_per_tensor_loop(tiny_model_path, subset_jsonl, tmp_path):
    from pyterrier_hybrid.training import train

    settings = dict(max_steps=4, logging_steps=1)
    loop = train(tiny_config(tiny_model_path, subset_jsonl, tmp_path / "loop", fused_optimizer=False, **settings))
    fused = train(tiny_config(tiny_model_path, subset_jsonl, tmp_path / "fused", **settings))
    assert json.loads((fused / CONFIG_FILE).read_text())["config"]["fused_optimizer"] is True
    a, b, start = parameters(loop), parameters(fused), parameters(tiny_model_path)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    assert max((a[k] - start[k]).abs().max().item() for k in a) > 1e-3  # the weights did move
    with (loop / "loss_curve.csv").open() as f1, (fused / "loss_curve.csv").open() as f2:
        losses = [(float(r1["loss"]), float(r2["loss"])) for r1, r2 in zip(csv.DictReader(f1), csv.DictReader(f2))]
    assert len(losses) == 4 and all(abs(x - y) < 1e-4 for x, y in losses)


def test_training_with_fast_dropout_saves_the_stock_model_and_records_it(tiny_model_path, subset_jsonl, tmp_path):
    from sentence_transformers import SentenceTransformer

    from pyterrier_hybrid.training import train
    from pyterrier_hybrid.training.speed.fast_dropout import FAST_ATTENTION, FastDropout

    settings = dict(max_steps=3, logging_steps=1)
    fast = train(tiny_config(tiny_model_path, subset_jsonl, tmp_path / "fast", **settings))
    stock = train(tiny_config(tiny_model_path, subset_jsonl, tmp_path / "stock", fast_dropout=False, **settings))
    assert json.loads((fast / CONFIG_FILE).read_text())["config"]["fast_dropout"] is True
    assert json.loads((stock / CONFIG_FILE).read_text())["config"]["fast_dropout"] is False
    reloaded = SentenceTransformer(str(fast), device="cpu")
    assert not any(isinstance(m, FastDropout) for m in reloaded.modules())
    assert reloaded[0].auto_model.config._attn_implementation != FAST_ATTENTION
    # the same batches, other dropout masks: the losses differ, by dropout noise only
    with (fast / "loss_curve.csv").open() as f1, (stock / "loss_curve.csv").open() as f2:
        losses = [(float(r1["loss"]), float(r2["loss"])) for r1, r2 in zip(csv.DictReader(f1), csv.DictReader(f2))]
    assert len(losses) == 3 and any(x != y for x, y in losses)
    assert all(abs(x - y) < 0.1 * y for x, y in losses)


def test_paper_cpu_recipe_is_the_papers_batch_with_hard_negatives_within_its_time_budget():
    from pyterrier_hybrid.training.recipes import PAPER_CPU_RECIPE, PAPER_CPU_TIME_BUDGET, RECIPES

    recipe, budget = PAPER_CPU_RECIPE, PAPER_CPU_TIME_BUDGET
    assert RECIPES["paper-cpu"] is recipe
    assert recipe.batch_size == 100 and recipe.hard_negatives and recipe.bf16 and recipe.train == "lareqa/mlqa-r"
    assert recipe.early_stopping_patience and recipe.eval_fraction > 0 and recipe.max_steps is None
    assert recipe.save_steps == recipe.eval_steps == budget.steps_per_epoch  # a checkpoint and a validation per epoch
    epochs = int(recipe.epochs)
    assert epochs >= 1 and budget.minutes(epochs) <= budget.budget_min < budget.minutes(epochs + 1)


def test_recipe_from_the_cli_keeps_the_options_given(tmp_path):
    from pyterrier_hybrid.training.recipes import PAPER_CPU_RECIPE

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    config = cli.config_from_args(parser.parse_args(
        ["--recipe", "paper-cpu", "--max-steps", "3", "--alpha", "1", "-o", str(tmp_path / "r")]))
    assert config.max_steps == 3 and config.alpha == 1.0 and config.output_dir == str(tmp_path / "r")
    assert dataclasses.replace(config, max_steps=None, alpha=0.5, output_dir=PAPER_CPU_RECIPE.output_dir) == \
        PAPER_CPU_RECIPE
    with pytest.raises(SystemExit):
        parser.parse_args(["--recipe", "no-such-recipe"])


def test_an_option_given_at_its_default_value_still_wins_over_the_recipe(tmp_path):
    """The recipe trains with the cached loss; --loss mnrl (the configuration's default) must not be lost."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    given = cli.config_from_args(parser.parse_args(["--recipe", "paper-cpu", "--loss", "mnrl", "--seed=42",
                                                    "--freeze-layers", "9"]))
    assert given.loss == "mnrl" and given.freeze_layers == 9 and given.batch_size == 100
    assert cli.config_from_args(parser.parse_args(["--recipe", "paper-cpu"])).loss == "cached-mnrl"


def test_an_undeclared_trainer_option_reaches_the_trainer_and_the_record(tiny_model_path, subset_jsonl, tmp_path):
    """gradient_accumulation_steps and max_grad_norm are no configuration fields: they go through as they are."""
    from pyterrier_hybrid.training.trainer import prepare_training

    given = {"gradient_accumulation_steps": 2, "max_grad_norm": 0.5}
    python = prepare_training(tiny_config(tiny_model_path, subset_jsonl, tmp_path / "py", max_steps=2,
                                          trainer_arguments=given))
    assert (python.trainer.args.gradient_accumulation_steps, python.trainer.args.max_grad_norm) == (2, 0.5)
    assert json.loads((tmp_path / "py" / CONFIG_FILE).read_text())["config"]["trainer_arguments"] == given

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / "cli"
    args = parser.parse_args(
        ["--base-model", str(tiny_model_path), "--train", str(subset_jsonl), "--batch-size", "8", "--max-steps", "2",
         "--gradient-accumulation-steps", "2", "--candidate-text", "sentence", "--max-seq-length", "32",
         "--max_grad_norm", "0.5", "--eval-fraction", "0", "-o", str(out)])
    prepared = prepare_training(cli.check_request(args))
    assert (prepared.trainer.args.gradient_accumulation_steps, prepared.trainer.args.max_grad_norm) == (2, 0.5)
    prepared.run()
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["config"]["trainer_arguments"] == given and saved["run"]["global_steps"] == 2
    assert "gradient_accumulation_steps=2" in (out / "README.md").read_text()
