"""Query perturbations: each changes what it claims and nothing else, deterministically, in all 11 languages.

Edits are measured here independently of the code under test: words come from ICU word breaking and graphemes
from ICU's CharacterBreaker (icu4py called directly), and distances from an optimal-string-alignment edit distance
written below.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

import pandas as pd
import pyterrier as pt
import pytest
from icu4py.breakers import CharacterBreaker, WordBreaker

from pyterrier_hybrid.datasets import lareqa_collection
from pyterrier_hybrid.robustness import (
    DIACRITICS_LANGUAGES,
    KEYBOARD_LANGUAGES,
    ROMANIZATION_LANGUAGES,
    AdversarialTypos,
    CharacterNoise,
    CodeSwitch,
    Lowercase,
    Romanize,
    StripDiacritics,
    TraditionalChinese,
    WordFilter,
    keyboard_layout,
    parallel_questions,
    stopwords,
)

LANGS = "ar de el en es hi ru th tr vi zh".split()
UNSPACED = {"th", "zh"}
QUESTIONS_PER_LANG = 8
# The minimum word lengths (graphemes) the typo protocol uses by default: 3, and 2 for hi/th/zh.
MIN_GRAPHEMES = {lang: (2 if lang in ("hi", "th", "zh") else 3) for lang in LANGS}


# --- independent measuring tools ----------------------------------------------------------------------------------
def grapheme_list(text: str, lang: str) -> list[str]:
    return list(CharacterBreaker(text, lang)) if text else []


def segments(text: str, lang: str) -> list[str]:
    return list(WordBreaker(text, lang)) if text else []


def is_letter_word(segment: str) -> bool:
    return any(unicodedata.category(c).startswith("L") for c in segment)


def icu_words(text: str, lang: str) -> list[str]:
    return [s for s in segments(text, lang) if is_letter_word(s)]


def osa(a: list[str], b: list[str]) -> int:
    """Optimal string alignment distance (insert, delete, substitute, transpose neighbours)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def editable(word: str, lang: str) -> bool:
    return len(grapheme_list(word, lang)) >= MIN_GRAPHEMES[lang] and word.casefold() not in stopwords(lang)


def skeleton(text: str) -> str:
    """Letters without combining marks (đ counts as d, as Vietnamese writers do without marks)."""
    decomposed = unicodedata.normalize("NFD", text).replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def replace_word_segments(text: str, lang: str, replacements: dict[int, str]) -> str:
    out, k = [], 0
    for seg in segments(text, lang):
        if is_letter_word(seg):
            out.append(replacements.get(k, seg))
            k += 1
        else:
            out.append(seg)
    return "".join(out)


# --- data ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def collection(lareqa_dir):
    return lareqa_collection("xquad-r")


@pytest.fixture(scope="module")
def all_topics(collection):
    """Every XQuAD-R question (11 x 1190)."""
    return collection.topics()


