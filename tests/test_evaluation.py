"""The evaluation harness on a small labelled file: every figure the report promises is there."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from buyingstage.data import load_texts
from buyingstage.evaluation import evaluate_model
from buyingstage.labels import LABELS

DATA = Path(__file__).resolve().parents[1] / "data"


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label", "lang"])
        writer.writeheader()
        writer.writerows({k: r[k] for k in ("text", "label", "lang")} for r in rows)


def test_report_has_every_figure(model_path, tmp_path):
    rows = load_texts(DATA, split="test")[::20]
    write_csv(tmp_path / "labelled.csv", rows)
    report = evaluate_model(model_path, tmp_path / "labelled.csv", out_dir=tmp_path / "report")
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["overall"]["n"] == len(rows) and 0 <= saved["overall"]["macro_f1"] <= 1
    assert set(saved["languages"]) == {r["lang"] for r in rows}
    assert set(saved["labels"]) == set(LABELS)
    assert all(set(v) == set(LABELS) for v in saved["labels_by_language"].values())
    assert len(saved["confusion"]) == len(LABELS) and sum(map(sum, saved["confusion"])) == len(rows)
    assert 0 <= saved["calibration"]["ece"] <= 1 and saved["coverage"][0]["coverage"] == 1.0
    assert set(saved["language_id"]) == set(saved["languages"])
    for png in ("confusion.png", "reliability.png", "coverage.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Calibration" in markdown and "## Language identification" in markdown
    assert report.summary().startswith("macro-F1")


def test_evaluate_command_reads_jsonl_and_refuses_bad_labels(model_path, tmp_path):
    rows = load_texts(DATA, split="test")[:12]
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cli = [sys.executable, "-m", "buyingstage.cli", "evaluate", str(model_path)]
    result = subprocess.run(cli + [str(good), "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("macro-F1") and (tmp_path / "out" / "report.md").is_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "hi", "label": "buying"}) + "\n")
    result = subprocess.run(cli + [str(bad)], capture_output=True, text=True)
    assert result.returncode == 2 and "row 1 needs" in result.stderr and "Traceback" not in result.stderr
