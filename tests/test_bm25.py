"""BM25 without Java: ICU tokenisation of every LAReQA language and the BM25Retriever transformer."""
from __future__ import annotations

import json
import unicodedata

import numpy as np
import pandas as pd
import pytest

from pyterrier_hybrid.retrieval.bm25 import BM25Config, BM25Factory, BM25Retriever
from pyterrier_hybrid.retrieval.tokenization import MultilingualTokenizer, TokenizerConfig

UNSTEMMED = TokenizerConfig(stem=False)


def _release_paragraphs(lareqa_dir, lang: str, count: int) -> list[dict]:
    data = json.loads((lareqa_dir / "xquad-r" / f"{lang}.json").read_text(encoding="utf-8"))
    return [paragraph for article in data["data"] for paragraph in article["paragraphs"]][:count]


def _letters_and_digits(text: str) -> str:
    """The text without spaces, punctuation, symbols and invisible format characters, case-folded."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if unicodedata.category(ch)[0] in "LMN")


# -- tokenisation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["zh", "th", "hi"])
def test_segmentation_keeps_every_letter_and_cuts_no_combining_mark(lareqa_dir, lang):
    """Real sentences: no letter or vowel sign is lost, no word starts with a combining mark (a cut at a matra or
    a Thai vowel sign), and unspaced Chinese/Thai sentences are split into several words."""
    tokenizer = MultilingualTokenizer(UNSTEMMED)
    sentences = [s for paragraph in _release_paragraphs(lareqa_dir, lang, 2) for s in paragraph["sentences"]]
    for sentence in sentences:
        tokens = tokenizer.tokenize(sentence, lang)
        # (a token may keep inner punctuation, e.g. "6½" becomes "61⁄2" under NFKC, hence the filter on both sides)
        assert _letters_and_digits("".join(tokens)) == _letters_and_digits(sentence)
        assert not [t for t in tokens if not t.strip() or any(ch.isspace() for ch in t)], tokens
        assert not [t for t in tokens if unicodedata.category(t[0]).startswith("M")], tokens
    longest = max(sentences, key=len)
    tokens = tokenizer.tokenize(longest, lang)
    if lang in ("zh", "th"):
        assert len(tokens) >= 10 and max(map(len, tokens)) < len(_letters_and_digits(longest)) / 4


@pytest.mark.parametrize(
    "lang, text",
    [
        ("hi", "भारत की राजधानी नई दिल्ली है। पैंथर्स की डिफ़ेन्स ने लीग में केवल 308 अंक दिए।"),
        ("ar", "القاهرة هي عاصمة مصر، وأكبر مدنها."),
        ("el", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας."),
        ("ru", "Москва является столицей России, а Нева течёт через Санкт-Петербург."),
    ],
)
def test_spaced_scripts_give_whole_words(lang, text):
    """In scripts written with spaces the words are the space-separated words, letters and vowel signs intact."""
    tokens = MultilingualTokenizer(UNSTEMMED).tokenize(text, lang)
    words = [w.strip("।.,،") for w in text.replace("-", " ").split()]
    assert tokens == [unicodedata.normalize("NFKC", w).casefold() for w in words]


def test_hindi_matras_survive_where_a_regex_cuts():
    import bm25s

    text = "राजधानी दिल्ली"
    assert MultilingualTokenizer(UNSTEMMED).tokenize(text, "hi") == ["राजधानी", "दिल्ली"]
    # the failure this module exists to avoid: \w does not match vowel signs
    assert bm25s.tokenize(text, return_ids=False, show_progress=False)[0] != ["राजधानी", "दिल्ली"]


def test_german_stemming_joins_inflected_forms():
    stemmed = MultilingualTokenizer(TokenizerConfig(stem=True))
    unstemmed = MultilingualTokenizer(UNSTEMMED)
    forms = ["Häuser", "Haus", "Hauses", "Häusern"]
    assert len({stemmed.tokenize(w, "de")[0] for w in forms}) == 1
    assert len({unstemmed.tokenize(w, "de")[0] for w in forms}) == 4


def test_stemmers_exist_for_the_snowball_languages_only():
    tokenizer = MultilingualTokenizer()
    assert {lang for lang in "ar de el en es hi ru th tr vi zh".split() if tokenizer.has_stemmer(lang)} == set(
        "ar de el en es hi ru tr".split()
    )


def test_turkish_case_folding_and_apostrophe_suffix():
    tokenizer = MultilingualTokenizer(UNSTEMMED)
    assert tokenizer.tokenize("İSTANBUL Türkiye'nin Türkiye’de", "tr") == ["istanbul", "türkiye", "türkiye"]
    assert tokenizer.tokenize("ISPARTA", "tr") == ["ısparta"]


def test_stopwords_are_removed_only_when_asked():
    text = "Die Häuser und das Haus"
    assert MultilingualTokenizer(TokenizerConfig(stem=False, remove_stopwords=True)).tokenize(text, "de") == [
        "häuser",
        "haus",
    ]
    assert "die" in MultilingualTokenizer(UNSTEMMED).tokenize(text, "de")


def test_min_length_and_format_characters():
    tokenizer = MultilingualTokenizer(TokenizerConfig(stem=False, min_length=3))
    assert tokenizer.tokenize("\ufeffa bc def gh\u00adij", "en") == ["def", "ghij"]


def test_unknown_language_is_an_error_but_an_unstemmed_iso_code_is_accepted():
    tokenizer = MultilingualTokenizer()
    for bad in ["german", "", "d", None, "de DE"]:
        with pytest.raises(ValueError, match="unknown language"):
            tokenizer.tokenize("Haus", bad)
    assert tokenizer.tokenize("Habari ya dunia", "sw") == ["habari", "ya", "dunia"]
    assert tokenizer.tokenize("Häuser", "de-AT") == tokenizer.tokenize("Häuser", "de")


# -- retrieval ---------------------------------------------------------------------------------------------------


def _jared_allen_pool(lareqa_dir, lang: str) -> tuple[pd.DataFrame, str, str]:
    """Sentences of the first three paragraphs of XQuAD-R in `lang`, the docno of the sentence answering the
    second question ("How many career sacks did Jared Allen have?") and that question's first word group (the
    name as the question spells it), which no other sentence of the pool shares."""
    paragraphs = _release_paragraphs(lareqa_dir, lang, 3)
    rows = [
        dict(docno=f"{lang}-{p}-{s}", text=sentence, context=paragraph["context"], lang=lang)
        for p, paragraph in enumerate(paragraphs)
        for s, sentence in enumerate(paragraph["sentences"])
    ]
    qa = paragraphs[0]["qas"][1]
    start = qa["answers"][0]["answer_start"]
    (target,) = [i for i, (b, e) in enumerate(paragraphs[0]["sentence_breaks"]) if b <= start < e]
    return pd.DataFrame(rows), f"{lang}-0-{target}", qa["question"]


# The name of Jared Allen as each question writes it (read from the release files; Hindi spells it differently
# in the question, जेरेड एलन, and in the sentence, जेरेड एलेन, so only the first name is shared).
JARED = {"zh": "贾里德", "th": "จาเรด อัลเลน", "hi": "जेरेड"}


@pytest.mark.parametrize("lang", ["zh", "th", "hi"])
def test_bm25_finds_a_sentence_by_a_shared_word(lareqa_dir, lang):
    candidates, target, question = _jared_allen_pool(lareqa_dir, lang)
    assert JARED[lang] in question and JARED[lang] in candidates.set_index("docno").text[target]
    others = candidates[candidates.docno != target]
    assert not others.text.str.contains(JARED[lang].split()[0], regex=False).any()

    retriever = BM25Retriever.from_candidates(candidates, show_progress=False)
    topics = pd.DataFrame({"qid": ["q"], "query": [f"{JARED[lang]}?"], "lang": [lang]})
    results = retriever.transform(topics)
    assert results.docno.iloc[0] == target
    assert results.score.iloc[0] > 0 and (results.score.iloc[1:] == 0).all()

    # the whole question also ranks the answer sentence first (other words of it occur in other sentences)
    results = retriever.transform(pd.DataFrame({"qid": ["q"], "query": [question], "lang": [lang]}))
    assert results.docno.iloc[0] == target


def test_regex_tokeniser_cannot_find_the_chinese_sentence(lareqa_dir):
    """The contrast that motivates ICU: with bm25s' regex a Chinese sentence is one token and the name matches
    nothing."""
    import bm25s

    class RegexTokenizer:
        def tokenize(self, text, lang):
            return bm25s.tokenize(text, return_ids=False, show_progress=False, stopwords=None)[0]

    candidates, target, _ = _jared_allen_pool(lareqa_dir, "zh")
    retriever = BM25Retriever.from_candidates(candidates, tokenizer=RegexTokenizer(), show_progress=False)
    results = retriever.transform(pd.DataFrame({"qid": ["q"], "query": [JARED["zh"]]}))
    assert (results.score == 0).all()


def _small_pool() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "docno": ["de-2", "de-1", "en-1", "de-3", "zh-1"],
            "text": [
                "Die Häuser der Stadt sind alt.",
                "Das Haus am See ist neu.",
                "The old house by the lake.",
                "Ein Auto fährt schnell.",
                "北京是中国的首都。",
            ],
            "context": ["Stadt", "See", "Lake", "Verkehr", "中国"],
            "lang": ["de", "de", "en", "de", "zh"],
        }
    )


def test_results_frame_ranks_every_candidate():
    retriever = BM25Retriever.from_candidates(_small_pool(), show_progress=False)
    topics = pd.DataFrame(
        {"qid": ["q1", "q2"], "query": ["Häusern", "house lake"], "lang": ["de", "en"], "parallel_id": ["p1", "p2"]}
    )
    results = retriever.transform(topics)
    assert list(results.columns) == ["qid", "query", "lang", "parallel_id", "docno", "score", "rank"]
    assert len(results) == 2 * 5
    for qid, group in results.groupby("qid"):
        assert sorted(group.docno) == sorted(_small_pool().docno)
        assert list(group["rank"]) == list(range(5))
        assert (np.diff(group.score.to_numpy()) <= 0).all()
        # equal scores (here the zeros) are ordered by docno
        for _, tied in group.groupby("score"):
            assert list(tied.docno) == sorted(tied.docno)
    q1 = results[results.qid == "q1"]
    # stemming: "Häusern" matches "Häuser" and "Haus"; the shorter sentence ranks first
    assert list(q1.docno[:2]) == ["de-1", "de-2"] and (q1.score.iloc[:2] > 0).all() and (q1.score.iloc[2:] == 0).all()
    assert results[results.qid == "q2"].docno.iloc[0] == "en-1"

    matrix = retriever.score_matrix(topics)
    assert matrix.dtype == np.float32 and matrix.shape == (2, 5)
    assert list(retriever.docnos) == sorted(_small_pool().docno)
    for i, qid in enumerate(topics.qid):
        by_docno = results[results.qid == qid].set_index("docno").score
        np.testing.assert_array_equal(matrix[i], by_docno[list(retriever.docnos)].to_numpy(dtype=np.float32))


def test_num_results_cuts_the_ranking():
    retriever = BM25Retriever.from_candidates(_small_pool(), num_results=2, show_progress=False)
    results = retriever.transform(pd.DataFrame({"qid": ["q1"], "query": ["Haus"], "lang": ["de"]}))
    assert list(results["rank"]) == [0, 1] and list(results.docno) == ["de-1", "de-2"]


def test_cross_lingual_pool_tokenises_each_document_in_its_language():
    """Documents in several languages share one index; each is stemmed by its own language's rules."""
    pool = _small_pool()
    retriever = BM25Retriever.from_candidates(pool, show_progress=False)
    topics = pd.DataFrame({"qid": ["de", "zh"], "query": ["Häusern", "首都在哪里"], "lang": ["de", "zh"]})
    results = retriever.transform(topics)
    assert set(results[(results.qid == "de") & (results.score > 0)].docno) == {"de-1", "de-2"}
    assert set(results[(results.qid == "zh") & (results.score > 0)].docno) == {"zh-1"}
    # read as English, "Häusern" is not stemmed to the German stem and matches nothing
    english = retriever.transform(pd.DataFrame({"qid": ["x"], "query": ["Häusern"], "lang": ["en"]}))
    assert (english.score == 0).all()


