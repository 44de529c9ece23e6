#!/usr/bin/env python3
"""Golden tokenizer fixtures for tests/test_tokenizer*.c (re-runnable, deterministic).

Writes into tests/fixtures/tok/:
  corpus.jsonl          the test strings (>= 2,000), written here by hand and combined by a
                        seeded RNG: prose in many scripts, code, whitespace and newline runs,
                        numbers, emoji, special-token text, and invalid UTF-8 (field "hex").
  spm/tokenizer.model   a LLaMA-style SentencePiece model trained with the Debian `spm_train`
                        (BPE, byte_fallback, split_digits, identity normalisation), plus
                        tokenizer_config.json files for legacy=False (default) and legacy=True.
  spm_golden.jsonl.gz   ids from transformers' LlamaTokenizer (v5: tokenizers-backed, built
                        from tokenizer.model by the Llama converter) = the oracle for (a);
                        spm_legacy_golden.jsonl.gz with legacy=True; spm_py_golden.jsonl.gz
                        from the sentencepiece package itself where its rule coincides.
  smol/tokenizer.json.gz the SmolLM2 byte-level BPE tokenizer that transformers builds from
                        the SmolLM2-135M-Instruct GGUF (AutoTokenizer(gguf_file=...)), gzipped,
                        with its chat template; smol_golden.jsonl.gz = the oracle for (b).
  l3/tokenizer.json     a small byte-level BPE trained here with HF tokenizers using Llama-3's
                        pre-tokenizer (Split regex + ByteLevel(use_regex=False)) and
                        ignore_merges=True, with Llama-3 style special tokens; l3_golden.jsonl.gz.
  gguf/spm.gguf, gguf/l3.gguf  tokenizer-only GGUFs of the two models above ("llama" and
                        "gpt2"/"llama-bpe"); gguf_*_golden.jsonl.gz from transformers' GGUF
                        conversion.
  strip_golden.jsonl    l3 with lstrip/rstrip added tokens (strip_variant), HF tokenizers ids.
  bos_golden.jsonl      l3 with add_bos_token / add_eos_token configs (BOS_VARIANTS).
  chat_golden.jsonl     transformers apply_chat_template renderings and ids (SmolLM2's template
                        and Llama-3 / Vicuna templates written out here); templates.json.
  hhshp_golden.jsonl    HH-RLHF / SHP prompt preparation examples.

Each line of a *_golden.jsonl.gz: {"i": index into corpus, "ids": [...], "dec": decode(ids),
"dec_skip": decode(ids, skip_special_tokens=True), "rt": whether HF's decode of the ids without
the BOS gives the text back}.

Invalid UTF-8: HF tokenizers take str, so for byte strings we define the input as
bytes.decode("utf-8", errors="replace") (one U+FFFD per maximal invalid subpart, the same rule as
Rust's from_utf8_lossy), and the C tokenizer does the same replacement before encoding.

Needs: transformers, tokenizers, sentencepiece, protobuf (transformers reads tokenizer.model
through it), gguf, jinja2, and the Debian `spm_train` (package sentencepiece). The SmolLM2 GGUF is
the default model (`recontrol setup` puts it in ~/.cache/recontrol).

Usage: python3 tests/scripts/make_tokenizer_fixtures.py [--gguf PATH_TO_SmolLM2.gguf]
"""
import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "tok")

