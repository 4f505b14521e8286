"""The base vocabulary pruned to our five languages.

XLM-R's 250k pieces cover 100 languages, and 96M of e5-small's 118M parameters are
their embeddings. We keep only the pieces that text in nl, lv, es, fr and en needs:
the pieces of frequent words (``wordfreq``) and of our training corpus, every single
character of the Latin, Greek and Cyrillic scripts, digits, punctuation and emoji,
and every piece made only of digits, punctuation and symbols (numbers, prices and
runs like ``...`` or ``!!``). The pruned tokenizer is the same Unigram model over
the kept pieces with their original scores: a text whose full-vocabulary pieces are
all kept is split identically, and its embeddings are the full model's.
"""
from __future__ import annotations

import json
import logging
import unicodedata
import zlib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np

from buyingstage.errors import BuyingStageError, missing_extra

logger = logging.getLogger(__name__)

LANGUAGES = ("nl", "lv", "es", "fr", "en")
KEPT_PIECES_FILE = "pruned_pieces.txt"  # inside buyingstage/resources
_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
_KEPT_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")


def _char_is_ours(ch: str) -> bool:
    """Characters our languages write: Latin/Greek/Cyrillic letters, and any digit,
    punctuation, symbol (emoji included) or space."""
    cat = unicodedata.category(ch)
    if cat[0] in "PSZ" or cat == "Nd" and ch.isascii():
        return True
    if cat[0] in "LM" or cat[0] == "N":
        name = unicodedata.name(ch, "")
        return name.startswith(_KEPT_SCRIPTS) or (cat == "No" and "DIGIT" not in name and ch < "\u2200")
    return False


def _always_kept(piece: str) -> bool:
    """Single characters we write, and letter-free pieces made of such characters."""
    body = piece.replace("▁", "")
    if not body:
        return True
    if not all(_char_is_ours(c) for c in body):
        return False
    return len(body) == 1 or not any(unicodedata.category(c)[0] == "L" for c in body)


def strip_accents(text: str) -> str:
    """'piegāde' -> 'piegade', as people type without diacritics."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


CORE_WORDS = 20_000  # the most frequent words of each language are never held out
UPPERCASE_WORDS = 3_000  # ALL-CAPS spellings are added for the most frequent words


def held_out(word: str, share: int = 10) -> bool:
    """A fixed ``share`` percent of the less frequent words, never used to choose the vocabulary."""
    return zlib.crc32(word.encode()) % 100 < share


def word_variants(word: str, rank: int) -> set[str]:
    variants = {word, word.capitalize(), strip_accents(word), strip_accents(word).capitalize()}
    if rank < UPPERCASE_WORDS:
        variants.add(word.upper())
    if rank < CORE_WORDS:  # glued to what precedes: "l'endroit", "(Pro", "#sale"
        variants |= {"'" + word, "(" + word.capitalize()}
    return variants


def word_list(lang: str, n: int) -> list[str]:
    try:
        from wordfreq import top_n_list
    except ImportError:
        raise missing_extra("wordfreq", "train") from None
    return top_n_list(lang, n)


def frequent_words(words_per_language: int) -> list[str]:
    """Frequent words of each language from ``wordfreq`` in their usual spellings.

    Held out (for measuring coverage): a fixed 10% of the words ranked below CORE_WORDS.
    """
    words: list[str] = []
    for lang in LANGUAGES:
        for rank, word in enumerate(word_list(lang, words_per_language)):
            if rank < CORE_WORDS or not held_out(word):
                words.extend(word_variants(word, rank))
    return words


def held_out_words(words_per_language: int) -> list[str]:
    """The words :func:`frequent_words` leaves out."""
    return [w for lang in LANGUAGES
            for rank, w in enumerate(word_list(lang, words_per_language))
            if rank >= CORE_WORDS and held_out(w)]


def select_pieces(tokenizer, texts: Iterable[str], words: Iterable[str]) -> list[int]:
    """Ids of the pieces to keep, sorted (so the special tokens keep ids 0-3).

    ``tokenizer`` is the full ``tokenizers.Tokenizer``; ``texts`` are whole texts
    (our training corpus), ``words`` single words.
    """
    vocab = tokenizer.get_vocab()
    kept = {vocab[p] for p in _SPECIALS if p in vocab}
    kept |= {i for p, i in vocab.items() if _always_kept(p)}
    for enc in tokenizer.encode_batch([*words, *texts], add_special_tokens=False):
        kept.update(enc.ids)
    return sorted(kept)


def piece_coverage(tokenizer, kept_ids: Iterable[int], texts: Iterable[str]) -> float:
    """Share of the full tokenizer's pieces in ``texts`` that the pruned vocabulary keeps."""
    kept = set(kept_ids)
    total = hit = 0
    for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        total += len(enc.ids)
        hit += sum(i in kept for i in enc.ids)
    return hit / max(total, 1)


def kept_pieces_path() -> Path:
    return Path(str(resources.files("buyingstage") / "resources" / KEPT_PIECES_FILE))


def load_kept_ids(path: Path | None = None) -> list[int]:
    path = path or kept_pieces_path()
    if not path.is_file():
        raise BuyingStageError(f"{path} is missing; build it with: python training/build_vocab.py")
    return [int(line) for line in path.read_text().split()]


def prune_checkpoint(full_dir: Path, kept_ids: list[int], out_dir: Path) -> None:
    """Write a copy of the checkpoint in ``full_dir`` with only ``kept_ids`` in its vocabulary."""
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer

    from buyingstage.base import build_tokenizer, save_tokenizer

    tj = json.loads((Path(full_dir) / "tokenizer.json").read_text())
    full_vocab = tj["model"]["vocab"]  # [[piece, score], ...]
    pieces = [full_vocab[i][0] for i in kept_ids]
    scores = np.array([full_vocab[i][1] for i in kept_ids], dtype=np.float32)
    tok = build_tokenizer(pieces, scores, unk_id=pieces.index("<unk>"))
    save_tokenizer(tok, out_dir, json.loads((Path(full_dir) / "tokenizer_config.json").read_text())["model_max_length"])
    Tokenizer.from_file(str(out_dir / "tokenizer.json"))  # fails loudly if the file is unusable

    weights = load_file(str(Path(full_dir) / "model.safetensors"))
    key = "embeddings.word_embeddings.weight"
    weights[key] = np.ascontiguousarray(weights[key][np.array(kept_ids)])
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((Path(full_dir) / "config.json").read_text())
    config["vocab_size"] = len(kept_ids)
    config["pad_token_id"] = pieces.index("<pad>")
    config["bos_token_id"], config["eos_token_id"] = pieces.index("<s>"), pieces.index("</s>")
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "kept_pieces.txt").write_text("\n".join(map(str, kept_ids)) + "\n")


def materialize_pruned_base(kept_ids: list[int] | None = None, force: bool = False) -> Path:
    """The pruned base checkpoint in the cache, built from the full one on first use."""
    import hashlib

    from buyingstage.base import cache_dir, cached_checkpoint, materialize_base

    kept_ids = kept_ids if kept_ids is not None else load_kept_ids()
    digest = hashlib.sha256(",".join(map(str, kept_ids)).encode()).hexdigest()[:10]
    final = cache_dir() / f"multilingual-e5-small-pruned-{len(kept_ids)}-{digest}"

    def write(tmp: Path) -> None:
        full = materialize_base()
        logger.info("pruning %s to %d pieces into %s", full, len(kept_ids), final)
        prune_checkpoint(full, kept_ids, tmp)

    return cached_checkpoint(final, write, force)
