"""Distillation from the frozen starting model: the teacher table, the loss terms, the parallel groups and targets,
the multi-dataset batching, and real (tiny) training runs from Python and from the command line."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyterrier_hybrid.datasets import ParallelExample
from pyterrier_hybrid.training.config import CONFIG_FILE, HybridTrainingConfig, TrainingConfigError
from pyterrier_hybrid.training.losses.distilled_mnrl import DistilledCachedMNRL, DistilledMNRL
from pyterrier_hybrid.training.losses.parallel_distillation import ParallelDistillationLoss
from pyterrier_hybrid.training.losses.teacher import TeacherTable
from pyterrier_hybrid.training.sources.parallel_groups import DistillationDataError, parallel_groups

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model_path), device="cpu")


QUESTIONS = {"en": "Who wrote the book?", "de": "Wer schrieb das Buch?", "es": "¿Quién escribió el libro?"}
ANSWERS = {"en": "The book was written by Anna.", "de": "Das Buch schrieb Anna.", "es": "Anna escribió el libro."}


def group_examples(pid: str, langs, article: str = "a") -> list[ParallelExample]:
    return [ParallelExample(pid, q, QUESTIONS[q] + pid, p, ANSWERS[p] + pid, "", article) for q in langs for p in langs]


def write_jsonl(path: Path, examples) -> Path:
    import dataclasses

    path.write_text("".join(json.dumps(dataclasses.asdict(e), ensure_ascii=False) + "\n" for e in examples),
                    encoding="utf-8")
    return path


def tokenized(model, texts):
    return model.tokenize(texts)


# --- the teacher table ------------------------------------------------------------------------------------------------


def test_teacher_table_equals_a_fresh_encode_once_per_distinct_text(tiny):
    texts = ["query: a b c", "passage: d e f", "query: a b c", "passage: g h"]
    table = TeacherTable.encode(tiny, texts, show_progress=False)
    assert len(table) == 3  # one row per distinct text
    fresh = tiny.encode(["query: a b c", "passage: d e f", "passage: g h"], prompt="", convert_to_tensor=True,
                        normalize_embeddings=True)
    rows = table.index(["query: a b c", "passage: d e f", "passage: g h"])
    torch.testing.assert_close(table.embeddings[torch.as_tensor(rows)], fresh.float(), atol=1e-5, rtol=1e-5)
    assert torch.allclose(table.embeddings.norm(dim=1), torch.ones(3), atol=1e-5)
    assert not table.embeddings.requires_grad


def test_parallel_group_without_english_falls_back_to_the_group_mean():
    examples = group_examples("p1", ("en", "de", "es")) + group_examples("p2", ("de", "es"))
    groups = parallel_groups(examples, "sentence")
    assert groups.num_groups == 2 and len(groups) == 5
    vectors = torch.nn.functional.normalize(torch.randn(10, 8), dim=1)
    table = TeacherTable([f"t{i}" for i in range(10)], vectors)
    own_q, own_p = np.arange(5), np.arange(5, 10)
    for target in ("english", "mean"):
        table = TeacherTable([f"t{i}" for i in range(10)], vectors)
        target_q, target_p = groups.target_rows(own_q, own_p, table, target)
        rows_p1 = [i for i, pid in enumerate(groups.parallel_ids) if pid == "p1"]
        rows_p2 = [i for i, pid in enumerate(groups.parallel_ids) if pid == "p2"]
        english = [i for i in rows_p1 if groups.langs[i] == "en"]
        p2_mean = torch.nn.functional.normalize(vectors[own_q[rows_p2]].mean(0), dim=0)
        torch.testing.assert_close(table.embeddings[target_q[rows_p2[0]]], p2_mean)  # no English: the mean
        assert len(set(target_q[rows_p1])) == 1 and len(set(target_p[rows_p2])) == 1  # one target per group
        expected_p1 = (vectors[own_q[english[0]]] if target == "english"
                       else torch.nn.functional.normalize(vectors[own_q[rows_p1]].mean(0), dim=0))
        torch.testing.assert_close(table.embeddings[target_q[rows_p1[0]]], expected_p1)


def test_a_source_without_parallel_groups_is_refused():
    one_language_each = [ParallelExample(f"p{i}", "en", f"q{i}", "en", f"s{i}", "", "a") for i in range(4)]
    with pytest.raises(DistillationDataError, match="no parallel id of the training examples has texts in two"):
        parallel_groups(one_language_each, "sentence")


# --- the losses -------------------------------------------------------------------------------------------------


def _features(model, columns):
    return [tokenized(model, texts) for texts in columns]


def _loss_and_grads(model, loss, features, labels):
    model.zero_grad()
    value = loss(features, labels)
    value.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return value.detach(), grads


@pytest.fixture()
def batch(tiny):
    anchors = [f"query: question {w}" for w in ("one", "two", "three", "four")]
    positives = [f"passage: answer {w} here" for w in ("one", "two", "three", "four")]
    table = TeacherTable.encode(tiny, anchors + positives, show_progress=False)
    labels = torch.as_tensor(np.stack([table.index(anchors), table.index(positives)], axis=1))
    return anchors, positives, table, labels


def test_weight_zero_gives_the_loss_and_gradients_of_plain_mnrl(tiny, batch):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    anchors, positives, table, labels = batch
    tiny.eval()  # no dropout: the two passes must see the same network
    features = _features(tiny, [anchors, positives])
    plain = _loss_and_grads(tiny, MultipleNegativesRankingLoss(tiny), features, labels)
    zero = _loss_and_grads(tiny, DistilledMNRL(tiny, table, 0.0), _features(tiny, [anchors, positives]), labels)
    torch.testing.assert_close(zero[0], plain[0])
    for name, grad in plain[1].items():
        torch.testing.assert_close(zero[1][name], grad)


def test_distillation_term_is_the_weighted_cosine_distance_to_the_teacher(tiny, batch):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    anchors, positives, table, _ = batch
    tiny.eval()
    other = TeacherTable(anchors + positives, torch.nn.functional.normalize(torch.randn(8, table.embeddings.shape[1]),
                                                                             dim=1))
    labels = torch.as_tensor(np.stack([other.index(anchors), other.index(positives)], axis=1))
    with torch.no_grad():
        plain = MultipleNegativesRankingLoss(tiny)(_features(tiny, [anchors, positives]), labels)
        distilled = DistilledMNRL(tiny, other, 0.7)(_features(tiny, [anchors, positives]), labels)
        student = [tiny(f)["sentence_embedding"] for f in _features(tiny, [anchors, positives])]
    expected = np.mean([(1 - torch.cosine_similarity(s, other.embeddings[labels[:, c]], dim=1)).mean().item()
                        for c, s in enumerate(student)])
    assert distilled.item() == pytest.approx(plain.item() + 0.7 * expected, abs=1e-5)
    assert expected > 0.1  # random targets: a real term was added


def test_cached_form_gives_the_loss_and_gradients_of_the_plain_form(tiny, batch):
    anchors, positives, _, _ = batch
    tiny.eval()
    table = TeacherTable(anchors + positives,
                         torch.nn.functional.normalize(torch.randn(8, tiny.get_embedding_dimension()), dim=1))
    labels = torch.as_tensor(np.stack([table.index(anchors), table.index(positives)], axis=1))
    plain = _loss_and_grads(tiny, DistilledMNRL(tiny, table, 0.5), _features(tiny, [anchors, positives]), labels)
    cached = _loss_and_grads(tiny, DistilledCachedMNRL(tiny, table, 0.5, mini_batch_size=2),
                             _features(tiny, [anchors, positives]), labels)
    torch.testing.assert_close(cached[0], plain[0], atol=1e-5, rtol=1e-4)
    for name, grad in plain[1].items():
        torch.testing.assert_close(cached[1][name], grad, atol=1e-5, rtol=1e-3)


def test_parallel_loss_pulls_towards_targets_and_own_embeddings(tiny, batch):
    anchors, positives, table, _ = batch
    tiny.eval()
    targets = table.append(torch.nn.functional.normalize(torch.randn(2, table.embeddings.shape[1]), dim=1))
    own = np.stack([table.index(anchors), table.index(positives)], axis=1)
    labels = torch.as_tensor(np.concatenate([np.tile(targets, (4, 1)), own], axis=1))
    with torch.no_grad():
        only_targets = ParallelDistillationLoss(tiny, table, 1.0)(_features(tiny, [anchors, positives]), labels)
        with_own = ParallelDistillationLoss(tiny, table, 1.0, 2.0)(_features(tiny, [anchors, positives]), labels)
    # the student is the teacher here: its distance to its own embeddings is ~0, to the random targets is not
    assert with_own.item() == pytest.approx(only_targets.item(), abs=1e-4)
    assert only_targets.item() > 0.1


# --- batching -------------------------------------------------------------------------------------------------------


def test_step_round_robin_gives_each_rank_the_same_dataset_in_a_step():
    from torch.utils.data import ConcatDataset

    from pyterrier_hybrid.training.batching.shuffled import ShuffledBatchSampler, StepRoundRobinBatchSampler

    first, second = list(range(40)), list(range(30))
    samplers = [ShuffledBatchSampler(first, 4, seed=3, num_replicas=2),
                ShuffledBatchSampler(second, 4, seed=3, num_replicas=2)]
    combined = StepRoundRobinBatchSampler(ConcatDataset([first, second]), samplers, num_replicas=2)
    batches = list(combined)
    assert len(batches) == len(combined) == 3 * 2 * 2  # min(5, 3) steps x 2 datasets x 2 ranks
    for step in range(0, len(batches), 2):
        rank0, rank1 = batches[step], batches[step + 1]
        assert (max(rank0) < 40) == (max(rank1) < 40) == (step % 4 == 0)  # both ranks: one dataset per step
        assert not set(rank0) & set(rank1)
    again = list(StepRoundRobinBatchSampler(ConcatDataset([first, second]), [
        ShuffledBatchSampler(first, 4, seed=3, num_replicas=2), ShuffledBatchSampler(second, 4, seed=3,
                                                                                      num_replicas=2)],
        num_replicas=2))
    assert again == batches  # seeded: every rank builds the same sequence
    samplers[0].set_epoch(1)
    assert list(samplers[0]) != list(ShuffledBatchSampler(first, 4, seed=3, num_replicas=2))


# --- configuration and training runs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, message", [
    ({"distill_base_weight": -0.1}, "distill_base_weight must be >= 0"),
    ({"distill_parallel_weight": -1.0}, "distill_parallel_weight must be >= 0"),
    ({"distill_target": "french"}, "distill_target must be one of"),
    ({"contrastive": False}, "set distill_parallel_weight > 0"),
])
def test_bad_distillation_settings_are_refused(overrides, message):
    with pytest.raises(TrainingConfigError, match=message):
        HybridTrainingConfig(**overrides)


def test_an_older_training_config_without_distillation_fields_means_no_distillation(tmp_path):
    data = HybridTrainingConfig().to_dict()
    for name in ("distill_base_weight", "distill_parallel_weight", "distill_target", "contrastive"):
        data.pop(name)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"config": data}), encoding="utf-8")
    loaded = HybridTrainingConfig.load(tmp_path / CONFIG_FILE)
    assert not loaded.distills and loaded.contrastive


def _folder_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def parallel_jsonl(tmp_path_factory) -> Path:
    examples = []
    for i in range(12):
        langs = ("en", "de", "es") if i % 3 else ("de", "es")  # every third group has no English
        examples += group_examples(f"p{i}", langs, article=f"art{i % 6}")
    return write_jsonl(tmp_path_factory.mktemp("data") / "parallel.jsonl", examples)


def test_distilled_training_from_python_saves_a_plain_model_and_leaves_the_teacher_untouched(
        tiny_model_path, parallel_jsonl, tmp_path):
    from sentence_transformers import SentenceTransformer

    from pyterrier_hybrid.training import train

    before = _folder_digest(tiny_model_path)
    config = HybridTrainingConfig(
        base_model=str(tiny_model_path), train=str(parallel_jsonl), alpha=0.5, batch_size=4, max_steps=4,
        learning_rate=2e-3, warmup=0.0, candidate_text="sentence", max_seq_length=48, eval_fraction=0.0,
        save_steps=1000, logging_steps=1, output_dir=str(tmp_path / "out"), seed=3, distill_base_weight=0.5,
        distill_parallel_weight=1.0, distill_target="english")
    out = train(config)
    assert _folder_digest(tiny_model_path) == before  # the teacher (the starting model) is unchanged
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["config"]["distill_parallel_weight"] == 1.0 and saved["config"]["distill_target"] == "english"
    assert "distillation from the frozen starting model" in (out / "README.md").read_text()
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    trained, base = SentenceTransformer(str(out)), SentenceTransformer(str(tiny_model_path))
    assert not np.allclose(trained.encode(["Wer?"]), base.encode(["Wer?"]))
    assert saved["run"]["global_steps"] == 4


def test_distillation_alone_from_the_cli(tiny_model_path, parallel_jsonl, tmp_path):
    from pyterrier_hybrid.cli import main

    # in this process: the command's parsing and run are what is tested here, not a fresh interpreter's imports
    out = tmp_path / "out"
    assert main(["train", "--base-model", str(tiny_model_path), "--train", str(parallel_jsonl), "--no-contrastive",
                 "--distill-parallel", "1", "--distill-base", "0.5", "--distill-target", "mean", "--batch-size", "4",
                 "--max-steps", "3", "--candidate-text", "sentence", "--max-seq-length", "48", "--eval-fraction",
                 "0.2", "--eval-steps", "3", "--save-steps", "3", "-o", str(out)]) == 0
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["config"]["contrastive"] is False and saved["run"]["global_steps"] == 3
    assert saved["run"]["best_validation_loss"] is not None  # the held-out parallel loss is the validation


def test_distillation_with_a_one_language_source_is_one_line_before_a_model_is_built(tmp_path):
    source = write_jsonl(tmp_path / "mono.jsonl",
                         [ParallelExample(f"p{i}", "en", f"q{i}", "en", f"s{i}", "", f"a{i}") for i in range(8)])
    cache = tmp_path / "cache"
    cache.mkdir()
    env = dict(os.environ, PYTERRIER_HYBRID_CACHE=str(cache), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-m", "pyterrier_hybrid.cli", "train", "--train", str(source), "--alpha", "1",
         "--batch-size", "2", "--distill-parallel", "1", "-o", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "parallel distillation needs parallel groups" in lines[0]
    assert not any(cache.iterdir())


def test_compare_options_set_the_trained_systems_and_their_distillation():
    from pyterrier_hybrid.experiments.compare_cli import parse_trained
    from pyterrier_hybrid.experiments.presets import PresetError, get_preset, override_preset

    preset = override_preset(get_preset("paper-cpu"), main_systems=parse_trained(["distilled=1"]),
                             training={"contrastive": False, "distill_parallel_weight": 1.0})
    assert preset.main_systems == (("distilled", 1.0),)
    assert not preset.training.contrastive and preset.training.distill_parallel_weight == 1.0
    hybrid_distilled = override_preset(get_preset("paper-cpu"), training={"distill_base_weight": 0.5})
    assert hybrid_distilled.training.distill_base_weight == 0.5 and len(hybrid_distilled.main_systems) == 3
    with pytest.raises(PresetError, match="give one trained system"):
        override_preset(get_preset("paper-cpu"), training={"contrastive": False, "distill_parallel_weight": 1.0})
    with pytest.raises(PresetError, match="LABEL=ALPHA"):
        parse_trained(["hybrid"])
    with pytest.raises(PresetError, match="distill_base_weight must be >= 0"):
        override_preset(get_preset("paper-cpu"), training={"distill_base_weight": -1.0})
    recipe = get_preset("distill-cpu").training
    assert not recipe.contrastive and recipe.distill_parallel_weight > 0 and recipe.train == "lareqa/mlqa-r"