# ---------------------------------------------------------------- the corpus (written here)
PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "Representation editing steers a language model at test time without changing its weights.",
    "A value function is trained on hidden states; at each step we take a few gradient steps.",
    "It's the model's answer, isn't it? We'll see; they've said you'd know, I'm sure.",
    "DON'T SHOUT. I'M NOT DEAF, YOU'RE JUST LOUD.",
    "Human: How do I bake bread?\n\nAssistant: Mix flour, water, salt and yeast, then wait.",
    "USER: What is the capital of France? ASSISTANT: Paris.",
    "Le renard brun rapide saute par-dessus le chien paresseux. Ça coûte 12,50 €, n'est-ce pas ?",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein. Straße, Maß, Größe, Äpfel.",
    "El veloz murciélago hindú comía feliz cardillo y kiwi. ¿Dónde está la biblioteca? ¡Olé!",
    "A rápida raposa marrom salta sobre o cão preguiçoso. Não há de quê, coração.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Привет, мир!",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Καλημέρα κόσμε.",
    "我能吞下玻璃而不伤身体。你好，世界！今天天气很好。",
    "私はガラスを食べられます。それは私を傷つけません。こんにちは、世界。カタカナとひらがな。",
    "나는 유리를 먹을 수 있어요. 그래도 아프지 않아요. 안녕하세요 세계",
    "أنا قادر على أكل الزجاج و هذا لا يؤلمني. مرحبا بالعالم",
    "אני יכול לאכול זכוכית וזה לא מזיק לי. שלום עולם",
    "मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती। नमस्ते दुनिया",
    "ฉันกินกระจกได้ แต่มันไม่ทำให้ฉันเจ็บ สวัสดีชาวโลก",
    "Tôi có thể ăn thủy tinh mà không hại gì. Xin chào thế giới.",
    "Mogę jeść szkło i mi nie szkodzi. Zażółć gęślą jaźń.",
    "Pot să mănânc sticlă și ea nu mă rănește. Dziękuję, Ærøskøbing, Þórr, Ðuro.",
    "Math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ = ∫₀¹ f(t) dt ≈ 3.14159… ≠ ∞ ± ε → √2 ≤ ∛8.",
    "Typography: “curly quotes”, ‘single’, — em dash – en dash, «guillemets», ‹›, •, ‰, ©®™.",
    "Full-width: ＡＢＣ１２３，ｈｅｌｌｏ！ and half-width ｶﾀｶﾅ; ligatures ﬁ ﬂ; Roman Ⅻ ⅷ.",
    "Combining: é (e + U+0301), ñ, a\u0308, Z\u0351\u0352\u0353algo, ḁ̵̗, ǅ, ǈ, ﬃ.",
    "Zero-width: a\u200bb\u200cc\u200dd\ufeffe and soft\u00adhyphen, nbsp\u00a0here, thin\u2009space.",
    "Odd spaces:\u2000\u2001\u2002\u2003\u3000ideographic\u3000space\u205fmath\u202fnarrow.",
    "Version 3.10.2 released on 2024-05-17 at 13:45:07 UTC; build #48213, sha 9f8e7d6c5b4a.",
    "Prices: $1,299.99, €0.5, ¥10000, £3; 1e-5, -0.000123, 6.022e23, 0x1F, 0b1011, 1_000_000.",
    "Phone +1 (555) 010-9999; IPv4 192.168.0.1; IPv6 fe80::1ff:fe23:4567:890a; port 8080.",
    "https://example.com/path/to/page?query=a%20b&x=1#frag and mailto:someone@example.org",
]
CODE = [
    "def forward(self, x):\n    h = self.norm(x)\n    return self.proj(h) + x\n",
    "for (int i = 0; i < n; i++) {\n\tsum += a[i] * b[i];\n}\n",
    "#include <stdio.h>\n\nint main(void) {\n    printf(\"hello, world\\n\");\n    return 0;\n}\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
    "const f = async (a, b) => { await sleep(100); return a ?? b; };  // arrow\n",
    "    if x == 1:\n        pass\n    elif x != 2:\n        raise ValueError('bad x')\n",
    "<div class=\"row\"><span id='a1'>Text &amp; more</span></div>\n<!-- comment -->",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true, \"c\": -1.5e-3}}",
    "x += 1; y -= 2; z *= 3; w /= 4; v %= 5; u **= 6; t //= 7; s <<= 1; r >>= 2; q |= 8;",
    "$ ls -la /tmp && grep -rn 'TODO' src/ | wc -l > out.txt 2>&1",
    "matrix = [[1, 0, 0],\n          [0, 1, 0],\n          [0, 0, 1]]\n",
    "\t\tindented with tabs\n\t\t\tand more tabs\n",
    "template<typename T> struct Box { T value; explicit Box(T v) : value(v) {} };",
    "\\begin{equation} E = mc^2 \\end{equation} % LaTeX",
    "# Heading\n\n* item one\n* item two\n\n```python\nprint('hi')\n```\n",
]
EMOJI = [
    "I love it 😀😃😄😁 so much!!! 🎉🎉",
    "Family: 👨‍👩‍👧‍👦, couple 👩‍❤️‍👨, flags 🇫🇷🇯🇵🇺🇸, skin 👍🏽👋🏿, keycap 1️⃣ #️⃣.",
    "Weather ☀️🌧️⛈️❄️ and hearts ❤️💛💚💙💜🖤 and 🦀🐍🐪.",
    "Astral plane: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝒮𝒸𝓇𝒾𝓅𝓉 𝟙𝟚𝟛 𐍈 𓀀 🀄 𝄞.",
]
SPECIAL_TEXT = [
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "text before <|im_start|> and after<|im_end|>",
    "<|endoftext|><|endoftext|>two in a row",
    "almost special: <|im_start| and |im_end|> and <|im_start>",
    "<s>Hello</s> and <unk> inside text",
    " <s> spaced </s> ",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<repo_name>my/repo<file_sep>main.py<gh_stars>10",
]
WORDS = ("the of and to in is was for on that with as by it at from his her an be this are "
         "model token value state reward editing gradient step layer head attention cache batch "
         "maison chat Hund Katze 猫 犬 кошка собака γάτα 고양이 قطة חתול बिल्ली แมว "
         "don't can't it's we're they've I'll you'd 123 4567 89 0 3.14 2024 1e9 -7 +42 "
         "😀 🎉 👍🏽 🇫🇷 ∑ √ ≤ → € £ ¥ © ™ … — – “ ” ‘ ’ « »").split()
