"""The corpus in data/ passes its own validation, and the validation catches real faults."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from buyingstage.data import (assign_splits, check_counts, check_duplicates, check_schema, load_texts,
                              load_transcripts, validate_corpus)
from buyingstage.labels import LABELS, LANGUAGES

DATA = Path(__file__).resolve().parents[1] / "data"


def test_shipped_corpus_passes_validation():
    problems = validate_corpus(DATA)
    assert not problems, "\n".join(map(str, problems[:20]))


def test_corpus_meets_the_counts_per_language_and_label():
    rows = load_texts(DATA)
    per_cell = Counter((r["lang"], r["label"]) for r in rows)
    assert min(per_cell[lang, label] for lang in LANGUAGES for label in LABELS) >= 120
    assert sum(r["split"] == "test" for r in rows) / len(rows) >= 0.2
    long_share = sum(len(r["text"].split()) > 60 for r in rows) / len(rows)
    assert long_share >= 0.05
    assert len({r["domain"] for r in rows}) >= 15


def test_every_language_has_ten_transcripts_of_4_to_20_turns():
    convs = load_transcripts(DATA)
    assert min(Counter(c["lang"] for c in convs)[lang] for lang in LANGUAGES) >= 10
    assert all(4 <= len(c["turns"]) <= 20 for c in convs)


@pytest.fixture
def broken_corpus(tmp_path):
    shutil.copytree(DATA / "texts", tmp_path / "texts")
    shutil.copytree(DATA / "transcripts", tmp_path / "transcripts")
    path = tmp_path / "texts" / "en.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    twin = {**first, "split": "test" if first["split"] != "test" else "train"}
    lines += [json.dumps(twin), json.dumps({**first, "text": "zzz qqq unique", "label": "buying"}), "{not json"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path, len(lines)


def test_validation_names_each_offending_line(broken_corpus):
    folder, n = broken_corpus
    problems = [str(p) for p in validate_corpus(folder, check_language=False)]
    assert any(p.startswith(f"en.jsonl:{n}: not valid JSON") for p in problems)
    assert any(p.startswith(f"en.jsonl:{n - 1}: label 'buying'") for p in problems)
    assert any(f"en.jsonl:{n - 2}: duplicate of en.jsonl:1" in p for p in problems)


def test_validate_command_fails_loudly(broken_corpus):
    folder, _ = broken_corpus
    result = subprocess.run([sys.executable, "-m", "buyingstage.cli", "data", "validate", str(folder),
                             "--skip-language"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "not valid JSON" in result.stdout and "problem(s)" in result.stderr


def test_near_duplicates_never_straddle_splits():
    rows = [{"text": t, "lang": "en", "label": "none", "source": "written", "domain": "other", "genre": "chat"}
            for t in ["thanks a lot, have a nice day!", "thanks a lot, have a nice day!!", "ok one moment please",
                      "hello there", "good morning to you", "bye bye now", "see you later", "cheers mate"]]
    placed = assign_splits(rows)
    assert placed[0]["split"] == placed[1]["split"]
    placed[1]["split"] = "test" if placed[0]["split"] != "test" else "train"
    for r in placed:
        r["_where"] = r["text"]
    assert any("different splits" in str(p) for p in check_duplicates(placed))


def test_existing_splits_never_move():
    rows = load_texts(DATA)[:300]
    assert [r["split"] for r in assign_splits(rows)] == [r["split"] for r in rows]


def test_counts_check_reports_thin_cells():
    rows, _ = check_schema(DATA)
    thin = [r for r in rows if not (r["lang"] == "lv" and r["label"] == "none")]
    assert any("lv/none" in str(p) for p in check_counts(thin))