def test_query_language_fallbacks():
    german = _small_pool().query("lang == 'de'")
    single = BM25Retriever.from_candidates(german, show_progress=False)
    results = single.transform(pd.DataFrame({"qid": ["q"], "query": ["Häusern"]}))  # language of the pool
    assert (results.score > 0).sum() == 2
    mixed = BM25Retriever.from_candidates(_small_pool(), show_progress=False)
    with pytest.raises(ValueError, match="language of the queries is unknown"):
        mixed.transform(pd.DataFrame({"qid": ["q"], "query": ["Häusern"]}))
    explicit = BM25Retriever.from_candidates(_small_pool(), query_lang="de", show_progress=False)
    assert (explicit.transform(pd.DataFrame({"qid": ["q"], "query": ["Häusern"]})).score > 0).sum() == 2
    with pytest.raises(ValueError, match="unknown language"):
        BM25Retriever.from_candidates(_small_pool(), query_lang="deutsch", show_progress=False)


def test_fields_add_the_context():
    pool = _small_pool()
    sentence_only = BM25Retriever.from_candidates(pool, fields=("text",), show_progress=False)
    with_context = BM25Retriever.from_candidates(pool, fields=("text", "context"), show_progress=False)
    topics = pd.DataFrame({"qid": ["q"], "query": ["Verkehr"], "lang": ["de"]})
    assert (sentence_only.transform(topics).score == 0).all()
    assert with_context.transform(topics).docno.iloc[0] == "de-3"
    # a missing context counts as empty
    pool.loc[pool.docno == "de-3", "context"] = None
    missing_context = BM25Retriever.from_candidates(pool, fields=("text", "context"), show_progress=False)
    assert (missing_context.transform(topics).score == 0).all()