SEPS = [" ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\n ", "\r\n", "\u00a0", "\u3000", "",
        ", ", ". ", "!", "?", " - ", "_", "/", "::", "'", '"', "(", ")"]


def build_corpus():
    rng = random.Random(20240517)
    out = []
    base = PROSE + CODE + EMOJI + SPECIAL_TEXT
    out += base
    # whitespace and newline runs, alone and around words
    for ws in [" ", "  ", "\t", "\n", "\r\n", "\n\n\n", " \t \n", "\u00a0", "\u3000"]:
        for k in (1, 2, 3, 5, 8, 17):
            out.append(ws * k)
            out.append("word" + ws * k + "word")
            out.append(ws * k + "lead")
            out.append("trail" + ws * k)
    # digits of every length, with separators
    for k in range(1, 25):
        out.append("".join(str((i * 7 + k) % 10) for i in range(k)))
    for _ in range(60):
        n = rng.randint(0, 10 ** rng.randint(1, 12))
        out.append(rng.choice(["", " ", "x", "$", "v", "-"]) + f"{n:,}" if rng.random() < 0.3
                   else str(n) + rng.choice(["", " ", "px", "%", "th", ".5", "\n"]))
    # single characters and tiny strings
    for ch in "a Z 0 9 . , ; : ! ? ' \" ( ) [ ] { } < > | \\ / @ # $ % ^ & * _ - + = ~ `".split():
        out.append(ch)
        out.append(" " + ch)
    out += ["", " ", "▁", "▁▁x", "hello▁world", "\x00", "\x01\x02\x7f", "\u0080\u00ff",
            "\ufffd", "\ufeff", "\U0010ffff", "\ue000 private use"]
    # sentences combined, substrings of prose/code at random cut points
    for _ in range(500):
        s = rng.choice(base)
        a = rng.randint(0, len(s))
        b = rng.randint(a, len(s))
        out.append(s[a:b])
    for _ in range(900):
        n = rng.randint(1, 25)
        parts = []
        for _ in range(n):
            parts.append(rng.choice(WORDS))
            parts.append(rng.choice(SEPS) if rng.random() < 0.5 else " ")
        s = "".join(parts)
        if rng.random() < 0.15:
            s = s.upper()
        if rng.random() < 0.1:
            sp = rng.choice(["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>",
                             "<|eot_id|>", "<|begin_of_text|>"])
            k = rng.randint(0, len(s))
            s = s[:k] + sp + s[k:]
        out.append(s)
    for _ in range(200):
        out.append("\n".join(rng.sample(base, rng.randint(2, 4))))
    # long strings (several KB) to exercise long inputs
    for _ in range(8):
        out.append(" ".join(rng.choice(base) for _ in range(40)))
    # strings of random code points from assorted blocks
    blocks = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff),
              (0x900, 0x97f), (0xe00, 0xe7f), (0x3040, 0x30ff), (0x4e00, 0x4fff),
              (0xac00, 0xad00), (0x1f300, 0x1f64f), (0x2000, 0x206f)]
    for _ in range(250):
        lo, hi = rng.choice(blocks)
        out.append("".join(chr(rng.randint(lo, hi)) for _ in range(rng.randint(1, 30))))
    # whitespace and separators whose class differs between regex engines / Unicode versions
    odd = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\u1680", "\u180e",
           "\u2028", "\u2029", "\u200b", "\u2060", "\ufeff", "\u00ad", "\u061c", "\u3000"]
    for ch in odd:
        out += [ch, "a" + ch + "b", "a " + ch + " b", ch * 3 + "x", "x" + ch + "\n" + ch,
                "1" + ch + "2", "'s" + ch + "'ll"]
    # numerals of many kinds (\p{N}: Nd, Nl, No), and letter-like marks
    out += ["٣٤٥ ۴۵۶ १२३ ๑๒๓ ①②③ ⅠⅡⅢ ½¾ ²³ 𝟘𝟙 ߁߂ ១២", "x²+y³", "Ⅻth", "10½", "٣a٤",
            "e\u0301\u0301", "\u0e33\u0e33", "ǅungla", "ᾈ", "ß ẞ ﬀ", "İstanbul ı",
            "don\u2019t", "DON'T 'S 'T 'Re 'VE", "it's 'S", "x'sy", "''s", "'"]
    assert len(out) >= 2000, len(out)
    # NUL cannot travel in a JSON string through cJSON: such strings are stored as hex
    items = [{"hex": s.encode().hex()} if "\x00" in s else {"text": s} for s in out]
    # invalid UTF-8 byte strings
    bad = [b"\xff", b"abc\xffdef", b"\xc3", b"caf\xc3", b"\xe2\x82", b"x\xe2\x82y",
           b"\xf0\x9f\x98", b"\xf0\x9f\x98 \xf0\x9f", b"\xc0\xaf", b"\xed\xa0\x80 surrogate",
           b"\xf4\x90\x80\x80 too big", b"\x80\x80\x80", b"ok \xfe\xfe ok", b"\xe0\x80\x80",
           b"\xf8\x88\x80\x80\x80", b"tail \xc3\xa9\xc3"]
    for _ in range(40):
        s = rng.choice(base).encode()
        k = rng.randint(0, len(s))
        bad.append(s[:k] + bytes([rng.choice([0x80, 0xbf, 0xc2, 0xe0, 0xf0, 0xff])]) + s[k:])
    for b in bad:
        items.append({"hex": b.hex()})
    return items


