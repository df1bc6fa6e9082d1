"""The LAReQA collections: numbers, relevance and ids checked against the release JSON read independently here."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict

import pytest

from pyterrier_hybrid.datasets import (
    ChecksumMismatchError,
    CorruptReleaseFileError,
    MissingReleaseFileError,
    UnknownCollectionError,
    UnknownDatasetIdError,
    UnknownLanguageError,
    lareqa_collection,
)
from pyterrier_hybrid.datasets.lareqa import parse_release_file
from pyterrier_hybrid.datasets.release import MIRROR_URL_ENV, ReleaseFiles

XQUAD_LANGS = "ar de el en es hi ru th tr vi zh".split()
MLQA_LANGS = "ar de en es hi vi zh".split()


def read_release(lareqa_dir, collection, lang):
    """Independent reading of a release file: (sentences in file order, {question id: (question, answer sentence)})."""
    data = json.loads((lareqa_dir / collection / f"{lang}.json").read_text(encoding="utf-8"))
    sentences, questions = [], {}
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            sentences.extend(paragraph["sentences"])
            for qa in paragraph["qas"]:
                start = qa["answers"][0]["answer_start"]
                (index,) = [
                    i for i, (b, e) in enumerate(paragraph["sentence_breaks"]) if b <= start < e
                ]
                questions[qa["id"]] = (qa["question"], paragraph["sentences"][index])
    return sentences, questions


@pytest.mark.parametrize("collection,langs", [("xquad-r", XQUAD_LANGS), ("mlqa-r", MLQA_LANGS)])
def test_counts_per_language_match_the_release_files(lareqa_dir, collection, langs):
    c = lareqa_collection(collection)
    assert c.languages == tuple(langs)
    for lang in langs:
        sentences, questions = read_release(lareqa_dir, collection, lang)
        assert len(c.candidates([lang])) == len(sentences)
        assert len(c.topics([lang])) == len(questions)
        assert sorted(c.candidates([lang]).text) == sorted(sentences)


@pytest.mark.parametrize("collection,langs", [("xquad-r", XQUAD_LANGS), ("mlqa-r", MLQA_LANGS)])
def test_relevance_follows_answer_start_in_every_language(lareqa_dir, collection, langs):
    c = lareqa_collection(collection)
    docs = c.candidates()
    # plain dicts: a pandas lookup per question (13,090 of them in XQuAD-R) made this test take seconds
    text_of, lang_of = dict(zip(docs.docno, docs.text)), dict(zip(docs.docno, docs.lang))
    qrels = c.qrels()  # multilingual pool: every parallel answer
    released = {lang: read_release(lareqa_dir, collection, lang)[1] for lang in langs}
    relevant_by_qid = qrels.groupby("qid").docno.apply(list).to_dict()
    topics = c.topics()
    for qid, lang, pid, query in zip(topics.qid, topics.lang, topics.parallel_id, topics["query"]):
        assert query == released[lang][pid][0]
        expected = sorted(released[d][pid][1] for d in langs if pid in released[d])
        assert sorted(text_of[docno] for docno in relevant_by_qid[qid]) == expected
        relevant_langs = sorted(lang_of[docno] for docno in relevant_by_qid[qid])
        assert relevant_langs == sorted(d for d in langs if pid in released[d])  # one per language


@pytest.mark.lareqa
def test_xquad_r_every_question_has_one_relevant_candidate_per_language():
    c = lareqa_collection("xquad-r")
    qrels = c.qrels().merge(c.candidates()[["docno", "lang"]], on="docno")
    per_lang = qrels.groupby(["qid", "lang"]).size()
    assert set(per_lang) == {1}
    assert set(qrels.groupby("qid").size()) == {11}
    for lang in XQUAD_LANGS:
        mono = c.qrels([lang], [lang])
        assert len(mono) == mono.qid.nunique() == 1190


def test_mlqa_r_cross_lingual_leaves_out_questions_without_an_answer_in_the_document_language(lareqa_dir):
    c = lareqa_collection("mlqa-r")
    de = read_release(lareqa_dir, "mlqa-r", "de")[1]
    hi = read_release(lareqa_dir, "mlqa-r", "hi")[1]
    topics = c.topics(["de"], ["hi"])
    assert set(topics.parallel_id) == set(de) & set(hi)
    assert 0 < len(topics) < len(de)
    assert set(c.qrels(["de"], ["hi"]).qid) == set(topics.qid)
    sizes = c.qrels().groupby("qid").size()
    assert sizes.min() == 2 and sizes.max() == 4


@pytest.mark.parametrize("collection", ["xquad-r", "mlqa-r"])
@pytest.mark.lareqa
def test_ids_are_unique_and_the_pool_is_the_union_of_the_monolingual_sets(collection):
    c = lareqa_collection(collection)
    pool_docs, pool_topics = c.candidates(), c.topics()
    assert pool_docs.docno.is_unique and pool_topics.qid.is_unique
    mono_docnos, mono_qids = set(), set()
    for lang in c.languages:
        mono_docnos |= set(c.candidates([lang]).docno)
        mono_qids |= set(c.topics([lang]).qid)
    assert set(pool_docs.docno) == mono_docnos
    assert set(pool_topics.qid) == mono_qids
    # the pooled qrels are the union of the qrels of every monolingual and cross-lingual setting
    pairwise = set()
    for q in c.languages:
        for d in c.languages:
            pairwise |= set(map(tuple, c.qrels([q], [d])[["qid", "docno"]].values))
    assert set(map(tuple, c.qrels()[["qid", "docno"]].values)) == pairwise


@pytest.mark.lareqa
def test_parallel_examples_cover_every_language_pair_of_each_question():
    c = lareqa_collection("mlqa-r")
    examples = c.parallel_examples()
    qrels = c.qrels()
    assert len(examples) == len(qrels)  # one example per (question, relevant answer in any language)
    by_pid = defaultdict(set)
    for e in examples:
        by_pid[e.parallel_id].add((e.query_lang, e.passage_lang))
        assert e.passage_sentence in e.passage_context
    for pid, pairs in by_pid.items():
        langs = {q for q, _ in pairs}
        assert pairs == {(q, d) for q in langs for d in langs}
    articles = defaultdict(set)
    for e in examples:
        articles[e.parallel_id].add(e.article)
    assert all(len(a) == 1 for a in articles.values())
    only_de_en = c.parallel_examples(langs=["de", "en"], pairs=[("de", "en")])
    assert only_de_en and all((e.query_lang, e.passage_lang) == ("de", "en") for e in only_de_en)


@pytest.mark.lareqa
def test_pyterrier_get_dataset_in_a_fresh_process_after_only_import_pyterrier(tmp_path):
    code = """
