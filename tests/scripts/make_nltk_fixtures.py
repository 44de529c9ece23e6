#!/usr/bin/env python3
"""Golden word tokens for eval/diversity.c from nltk itself.

Writes tests/fixtures/nltk/word_tokens.jsonl: one object per text with
  text, tokens (nltk.word_tokenize(text): Punkt sentence split + NLTKWordTokenizer),
  tokens_line (nltk.word_tokenize(text, preserve_line=True): word rules only),
  diversity (the RE-Control formula over `tokens`).
The corpus is written here (our own sentences, templated to cover quotes, clitics, numbers,
abbreviations, brackets, dashes, ellipses, unicode punctuation and multi-sentence texts).
Needs nltk with the 'punkt_tab' english data (NLTK_DATA may point at it). Deterministic.
"""
import json, os, random, sys

import nltk

HAND = [
    "Hello world.",
    "Hello world. This is a test.",
    "I can't believe it's not butter!",
    "She said, \"I won't go.\" Then she left.",
    "Mr. Smith went to Washington. He arrived at 3 p.m. on Monday.",
    "The price is $3.50, or about 3,36 euros (roughly).",
    "Wait... what did you say?",
    "Are you sure?! I thought so.",
    "It's John's book, isn't it?",
    "They'll be here soon; we'd better hurry.",
    "I'm gonna tell you something: you gotta listen.",
    "Lemme see, gimme that. Cannot do it.",
    "Do you wanna dance? 'Tis the season.",
    "The U.S. economy grew 2.5% in 2019.",
    "E.g. apples, oranges, etc. are fruits.",
    "He was born on Jan. 5, 1990 in St. Louis.",
    "Dr. J. R. R. Tolkien wrote books.",
    "Call me at 555-1234 -- or email me@example.com.",
    "Prices rose 10% (see Fig. 2).",
    "“Smart quotes” are ‘tricky’ sometimes.",
    "«Guillemets» are used in French.",
    "The range is 1990–2000 — a decade.",
    "Use the *bold* option and #hashtags & more.",
    "What?! No way!!! Really???",
    "First line.\nSecond line.\n\nNew paragraph here.",
    "He said 'hello' and left.",
    "The '90s were great. Rock 'n' roll!",
    "I'd've done it if I could've.",
    "This costs $5. That costs $10.",
    "Version 2.0. Released today.",
    "Item no. 5 is missing.",
    "The end.\"",
    "(This is in brackets.) This is not.",
    "[A] {B} <C> are brackets.",
    "It was 5 p.m. The sun set.",
    "a.b.c. is odd. So is x.y.",
    "Numbers: 1, 2, 3, and 4.",
    "Time: 10:30. Ratio 3:2.",
    "Semi;colon and at@sign.",
    "Don't, won't, shan't, can't.",
    "You're, we've, they'll, he'd, I'm.",
    "YOU'RE LOUD. WE'LL SEE. I'M HERE. DON'T.",
    "Whaddya want? Whatcha doing?",
    "He's 6'2\" tall.",
    "``Quoted'' text here.",
    "Tabs\tand   multiple   spaces.",
    "Sure. Why not? OK!",
    "The U.K. and the U.S.A. agreed.",
    "Ms. Jones, Mrs. Brown and Prof. White met.",
    "It's 3.14159... approximately.",
    "End with a question?",
    "End with exclamation!",
    "No final punctuation",
    "Emoji 😀 are fun. Right?",
    "Café résumé naïve. Über alles.",
    "A sentence -- with dashes -- inside.",
    "Hyphen-ated words and well-known facts.",
    "The file is named report.pdf. Open it.",
    "Visit www.example.com. It's nice.",
    "$100 million. 50% off.",
    "He asked: \"Why?\" She replied: \"Because.\"",
    "1. First item. 2. Second item.",
    "Section 3. The results.",
    "I like it... but not much.",
    "Well... I don't know.",
    "Hmm.... Let me think.",
    "Okay.. fine.",
    "Q: What's up? A: Nothing.",
    "She said 'it's fine' and 'don't worry'.",
    "The cat's toy and the cats' toys.",
    "Jesus' disciples and James's book.",
    "'Hello,' he said.",
    "It's a 'test'.",
    "Send it A.S.A.P. please.",
    "I.e., this one. E.g., that one.",
    "See p. 5 and pp. 10-12.",
    "Chapter 1. Introduction. Chapter 2. Methods.",
    "The meeting is at 9 a.m. tomorrow.",
    "Temperatures reached 40°C. It was hot.",
    "Line one\r\nLine two.",
    "",
    "   ",
    ".",
    "...",
    "?!",
    "a",
    "a b",
    "a b c",
    "the the the the the the the the",
    "I think I think I think so.",
]

SUBJ = ["I", "You", "We", "They", "She", "He", "The model", "My friend", "The user", "Everyone",
        "Dr. Lee", "Mr. Brown", "The U.S. team", "John", "Nobody"]
VERB = ["can't say", "won't know", "didn't see", "is going to find", "wanna try", "gotta check",
        "has seen", "'ll remember", "'d prefer", "'re reading", "cannot explain", "is n't sure about",
        "thinks about", "loves", "hates"]
OBJ = ["the answer", "it", "\"the best\" option", "the 3.5% rate", "what's next", "your idea (maybe)",
       "the [draft] plan", "the 1990s", "$20.00", "a well-known fact", "the U.K. version",
       "'that thing'", "the café", "everything -- really", "the results; all of them",
       "this: nothing", "No. 7", "e.g. apples"]
END = [".", "!", "?", "...", "?!", ".\"", "!'", ".)", "", " .", ". ", "!!", "…", "”"]
JOIN = [" ", "  ", "\n", " \n\n", "\t"]


def templated(rng, n):
    out = []
    for _ in range(n):
        k = rng.choice([1, 1, 2, 2, 3, 4])
        parts = []
        for _ in range(k):
            s = f"{rng.choice(SUBJ)} {rng.choice(VERB)} {rng.choice(OBJ)}{rng.choice(END)}"
            if rng.random() < 0.15:
                s = "\"" + s + "\""
            if rng.random() < 0.1:
                s = "(" + s + ")"
            parts.append(s)
        text = parts[0]
        for p in parts[1:]:
            text += rng.choice(JOIN) + p
        out.append(text)
    return out


def reps(tokens, n):
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return 100 * (1.0 - len(set(grams)) / (len(grams) + 1))


def diversity(tokens):
    d = 1.0
    for n in range(2, 5):
        d *= 1 - reps(tokens, n) / 100
    return d


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "fixtures", "nltk", "word_tokens.jsonl")
    rng = random.Random(20240605)
    texts = HAND + templated(rng, 320)
    # a few long generation-like texts with repetition
    for i in range(6):
        base = rng.sample(templated(rng, 40), 8)
        texts.append(" ".join(base + base[: i + 1]))
    with open(out, "w", encoding="utf-8") as f:
        for t in texts:
            tok = nltk.word_tokenize(t)
            line = nltk.word_tokenize(t, preserve_line=True)
            f.write(json.dumps({"text": t, "tokens": tok, "tokens_line": line,
                                "diversity": diversity(tok)}, ensure_ascii=False) + "\n")
    print(f"wrote {len(texts)} texts to {out} (nltk {nltk.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
