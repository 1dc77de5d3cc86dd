"""Answers on the shipped corpus: the right sentence cited, offsets exact, abstention, follow-ups."""

from __future__ import annotations

import json

import pytest

from conftest import CORPUS_FILE
from rag import RagError, ask
from rag.answer import TUNING, resolve_question

TEXT = CORPUS_FILE.read_text("utf-8")


def assert_citations_exact(answer):
    for c in answer.citations:
        assert c.text == TEXT[c.start:c.end]
        passage = answer.passages[c.passage]
        assert passage.start <= c.start and c.end <= passage.end
        assert f"[{c.n}]" in answer.text


@pytest.mark.parametrize("question, expected", [
    ("How many U.S. presidents has Putin outlasted?", "five U.S. presidents"),
    ("When did Putin first take office?", "first took office in 2000"),
    ("Which world leader did Putin reach out to first after the September 11 attacks?", "George W. Bush"),
    ("What training did Putin's KGB experience give him?", "human psyche"),
])
def test_answers_cite_the_sentence_that_holds_the_answer(default_index, question, expected):
    answer = ask(question, index=default_index)
    assert not answer.abstained
    assert any(expected in c.text for c in answer.citations), [c.text for c in answer.citations]
    assert len(answer.citations) <= TUNING.max_sentences
    assert_citations_exact(answer)
    assert set(answer.timings) >= {"embed", "search", "compose", "total"}


@pytest.mark.parametrize("question", [
    "What is the boiling point of mercury?",
    "Who won the 1998 football world cup?",
    "How do I bake sourdough bread?",
])
def test_unanswerable_questions_abstain(default_index, question):
    answer = ask(question, index=default_index)
    assert answer.abstained
    assert answer.citations == [] and answer.passages
    assert "can't find" in answer.text


def test_follow_up_is_resolved_from_history(default_index):
    first = ask("How many U.S. presidents has Putin outlasted?", index=default_index)
    history = [{"role": "user", "content": first.question}, {"role": "assistant", "content": first.text}]
    follow = ask("and how many NATO chiefs?", index=default_index, history=history)
    assert "Putin" in follow.resolved_question and "NATO" in follow.resolved_question
    assert any("six NATO chiefs" in c.text for c in follow.citations)
    assert_citations_exact(follow)
    # A question that stands on its own is left alone.
    assert resolve_question("Who is the president of Russia?", history) == "Who is the president of Russia?"


def test_answer_to_dict_is_json(default_index):
    answer = ask("How many UK prime ministers has Putin outlasted?", index=default_index)
    data = json.loads(json.dumps(answer.to_dict()))
    assert set(data) >= {"question", "text", "abstained", "citations", "passages", "timings"}
    c = data["citations"][0]
    assert TEXT[c["start"]:c["end"]] == c["text"] and c["source"] == "putin-diplomacy.txt" and c["page"] is None


def test_empty_question_is_an_error(default_index):
    with pytest.raises(RagError, match="empty"):
        ask("   ", index=default_index)


def test_search_modes_differ_and_all_find_the_sentence(default_index):
    results = {m: default_index.search("six NATO chiefs", k=3, mode=m) for m in ("dense", "bm25", "hybrid")}
    for mode, hits in results.items():
        assert hits and "NATO chiefs" in hits[0].text, mode
        assert all(h.text == TEXT[h.start:h.end] for h in hits)
    assert results["dense"][0].score != results["bm25"][0].score


def test_follow_up_reads_gradio_list_content():
    history = [{"role": "user", "content": [{"type": "text", "text": "How many U.S. presidents has Putin outlasted?"}]}]
    assert resolve_question("and how many NATO chiefs?", history) == (
        "How many U.S. presidents has Putin outlasted? and how many NATO chiefs?")