def item_text(it):
    if "text" in it:
        return it["text"]
    return bytes.fromhex(it["hex"]).decode("utf-8", errors="replace")


def spm_training_text(rng):
    lines = []
    for _ in range(3000):
        s = rng.choice(PROSE + CODE + EMOJI)
        lines.append(s.replace("\n", " "))
    for _ in range(2000):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 15))))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- goldens
def write_golden(path, tok, items):
    """One JSON line per corpus string, gzipped: ids, decode with and without special tokens,
    and rt = whether decoding the ids without the BOS that encode added gives the text back."""
    n_rt = 0
    bos = tok.bos_token_id
    with gzip.GzipFile(path, "wb", 9, mtime=0) as g:
        for i, it in enumerate(items):
            text = item_text(it)
            ids = tok(text).input_ids
            dec = tok.decode(ids, skip_special_tokens=False)
            dec_skip = tok.decode(ids, skip_special_tokens=True)
            body = ids[1:] if ids and bos is not None and ids[0] == bos and \
                not text.startswith(tok.bos_token) else ids
            rt = tok.decode(body, skip_special_tokens=False) == text
            n_rt += rt
            g.write((json.dumps({"i": i, "ids": ids, "dec": dec, "dec_skip": dec_skip, "rt": rt},
                                ensure_ascii=False) + "\n").encode())
    print(f"{os.path.basename(path)}: {len(items)} strings, {n_rt} round-trip")


