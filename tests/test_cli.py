"""The shell interface: classify, stdin, --json, --help with examples, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from buyingstage.labels import LABELS


def run(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "buyingstage.cli", *args], input=stdin, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_classify_prints_label_and_confidence():
    result = run("classify", "Vai piegāde uz Rīgu ir bez maksas?")
    assert result.returncode == 0, result.stderr
    label, confidence = result.stdout.split()[:2]
    assert label in LABELS and 0 <= float(confidence) <= 1


def test_classify_json_and_stdin_give_one_result_per_line():
    result = run("classify", "--json", stdin="Hi, good morning!\n\nLlevo un mes con ella y va genial.\n")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 and lines[1]["empty"] is True
    assert all({"label", "confidence", "scores", "lang", "abstained"} <= set(x) for x in lines)


@pytest.mark.parametrize("command", ["classify", "label", "transcripts", "evaluate", "train", "data"])
def test_every_command_has_help_with_examples(command):
    result = run(command, "--help")
    assert result.returncode == 0
    assert "Example" in result.stdout or command == "data"


def test_missing_model_is_one_line_and_exit_2(tmp_path):
    result = run("classify", "--model", str(tmp_path / "nope"), "hello")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr
