"""Conversations: the stage logic on hand-labelled turns, then labelling and evaluation with the model."""
from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from buyingstage.cli import main
from buyingstage.errors import BuyingStageError
from buyingstage.labels import LABELS
from buyingstage.predict import StageClassifier
from buyingstage.transcripts import (STAGES, current_stage, evaluate_transcripts, furthest_stage,
                                     label_conversation, label_transcripts, stage_path)


def turns(*pairs: tuple[str, str]) -> list[dict]:
    return [{"speaker": speaker, "label": label} for speaker, label in pairs]


# A customer who looks around, compares, decides, then drifts back to comparing;
# the agent's labels (here further along) must never count.
HAND_LABELLED = turns(
    ("customer", "none"),
    ("customer", "problem_recognition"),
    ("agent", "post_purchase"),
    ("customer", "information_search"),
    ("customer", "information_search"),
    ("customer", "none"),
    ("customer", "information_search"),
    ("customer", "purchase_decision"),
    ("customer", "evaluation_of_alternatives"),
    ("agent", "purchase_decision"),
    ("customer", "none"),
)


def test_stages_follow_the_buying_order():
    assert STAGES + ("none",) == LABELS


def test_current_stage_is_the_latest_customer_stage_that_is_not_none():
    assert current_stage(HAND_LABELLED) == "evaluation_of_alternatives"


def test_furthest_stage_is_the_furthest_customer_stage_ever_reached():
    assert furthest_stage(HAND_LABELLED) == "purchase_decision"


def test_stage_path_drops_none_and_agents_and_collapses_repeats():
    assert stage_path(HAND_LABELLED) == ["problem_recognition", "information_search",
                                         "purchase_decision", "evaluation_of_alternatives"]


@pytest.mark.parametrize("labelled", [[], turns(("customer", "none"), ("agent", "purchase_decision"))])
def test_no_customer_stage_means_none(labelled):
    assert (current_stage(labelled), furthest_stage(labelled), stage_path(labelled)) == ("none", "none", [])


# -- with the model ----------------------------------------------------------------

CONVERSATION = {
    "id": "c1", "lang": "en", "channel": "chat",
    "turns": [
        {"speaker": "customer", "text": "Hi, my laptop is seven years old and painfully slow."},
        {"speaker": "agent", "text": "Sorry to hear that! What do you use it for?"},
        {"speaker": "customer", "text": "Lenovo IdeaPad 5 or HP Pavilion 14, which one is better?"},
        {"speaker": "customer", "text": "OK, I'll take the Lenovo. Can I pay with PayPal?"},
        {"speaker": "agent", "text": "   "},
    ],
}


def test_label_conversation_labels_every_turn_and_adds_stages(classifier):
    before = copy.deepcopy(CONVERSATION)
    out = label_conversation(classifier, CONVERSATION)

    assert CONVERSATION == before  # the input is left alone
    assert {k: out[k] for k in ("id", "lang", "channel")} == {"id": "c1", "lang": "en", "channel": "chat"}
    assert len(out["turns"]) == len(before["turns"])
    for old, new in zip(before["turns"], out["turns"]):
        assert {k: new[k] for k in old} == old
        assert new["label"] in LABELS and 0 <= new["confidence"] <= 1
        assert list(new["scores"]) == list(LABELS) and isinstance(new["abstained"], bool)
    assert out["turns"][-1]["label"] == "none"  # an empty turn
    assert out["current_stage"] == current_stage(out["turns"])
    assert out["furthest_stage"] == furthest_stage(out["turns"])
    assert out["stage_path"] == stage_path(out["turns"])


def test_label_conversation_refuses_a_bad_conversation(classifier):
    with pytest.raises(BuyingStageError, match="conversation c2: turn 1: 'text' is a number, not a string"):
        label_conversation(classifier, {"id": "c2", "turns": [{"speaker": "customer", "text": 3}]})


def write_transcripts(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = json.dumps(CONVERSATION)
BAD_LINES = [
    GOOD,
    '{"id": "x", "turns": ',
    json.dumps({"id": "no-turns"}),
    json.dumps({"id": "bad-turn", "turns": [{"speaker": "customer"}]}),
    json.dumps({**CONVERSATION, "id": "c3"}),
]


def test_label_transcripts_streams_and_marks_bad_conversations(tmp_path, classifier):
    src = write_transcripts(tmp_path / "in.jsonl", BAD_LINES)
    stats = label_transcripts(src, tmp_path / "out.jsonl", classifier=classifier, progress=False)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]

    assert (stats.rows, stats.errors) == (5, 3)
    assert [c.get("id") for c in out] == ["c1", None, "no-turns", "bad-turn", "c3"]
    assert out[1]["error"].startswith("line 2: not valid JSON")
    assert out[2]["error"] == "line 3: no 'turns' list"
    assert out[3]["error"] == "line 4: turn 1 has no 'text'"
    assert out[0]["turns"] == out[4]["turns"]  # same turns, same labels
    assert all("current_stage" in c for c in (out[0], out[4]))
    assert not any("current_stage" in c for c in out[1:4])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_label_transcripts_strict_raises(tmp_path, classifier):
    src = write_transcripts(tmp_path / "in.jsonl", BAD_LINES)
    with pytest.raises(BuyingStageError, match=r"in\.jsonl: line 2: not valid JSON"):
        label_transcripts(src, tmp_path / "out.jsonl", classifier=classifier, strict=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_cli_transcripts_strict_exits_2_with_one_line(tmp_path, monkeypatch, classifier):
    monkeypatch.setattr(StageClassifier, "load", classmethod(lambda cls, *a, **k: classifier))
    src = write_transcripts(tmp_path / "in.jsonl", BAD_LINES)
    result = CliRunner().invoke(main, ["transcripts", str(src), "-o", str(tmp_path / "out.jsonl"), "--strict"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [f"error: {src}: line 2: not valid JSON (Expecting value, column 1)"]


def test_evaluate_transcripts_scores_agreement_with_gold(classifier):
    # Gold = the model's own labels, so every score is perfect whatever the model.
    labelled = label_conversation(classifier, CONVERSATION)
    gold = {**CONVERSATION, "final_stage": labelled["current_stage"],
            "turns": [{**t, "label": p["label"]} for t, p in zip(CONVERSATION["turns"], labelled["turns"])]}
    scores = evaluate_transcripts(classifier, [gold, gold])

    assert list(scores) == ["turn_macro_f1", "turn_accuracy", "current_stage_accuracy", "conversations", "turns"]
    assert (scores["turn_accuracy"], scores["current_stage_accuracy"]) == (1.0, 1.0)
    assert 0 < scores["turn_macro_f1"] <= 1
    assert (scores["conversations"], scores["turns"]) == (2.0, 10.0)


def test_evaluate_transcripts_needs_gold_labels(classifier):
    with pytest.raises(BuyingStageError, match="conversation c1: 'final_stage' must be one of"):
        evaluate_transcripts(classifier, [CONVERSATION])
