"""Batching regimes (pyterrier_hybrid.training.regimes): which regime a configuration picks, and a regime added
from outside the package (a module's worth of code and one entry in the table) trains like the built-in ones."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pyterrier_hybrid.training.batching.base import SeededBatchSampler
from pyterrier_hybrid.training.config import BATCHINGS, CONFIG_FILE, HybridTrainingConfig
from pyterrier_hybrid.training.regimes import REGIMES, load_regime, pick_regime
from pyterrier_hybrid.training.regimes.base import BatchingRegime, column_prompts, in_memory_examples, infonce_loss

LANGS = ("en", "de")


def write_articles(path: Path, articles: int = 3, questions: int = 6) -> Path:
    """A JSONL source of ``articles`` articles with ``questions`` parallel questions each, in English and German,
    every (query language, passage language) pair of them."""
    words = {"en": ("question", "answer", "about"), "de": ("frage", "antwort", "über")}
    with path.open("w", encoding="utf-8") as f:
        for a in range(articles):
            for q in range(questions):
                for query_lang in LANGS:
                    for passage_lang in LANGS:
                        ask, answer, about = words[query_lang][0], words[passage_lang][1], words[passage_lang][2]
                        record = {"parallel_id": f"a{a}-q{q}", "article": f"article-{a}", "query_lang": query_lang,
                                  "query": f"{ask} {q} {about} topic {a}", "passage_lang": passage_lang,
                                  "passage_sentence": f"{answer} {q} {about} topic {a} is {q * a}"}
                        f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def test_every_configuration_picks_a_regime_of_the_table(tmp_path):
    jsonl = write_articles(tmp_path / "train.jsonl")
    assert set(BATCHINGS) <= set(REGIMES)  # every value of --batching names a regime
    cases = [
        ({}, "hybrid"),
        ({"alpha": 1.0}, "hybrid"),
        ({"alpha": 0.0}, "hybrid"),
        ({"batching": "pooled"}, "pooled"),
        ({"distill_base_weight": 0.5}, "distillation"),
        ({"batching": "pooled", "distill_parallel_weight": 1.0}, "distillation"),
        ({"train": "irds:en=a,de=b"}, "streamed"),
        ({"extra_train": ("lareqa/xquad-r",)}, "streamed"),
    ]
    for overrides, name in cases:
        config = HybridTrainingConfig(**{"train": str(jsonl), **overrides})
        assert pick_regime(config) == name, overrides
        assert name in REGIMES
    with pytest.raises(KeyError, match="no batching regime 'nothing'"):
        load_regime(HybridTrainingConfig(train=str(jsonl)), "nothing")


def test_a_built_in_regime_loads_its_examples_before_any_model(tmp_path):
    jsonl = write_articles(tmp_path / "train.jsonl")
    regime = load_regime(HybridTrainingConfig(train=str(jsonl), batch_size=4, eval_fraction=0.3, seed=1))
    assert type(regime) is REGIMES["hybrid"]
    assert len(regime.data) == 3 * 6 * 4
    assert len(regime.train_data) + len(regime.eval_data) == len(regime.data)
    train_articles = {e.article for e in regime.train_data.examples}
    assert train_articles and not train_articles & {e.article for e in regime.eval_data.examples}
    assert regime.train_dataset is None  # the datasets come with the model (prompts, teacher)


def test_a_regime_registered_from_outside_trains(tiny_model_path, tmp_path, monkeypatch, one_torch_thread):
    """A toy regime defined here, every batch drawn from one article, registered in the table and trained for 2
    steps: nothing else in the package knows it."""
    from sentence_transformers import SentenceTransformer

    from pyterrier_hybrid.training.batching.pairs import build_training_dataset
    from pyterrier_hybrid.training.trainer import prepare_training

    drawn: list[list[int]] = []

    class OneArticleBatchSampler(SeededBatchSampler):
        """Each batch: ``batch_size`` rows of one article, the article and rows drawn from (seed, epoch)."""

        def __init__(self, dataset, batch_size, drop_last=False, valid_label_columns=None, generator=None, seed=0,
                     *, articles, num_replicas=1):
            super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed,
                             num_replicas=num_replicas)
            articles = np.asarray(articles)
            self.rows_of = {article: np.flatnonzero(articles == article) for article in sorted(set(articles))}
            self.batches_per_epoch = 3

        def __iter__(self):
            rng = np.random.default_rng([self.seed, self.epoch])
            names = sorted(self.rows_of)
            for _ in range(self.batches_per_epoch):
                article = names[int(rng.integers(len(names)))]
                rows = rng.choice(self.rows_of[article], size=self.global_batch_size, replace=False).tolist()
                drawn.append(rows)
                for rank in range(self.num_replicas):
                    yield rows[rank * self.batch_size:(rank + 1) * self.batch_size]

    class OneArticleRegime(BatchingRegime):
        @classmethod
        def load(cls, config, regimes):
            return cls(config, *in_memory_examples(config))

        def build_datasets(self, model, prompts):
            self.train_dataset, _ = build_training_dataset(self.train_data, self.config.candidate_text, prompts)
            self.column_prompts = column_prompts(self.train_dataset.column_names, prompts)

        def register_samplers(self, registry, args, world_size):
            registry.register_sampler(self.train_dataset, OneArticleBatchSampler, num_replicas=world_size,
                                      articles=[e.article for e in self.train_data.examples])

        def loss(self, model, memory_plan):
            return infonce_loss(self.config, model, memory_plan)

    monkeypatch.setitem(REGIMES, "one-article", OneArticleRegime)
    jsonl = write_articles(tmp_path / "train.jsonl")
    config = HybridTrainingConfig(
        base_model=str(tiny_model_path), train=str(jsonl), batch_size=6, max_steps=2, learning_rate=2e-3, warmup=0.0,
        candidate_text="sentence", max_seq_length=32, eval_fraction=0.0, save_steps=1000, logging_steps=1,
        output_dir=str(tmp_path / "out"), seed=5,
    )
    prepared = prepare_training(config, regime="one-article")
    articles = [e.article for e in prepared.train_data.examples]
    out = prepared.run()

    assert len(drawn) >= 2  # the two steps' batches (the dataloader may have drawn one ahead)
    for batch in drawn:
        assert len(batch) == 6 and len({articles[row] for row in batch}) == 1
    saved = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved["run"]["global_steps"] == 2 and saved["run"]["status"] == "finished"
    assert HybridTrainingConfig.load(out / CONFIG_FILE) == config
    losses = [row["loss"] for row in prepared.trainer.state.log_history if "loss" in row]
    assert len(losses) == 2 and all(np.isfinite(losses))
    before = SentenceTransformer(str(tiny_model_path), device="cpu").state_dict()
    after = SentenceTransformer(str(out), device="cpu").state_dict()
    assert any(not np.allclose(before[k].numpy(), after[k].numpy()) for k in before)
