"""Every user error of the ``pyterrier-hybrid`` command: one line on stderr naming the problem, exit status 2, no
traceback, and reported before any model is built.

Each error class runs the real command in a subprocess with ``PYTERRIER_HYBRID_CACHE`` pointing at an empty folder:
had the command built the embedded default model (or loaded any model) first, the folder would not be empty
afterwards. Bad flag values, which argparse or the option checks catch, run through ``main()`` in the test process
(the same code path, without a second interpreter start per case).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyterrier_hybrid.cli import build_parser, main
from pyterrier_hybrid.cli_args import LanguageListAction, language_list
from pyterrier_hybrid.datasets import LOCAL_DIR_ENV

COLLECTION = "xquad-r"
LANG = "de"


@pytest.fixture
def cache(tmp_path) -> Path:
    path = tmp_path / "model-cache"
    path.mkdir()
    return path


@pytest.fixture
def copied_release(tmp_path, lareqa_dir) -> Path:
    """A private copy of the XQuAD-R release folder, to damage."""
    root = tmp_path / "lareqa"
    shutil.copytree(lareqa_dir / COLLECTION, root / COLLECTION)
    return root


@pytest.fixture
def corrupt_release(copied_release) -> Path:
    path = copied_release / COLLECTION / f"{LANG}.json"
    data = bytearray(path.read_bytes())
    data[100] = ord("X") if data[100] != ord("X") else ord("Y")  # one byte: still JSON-looking, wrong checksum
    path.write_bytes(bytes(data))
    return copied_release


@pytest.fixture
def incomplete_release(copied_release) -> Path:
    (copied_release / COLLECTION / f"{LANG}.json").unlink()
    return copied_release


def run_cli(args: list[str], cache: Path, lareqa: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTERRIER_HYBRID_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if lareqa is not None:
        env[LOCAL_DIR_ENV] = str(lareqa)
    return subprocess.run([sys.executable, "-m", "pyterrier_hybrid.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def assert_user_error(result: subprocess.CompletedProcess, command: str, *named: str, cache: Path) -> None:
    assert_one_error_line(result.returncode, result.stderr, command, *named, cache=cache)


def assert_one_error_line(status: int, stderr: str, command: str, *named: str, cache: Path) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"pyterrier-hybrid {command}: error: "), lines[0]
    for text in named:
        assert text in lines[0], lines[0]
    assert not any(cache.iterdir()), "a model was built before the error was reported"


def run_main(args: list[str], capsys, monkeypatch, cache: Path) -> tuple[int, str]:
    """``main(args)`` in this process: (exit status, stderr)."""
    monkeypatch.setenv("PYTERRIER_HYBRID_CACHE", str(cache))
    capsys.readouterr()
    try:
        status = main(args)
    except SystemExit as e:  # argparse's errors exit
        status = e.code
    return status, capsys.readouterr().err


# --- evaluate -------------------------------------------------------------------------------------------------------


def test_evaluate_unknown_language(cache):
    result = run_cli(["evaluate", "--langs", "de", "xx"], cache)
    assert_user_error(result, "evaluate", "unknown language", "'xx'", cache=cache)


def test_evaluate_unknown_collection(cache):
    result = run_cli(["evaluate", "--collection", "lareqa/nope"], cache)
    assert_user_error(result, "evaluate", "unknown LAReQA collection", "'nope'", cache=cache)


def test_evaluate_unknown_lareqa_id(cache):
    result = run_cli(["evaluate", "--collection", "lareqa/xquad-r/de-xx"], cache)
    assert_user_error(result, "evaluate", "unknown LAReQA dataset id", "'lareqa/xquad-r/de-xx'", cache=cache)


def test_evaluate_missing_model_folder(cache, tmp_path):
    missing = tmp_path / "no-such-model"
    result = run_cli(["evaluate", "--model", "bm25", "--model", str(missing)], cache)
    assert_user_error(result, "evaluate", str(missing), "neither an existing local folder", cache=cache)


def test_evaluate_folder_without_a_model(cache, tmp_path):
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    result = run_cli(["evaluate", "--model", str(empty)], cache)
    assert_user_error(result, "evaluate", str(empty), "not a sentence-transformers or Hugging Face model", cache=cache)


@pytest.mark.lareqa
def test_evaluate_uncached_hub_model_offline(cache, tmp_path):
    # a hub id that is in no local cache, with downloads off: one line naming the id and the way out
    env_home = tmp_path / "hf-home"
    env_home.mkdir()
    env = dict(os.environ, PYTERRIER_HYBRID_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HOME=str(env_home))
    result = subprocess.run([sys.executable, "-m", "pyterrier_hybrid.cli", "evaluate", "--langs", "de", "--model",
                             "someorg/not-a-cached-model"], env=env, capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert_user_error(result, "evaluate", "'someorg/not-a-cached-model'", "local model folder", cache=cache)


def test_evaluate_checksum_mismatch(cache, corrupt_release):
    result = run_cli(["evaluate", "--langs", "en,de"], cache, lareqa=corrupt_release)
    assert_user_error(result, "evaluate", "checksum mismatch", f"{LANG}.json", cache=cache)


def test_evaluate_missing_data_file(cache, incomplete_release):
    result = run_cli(["evaluate", "--collection", f"lareqa/{COLLECTION}/{LANG}-en"], cache, lareqa=incomplete_release)
    assert_user_error(result, "evaluate", "LAReQA file missing", f"{COLLECTION}/{LANG}.json", cache=cache)


@pytest.mark.parametrize(
    "args, named",
    [
        (["--batch-size", "0"], ("--batch-size", "positive integer", "'0'")),
        (["--precision", "fp64"], ("--precision", "'fp64'")),
        (["--langs", ","], ("--langs", "at least one language")),
        (["--collection", "lareqa/xquad-r/de", "--langs", "de"], ("--langs", "lareqa/xquad-r/de")),
        (["--model", "a=bm25", "--model", "a=default"], ("share a name",)),
        (["--max-queries", "0"], ("--max-queries", "positive integer", "'0'")),
        # a slice of the questions is drawn by parallel id: a single setting or another collection has none
        (["--collection", "lareqa/xquad-r/de", "--max-queries", "5"], ("--max-queries applies to the LAReQA",
                                                                        "lareqa/xquad-r/de")),
        # the answer paragraphs are those of the --max-queries questions
        (["--answer-paragraphs-only"], ("--answer-paragraphs-only", "--max-queries N")),
        (["--collection", "lareqa/xquad-r/de", "--answer-paragraphs-only"], ("--answer-paragraphs-only applies to "
                                                                              "the LAReQA", "lareqa/xquad-r/de")),
    ],
)
def test_evaluate_bad_flag_value(cache, capsys, monkeypatch, args, named):
    status, stderr = run_main(["evaluate", *args], capsys, monkeypatch, cache)
    assert_one_error_line(status, stderr, "evaluate", *named, cache=cache)


@pytest.mark.parametrize(
    "args, named",
    [
        # a whole LAReQA collection scores its pools exactly in memory: an index option would be ignored
        (["--retriever", "faiss-hnsw"], ("--retriever applies to dense retrieval through an index", "lareqa/xquad-r",
                                         "scored exactly")),
        (["--retriever", "exact"], ("--retriever applies",)),
        (["--collection", "lareqa/mlqa-r", "--index-dir", "idx", "--overwrite-index"],
         ("--index-dir and --overwrite-index apply", "lareqa/mlqa-r")),
        (["--hnsw-ef-search", "64"], ("--hnsw-ef-search applies", "lareqa/xquad-r")),
        # elsewhere, a FAISS parameter tunes one retriever, and BM25 has no dense index
        (["--collection", "lareqa/xquad-r/de", "--retriever", "faiss-ivf", "--hnsw-ef-search", "64"],
         ("--hnsw-ef-search tunes --retriever faiss-hnsw, not faiss-ivf",)),
        (["--collection", "lareqa/xquad-r/de", "--ivf-nprobe", "8"], ("--ivf-nprobe tunes --retriever faiss-ivf, "
                                                                       "not exact",)),
        (["--collection", "lareqa/xquad-r/de", "--model", "bm25", "--retriever", "faiss-flat"],
         ("--retriever applies to dense systems", "BM25")),
    ],
)
@pytest.mark.lareqa
def test_evaluate_option_that_would_be_ignored(cache, capsys, monkeypatch, args, named):
    status, stderr = run_main(["evaluate", *args], capsys, monkeypatch, cache)
    assert_one_error_line(status, stderr, "evaluate", *named, cache=cache)


# --- train ----------------------------------------------------------------------------------------------------------


def test_train_unknown_language(cache, tmp_path):
    # not the default model's rebuild first, and not the alpha rule that the unknown language would also break
    result = run_cli(["train", "--train", "lareqa/xquad-r", "--train-langs", "xx", "-o", str(tmp_path / "out")], cache)
    assert_user_error(result, "train", "unknown language", "'xx'", cache=cache)
    assert not (tmp_path / "out").exists()


def test_train_unknown_collection(cache, tmp_path):
    result = run_cli(["train", "--train", "lareqa/nope", "-o", str(tmp_path / "out")], cache)
    assert_user_error(result, "train", "unknown LAReQA collection", "'nope'", cache=cache)


def test_train_unknown_source(cache, tmp_path):
    missing = tmp_path / "pairs.jsonl"
    result = run_cli(["train", "--train", str(missing), "-o", str(tmp_path / "out")], cache)
    assert_user_error(result, "train", str(missing), "training source", cache=cache)


@pytest.mark.lareqa
def test_train_missing_model_folder(cache, tmp_path):
    missing = tmp_path / "no-such-model"
    result = run_cli(["train", "--base-model", str(missing), "-o", str(tmp_path / "out")], cache)
    assert_user_error(result, "train", str(missing), "neither an existing local folder", cache=cache)


def test_train_one_language_source_with_cross_lingual_batches(cache, tmp_path):
    # a JSONL source in one language cannot fill alpha=0.5's cross-lingual batches: said before any model is built
    source = tmp_path / "pairs.jsonl"
    rows = [{"parallel_id": f"p{i}", "query_lang": "de", "query": f"Frage {i}?", "passage_lang": "de",
             "passage_sentence": f"Antwort {i}."} for i in range(40)]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    result = run_cli(["train", "--train", str(source), "--alpha", "0.5", "--batch-size", "8",
                      "-o", str(tmp_path / "out")], cache)
    assert_user_error(result, "train", "alpha=0.5", "cross-lingual", "use alpha=1", cache=cache)
    assert not (tmp_path / "out").exists()


def test_train_checksum_mismatch(cache, corrupt_release, tmp_path):
    result = run_cli(["train", "--train", "lareqa/xquad-r", "--train-langs", "de", "en", "-o", str(tmp_path / "out")],
                     cache, lareqa=corrupt_release)
    assert_user_error(result, "train", "checksum mismatch", f"{LANG}.json", cache=cache)


def test_train_missing_data_file(cache, incomplete_release, tmp_path):
    result = run_cli(["train", "--train", "lareqa/xquad-r", "-o", str(tmp_path / "out")], cache,
                     lareqa=incomplete_release)
    assert_user_error(result, "train", "LAReQA file missing", f"{COLLECTION}/{LANG}.json", cache=cache)


def synthetic_source(*langs: str, variant: str | None = None, size: int = 100) -> str:
    from pyterrier_hybrid.datasets.synthetic import synthetic_id

    # the variant applies to every language but the first (whose qrels give the judged pairs)
    ids = [synthetic_id(size, lang, variant if i else None) for i, lang in enumerate(langs)]
    return "irds:" + ",".join(f"{lang}={dataset_id}" for lang, dataset_id in zip(langs, ids))


def test_train_hard_negatives_from_an_irds_source_without_docpairs(cache, tmp_path):
    from pyterrier_hybrid.datasets.synthetic import synthetic_id

    source = f"irds:en={synthetic_id(100, 'en', 'no-docpairs')},de={synthetic_id(100, 'de', 'no-docpairs')}"
    result = run_cli(["train", "--train", source, "--hard-negatives", "-o", str(tmp_path / "out")], cache)
    assert_user_error(result, "train", "--hard-negatives", "docpairs", "no-docpairs", cache=cache)


def test_train_irds_languages_without_common_query_ids(cache, tmp_path):
    result = run_cli(["train", "--train", synthetic_source("en", "de", variant="disjoint"), "--batch-size", "8",
                      "-o", str(tmp_path / "out")], cache)
    assert_user_error(result, "train", "none of the 100 judged queries", "share query ids", cache=cache)
    assert not (tmp_path / "out").exists()


def test_train_mixture_naming_an_unknown_source(cache, tmp_path):
    missing = tmp_path / "qa.jsonl"
    result = run_cli(["train", "--train", synthetic_source("en", "de"), "--train", str(missing),
                      "--mixture", "round-robin", "-o", str(tmp_path / "out")], cache)
    assert_user_error(result, "train", str(missing), "in the mixture", cache=cache)


@pytest.mark.parametrize(
    "args, named",
    [
        (["--batch-size", "0"], ("batch_size", "positive integer")),
        (["--train", synthetic_source("en", "de"), "--max-queries", "0"], ("max_queries", "positive integer")),
        (["--max-queries", "10"], ("--max-queries", "irds:")),
        (["--max-parallel-ids", "0"], ("max_parallel_ids", "positive integer")),
        (["--train", synthetic_source("en", "de"), "--max-parallel-ids", "10"], ("--max-parallel-ids",
                                                                                 "LAReQA and JSONL")),
        (["--train", "irds:en=pyterrier-hybrid-synthetic/10/xx"], ("unknown ir_datasets id", "language en")),
        (["--train", synthetic_source("en", "de"), "--mixture", "zip"], ("--mixture", "'zip'")),
        (["--alpha", "1.5"], ("alpha", "[0, 1]")),
        (["--alpha", "half"], ("--alpha", "'half'")),
        (["--loss", "triplet"], ("--loss", "'triplet'")),
        # undeclared options are sentence-transformers training arguments, checked before the data
        (["--no-such-option", "3"], ("unrecognized arguments", "--no-such-option")),
        (["--max-grad-norm", "abc"], ("--max_grad_norm", "'abc'")),
        (["--output_dir", "x"], ("output_dir", "set by the run")),
        # one language: no cross-lingual pair exists, so alpha < 1 cannot be met (was a held-out split complaint)
        (["--train", "lareqa/xquad-r", "--train-langs", "de", "--alpha", "0.5"],
         ("cross-lingual", "names only de", "alpha")),
    ],
)
@pytest.mark.lareqa
def test_train_bad_flag_value(cache, tmp_path, capsys, monkeypatch, args, named):
    status, stderr = run_main(["train", *args, "-o", str(tmp_path / "out")], capsys, monkeypatch, cache)
    assert_one_error_line(status, stderr, "train", *named, cache=cache)
    assert not (tmp_path / "out").exists()


# --- datasets -------------------------------------------------------------------------------------------------------


def test_datasets_checksum_mismatch(cache, corrupt_release):
    result = run_cli(["datasets", "--collection", COLLECTION], cache, lareqa=corrupt_release)
    assert_user_error(result, "datasets", "checksum mismatch", f"{LANG}.json", cache=cache)
    assert result.stdout == ""


def test_datasets_missing_data_file(cache, incomplete_release):
    result = run_cli(["datasets", "--collection", COLLECTION], cache, lareqa=incomplete_release)
    assert_user_error(result, "datasets", "LAReQA file missing", f"{COLLECTION}/{LANG}.json", cache=cache)


def test_datasets_unknown_collection(cache, capsys, monkeypatch):
    status, stderr = run_main(["datasets", "--collection", "nope"], capsys, monkeypatch, cache)
    assert_one_error_line(status, stderr, "datasets", "--collection", "'nope'", cache=cache)


# --- language lists -------------------------------------------------------------------------------------------------


def test_language_list_splits_on_commas_and_whitespace():
    assert language_list(["de,en", "ar"]) == ("de", "en", "ar")
    assert language_list("de, en  th") == ("de", "en", "th")
    assert language_list(["de", "de,en"]) == ("de", "en")  # repeats dropped, first order kept
    assert language_list(None) == () and language_list([","]) == ()


def _language_options(parser: argparse.ArgumentParser):
    """(subcommand, option string) of every option of every subcommand whose value is a list of languages."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest.endswith("langs") and action.option_strings:
                yield command, action


def test_every_language_option_takes_commas_and_spaces():
    parser = build_parser()
    options = list(_language_options(parser))
    assert {"evaluate", "train"} <= {command for command, _ in options}
    for command, action in options:
        flag = action.option_strings[0]
        assert isinstance(action, LanguageListAction) and action.nargs == "+", f"{command} {flag}"
    for command, flag in (("evaluate", "--langs"), ("train", "--train-langs")):
        with_commas = parser.parse_args([command, flag, "de,en"])
        with_spaces = parser.parse_args([command, flag, "de", "en"])
        dest = flag.lstrip("-").replace("-", "_")
        assert getattr(with_commas, dest) == getattr(with_spaces, dest) == ("de", "en")