def test_missing_columns_are_named():
    retriever = BM25Retriever.from_candidates(_small_pool(), show_progress=False)
    with pytest.raises(Exception, match="query"):
        retriever.transform(pd.DataFrame({"qid": ["q"], "lang": ["de"]}))
    with pytest.raises(ValueError, match="context"):
        BM25Retriever.from_candidates(_small_pool().drop(columns="context"), fields=("text", "context"))
    with pytest.raises(ValueError, match="lang"):
        BM25Retriever.from_candidates(_small_pool().drop(columns="lang"))
    retriever = BM25Retriever.from_candidates(_small_pool().drop(columns="lang"), lang="de", show_progress=False)
    assert len(retriever.transform(pd.DataFrame({"qid": ["q"], "query": ["Haus"]}))) == 5


def test_empty_query_is_an_error_and_a_query_without_known_words_scores_zero():
    retriever = BM25Retriever.from_candidates(_small_pool(), show_progress=False)
    for blank in ["", "   "]:
        with pytest.raises(ValueError, match="empty or whitespace-only query for qid.*'q2'"):
            retriever.transform(pd.DataFrame({"qid": ["q1", "q2"], "query": ["Haus", blank], "lang": ["de", "de"]}))
    results = retriever.transform(pd.DataFrame({"qid": ["q"], "query": ["?!"], "lang": ["de"]}))
    assert (results.score == 0).all() and list(results.docno) == sorted(_small_pool().docno)
    results = retriever.transform(pd.DataFrame({"qid": ["q"], "query": ["Zeppelin"], "lang": ["de"]}))
    assert (results.score == 0).all() and len(results) == 5