@pytest.fixture(scope="module")
def topics(all_topics):
    """A few real questions per language, from different articles."""
    parts = []
    for lang in LANGS:
        of_lang = all_topics[all_topics["lang"] == lang]
        parts.append(of_lang.iloc[:: len(of_lang) // QUESTIONS_PER_LANG].head(QUESTIONS_PER_LANG))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def romanize():
    return Romanize()  # uroman (Arabic) takes a few seconds to load: once per module


def _assert_only_query_changed(before: pd.DataFrame, after: pd.DataFrame):
    assert list(after["qid"]) == list(before["qid"])
    assert list(after["query_0"]) == list(before["query"])
    assert set(after.columns) == set(before.columns) | {"query_0"}
    for column in before.columns:
        if column != "query":
            assert list(after[column]) == list(before[column]), column


# --- character noise ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("edits", [1, 2, 3])
def test_noise_makes_the_requested_number_of_single_grapheme_edits_in_editable_words(topics, edits):
    noise = CharacterNoise(edits, seed=7)
    out = noise(topics)
    _assert_only_query_changed(topics, out)
    total_edits = 0
    for row, perturbed in zip(topics.itertuples(), out["query"]):
        lang, original = row.lang, row.query
        words = icu_words(original, lang)
        n_editable = sum(editable(w, lang) for w in words)
        result = noise.edit_query(original, lang, row.qid)
        assert result.query == perturbed
        assert len(result.edits) == min(edits, n_editable), (lang, original, result)
        assert len({e.word_index for e in result.edits}) == len(result.edits)
        for e in result.edits:
            assert words[e.word_index] == e.original
            assert editable(e.original, lang), (lang, e)
            assert osa(grapheme_list(e.original, lang), grapheme_list(e.edited, lang)) == 1, (lang, e)
        # Nothing but the logged words changed: separators and the other words are as they were.
        assert perturbed == replace_word_segments(original, lang, {e.word_index: e.edited for e in result.edits})
        if lang not in UNSPACED:
            # Independent of the log: whitespace tokens align one to one, and the grapheme edit distances of the
            # changed tokens add up to the number of edits (a hyphenated token holds two ICU words).
            a, b = original.split(), perturbed.split()
            assert len(a) == len(b)
            distances = [osa(grapheme_list(x, lang), grapheme_list(y, lang)) for x, y in zip(a, b) if x != y]
            assert sum(distances) == len(result.edits), (original, perturbed)
        total_edits += len(result.edits)
    assert total_edits >= edits * len(topics) * 0.8  # most real questions have enough editable words


def test_noise_is_deterministic_per_seed_and_qid_not_order_or_subset(topics):
    noise = CharacterNoise(2, seed=3)
    full = noise(topics).set_index("qid")["query"]
    again = CharacterNoise(2, seed=3)(topics).set_index("qid")["query"]
    assert full.equals(again)
    subset = topics.sample(frac=0.5, random_state=1)  # another order and a subset
    part = noise(subset).set_index("qid")["query"]
    assert all(part[q] == full[q] for q in part.index)
    other = CharacterNoise(2, seed=4)(topics).set_index("qid")["query"]
    assert (other != full).mean() > 0.5


def test_noise_leaves_short_words_and_stopwords_alone():
    noise = CharacterNoise(5, seed=0)
    # Only "fox" and "jumps" are editable: the rest are stopwords or shorter than 3 letters.
    result = noise.edit_query("the fox is up and jumps over it", "en", "q1")
    assert sorted(e.original for e in result.edits) == ["fox", "jumps"]
    assert noise.edit_query("the and of it", "en", "q2").query == "the and of it"
    long_only = CharacterNoise(5, word_filter=WordFilter(min_graphemes=5, skip_stopwords=False))
    assert [e.original for e in long_only.edit_query("the fox is up and jumps over it", "en", "q1").edits] == ["jumps"]


def test_noise_operations_do_what_they_say(topics):
    for operation in ["delete", "insert", "substitute", "swap"]:
        noise = CharacterNoise(2, operations=[operation], seed=1)
        for row in topics.itertuples():
            for e in noise.edit_query(row.query, row.lang, row.qid).edits:
                a, b = grapheme_list(e.original, row.lang), grapheme_list(e.edited, row.lang)
                assert e.edit.operation == operation
                if operation == "delete":
                    assert len(b) == len(a) - 1
                elif operation == "insert":
                    assert len(b) == len(a) + 1
                    # the inserted grapheme is a letter of the query itself (same script)
                    assert e.edit.grapheme in grapheme_list(row.query, row.lang)
                elif operation == "substitute":
                    assert len(b) == len(a) and sum(x != y for x, y in zip(a, b)) == 1
                else:
                    assert sorted(a) == sorted(b) and sum(x != y for x, y in zip(a, b)) == 2


def test_keyboard_typos_hit_a_neighbouring_key(topics):
    for lang in KEYBOARD_LANGUAGES:
        noise = CharacterNoise(2, operations=["keyboard"], seed=2)
        layout = keyboard_layout(lang)
        edited = 0
        for row in topics[topics["lang"] == lang].itertuples():
            for e in noise.edit_query(row.query, lang, row.qid).edits:
                a, b = grapheme_list(e.original, lang), grapheme_list(e.edited, lang)
                (i,) = [k for k in range(len(a)) if a[k] != b[k]]
                (pair,) = [(x, y) for x, y in zip(a[i], b[i]) if x != y]  # one code point changed
                assert pair[1].lower() in layout[pair[0].lower()], (lang, e)
                edited += 1
        assert edited > 0, lang
    with pytest.raises(ValueError, match=r"keyboard.*'ru'.*\['de', 'en', 'es', 'th', 'tr', 'vi'\]"):
        CharacterNoise(1, operations=["keyboard"], lang="ru")


def test_noise_edits_hindi_and_thai_by_grapheme_clusters():
    # A vowel sign must never be separated from its consonant: every edited word re-segments into whole clusters.
    for lang, text in [("hi", "भारत की राजधानी नई दिल्ली है"), ("th", "ประเทศไทยมีประชากรมากกว่าหกสิบล้านคน")]:
        for seed in range(20):
            result = CharacterNoise(2, seed=seed).edit_query(text, lang, "q")
            for e in result.edits:
                first = grapheme_list(e.edited, lang)[0]
                assert unicodedata.category(first[0]) != "Mn", (lang, e)
                assert osa(grapheme_list(e.original, lang), grapheme_list(e.edited, lang)) == 1


# --- orthographic variants ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "lang, text, expected",
    [
        ("de", "Wie heißt die Straße in Köln?", "Wie heisst die Strasse in Koeln?"),
        ("es", "¿Cuántos años tenía el pingüino?", "¿Cuantos años tenia el pinguino?"),
        ("tr", "Türkiye'nin en büyük şehri İstanbul mu?", "Turkiye'nin en buyuk sehri Istanbul mu?"),
        ("vi", "Đội thủ đã thua bao nhiêu điểm?", "Doi thu da thua bao nhieu diem?"),
        ("el", "Πόσους πόντους παρέδωσε η άμυνα;", "Ποσους ποντους παρεδωσε η αμυνα;"),
        ("ru", "Всё ещё её", "Все еще ее"),
        ("ar", "أَيْنَ الْمَدْرَسَةُ؟", "اين المدرسة؟"),
        ("hi", "डिफ़ेंस ज़िंदगी आँख", "डिफेंस जिंदगी आंख"),
    ],
)
def test_strip_diacritics_examples(lang, text, expected):
    assert StripDiacritics().rewrite(text, lang, "q")[0] == expected


def test_strip_diacritics_on_real_questions_changes_only_marked_words(topics):
    removed = {
        "de": set("äöüßÄÖÜ"), "es": set("áéíóúüÁÉÍÓÚÜ"), "tr": set("çğışöüÇĞİŞÖÜ"), "ru": set("ёЁ"),
        "vi": {"đ", "Đ"}, "hi": {"\u093c", "\u0901"},
    }
    for lang in DIACRITICS_LANGUAGES:
        of_lang = topics[topics["lang"] == lang]
        full = StripDiacritics(1.0, seed=0)(of_lang)
        half = StripDiacritics(0.5, seed=0)
        _assert_only_query_changed(of_lang, full)
        for original, stripped in zip(of_lang["query"], full["query"]):
            decomposed = unicodedata.normalize("NFD", stripped)
            if lang in ("ar", "el", "vi"):
                assert not any(unicodedata.category(c) == "Mn" for c in decomposed), (lang, stripped)
            if lang in removed:
                assert not set(decomposed if lang == "hi" else stripped) & removed[lang], (lang, stripped)
            a, b = icu_words(original, lang), icu_words(stripped, lang)
            assert len(a) == len(b), (original, stripped)
            changed = {i for i, (x, y) in enumerate(zip(a, b)) if x != y}
            # Half strength changes half of those words (rounded half up), a subset of them.
            _, replaced = half.rewrite(original, lang, "q")
            assert set(replaced) <= changed
            assert len(replaced) == int(len(changed) / 2 + 0.5)
            # Letters that carry no mark are untouched: the skeletons (letters without combining marks) agree.
            if lang not in ("de", "tr"):
                assert skeleton(original) == skeleton(stripped), (original, stripped)
    # Hindi vowel signs (matras) are kept.
    assert StripDiacritics().rewrite("कितने अंक", "hi", "q")[0] == "कितने अंक"


def test_romanize_writes_every_word_in_latin_letters(topics, romanize):
    assert romanize.rewrite("北京", "zh", "q")[0] == "beijing"
    # ๆ repeats the word before it, attached or not
    assert romanize.rewrite("ต่างๆ", "th", "q")[0] == romanize.rewrite("ต่าง ๆ", "th", "q")[0] == "tang tang"
    for lang in ROMANIZATION_LANGUAGES:
        of_lang = topics[topics["lang"] == lang]
        out = romanize(of_lang)
        _assert_only_query_changed(of_lang, out)
        for original, latin in zip(of_lang["query"], out["query"]):
            letters = [c for c in latin if unicodedata.category(c).startswith("L")]
            assert letters and all(c.isascii() for c in letters), (lang, latin)
            if lang in UNSPACED:
                # words are separated by spaces (as many Latin words as ICU words in the original, give or take
                # words that were Latin already)
                assert len(re.findall(r"\w+", latin)) >= len(icu_words(original, lang)) - sum(
                    w.isascii() for w in icu_words(original, lang)
                ), latin
        half = Romanize(0.5, seed=1)
        half._uroman = romanize._uroman  # share the loaded model
        for row in of_lang.itertuples():
            text, replaced = half.rewrite(row.query, lang, row.qid)
            n_changeable = sum(romanize.variant(w, lang) != w for w in icu_words(row.query, lang))
            assert len(replaced) == int(n_changeable / 2 + 0.5)


def test_traditional_chinese(topics):
    import opencc

    converter = TraditionalChinese()
    assert converter.rewrite("头发发展", "zh", "q")[0] == "頭髮發展"
    zh = topics[topics["lang"] == "zh"]
    out = converter(zh)
    _assert_only_query_changed(zh, out)
    assert (out["query"] != zh["query"]).any()
    back = opencc.OpenCC("t2s.json")
    for original, traditional in zip(zh["query"], out["query"]):
        assert len(original) == len(traditional)
        # Only the script changed: converting back to simplified gives the question again.
        assert back.convert(traditional) == original


def test_lowercase():
    lowered = Lowercase().rewrite("How many Points did Jared ALLEN get?", "en", "q")[0]
    assert lowered == "how many points did jared allen get?"
    assert Lowercase().rewrite("İstanbul IRMAK", "tr", "q")[0] == "istanbul ırmak"
    assert Lowercase().rewrite("北京是首都", "zh", "q")[0] == "北京是首都"


def test_language_specific_variants_name_the_supported_languages():
    with pytest.raises(ValueError, match=r"'th'.*supported.*'ar'.*'vi'"):
        StripDiacritics(lang="th")
    with pytest.raises(ValueError, match=r"'de'.*supported.*\['ar', 'el', 'hi', 'ru', 'th', 'zh'\]"):
        Romanize()(pd.DataFrame({"qid": ["1"], "query": ["Wie viele?"], "lang": ["de"]}))
    with pytest.raises(ValueError, match=r"'en'.*supported.*\['zh'\]"):
        TraditionalChinese(lang="en")


# --- code-switching -----------------------------------------------------------------------------------------------
def test_parallel_questions_from_collection_topics(all_topics):
    parallel = parallel_questions(all_topics)
    first = all_topics.iloc[0]
    assert set(parallel[first["parallel_id"]]) == set(LANGS)
    assert parallel[first["parallel_id"]][first["lang"]] == first["query"]


@pytest.mark.parametrize("strength", [0.3, 1.0])
def test_code_switching_puts_words_of_the_parallel_question(topics, all_topics, strength):
    parallel = parallel_questions(all_topics)
    switch = CodeSwitch(parallel, to=["en", "de"], strength=strength, seed=5)
    out = switch(topics)
    _assert_only_query_changed(topics, out)
    n_switched = 0
    for row, mixed in zip(topics.itertuples(), out["query"]):
        text, replaced = switch.switch(row.query, row.lang, row.qid, row.parallel_id)
        assert text == mixed
        target = switch.target_language(row.lang, row.qid)
        assert target in ("en", "de") and target != row.lang
        target_words = icu_words(parallel[row.parallel_id][target], target)
        words = icu_words(row.query, row.lang)
        assert all(word in target_words for word in replaced.values())
        assert not Counter(replaced.values()) - Counter(target_words)  # each target word used at most once
        assert all(replaced[i] != words[i] for i in replaced)
        assert len(replaced) <= int(strength * len(words) + 0.5)
        # The other words and the separators are unchanged (spaces are added in Chinese and Thai only).
        expected = replace_word_segments(row.query, row.lang, replaced)
        if row.lang in UNSPACED:
            assert mixed.replace(" ", "") == expected.replace(" ", "")
            for word in replaced.values():  # a switched-in word does not run into its neighbours
                assert re.search(rf"(?<!\w){re.escape(word)}(?!\w)", mixed), (word, mixed)
        else:
            assert mixed == expected
        n_switched += len(replaced)
    n_words = sum(len(icu_words(q, lang)) for q, lang in zip(topics["query"], topics["lang"]))
    assert n_switched > 0.5 * strength * n_words
    # deterministic per (seed, qid)
    reversed_out = CodeSwitch(parallel, to=["en", "de"], strength=strength, seed=5)(topics.iloc[::-1])
    assert reversed_out["query"].tolist() == out["query"].tolist()[::-1]


def test_code_switching_missing_translation_and_own_language(topics):
    de = topics[topics["lang"] == "de"].head(2)
    parallel = {pid: {"de": q} for pid, q in zip(de["parallel_id"], de["query"])}
    with pytest.raises(KeyError, match=r"no 'en' question for parallel_id"):
        CodeSwitch(parallel, to="en")(de)
    assert CodeSwitch(parallel, to="en", on_missing="keep")(de)["query"].tolist() == de["query"].tolist()
    assert CodeSwitch(parallel, to="de", strength=1.0)(de)["query"].tolist() == de["query"].tolist()
    with pytest.raises(KeyError, match="parallel_id"):
        CodeSwitch(parallel, to="en")(de.drop(columns=["parallel_id"]))


# --- adversarial --------------------------------------------------------------------------------------------------
def char_ngrams(text: str, n: int = 3) -> set[str]:
    padded = f" {text.lower()} "
    return {padded[i : i + n] for i in range(len(padded) - n + 1)}


class CountingNgramScorer(pt.Transformer):
    """Character-trigram overlap of query and text (a deterministic lexical scorer); counts its calls."""

    def __init__(self):
        self.calls = 0

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        out = inp.copy()
        out["score"] = [
            len(char_ngrams(q) & char_ngrams(t)) / max(1, len(char_ngrams(q)))
            for q, t in zip(inp["query"], inp["text"])
        ]
        return out


@pytest.fixture(scope="module")
def attack_data(collection, topics):
    qrels = collection.qrels()
    qrels = qrels[qrels["qid"].isin(set(topics["qid"]))]
    # monolingual relevance: each question's relevant sentence in its own language
    qrels = qrels[qrels["docno"].str[:2] == qrels["qid"].str[:2]]
    candidates = collection.candidates()
    return qrels, candidates[candidates["docno"].isin(set(qrels["docno"]))]


@pytest.mark.parametrize("budget", [1, 3])
def test_adversarial_typos_never_raise_the_relevant_score(topics, attack_data, budget):
    qrels, candidates = attack_data
    scorer = CountingNgramScorer()
    attack = AdversarialTypos(scorer, qrels, candidates, budget=budget, candidates_per_step=12, seed=0,
                              query_batch_size=1000, verbose=False)
    record = attack.attack(topics)
    assert scorer.calls <= 1 + budget  # one scorer call per step for all queries
    assert list(record["qid"]) == list(topics["qid"])
    assert (record["score"] <= record["score_0"]).all()
    assert (record["score"] < record["score_0"]).mean() > 0.8
    assert (record["n_edits"] <= budget).all() and (record["n_edits"] == budget).mean() > 0.7
    texts = dict(zip(candidates["docno"], candidates["text"]))
    relevant = qrels.groupby("qid")["docno"].apply(list)
    for row in record.itertuples():
        lang = row.lang
        # the reported scores are the scorer's scores of the original and of the attacked query
        rescore = lambda q: sum(
            CountingNgramScorer().transform(pd.DataFrame({"query": [q], "text": [texts[d]]}))["score"].iloc[0]
            for d in relevant[row.qid]
        ) / len(relevant[row.qid])
        assert rescore(row.query_0) == pytest.approx(row.score_0)
        assert rescore(row.query) == pytest.approx(row.score)
        # the edits follow the typo protocol: one grapheme edit in each of n_edits editable words
        words = icu_words(row.query_0, lang)
        assert len({e.word_index for e in row.edits}) == row.n_edits
        for e in row.edits:
            assert editable(words[e.word_index], lang)
            assert osa(grapheme_list(e.original, lang), grapheme_list(e.edited, lang)) == 1
        assert row.query == replace_word_segments(row.query_0, lang, {e.word_index: e.edited for e in row.edits})
    # transform: the attacked queries, original in query_0, deterministic
    out = attack(topics)
    _assert_only_query_changed(topics, out)
    assert list(out["query"]) == list(record["query"])


def test_adversarial_typos_with_a_dense_text_scorer(topics, attack_data, tiny_model_path):
    from pyterrier_dr import SBertBiEncoder

    qrels, candidates = attack_data
    some = topics.groupby("lang").head(1).head(4)
    scorer = SBertBiEncoder(str(tiny_model_path), batch_size=64, device="cpu").text_scorer()
    record = AdversarialTypos(scorer, qrels, candidates, budget=2, candidates_per_step=8, verbose=False).attack(some)
    assert (record["score"] <= record["score_0"]).all()
    assert (record["n_edits"] >= 1).any()  # a random tiny model: not every query need have a harmful edit
    assert (record.loc[record["n_edits"] == 0, "score"] == record.loc[record["n_edits"] == 0, "score_0"]).all()
    # the reported score is the scorer's score of the attacked query
    texts = dict(zip(candidates["docno"], candidates["text"]))
    for row in record.itertuples():
        (docno,) = qrels.loc[qrels["qid"] == row.qid, "docno"]
        rescored = scorer(pd.DataFrame({"qid": ["x"], "query": [row.query], "docno": [docno], "text": [texts[docno]]}))
        assert rescored["score"].iloc[0] == pytest.approx(row.score, rel=1e-4, abs=1e-5)


# --- contract and errors ------------------------------------------------------------------------------------------
def test_pipeline_and_query_column_convention(topics):
    seen = []
    pipeline = CharacterNoise(1) >> pt.apply.generic(lambda df: seen.append(df) or df)
    out = pipeline(topics.head(3))
    assert list(seen[0]["query_0"]) == list(topics.head(3)["query"])
    # applied twice: the first original moves to query_1
    twice = CharacterNoise(1, seed=9)(out)
    assert list(twice["query_1"]) == list(topics.head(3)["query"])
    assert list(twice["query_0"]) == list(out["query"])
    # lang= for topics without a lang column
    no_lang = topics[topics["lang"] == "de"].drop(columns=["lang"])
    with_lang = CharacterNoise(1)(topics[topics["lang"] == "de"])
    assert list(CharacterNoise(1, lang="de")(no_lang)["query"]) == list(with_lang["query"])


def test_bad_input_and_strength_out_of_range(topics):
    with pytest.raises(ValueError, match="edits"):
        CharacterNoise(-1)
    with pytest.raises(ValueError, match="unknown typo operations"):
        CharacterNoise(1, operations=["shout"])
    for variant in (StripDiacritics, Romanize, TraditionalChinese, Lowercase):
        with pytest.raises(ValueError, match=r"strength.*\[0, 1\]"):
            variant(1.5)
    with pytest.raises(ValueError, match=r"strength.*\[0, 1\]"):
        CodeSwitch({}, to="en", strength=-0.1)
    no_qrels = pd.DataFrame(columns=["qid", "docno", "label"])
    with pytest.raises(ValueError, match="budget"):
        AdversarialTypos(CountingNgramScorer(), no_qrels, {}, budget=0)
    with pytest.raises(ValueError, match="candidates_per_step"):
        AdversarialTypos(CountingNgramScorer(), no_qrels, {}, candidates_per_step=0)
    with pytest.raises(KeyError, match="lang"):
        CharacterNoise(1)(topics.drop(columns=["lang"]))
    with pytest.raises(ValueError, match="empty"):
        CharacterNoise(1)(pd.DataFrame({"qid": ["1"], "query": ["  "], "lang": ["en"]}))
    with pytest.raises(ValueError, match="language"):
        CharacterNoise(1)(pd.DataFrame({"qid": ["1"], "query": ["hello"], "lang": [""]}))
