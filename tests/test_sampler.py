"""The hybrid batch sampler on real LAReQA parallel examples: batch composition, randomness, distributed sharding,
errors."""
from __future__ import annotations

import math
from collections import Counter

import pytest

from pyterrier_hybrid.datasets import ParallelExample, lareqa_collection
from pyterrier_hybrid.training.batching.base import distributed_world_size
from pyterrier_hybrid.training.batching.hybrid import HybridBatchSampler, ParallelRows, SamplerDataError
from pyterrier_hybrid.training.batching.registry import HybridBatchSamplerFactory

LANGS = ("en", "de", "es", "zh")
BATCH = 16


@pytest.fixture(scope="module")
def examples(lareqa_dir) -> list[ParallelExample]:
    return lareqa_collection("xquad-r").parallel_examples(langs=LANGS)


@pytest.fixture(scope="module")
def rows(examples) -> ParallelRows:
    return ParallelRows.from_examples(examples, [e.passage_sentence + " " + e.passage_context for e in examples])


def make_sampler(examples, rows, **kwargs) -> HybridBatchSampler:
    kwargs.setdefault("batch_size", BATCH)
    kwargs.setdefault("seed", 0)
    return HybridBatchSampler(list(range(len(examples))), rows=rows, **kwargs)


def batch_kind(examples, batch) -> tuple[str, str | None]:
    pairs = {(examples[i].query_lang, examples[i].passage_lang) for i in batch}
    if all(q == p for q, p in pairs):
        langs = {q for q, _ in pairs}
        return ("monolingual", langs.pop()) if len(langs) == 1 else ("mixed monolingual", None)
    if all(q != p for q, p in pairs):
        return "cross-lingual", None
    return "mixed", None


def test_batches_follow_the_hybrid_recipe(examples, rows):
    alpha = 0.3
    sampler = make_sampler(examples, rows, alpha=alpha, batches_per_epoch=1500)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 1500
    kinds = [batch_kind(examples, b) for b in batches]
    # every batch is either single-language monolingual or fully cross-lingual
    assert {k for k, _ in kinds} <= {"monolingual", "cross-lingual"}
    monolingual = sum(k == "monolingual" for k, _ in kinds)
    sigma = math.sqrt(alpha * (1 - alpha) / len(batches))
    assert abs(monolingual / len(batches) - alpha) < 4 * sigma
    # the language of a monolingual batch is uniform over the training languages
    per_lang = Counter(lang for k, lang in kinds if k == "monolingual")
    assert set(per_lang) == set(LANGS)
    p = 1 / len(LANGS)
    for lang, count in per_lang.items():
        assert abs(count / monolingual - p) < 4 * math.sqrt(p * (1 - p) / monolingual), lang
    for batch in batches:
        assert len(batch) == BATCH
        assert len({examples[i].parallel_id for i in batch}) == BATCH  # no translations of one another
        assert len({examples[i].query for i in batch}) == BATCH
        assert len({examples[i].passage_sentence + examples[i].passage_context for i in batch}) == BATCH


def test_cross_lingual_language_pairs_are_uniform_per_parallel_id(examples, rows):
    # XQuAD-R is fully parallel: every parallel id has the 12 ordered cross pairs of 4 languages
    sampler = make_sampler(examples, rows, alpha=0.0, batches_per_epoch=400)
    pairs = Counter((examples[i].query_lang, examples[i].passage_lang) for b in sampler for i in b)
    assert len(pairs) == len(LANGS) * (len(LANGS) - 1)
    total = sum(pairs.values())
    p = 1 / len(pairs)
    for pair, count in pairs.items():
        assert abs(count / total - p) < 4 * math.sqrt(p * (1 - p) / total), pair


