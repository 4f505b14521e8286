"""The pruned base: keeps what our languages need, and changes nothing for text it covers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from buyingstage.base import materialize_base
from buyingstage.data import load_texts
from buyingstage.vocab import held_out_words, load_kept_ids, materialize_pruned_base, piece_coverage

from .test_base import mean_pooled

ROOT = Path(__file__).resolve().parents[1]
REAL_TEXTS = ROOT.parent / "shared" / "real-texts"
WORDS_PER_LANGUAGE = 150_000  # as in training/build_vocab.py


@pytest.fixture(scope="module")
def full_tokenizer():
    return Tokenizer.from_file(str(materialize_base() / "tokenizer.json"))


@pytest.fixture(scope="module")
def held_out_texts():
    """Text that did not choose the vocabulary: our dev and test splits."""
    return [r["text"] for r in load_texts(ROOT / "data") if r["split"] in ("dev", "test")]


def test_pruned_vocabulary_keeps_995_permille_of_pieces_on_held_out_corpus(full_tokenizer, held_out_texts):
    assert len(held_out_texts) > 500
    assert piece_coverage(full_tokenizer, load_kept_ids(), held_out_texts) >= 0.995


def test_pruned_vocabulary_keeps_995_permille_of_pieces_on_held_out_words(full_tokenizer):
    words = held_out_words(WORDS_PER_LANGUAGE)
    assert len(words) > 10_000
    assert piece_coverage(full_tokenizer, load_kept_ids(), words) >= 0.995


@pytest.mark.skipif(not REAL_TEXTS.is_dir(), reason="../shared/real-texts is not beside the checkout")
def test_pruned_vocabulary_covers_independent_real_texts(full_tokenizer):
    texts = [json.loads(line)["text"] for f in REAL_TEXTS.glob("*.jsonl") for line in f.open()]
    assert piece_coverage(full_tokenizer, load_kept_ids(), texts) >= 0.995


def test_covered_texts_get_identical_pieces_and_embeddings(full_tokenizer, held_out_texts):
    kept = set(load_kept_ids())
    pruned = Tokenizer.from_file(str(materialize_pruned_base() / "tokenizer.json"))
    covered = [t for t in held_out_texts
               if set(full_tokenizer.encode(t, add_special_tokens=False).ids) <= kept]
    assert len(covered) > 0.8 * len(held_out_texts)
    for text in covered:
        assert pruned.encode(text).tokens == full_tokenizer.encode(text).tokens, text
    sample = covered[:: max(len(covered) // 24, 1)][:24]
    full = mean_pooled(materialize_base(), ["query: " + t for t in sample])
    small = mean_pooled(materialize_pruned_base(), ["query: " + t for t in sample])
    assert (full * small).sum(axis=1).min() >= 0.999


def test_pruned_base_has_at_most_45m_parameters():
    from safetensors import safe_open

    with safe_open(str(materialize_pruned_base() / "model.safetensors"), "np") as f:
        total = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    assert total <= 45_000_000, total