import pyterrier as pt
ds = pt.get_dataset('irds:lareqa/xquad-r/de')
topics = ds.get_topics('text')
qrels = ds.get_qrels()
docs = list(ds.get_corpus_iter(verbose=False))
print(len(topics), len(qrels), len(docs), sorted(docs[0]))
assert topics.columns.tolist() == ['qid', 'query']
pool = pt.get_dataset('irds:lareqa/mlqa-r/de-hi')
print(len(pool.get_topics('text')))
"""
    env = dict(os.environ, IR_DATASETS_HOME=str(tmp_path / "irds"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()[-2:]
    assert first == "1190 1190 1276 ['context', 'docno', 'lang', 'text', 'title']"
    assert int(second) == len(lareqa_collection("mlqa-r").topics(["de"], ["hi"]))


@pytest.mark.lareqa
def test_ir_datasets_load_gives_queries_with_language_and_parallel_id():
    import ir_datasets

    import pyterrier_hybrid  # noqa: F401  (registers the ids)

    ds = ir_datasets.load("lareqa/xquad-r/de-en")
    query = next(iter(ds.queries_iter()))
    assert query.lang == "de" and query.query_id == f"de-{query.parallel_id}"
    doc = ds.docs_store().get("en-0-0")
    assert doc.lang == "en" and doc.text in doc.context


@pytest.mark.lareqa
def test_pyterrier_text_loader_adds_sentence_and_context_to_a_ranking():
    """``pt.text.get_text`` (what a re-ranking pipeline puts after a first stage) reads our record fields."""
    import pandas as pd
    import pyterrier as pt

    ds = pt.get_dataset("irds:lareqa/xquad-r/de-en")
    docs = ds.irds_ref().docs_store().get_many(["en-0-0", "en-0-1"])
    ranking = pd.DataFrame({"qid": ["q1", "q1"], "docno": ["en-0-1", "en-0-0"], "score": [2.0, 1.0]})
    with_text = pt.text.get_text(ds, ["text", "context"])(ranking)
    assert with_text["docno"].tolist() == ["en-0-1", "en-0-0"]
    assert with_text["text"].tolist() == [docs["en-0-1"].text, docs["en-0-0"].text]
    assert with_text["context"].tolist() == [docs["en-0-1"].context, docs["en-0-0"].context]


def test_unknown_language_collection_and_id_errors_list_the_valid_ones():
    import ir_datasets

    import pyterrier_hybrid  # noqa: F401

    with pytest.raises(UnknownLanguageError, match="valid languages: ar de el en es hi ru th tr vi zh"):
        lareqa_collection("xquad-r").topics(["xx"])
    with pytest.raises(UnknownLanguageError, match="valid languages: ar de en es hi vi zh"):
        lareqa_collection("mlqa-r").candidates(["th"])
    with pytest.raises(UnknownCollectionError, match="mlqa-r, xquad-r"):
        lareqa_collection("squad-r")
    with pytest.raises(UnknownDatasetIdError, match="LANG in ar de el en es hi ru th tr vi zh"):
        ir_datasets.load("lareqa/xquad-r/de-xx")


def test_missing_local_file_names_the_path_and_the_download_address(tmp_path):
    (tmp_path / "xquad-r").mkdir()
    files = ReleaseFiles(local_dir=tmp_path)
    with pytest.raises(MissingReleaseFileError) as error:
        files.path("xquad-r", "de")
    message = str(error.value)
    assert str(tmp_path / "xquad-r" / "de.json") in message
    assert "https://raw.githubusercontent.com/google-research-datasets/lareqa/" in message
    assert "9bc8c7fb6dd8d01d72a05a93c2cb96882b0d299c/xquad-r/de.json" in message


def test_checksum_mismatch_names_the_file_and_both_checksums_and_the_file_is_not_used(tmp_path, lareqa_dir):
    (tmp_path / "xquad-r").mkdir()
    bad = tmp_path / "xquad-r" / "de.json"
    bad.write_bytes((lareqa_dir / "xquad-r" / "de.json").read_bytes().replace(b"Panthers", b"Broncos", 1))
    with pytest.raises(ChecksumMismatchError) as error:
        lareqa_collection("xquad-r", local_dir=tmp_path).topics(["de"])
    message = str(error.value)
    assert str(bad) in message
    assert "16fb0f4bf4916154b585a20c24c66074591c9718a1affe764ff4697572328949" in message  # expected
    import hashlib

    assert hashlib.sha256(bad.read_bytes()).hexdigest() in message  # actual
    assert bad.exists()  # a user's local copy is reported, never deleted


def test_corrupt_download_in_the_cache_is_quarantined_not_used(tmp_path, lareqa_dir, monkeypatch):
    monkeypatch.delenv("PYTERRIER_HYBRID_LAREQA_DIR", raising=False)
    cached = tmp_path / "xquad-r" / "de.json"
    cached.parent.mkdir(parents=True)
    cached.write_text('{"data": []}')
    files = ReleaseFiles(cache_dir=tmp_path)
    with pytest.raises(ChecksumMismatchError, match="will be downloaded again"):
        files.path("xquad-r", "de")
    assert not cached.exists() and cached.with_name("de.json.sha256-mismatch").exists()
    # a correct copy placed in the cache (the ir_datasets home) is used without any download
    shutil.copy(lareqa_dir / "xquad-r" / "de.json", cached)
    assert files.path("xquad-r", "de") == cached


def test_a_mirror_replaces_the_pinned_address_and_is_checked_like_it(tmp_path, lareqa_dir, monkeypatch):
    monkeypatch.delenv("PYTERRIER_HYBRID_LAREQA_DIR", raising=False)
    mirror = tmp_path / "mirror"
    (mirror / "xquad-r").mkdir(parents=True)
    shutil.copy(lareqa_dir / "xquad-r" / "de.json", mirror / "xquad-r" / "de.json")
    (mirror / "xquad-r" / "en.json").write_text('{"data": []}')  # not the release file
    monkeypatch.setenv(MIRROR_URL_ENV, mirror.as_uri() + "/")
    files = ReleaseFiles(cache_dir=tmp_path / "cache")
    assert files.path("xquad-r", "de").read_bytes() == (lareqa_dir / "xquad-r" / "de.json").read_bytes()
    with pytest.raises(ChecksumMismatchError, match="will be downloaded again"):
        files.path("xquad-r", "en")
    assert not list((tmp_path / "cache").rglob("*.partial"))


def test_a_missing_mirror_file_names_the_address_tried_and_the_ways_out(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTERRIER_HYBRID_LAREQA_DIR", raising=False)
    monkeypatch.setenv(MIRROR_URL_ENV, (tmp_path / "nowhere").as_uri())
    with pytest.raises(MissingReleaseFileError) as error:
        ReleaseFiles(cache_dir=tmp_path / "cache").path("mlqa-r", "hi")
    message = str(error.value)
    assert message.startswith(f"could not download LAReQA file {(tmp_path / 'nowhere').as_uri()}/mlqa-r/hi.json to ")
    assert "PYTERRIER_HYBRID_LAREQA_DIR" in message and MIRROR_URL_ENV in message and "\n" not in message
    assert not (tmp_path / "cache" / "mlqa-r" / "hi.json").exists()


def test_corrupt_json_names_the_file(tmp_path):
    broken = tmp_path / "de.json"
    broken.write_text('{"data": [', encoding="utf-8")
    with pytest.raises(CorruptReleaseFileError, match=str(broken)):
        parse_release_file(broken, "de")
    wrong_shape = tmp_path / "en.json"
    wrong_shape.write_text('{"data": [{"title": "x", "paragraphs": [{"context": "a"}]}]}', encoding="utf-8")
    with pytest.raises(CorruptReleaseFileError, match=str(wrong_shape)):
        parse_release_file(wrong_shape, "en")


@pytest.mark.lareqa
def test_datasets_command_prints_every_id_with_its_numbers(capsys):
    from pyterrier_hybrid.cli import main

    assert main(["datasets", "--collection", "mlqa-r", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "id,setting,query_langs,doc_langs,queries,candidates,qrels"
    assert len(lines) - 1 == 1 + 7 + 42
    pool = [line for line in lines if line.startswith("lareqa/mlqa-r,")][0].split(",")
    c = lareqa_collection("mlqa-r")
    assert pool[4:] == [str(len(c.topics())), str(len(c.candidates())), str(len(c.qrels()))]


def test_registration_is_repeatable_and_the_synthetic_collection_is_registered_on_request_only(tmp_path):
    """In a fresh interpreter: importing the package registers the LAReQA ids but not the synthetic collection, which
    the package's loader registers when an id of it is asked for; both registrations can run again without an error,
    and unknown ids still get their errors afterwards."""
    code = """