def test_cross_pair_is_drawn_among_the_pairs_available_for_its_parallel_id():
    # p1 exists in en/de/es, p2..p9 in en/de only: p1 may be drawn in any of its 6 cross pairs, the others in 2
    examples = []
    for pid, langs in [("p1", ("en", "de", "es"))] + [(f"p{i}", ("en", "de")) for i in range(2, 10)]:
        for q in langs:
            for p in langs:
                examples.append(ParallelExample(pid, q, f"{pid} question {q}", p, f"{pid} answer {p}", "", pid))
    rows = ParallelRows.from_examples(examples)
    sampler = HybridBatchSampler(list(range(len(examples))), batch_size=3, rows=rows, alpha=0.0,
                                 batches_per_epoch=3000, seed=1)
    p1_pairs = Counter()
    for batch in sampler:
        for i in batch:
            e = examples[i]
            assert e.query_lang != e.passage_lang
            if e.parallel_id == "p1":
                p1_pairs[(e.query_lang, e.passage_lang)] += 1
            else:
                assert {e.query_lang, e.passage_lang} == {"en", "de"}
    assert len(p1_pairs) == 6
    total = sum(p1_pairs.values())
    for pair, count in p1_pairs.items():
        assert abs(count / total - 1 / 6) < 4 * math.sqrt((1 / 6) * (5 / 6) / total), pair


def test_identical_passage_texts_never_share_a_batch():
    # different parallel ids whose answers are the same sentence (as when two questions share their answer)
    examples = [
        ParallelExample(f"q{i}", "en", f"question {i}", "en", f"sentence {i // 2}", "ctx", f"a{i}") for i in range(12)
    ]
    rows = ParallelRows.from_examples(examples)
    sampler = HybridBatchSampler(list(range(12)), batch_size=6, rows=rows, alpha=1.0, batches_per_epoch=200)
    for batch in sampler:
        sentences = [examples[i].passage_sentence for i in batch]
        assert len(set(sentences)) == len(sentences)


def test_hard_negative_texts_count_as_passages():
    # the hard negative of q0 is the positive of q1: they must not be in one batch (q1's positive would be a
    # negative for q1 itself)
    examples = [ParallelExample(f"q{i}", "en", f"question {i}", "en", f"sentence {i}", "", f"a{i}") for i in range(8)]
    negatives = ["sentence 1"] + [f"other {i}" for i in range(1, 8)]
    rows = ParallelRows.from_examples(examples, [e.passage_sentence for e in examples], negatives)
    sampler = HybridBatchSampler(list(range(8)), batch_size=4, rows=rows, alpha=1.0, batches_per_epoch=300)
    for batch in sampler:
        assert not {0, 1} <= set(batch)


def test_same_seed_same_batches_and_set_epoch_changes_them(examples, rows):
    first = make_sampler(examples, rows, seed=3)
    again = make_sampler(examples, rows, seed=3)
    other_seed = make_sampler(examples, rows, seed=4)
    epoch0 = list(first)
    assert epoch0 == list(again)
    assert epoch0 == list(first)  # iterating again gives the same epoch
    assert epoch0 != list(other_seed)
    first.set_epoch(1)
    epoch1 = list(first)
    assert epoch1 != epoch0
    again.set_epoch(1)
    assert list(again) == epoch1
    first.set_epoch(0)
    assert list(first) == epoch0


def test_batch_plan_announces_the_batches(examples, rows):
    sampler = make_sampler(examples, rows, alpha=0.5, seed=7)
    plan = list(sampler.batch_plan())
    assert [batch_kind(examples, b) for b in sampler] == plan


