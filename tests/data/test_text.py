"""Raw text to sentences with character offsets (joint_ere/data/text.py), and predictions merged back."""
import random

import pytest

from joint_ere.common import ConfigurationError, DataError
from joint_ere.data import Document, Entity, Relation
from joint_ere.data.text import SpacyTextSplitter, TextDocument

AWKWARD = [
    'He said  "hello"\u00a0to Zoë.\n\nNew   paragraph\nline two.\u3000Ünïcode — dash\t tab. ',
    "Tab\tseparated\tand\r\nWindows line ends\r\n\r\nafter a blank Windows line.",
    "\u201cCurly quotes\u201d and \u2018single\u2019 ones; it's O'Brien's can't-won't.",
    "Emoji 👩‍🔬 and CJK 東京 and combining e\u0301 and zero\u200bwidth.",
    "\n\n\n   leading and trailing blank lines   \n\n\n",
    "Line one\u2028line two\u0085next\u000bvertical tab\u000cform feed.",
    "Ends without a full stop",
]


def check_round_trip(text, sentences):
    previous_end = 0
    for sentence in sentences:
        assert sentence.tokens and len(sentence.tokens) == len(sentence.offsets)
        for token, (start, end) in zip(sentence.tokens, sentence.offsets):
            assert text[start:end] == token
            assert token.strip() == token and token  # no whitespace token, nothing padded
            assert start >= previous_end
            previous_end = end


@pytest.fixture(scope="module")
def splitter():
    return SpacyTextSplitter()


@pytest.mark.parametrize("text", AWKWARD)
def test_tokens_are_slices_of_the_text(splitter, text):
    sentences = splitter.split(text)
    check_round_trip(text, sentences)
    # every non-space character of the text is in exactly one token
    covered = "".join(text[s:e] for sentence in sentences for s, e in sentence.offsets)
    assert covered == "".join(ch for ch in text if not ch.isspace() or ch == "\u200b")


def test_sentences_and_paragraphs(splitter):
    text = "Mary lives in Paris. She works for Acme.\nIt is big\n \nNew paragraph without a stop"
    sentences = splitter.split(text)
    assert [s.tokens for s in sentences] == [
        ["Mary", "lives", "in", "Paris", "."], ["She", "works", "for", "Acme", "."], ["It", "is", "big"],
        ["New", "paragraph", "without", "a", "stop"]]


def test_hyphenated_words_stay_whole_unless_asked(splitter):
    assert splitter.split("a three-day visit")[0].tokens == ["a", "three-day", "visit"]
    assert SpacyTextSplitter(split_on_hyphens=True).split("a three-day visit")[0].tokens == [
        "a", "three", "-", "day", "visit"]


def test_a_long_document_without_punctuation_is_cut(splitter):
    rng = random.Random(3)
    words = ["".join(rng.choice("abcdéfgh") for _ in range(rng.randint(1, 9))) for _ in range(4000)]
    text = "  ".join(words)[:20_000]
    assert len(text) == 20_000
    sentences = splitter.split(text)
    check_round_trip(text, sentences)
    assert [len(s.tokens) for s in sentences[:-1]] == [200] * (len(sentences) - 1)
    assert sum(len(s.tokens) for s in sentences) == len(text.split())
    assert len(SpacyTextSplitter(max_sentence_length=7).split("one two three four five six seven eight")) == 2


def test_a_long_document_with_sentences_round_trips(splitter):
    rng = random.Random(5)
    pieces = []
    while sum(map(len, pieces)) < 20_000:
        pieces.append(rng.choice(["Dr. Smith met  Zoë in Zürich.", '"Quoted," he said.\n', "\n\n", "\t", "(x) y? z!",
                                  "U.S.A. e.g. 3.5 km", "…and so on"]) + rng.choice([" ", "", "  ", "\n"]))
    text = "".join(pieces)
    check_round_trip(text, splitter.split(text))


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \u3000"])
def test_text_without_tokens_is_a_data_error(splitter, text):
    with pytest.raises(DataError, match=r"in.jsonl, line 4: the text is empty"):
        splitter.document({"text": text}, "in.jsonl", "line 4")


def test_text_that_is_not_a_string_is_a_data_error(splitter):
    with pytest.raises(DataError, match=r"record 2: \"text\" must be a string, not int"):
        splitter.document({"text": 3}, "in.jsonl", 2)


def test_bad_settings_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="max_sentence_length"):
        SpacyTextSplitter(max_sentence_length=0)
    with pytest.raises(ConfigurationError, match="language 'xx-nope'"):
        SpacyTextSplitter(language="xx-nope")


def test_merge_indexes_across_sentences_and_adds_character_offsets(splitter):
    text = "  Mary lives in Paris.\n\nAcme  hired  Zoë Ünal."
    document = splitter.document({"text": text, "id": "d1"})
    assert [s.tokens for s in document.sentences] == [["Mary", "lives", "in", "Paris", "."],
                                                      ["Acme", "hired", "Zoë", "Ünal", "."]]
    predicted = [
        Document(document.sentences[0].tokens, [Entity("Peop", 0, 1, 0.9), Entity("Loc", 3, 4)],
                 [Relation("Live_In", 0, 1, 0.8)]),
        Document(document.sentences[1].tokens, [Entity("Org", 0, 1), Entity("Peop", 2, 4, 0.5)],
                 [Relation("Work_For", 1, 0)]),
    ]
    merged = document.merge(predicted)
    assert merged["id"] == "d1" and merged["text"] == text
    assert merged["sentences"] == [{"start": 0, "end": 5, "char_start": 2, "char_end": 22},
                                   {"start": 5, "end": 10, "char_start": 24, "char_end": 46}]
    assert [(e["type"], e["start"], e["end"], e["char_start"], e["char_end"], e["text"], e["sentence"])
            for e in merged["entities"]] == [("Peop", 0, 1, 2, 6, "Mary", 0), ("Loc", 3, 4, 16, 21, "Paris", 0),
                                             ("Org", 5, 6, 24, 28, "Acme", 1), ("Peop", 7, 9, 37, 45, "Zoë Ünal", 1)]
    assert merged["entities"][0]["score"] == 0.9 and "score" not in merged["entities"][1]
    assert merged["relations"] == [{"type": "Live_In", "head": 0, "tail": 1, "score": 0.8},
                                   {"type": "Work_For", "head": 3, "tail": 2}]
    for entity in merged["entities"]:
        assert text[entity["char_start"]:entity["char_end"]] == entity["text"]
    # the schema reads back as a document (evaluate's input), tokens and labels indexed across sentences
    back = Document.from_json(merged)
    assert back.tokens == merged["tokens"] and back.entities[3] == Entity("Peop", 7, 9, 0.5)
    assert back.relations[1] == Relation("Work_For", 3, 2)
    assert isinstance(document, TextDocument) and back.meta["text"] == text
