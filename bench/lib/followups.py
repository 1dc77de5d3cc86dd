"""Follow-up chains (issue 11, goal 5): is an elliptical follow-up answered as well as the same question written
out, and does a follow-up whose answer is absent abstain?

  default corpus (corpus/putin-diplomacy.txt): hand-made chains, among them the issue's three turns;
  XQuAD tune articles 0-23 (full index): made by rule, a question that names the article's subject rewritten with
      a pronoun, after another question of the same article that names it too.

Every later turn is asked three ways, with rag.ask and the shipped settings: written out with no history (the
ceiling), elliptical with the previous question prepended (the resolver before issue 11), and elliptical through
ask()'s resolver, the history handing back each answer's resolved_question as the chat does. Right: a citation
holds the gold (XQuAD: the gold span; default corpus: a gold substring; none: it must abstain). Repeat: the turn
cites exactly the first turn's sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.answer import ask

BUSH = "Who was the first world leader to reach out to George W. Bush after 9/11?"


@dataclass(kw_only=True)
class Turn:
    question: str  # as asked in the conversation
    written: str  # the same question written out
    gold: str = ""  # default corpus: a substring the cited text must hold ("" = must abstain)
    q: object = None  # XQuAD: the qa_data.Question (gold span)


@dataclass(kw_only=True)
class Chain:
    first: str
    turns: list[Turn] = field(default_factory=list)


def _chain(first: str, *turns) -> Chain:
    return Chain(first=first, turns=[Turn(question=q, written=w, gold=g) for q, w, g in turns])


PUTIN = [
    _chain(BUSH, ("and how did that friendship end?", "How did the friendship between Putin and George W. Bush end?",
                  "This friendship did not last long"),
           ("when did he first take office?", "When did Putin first take office?", "first took office in 2000")),
    _chain(BUSH, ("when did he first take office?", "When did Putin first take office?", "first took office in 2000")),
    _chain(BUSH, ("what did he want the United States to do?", "What did Putin want the United States to do?",
                  "treat Russia as an equal")),
    _chain("How many U.S. presidents has Putin outlasted?",
           ("and how many NATO chiefs?", "How many NATO chiefs has Putin outlasted?", "six NATO chiefs"),
           ("what about UK prime ministers?", "How many UK prime ministers has Putin outlasted?",
            "eight UK prime ministers")),
    _chain("What did Putin do during a meeting with Angela Merkel?",
           ("was it a personal impulse?", "Was letting his Labrador approach Angela Merkel a personal impulse for Putin?",
            "This act was not purely personal impulse")),
    _chain("Who is Angela Stent?",
           ("what did she say was the real reason for the collapse of the reset?",
            "What did Angela Stent say was the real reason for the collapse of the reset?",
            "the real reason for the collapse of that reset")),
    _chain("What does Thomas Graham suggest for U.S.-Russia relations?",
           ("what does he call it?", "What does Thomas Graham call his approach to U.S.-Russia relations?",
            "competitive coexistence")),
    _chain("How does Putin view international politics?",
           ("how does he view the world?", "How does Putin view the world?", "divided between great powers")),
    _chain("What does Sam Greene say every US administration hopes?",
           ("and were they right?", "Were the US administrations right to hope to reset the relationship with Russia?",
            "they have always been wrong")),
    _chain("What gave Putin his understanding of human relations?",
           ("how long was he a spy?", "How long was Putin a KGB spy?", "")),
    _chain("Who did Putin meet in Alaska?", ("what did they eat?", "What did Putin eat in Alaska?", "")),
    _chain("How many U.S. presidents has Putin outlasted?",
           ("and what is his favourite breakfast?", "What is Putin's favourite breakfast?", "")),
]

# XQuAD tune articles: the subject of each, and the pronoun that stands for it
SUBJECTS = {
    0: (["Super Bowl 50"], "it"), 1: (["Warsaw"], "it"), 2: (["the Normans", "Normans"], "they"),
    3: (["Nikola Tesla", "Tesla"], "he"), 4: (["computational complexity theory", "complexity theory"], "it"),
    5: (["teachers"], "they"), 6: (["Martin Luther", "Luther"], "he"), 7: (["Southern California"], "it"),
    8: (["BSkyB", "Sky"], "it"), 9: (["Victoria"], "it"), 10: (["the Huguenots", "Huguenots"], "they"),
    11: (["steam engines"], "they"), 12: (["oxygen"], "it"), 13: (["the oil crisis", "the 1973 oil crisis"], "it"),
    14: (["the Apollo program", "Apollo program"], "it"), 15: (["EU law"], "it"),
    16: (["the Amazon rainforest", "the Amazon"], "it"), 17: (["ctenophores"], "they"), 18: (["Fresno"], "it"),
    19: (["packet switching"], "it"), 20: (["the Black Death"], "it"), 21: (["geology"], "it"),
    22: (["Newcastle"], "it"), 23: (["the V&A"], "it"),
}
FORMS = {"he": ("he", "him", "his"), "they": ("they", "them", "their"), "it": ("it", "it", "its")}
AUXILIARIES = ("is", "are", "was", "were", "has", "have", "had", "can", "could", "do", "does", "did", "will",
               "would", "may", "might")
PREPOSITIONS = set("of to by for with from in on at about into than like between among during over under".split())


def pronoun_rewrite(question: str, names: list[str], pronoun: str) -> str | None:
    """The question with its first mention of the subject replaced by the pronoun, or None if it has none."""
    subject, obj, poss = FORMS[pronoun]
    for name in sorted(names, key=len, reverse=True):
        m = re.search(rf"(?<!\w){re.escape(name)}(['’]s?)?(?!\w)", question, re.I)
        if not m:
            continue
        before = question[:m.start()].split()
        prev = before[-1].lower() if before else ""
        after = question[m.end():].split()[:1]
        if after and (after[0][:1].isupper() or after[0][:1].isdigit()):
            return None  # the name modifies what follows ("the Amazon Basin", "oxygen 18"): no pronoun fits
        if m.group(1):
            word = poss
        elif after and after[0].lower() in AUXILIARIES:
            word = subject
        elif prev in PREPOSITIONS or (prev and prev not in AUXILIARIES
                                      and not prev.startswith(("what", "which", "who", "when", "where", "why", "how"))):
            word = obj
        else:
            word = subject
        out = question[:m.start()] + word + question[m.end():]
        return out[:1].upper() + out[1:] if m.start() == 0 else out
    return None


def xquad_chains(data) -> list[Chain]:
    import qa_data

    out = []
    for a, (names, pronoun) in SUBJECTS.items():
        mentioning = [q for q in qa_data.questions(data, [a]) if pronoun_rewrite(q.text, names, pronoun)]
        for prev, q in zip(mentioning, mentioning[1:]):
            out.append(Chain(first=prev.text.strip(), turns=[Turn(
                question=pronoun_rewrite(q.text.strip(), names, pronoun), written=q.text.strip(), q=q)]))
    return out


def prepend_previous(question: str, history) -> str:
    """The resolver before issue 11: the previous question prepended to a follow-up that leans on it."""
    from rag.text import PRONOUNS, keywords, words

    previous = [m["content"] for m in history if m["role"] == "user"]
    q = question.strip()
    content = keywords(q)
    pronoun = any(w in PRONOUNS for w in words(q.lower()))
    if previous and (q.lower().startswith(("and ", "but ", "or ", "also ", "what about", "how about")) or
                     (pronoun and len(content) <= 3) or len(content) <= 1):
        return f"{previous[-1]} {q}"
    return q


def right(turn: Turn, answer) -> bool:
    if turn.q is not None:
        import qa_data

        return not answer.abstained and qa_data.contained(turn.q, [(c.doc_id, c.start, c.end) for c in answer.citations])
    if not turn.gold:
        return answer.abstained
    return not answer.abstained and any(turn.gold in c.text for c in answer.citations)


def spans(answer) -> list:
    return [(c.doc_id, c.start, c.end) for c in answer.citations]


def run(chains: list[Chain], index) -> tuple[dict, list]:
    """{way: (share right, share repeating turn 1)} over every later turn, and examples of resolved turns."""
    totals = {w: [0, 0] for w in ("written", "none", "before", "resolved")}
    n, examples = 0, []
    for chain in chains:
        first = ask(chain.first, index=index)
        histories = {w: [{"role": "user", "content": first.resolved_question},
                         {"role": "assistant", "content": first.text}] for w in ("none", "before", "resolved")}
        for turn in chain.turns:
            n += 1
            answers = {"written": ask(turn.written, index=index),
                       "none": ask(turn.question, index=index),
                       "before": ask(prepend_previous(turn.question, histories["before"]), index=index),
                       "resolved": ask(turn.question, index=index, history=histories["resolved"])}
            for way, a in answers.items():
                totals[way][0] += right(turn, a)
                totals[way][1] += way != "written" and not a.abstained and spans(a) == spans(first)
                if way in histories:
                    histories[way] += [{"role": "user", "content": a.resolved_question},
                                       {"role": "assistant", "content": a.text}]
            examples.append((chain.first, turn.question, answers["resolved"].resolved_question,
                             right(turn, answers["resolved"])))
    return {w: (r / n, rep / n) for w, (r, rep) in totals.items()} | {"n": n}, examples


def markdown(name: str, result: dict) -> list[str]:
    cells = [f"{result['written'][0]:.3f}"] + [f"{result[w][0]:.3f} / {result[w][1]:.2f}"
                                               for w in ("none", "before", "resolved")]
    return [f"| {name} | {result['n']} | " + " | ".join(cells) + " |"]