def make_spm(items, rng):
    from transformers import AutoTokenizer
    d = os.path.join(OUT, "spm")
    os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "train.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(spm_training_text(rng))
        # LLaMA's trainer settings, scaled down (vocab 2000).
        # relative paths (run in tmp) keep the model file identical from run to run
        cmd = ["spm_train", "--input=train.txt", "--model_prefix=m", "--model_type=bpe",
               "--vocab_size=2000", "--character_coverage=0.9995", "--byte_fallback=true",
               "--split_digits=true", "--normalization_rule_name=identity",
               "--remove_extra_whitespaces=false", "--add_dummy_prefix=true",
               "--allow_whitespace_only_pieces=true", "--max_sentencepiece_length=16",
               "--unk_id=0", "--bos_id=1", "--eos_id=2", "--pad_id=-1",
               "--num_threads=1", "--minloglevel=2"]
        subprocess.run(cmd, check=True, cwd=tmp)
        shutil.copy(f"{tmp}/m.model", os.path.join(d, "tokenizer.model"))
    goldens = {}
    for legacy in (False, True):
        sub = d if not legacy else os.path.join(OUT, "spm_legacy")
        os.makedirs(sub, exist_ok=True)
        if legacy:
            shutil.copy(os.path.join(d, "tokenizer.model"), os.path.join(sub, "tokenizer.model"))
        cfg = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
               "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "legacy": legacy,
               "chat_template": VICUNA_TEMPLATE}
        with open(os.path.join(sub, "tokenizer_config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        tok = AutoTokenizer.from_pretrained(sub)
        name = "spm_legacy_golden.jsonl.gz" if legacy else "spm_golden.jsonl.gz"
        write_golden(os.path.join(OUT, name), tok, items)
        goldens[legacy] = tok
    return goldens


def write_gguf(path, model, tokens, types, scores=None, merges=None, pre=None, bos=None, eos=None,
               unk=None, add_bos=False, template=None):
    """A GGUF holding only tokenizer metadata (general.architecture llama, no tensors)."""
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model(model)
    if pre:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    if merges is not None:
        w.add_token_merges(merges)
    for fn, v in ((w.add_bos_token_id, bos), (w.add_eos_token_id, eos), (w.add_unk_token_id, unk)):
        if v is not None:
            fn(v)
    w.add_add_bos_token(add_bos)
    if template:
        w.add_chat_template(template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_ggufs(items):
    """Tokenizer-only GGUFs built from the spm and l3 fixtures; goldens from transformers'
    AutoTokenizer(gguf_file=...) (its GGUF conversion is the oracle for GGUF input)."""
    from sentencepiece import SentencePieceProcessor
    from transformers import AutoTokenizer
    d = os.path.join(OUT, "gguf")
    os.makedirs(d, exist_ok=True)
    sp = SentencePieceProcessor(model_file=os.path.join(OUT, "spm", "tokenizer.model"))
    n = sp.get_piece_size()
    types = []
    for i in range(n):
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1)
    write_gguf(os.path.join(d, "spm.gguf"), "llama", [sp.id_to_piece(i) for i in range(n)], types,
               scores=[sp.get_score(i) for i in range(n)], bos=1, eos=2, unk=0, add_bos=True,
               template=VICUNA_TEMPLATE)
    j = json.load(open(os.path.join(OUT, "l3", "tokenizer.json"), encoding="utf-8"))
    vocab = dict(j["model"]["vocab"])
    for a in j["added_tokens"]:
        vocab[a["content"]] = a["id"]
    inv = sorted(vocab.items(), key=lambda kv: kv[1])
    assert [i for _, i in inv] == list(range(len(inv)))
    special = {a["id"] for a in j["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    write_gguf(os.path.join(d, "l3.gguf"), "gpt2", [t for t, _ in inv],
               [3 if i in special else 1 for _, i in inv], merges=merges, pre="llama-bpe",
               bos=vocab["<|begin_of_text|>"], eos=vocab["<|eot_id|>"], add_bos=True,
               template=LLAMA3_TEMPLATE)
    for name in ("spm", "l3"):
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f"{name}.gguf")
        write_golden(os.path.join(OUT, f"gguf_{name}_golden.jsonl.gz"), tok, items)


def strip_variant(j):
    """The l3 tokenizer.json with lstrip/rstrip added tokens (the C test applies the same edit):
    <|eot_id|> lstrip+rstrip, <|start_header_id|> rstrip, and a new non-special added token
    "[TOOL]" with lstrip."""
    for a in j["added_tokens"]:
        if a["content"] == "<|eot_id|>":
            a["lstrip"] = a["rstrip"] = True
        if a["content"] == "<|start_header_id|>":
            a["rstrip"] = True
    n = max(j["model"]["vocab"].values()) + 1
    j["added_tokens"].append({"id": n, "content": "[TOOL]", "single_word": False, "lstrip": True,
                              "rstrip": False, "normalized": False, "special": False})
    return j


def make_strip_golden():
    from tokenizers import Tokenizer
    j = strip_variant(json.load(open(os.path.join(OUT, "l3", "tokenizer.json"), encoding="utf-8")))
    tk = Tokenizer.from_str(json.dumps(j))
    ws = ["", " ", "  ", "\n", " \n ", "\t", "\u3000", "\u00a0 "]
    rows = []
    for a in ws:
        for b in ws:
            for tok in ["<|eot_id|>", "<|start_header_id|>", "[TOOL]", "<|end_header_id|>"]:
                for text in [f"x{a}{tok}{b}y", f"{a}{tok}{b}", f"{tok}{b}{tok}{a}{tok}"]:
                    enc = tk.encode(text)
                    rows.append({"text": text, "ids": enc.ids,
                                 "dec": tk.decode(enc.ids, skip_special_tokens=False),
                                 "dec_skip": tk.decode(enc.ids, skip_special_tokens=True)})
    with open(os.path.join(OUT, "strip_golden.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"strip_golden.jsonl: {len(rows)} strings")


def make_spm_py_golden(items):
    """A second oracle for (a): the sentencepiece package's own encode (dummy prefix on), for the
    strings where LlamaTokenizer's rule coincides with it (no special-token text, not starting
    with a space or "▁"): ids must equal ours without BOS; also sp.decode of them."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, "spm", "tokenizer.model"))
    n = 0
    with gzip.GzipFile(os.path.join(OUT, "spm_py_golden.jsonl.gz"), "wb", 9, mtime=0) as g:
        for i, it in enumerate(items):
            t = item_text(it)
            if not t or t[0] in " \u2581" or any(x in t for x in ("<s>", "</s>", "<unk>")):
                continue
            ids = sp.encode(t)
            g.write((json.dumps({"i": i, "ids": ids, "dec": sp.decode(ids)}, ensure_ascii=False)
                     + "\n").encode())
            n += 1
    print(f"spm_py_golden.jsonl.gz: {n} strings")


BOS_VARIANTS = [  # (tokenizer_config.json additions, drop tokenizer.json's post_processor)
    ({"add_bos_token": False}, False),
    ({"add_eos_token": True}, False),
    ({"add_bos_token": True, "add_eos_token": True}, False),
    ({}, True),
    ({"add_bos_token": True}, True),
]

SPM_BOS_VARIANTS = [
    {"tokenizer_class": "LlamaTokenizer"},
    {"tokenizer_class": "LlamaTokenizer", "add_eos_token": True},
    {},
    {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": True},
    {"tokenizer_class": "LlamaTokenizer", "add_bos_token": False},
    {"add_bos_token": True},  # no class: transformers' generic SentencePiece conversion
    {"tokenizer_class": "LlamaTokenizer", "legacy": True, "add_bos_token": True},
]


def make_bos_golden():
    """transformers 5 replaces tokenizer.json's post_processor by BOS/EOS from add_bos_token /
    add_eos_token when the config names either (or when there is no post_processor)."""
    from transformers import AutoTokenizer
    rows = []
    for k, (cfg_add, drop_pp) in enumerate(BOS_VARIANTS):
        with tempfile.TemporaryDirectory() as tmp:
            j = json.load(open(os.path.join(OUT, "l3", "tokenizer.json"), encoding="utf-8"))
            if drop_pp:
                j["post_processor"] = None
            with open(os.path.join(tmp, "tokenizer.json"), "w", encoding="utf-8") as f:
                json.dump(j, f, ensure_ascii=False)
            cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>",
                   "eos_token": "<|eot_id|>", **cfg_add}
            with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
                json.dump(cfg, f)
            tok = AutoTokenizer.from_pretrained(tmp)
            for text in ["Hello world", "", "<|eot_id|> x"]:
                rows.append({"model": "l3", "variant": k, "config": cfg_add,
                             "drop_post_processor": drop_pp,
                             "text": text, "ids": tok(text).input_ids})
    # SentencePiece directories: transformers 5's LlamaTokenizer adds a BOS only when the config
    # says add_bos_token (transformers 4 defaulted to adding one).
    for k, cfg in enumerate(SPM_BOS_VARIANTS):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(os.path.join(OUT, "spm", "tokenizer.model"), tmp)
            with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
                json.dump(cfg, f)
            tok = AutoTokenizer.from_pretrained(tmp)
            for text in ["Hello world", "", "<s> x", " lead", "a </s>b  c"]:
                ids = tok(text).input_ids
                rows.append({"model": "spm", "variant": k, "config": cfg, "text": text,
                             "ids": ids, "dec": tok.decode(ids)})
    with open(os.path.join(OUT, "bos_golden.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"bos_golden.jsonl: {len(rows)} rows")


def make_smol(items, gguf_path):
    from transformers import AutoTokenizer
    d = os.path.join(OUT, "smol")
    os.makedirs(d, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path),
                                        gguf_file=os.path.basename(gguf_path))
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        with open(os.path.join(tmp, "tokenizer.json"), "rb") as f:
            raw = f.read()
        with gzip.GzipFile(os.path.join(d, "tokenizer.json.gz"), "wb", 9, mtime=0) as g:
            g.write(raw)
        for name in ("tokenizer_config.json", "chat_template.jinja"):
            if os.path.exists(os.path.join(tmp, name)):
                shutil.copy(os.path.join(tmp, name), d)
    write_golden(os.path.join(OUT, "smol_golden.jsonl.gz"), tok, items)
    return tok


LLAMA3_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
              r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def make_l3(items, rng):
    """Byte-level BPE with Llama-3's pre-tokenizer and ignore_merges, trained here."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, Regex
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer(models.BPE(ignore_merges=True))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PAT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eot_id|>",
                # transformers' GGUF conversion (GPT2Tokenizer) adds <|endoftext|> as a new token
                # when the vocabulary lacks it; having it keeps the GGUF fixture's ids in range
                "<|endoftext|>"]
    tr = trainers.BpeTrainer(vocab_size=3000, special_tokens=specials,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(spm_training_text(rng).split("\n"), trainer=tr)
    d = os.path.join(OUT, "l3")
    os.makedirs(d, exist_ok=True)
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|begin_of_text|>",
                                 eos_token="<|eot_id|>")
    hf.chat_template = LLAMA3_TEMPLATE
    from tokenizers import processors
    tk.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", tk.token_to_id("<|begin_of_text|>"))])
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|begin_of_text|>",
                                 eos_token="<|eot_id|>")
    hf.chat_template = LLAMA3_TEMPLATE
    hf.save_pretrained(d)
    write_golden(os.path.join(OUT, "l3_golden.jsonl.gz"), hf, items)
    return hf


# Templates written out as the model cards publish them (Vicuna v1.1 has no official jinja
# template; this is FastChat's vicuna_v1.1 format, sep " " and sep2 "</s>", as a template).
VICUNA_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% set msgs = messages[1:] %}{% else %}{% set system = \"A chat between a curious user and "
    "an artificial intelligence assistant. The assistant gives helpful, detailed, and polite "
    "answers to the user's questions.\" %}{% set msgs = messages %}{% endif %}{{ system + ' ' }}"
    "{% for m in msgs %}{% if m['role'] == 'user' %}{{ 'USER: ' + m['content'] + ' ' }}"
    "{% else %}{{ 'ASSISTANT: ' + m['content'] + '</s>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"},
     {"role": "user", "content": "Tell me a joke.\nA short one."}],
    [{"role": "system", "content": "Sys"}, {"role": "user", "content": "  padded  "},
     {"role": "assistant", "content": "ok"}, {"role": "user", "content": "Ünïcödé 😀"}],
]