def test_an_epoch_is_one_pass_over_the_parallel_ids(examples, rows):
    sampler = make_sampler(examples, rows)
    num_ids = len({e.parallel_id for e in examples})
    assert len(sampler) == num_ids // BATCH
    # within an epoch, draws from a pool are without replacement: cross-lingual batches of a whole epoch of
    # cross-lingual batches use each parallel id at most once
    cross_only = make_sampler(examples, rows, alpha=0.0)
    ids = [examples[i].parallel_id for b in cross_only for i in b]
    assert len(ids) == len(set(ids)) == (num_ids // BATCH) * BATCH


def test_simulated_ranks_draw_the_same_batch_types_and_disjoint_examples(examples, rows):
    from accelerate.data_loader import BatchSamplerShard

    world = 2
    per_rank = []
    for rank in range(world):
        sampler = make_sampler(examples, rows, alpha=0.5, num_replicas=world, seed=11)
        sampler.set_epoch(2)
        per_rank.append(list(BatchSamplerShard(sampler, num_processes=world, process_index=rank)))
    assert len(per_rank[0]) == len(per_rank[1]) == len({e.parallel_id for e in examples}) // (BATCH * world)
    kinds = Counter()
    for b0, b1 in zip(*per_rank):
        assert len(b0) == len(b1) == BATCH
        k0, k1 = batch_kind(examples, b0), batch_kind(examples, b1)
        assert k0 == k1 and k0[0] in ("monolingual", "cross-lingual")
        kinds[k0[0]] += 1
        assert not set(b0) & set(b1)
        # no translations across ranks either (negatives may be gathered across devices)
        assert not {examples[i].parallel_id for i in b0} & {examples[i].parallel_id for i in b1}
    assert kinds["monolingual"] > 0 and kinds["cross-lingual"] > 0


def test_world_size_defaults_to_one_without_a_process_group(examples, rows):
    assert distributed_world_size() == 1
    assert make_sampler(examples, rows).num_replicas == 1


def test_error_when_alpha_below_one_with_a_single_language(lareqa_dir):
    examples = lareqa_collection("xquad-r").parallel_examples(langs=["de"])
    rows = ParallelRows.from_examples(examples)
    with pytest.raises(SamplerDataError, match="cross-lingual"):
        HybridBatchSampler(list(range(len(examples))), batch_size=8, rows=rows, alpha=0.5)
    # alpha = 1 (monolingual only) is satisfiable
    assert len(list(HybridBatchSampler(list(range(len(examples))), batch_size=8, rows=rows, alpha=1.0))) > 0


def test_error_when_a_language_has_fewer_examples_than_a_batch(examples):
    # Chinese kept for 150 parallel ids only; the other languages have all 1190
    kept_zh_ids = set(sorted({e.parallel_id for e in examples})[:150])
    few_zh = [e for e in examples if "zh" not in (e.query_lang, e.passage_lang) or e.parallel_id in kept_zh_ids]
    rows = ParallelRows.from_examples(few_zh)
    with pytest.raises(SamplerDataError, match="'zh'"):
        HybridBatchSampler(list(range(len(few_zh))), batch_size=200, rows=rows, alpha=0.5)


def test_error_when_texts_make_a_batch_impossible():
    # 8 distinct parallel ids but only 2 distinct answer sentences: no batch of 4 without a repeated passage
    examples = [ParallelExample(f"q{i}", "en", f"question {i}", "en", f"s{i % 2}", "", "a") for i in range(8)]
    rows = ParallelRows.from_examples(examples)
    sampler = HybridBatchSampler(list(range(8)), batch_size=4, rows=rows, alpha=1.0)
    with pytest.raises(SamplerDataError, match="distinct"):
        list(sampler)


def test_error_when_rows_do_not_match_the_dataset(examples, rows):
    with pytest.raises(ValueError, match="rows"):
        HybridBatchSampler(list(range(len(examples) - 1)), batch_size=BATCH, rows=rows)
    with pytest.raises(ValueError, match="alpha"):
        make_sampler(examples, rows, alpha=1.5)


def test_factory_serves_registered_datasets_only(examples, rows):
    from datasets import Dataset

    dataset = Dataset.from_dict({"anchor": [e.query for e in examples],
                                 "positive": [e.passage_sentence for e in examples]})
    factory = HybridBatchSamplerFactory(alpha=0.25)
    factory.register(dataset, rows)
    # the call sentence-transformers makes
    sampler = factory(dataset, batch_size=BATCH, drop_last=False, valid_label_columns=["label"], generator=None, seed=5)
    assert isinstance(sampler, HybridBatchSampler) and sampler.alpha == 0.25 and sampler.seed == 5
    assert factory.sampler_for(dataset) is sampler
    # transformers pickles its arguments into each checkpoint: the factory keeps its settings, not the datasets
    import pickle

    restored = pickle.loads(pickle.dumps(factory))
    assert len(pickle.dumps(factory)) < 1000 and restored.alpha == 0.25 and restored.sampler_for(dataset) is None
    other = Dataset.from_dict({"anchor": ["a"], "positive": ["b"]})
    with pytest.raises(KeyError, match="register"):
        factory(other, batch_size=1, drop_last=False)