import sys
import ir_datasets
import pyterrier_hybrid
from pyterrier_hybrid.datasets.errors import UnknownDatasetIdError
from pyterrier_hybrid.datasets.irds import load_irds_dataset, register_all
from pyterrier_hybrid.datasets.synthetic import register_synthetic_collection, synthetic_id

registered = set(ir_datasets.registry)
assert 'lareqa/xquad-r/de-en' in registered
try:
    ir_datasets.load(synthetic_id(20, 'de'))
    sys.exit('registered on import')
except KeyError:
    pass
assert next(iter(load_irds_dataset('irds:' + synthetic_id(20, 'de')).queries_iter())).query_id == 'q0'
for _ in range(2):
    register_all()
    register_synthetic_collection()
assert not ir_datasets.load(synthetic_id(20, 'fr', 'no-docpairs')).has_docpairs()
try:
    ir_datasets.load('lareqa/xquad-r/de-xx')
    sys.exit('an unknown lareqa id loaded')
except UnknownDatasetIdError:
    pass
try:
    ir_datasets.load('pyterrier-hybrid-synthetic/20/xx')
    sys.exit('an unknown synthetic language loaded')
except KeyError:
    pass
"""
    env = dict(os.environ, IR_DATASETS_HOME=str(tmp_path / "irds"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