def make_chat(toks):
    """toks: format name -> HF tokenizer whose chat_template is rendered by transformers."""
    rows = []
    for name, tok in toks.items():
        for conv in CONVERSATIONS:
            for gen in (True, False):
                text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
                ids = tok.apply_chat_template(conv, tokenize=True, add_generation_prompt=gen)
                if hasattr(ids, "keys"):
                    ids = ids["input_ids"]
                rows.append({"format": name, "messages": conv, "gen": gen, "text": text,
                             "ids": list(ids)})
    with open(os.path.join(OUT, "chat_golden.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(os.path.join(OUT, "templates.json"), "w", encoding="utf-8") as f:
        json.dump({k: t.chat_template for k, t in toks.items()}, f, ensure_ascii=False, indent=1)


def hh_prepare(chosen):
    s = chosen.replace("Human:", "Human: ")
    k = s.rfind("Assistant:")
    return s[:k + len("Assistant:")]


def make_hhshp():
    hh = [
        "\n\nHuman: What is a dog?\n\nAssistant: A dog is an animal.",
        "\n\nHuman:How do I cook rice?\n\nAssistant:Boil it.\n\nHuman: And then?\n\nAssistant: Eat.",
        "\n\nHuman: Hi\n\nAssistant:",
        "\n\nHuman: Is Assistant: a word?\n\nAssistant: Not really. Assistant: yes.",
    ]
    shp = ["How do planes fly?", "Explain\nmultiline history.", ""]
    with open(os.path.join(OUT, "hhshp_golden.jsonl"), "w", encoding="utf-8") as f:
        for c in hh:
            f.write(json.dumps({"kind": "hh", "in": c, "out": hh_prepare(c)}) + "\n")
        for h in shp:
            f.write(json.dumps({"kind": "shp", "in": h, "out": "Human: " + h + "\nAssistant:"}) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.path.expanduser(
        "~/.cache/recontrol/SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    items = build_corpus()
    with open(os.path.join(OUT, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    print(f"corpus: {len(items)} strings")
    spm = make_spm(items, random.Random(7))
    make_spm_py_golden(items)
    l3 = make_l3(items, random.Random(8))
    make_ggufs(items)
    make_strip_golden()
    make_bos_golden()
    if not os.path.exists(args.gguf):
        sys.exit(f"SmolLM2 GGUF not found at {args.gguf} (pass --gguf)")
    smol = make_smol(items, args.gguf)
    make_chat({"chatml": smol, "llama3": l3, "vicuna": spm[False]})
    make_hhshp()


if __name__ == "__main__":
    main()
