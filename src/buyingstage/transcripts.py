"""Conversations: label every turn, then say where the customer stands.

A conversation is ``{"id", "turns": [{"speaker", "text"}, ...], ...}``. Each turn
gains label, confidence, scores and abstained; the conversation gains
``current_stage`` (the latest customer stage that is not none), ``furthest_stage``
(the furthest of the five stages any customer turn reached) and ``stage_path`` (the
customer's stages in order, none left out, repeats collapsed). Only turns whose
speaker is ``"customer"`` count towards the stages.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

from buyingstage.batch import (LabelStats, check_input, check_output, check_text, count_lines, json_line,
                               json_type, nonblank_lines, parse_json_line, progress_bar)
from buyingstage.data import current_stage
from buyingstage.errors import BuyingStageError
from buyingstage.labels import LABELS

__all__ = ["STAGES", "current_stage", "furthest_stage", "stage_path", "label_conversation",
           "label_conversations", "label_transcripts", "evaluate_transcripts"]

STAGES: tuple[str, ...] = ("problem_recognition", "information_search", "evaluation_of_alternatives",
                           "purchase_decision", "post_purchase")  # in buying order
TURN_FIELDS = ("label", "confidence", "scores", "abstained")
CONVERSATIONS_PER_CALL = 64


# -- stages (pure functions of labelled turns) ----------------------------------

def _customer_stages(turns: Sequence[dict]) -> list[str]:
    return [t["label"] for t in turns if t["speaker"] == "customer" and t["label"] != "none"]


def furthest_stage(turns: Sequence[dict]) -> str:
    """The furthest of the five stages any customer turn reached (else ``none``).

    >>> furthest_stage([{"speaker": "customer", "label": "purchase_decision"},
    ...                 {"speaker": "customer", "label": "information_search"}])
    'purchase_decision'
    """
    return max(_customer_stages(turns), key=STAGES.index, default="none")


def stage_path(turns: Sequence[dict]) -> list[str]:
    """The customer's stages in order, ``none`` left out, repeats collapsed.

    >>> stage_path([{"speaker": "customer", "label": s} for s in
    ...             ("information_search", "none", "information_search", "evaluation_of_alternatives")])
    ['information_search', 'evaluation_of_alternatives']
    """
    path: list[str] = []
    for stage in _customer_stages(turns):
        if not path or path[-1] != stage:
            path.append(stage)
    return path


def with_stages(conv: dict) -> dict:
    """``conv`` (whose turns carry labels) plus current_stage, furthest_stage and stage_path."""
    turns = conv["turns"]
    return {**conv, "current_stage": current_stage(turns), "furthest_stage": furthest_stage(turns),
            "stage_path": stage_path(turns)}


# -- labelling -------------------------------------------------------------------

def conversation_problem(conv: object, where: str = "conversation") -> str | None:
    """What keeps ``conv`` from being labelled (None when it is sound)."""
    if not isinstance(conv, dict):
        return f"{where}: not a JSON object"
    turns = conv.get("turns")
    if not isinstance(turns, list):
        return f"{where}: 'turns' is {json_type(turns)}, not a list" if "turns" in conv else f"{where}: no 'turns' list"
    for k, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            return f"{where}: turn {k} is {json_type(turn)}, not an object"
        for name in ("speaker", "text"):
            if name not in turn:
                return f"{where}: turn {k} has no '{name}'"
            problem = check_text(turn[name], f"{where}: turn {k}", name)
            if problem:
                return problem
    return None


def label_conversations(classifier, convs: Sequence[dict], batch_size: int = 32) -> list[dict]:
    """:func:`label_conversation` for many conversations, with one predict call for all turns."""
    for i, conv in enumerate(convs, 1):
        problem = conversation_problem(conv, _name(conv, i))
        if problem:
            raise BuyingStageError(problem)
    texts = [t["text"] for conv in convs for t in conv["turns"]]
    predictions = iter(classifier.predict(texts, batch_size=batch_size))
    out = []
    for conv in convs:
        turns = [_labelled_turn(t, next(predictions)) for t in conv["turns"]]
        out.append(with_stages({**conv, "turns": turns}))
    return out


def _name(conv: object, i: int) -> str:
    return f"conversation {conv.get('id', i) if isinstance(conv, dict) else i}"


def _labelled_turn(turn: dict, prediction) -> dict:
    return {**turn, **{name: getattr(prediction, name) for name in TURN_FIELDS}}


def label_conversation(classifier, conv: dict) -> dict:
    """Label every turn of ``conv`` (one batched predict call) and add its stages.

    >>> clf = StageClassifier.load()  # doctest: +SKIP
    >>> label_conversation(clf, {"id": "c1", "turns": [
    ...     {"speaker": "customer", "text": "Can I pay with PayPal?"}]})["current_stage"]  # doctest: +SKIP
    'purchase_decision'
    """
    return label_conversations(classifier, [conv])[0]


def _read_conversations(path: Path) -> Iterator[tuple[dict, str | None]]:
    """(conversation, problem) for each non-blank line; the problem names the line."""
    for lineno, raw in nonblank_lines(path):
        conv, problem = parse_json_line(raw, f"line {lineno}")
        yield conv, problem or conversation_problem(conv, f"line {lineno}")


def label_transcripts(input_path: str | os.PathLike, output_path: str | os.PathLike,
                      model: str | os.PathLike | None = None, classifier=None, strict: bool = False,
                      progress: bool = True) -> LabelStats:
    """Label every conversation of a JSONL file into ``output_path`` (JSONL, written atomically).

    A bad conversation gets an ``error`` naming its line and no labels; ``strict``
    stops with :class:`BuyingStageError` at the first.
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    check_input(input_path)
    check_output(output_path, input_path)
    if classifier is None:
        from buyingstage.predict import StageClassifier

        classifier = StageClassifier.load(model)
    tmp = output_path.with_name(output_path.name + ".tmp")
    try:
        stats = _write_labelled(classifier, input_path, tmp, strict, progress)
        os.replace(tmp, output_path)
    except OSError as e:
        raise BuyingStageError(f"cannot write {output_path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return LabelStats(stats[0], stats[1], time.perf_counter() - started, output_path, unit="conversations")


def _write_labelled(classifier, input_path: Path, dest: Path, strict: bool, progress: bool) -> tuple[int, int]:
    rows = errors = 0
    total = count_lines(input_path) if progress and sys.stderr.isatty() else None
    items = _read_conversations(input_path)
    with open(dest, "wb") as out, progress_bar(total, progress, "conv") as bar:
        while group := list(islice(items, CONVERSATIONS_PER_CALL)):
            bad = [problem for _, problem in group if problem]
            if strict and bad:
                raise BuyingStageError(f"{input_path}: {bad[0]}")
            labelled = iter(label_conversations(classifier, [c for c, problem in group if not problem]))
            for conv, problem in group:
                out.write(json_line({**conv, "error": problem} if problem else next(labelled)))
            rows, errors = rows + len(group), errors + len(bad)
            bar.update(len(group))
    return rows, errors


# -- evaluation --------------------------------------------------------------------

def evaluate_transcripts(classifier, convs: list[dict]) -> dict[str, float]:
    """Turn-level and conversation-level scores on conversations with gold labels.

    Turns carry a gold ``label``, each conversation a gold ``final_stage``. The
    primary metric is ``turn_macro_f1`` (over the six labels).
    """
    from sklearn.metrics import accuracy_score, f1_score

    if not convs:
        raise BuyingStageError("no conversations to evaluate")
    for i, conv in enumerate(convs, 1):
        _check_gold(conv, i)
    gold = [t["label"] for conv in convs for t in conv["turns"]]
    labelled = label_conversations(classifier, convs)
    predicted = [t["label"] for conv in labelled for t in conv["turns"]]
    stages_right = [c["current_stage"] == g["final_stage"] for c, g in zip(labelled, convs)]
    return {
        "turn_macro_f1": float(f1_score(gold, predicted, labels=list(LABELS), average="macro", zero_division=0)),
        "turn_accuracy": float(accuracy_score(gold, predicted)) if gold else 0.0,
        "current_stage_accuracy": sum(stages_right) / len(convs),
        "conversations": float(len(convs)),
        "turns": float(len(gold)),
    }


def _check_gold(conv: dict, i: int) -> None:
    name = _name(conv, i)
    problem = conversation_problem(conv, name)
    if problem:
        raise BuyingStageError(problem)
    if conv.get("final_stage") not in LABELS:
        raise BuyingStageError(f"{name}: 'final_stage' must be one of {', '.join(LABELS)}")
    for k, turn in enumerate(conv["turns"], 1):
        if turn.get("label") not in LABELS:
            raise BuyingStageError(f"{name}: turn {k}: gold 'label' must be one of {', '.join(LABELS)}")