def test_bad_pools_are_errors():
    with pytest.raises(ValueError, match="duplicate docnos"):
        BM25Retriever.from_candidates(pd.concat([_small_pool(), _small_pool()]), show_progress=False)
    with pytest.raises(ValueError, match="empty"):
        BM25Retriever.from_candidates(_small_pool().iloc[:0], show_progress=False)
    punctuation = pd.DataFrame({"docno": ["a", "b"], "text": ["...", "!?"], "lang": ["en", "en"]})
    with pytest.raises(ValueError, match="has a word"):
        BM25Retriever.from_candidates(punctuation, show_progress=False)


def test_factory_and_pipeline(lareqa_dir):
    import pyterrier as pt

    candidates, target, question = _jared_allen_pool(lareqa_dir, "hi")
    factory = BM25Factory(BM25Config(fields=("text", "context"), show_progress=False))
    retriever = factory(candidates)
    assert isinstance(retriever, pt.Transformer)
    topics = pd.DataFrame({"qid": ["q"], "query": [question], "lang": ["hi"]})
    assert retriever.transform(topics).docno.iloc[0] == target
    assert len((retriever % 3)(topics)) == 3


def test_a_word_snowball_stems_away_is_kept_and_scores():
    """Regression: the Greek stemmer turns "όταν" (when) into "", which bm25s maps past its index and rejected
    (XQuAD-R el queries crashed the evaluation)."""
    tokenizer = MultilingualTokenizer()
    assert tokenizer.tokenize("όταν έπαιζε", "el") == ["όταν", "επαι"]
    pool = pd.DataFrame({"docno": ["a", "b"], "text": ["Ήταν εκεί όταν έπαιζε.", "Κανείς δεν ήρθε."],
                         "lang": ["el", "el"]})
    retriever = BM25Retriever.from_candidates(pool, show_progress=False)
    results = retriever.transform(pd.DataFrame({"qid": ["q"], "query": ["όταν;"], "lang": ["el"]}))
    assert results.docno.tolist() == ["a", "b"] and results.score.iloc[0] > 0 == results.score.iloc[1]


def test_query_term_bm25s_reserves_for_empty_documents_never_matches():
    """bm25s adds "" to the vocabulary past the last indexed term; a tokenizer yielding "" must not crash."""

    class YieldsEmptyTerms:
        def tokenize(self, text, lang):
            return text.split(" ")  # "a  b" -> ["a", "", "b"]

    pool = pd.DataFrame({"docno": ["x", "y"], "text": ["a b", "c"], "lang": ["en", "en"]})
    retriever = BM25Retriever.from_candidates(pool, tokenizer=YieldsEmptyTerms(), show_progress=False)
    assert "" in retriever.bm25.vocab_dict
    results = retriever.transform(pd.DataFrame({"qid": ["q"], "query": ["a  b"], "lang": ["en"]}))
    assert results.docno.tolist() == ["x", "y"] and results.score.iloc[1] == 0
