"""Choose the pruned vocabulary and write src/buyingstage/resources/pruned_pieces.txt.

    python training/build_vocab.py            # wordfreq top 150k words per language + data/ train split

Prints the piece coverage on text that did not choose the vocabulary: the dev and
test splits of data/, the held-out 10% of the word lists, and ../shared/real-texts.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
from pathlib import Path

from tokenizers import Tokenizer

from buyingstage.base import materialize_base
from buyingstage.data import load_texts
from buyingstage.vocab import frequent_words, held_out_words, kept_pieces_path, piece_coverage, select_pieces

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--words", type=int, default=150_000, help="words per language from wordfreq")
parser.add_argument("--data-dir", default="data")
parser.add_argument("--real-texts", default="../shared/real-texts", help="only measured, never used")
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(message)s")

full = Tokenizer.from_file(str(materialize_base() / "tokenizer.json"))
train_texts = [r["text"] for r in load_texts(args.data_dir, split="train")]
kept = select_pieces(full, train_texts, frequent_words(args.words))
kept_pieces_path().write_text("\n".join(map(str, kept)) + "\n")

params = len(kept) * 384 + 21_490_176  # word embeddings + the rest of e5-small
print(f"kept {len(kept)} of {full.get_vocab_size()} pieces; about {params / 1e6:.1f}M parameters")
held = {
    "data dev+test": [r["text"] for r in load_texts(args.data_dir) if r.get("split") in ("dev", "test")],
    "held-out words": held_out_words(args.words),
    "real-texts": [json.loads(line)["text"] for f in glob.glob(f"{args.real_texts}/*.jsonl") for line in open(f)],
}
for name, texts in held.items():
    if texts:
        print(f"coverage on {name} ({len(texts)} texts): {piece_coverage(full, kept, texts):.4%}")
