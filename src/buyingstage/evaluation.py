"""The evaluation harness: figures per language and label, calibration, baselines.

:func:`evaluate_model` writes ``report.md``, ``report.json`` and PNG plots.
:func:`score` is the plain evaluator (a ``dict[str, float]`` with ``macro_f1`` as the
primary metric) that training, tests and the CLI share.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from buyingstage.calibration import coverage_curve, expected_calibration_error, reliability_bins, softmax
from buyingstage.labels import LABEL2ID, LABELS

logger = logging.getLogger(__name__)


def score(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 (primary) and ECE of probabilities against gold label ids."""
    from sklearn.metrics import accuracy_score, f1_score

    pred = probs.argmax(axis=1)
    return {
        "macro_f1": float(f1_score(y_true, pred, average="macro", labels=list(range(len(LABELS))),
                                   zero_division=0)),
        "accuracy": float(accuracy_score(y_true, pred)),
        "ece": expected_calibration_error(probs, y_true),
        "n": int(len(y_true)),
    }


def per_label(y_true: np.ndarray, probs: np.ndarray) -> dict[str, dict[str, float]]:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(y_true, probs.argmax(axis=1), labels=list(range(len(LABELS))),
                                                 zero_division=0)
    return {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, label in enumerate(LABELS)}


def confusion(y_true: np.ndarray, probs: np.ndarray) -> list[list[int]]:
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y_true, probs.argmax(axis=1), labels=list(range(len(LABELS)))).tolist()


def by_language(langs: list[str], y: np.ndarray, probs: np.ndarray) -> dict[str, dict[str, float]]:
    groups = defaultdict(list)
    for i, lang in enumerate(langs):
        groups[lang].append(i)
    return {lang: score(y[idx], probs[idx]) for lang, idx in sorted(groups.items())}


@dataclass
class Report:
    """Every number of one evaluation; ``to_markdown`` renders it for people."""

    model: str
    data: str
    overall: dict
    languages: dict
    labels: dict
    labels_by_language: dict
    confusion: list
    confusion_by_language: dict
    calibration: dict
    coverage: list
    language_id: dict
    baselines: dict = field(default_factory=dict)
    cross_lingual: dict = field(default_factory=dict)
    transcripts: dict = field(default_factory=dict)
    plots: list = field(default_factory=list)

    def to_json(self) -> dict:
        return self.__dict__.copy()

    def summary(self) -> str:
        langs = "  ".join(f"{k} {v['macro_f1']:.3f}" for k, v in self.languages.items())
        return (f"macro-F1 {self.overall['macro_f1']:.3f}  accuracy {self.overall['accuracy']:.3f}  "
                f"ECE {self.overall['ece']:.3f}  |  {langs}")

    def to_markdown(self) -> str:
        return render_markdown(self)


def _confusion_text(matrix: list[list[int]]) -> str:
    short = [label[:10] for label in LABELS]
    lines = ["| gold \\ predicted | " + " | ".join(short) + " |", "|---" * (len(LABELS) + 1) + "|"]
    lines += [f"| {short[i]} | " + " | ".join(str(x) for x in row) + " |" for i, row in enumerate(matrix)]
    return "\n".join(lines)


def render_markdown(r: Report) -> str:
    out = [f"# Evaluation of `{r.model}`", "", f"Data: `{r.data}` ({r.overall['n']} texts).", "",
           "## Overall and per language", "", "| language | n | accuracy | macro-F1 | ECE |", "|---|---|---|---|---|"]
    for name, m in [("all", r.overall), *r.languages.items()]:
        out.append(f"| {name} | {m['n']} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | {m['ece']:.3f} |")
    if r.baselines:
        names = list(r.baselines)
        out += ["", "## Baselines (macro-F1, same test texts)", "",
                "| language | model | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        for lang in ["all", *r.languages]:
            ours = r.overall if lang == "all" else r.languages[lang]
            cells = [f"{r.baselines[b].get(lang, {}).get('macro_f1', float('nan')):.3f}" for b in names]
            out.append(f"| {lang} | {ours['macro_f1']:.3f} | " + " | ".join(cells) + " |")
    if r.cross_lingual:
        out += ["", "## Cross-lingual: a model trained on English only", "",
                "| language | macro-F1 | accuracy |", "|---|---|---|"]
        for lang, m in r.cross_lingual.items():
            out.append(f"| {lang} | {m['macro_f1']:.3f} | {m['accuracy']:.3f} |")
    out += ["", "## Per label (all languages)", "", "| label | precision | recall | F1 | support |",
            "|---|---|---|---|---|"]
    for label, m in r.labels.items():
        out.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    out += ["", "## F1 per label per language", "", "| label | " + " | ".join(r.labels_by_language) + " |",
            "|---" * (len(r.labels_by_language) + 1) + "|"]
    for label in LABELS:
        out.append(f"| {label} | " + " | ".join(f"{r.labels_by_language[lang][label]['f1']:.3f}"
                                               for lang in r.labels_by_language) + " |")
    out += ["", "## Confusion matrix (all languages)", "", _confusion_text(r.confusion)]
    for lang, matrix in r.confusion_by_language.items():
        out += ["", f"### {lang}", "", _confusion_text(matrix)]
    c = r.calibration
    out += ["", "## Calibration", "", f"Expected calibration error (15 bins): **{c['ece']:.3f}** "
            f"(temperature {c['temperature']:.3f}; before scaling {c.get('ece_uncalibrated', float('nan')):.3f}).",
            "", "## Accuracy when low-confidence predictions abstain", "",
            "| threshold | coverage | accuracy |", "|---|---|---|"]
    for p in r.coverage:
        out.append(f"| {p['threshold']:.2f} | {p['coverage']:.3f} | {p['accuracy']:.3f} |")
    if r.language_id:
        out += ["", "## Language identification", "", "| language | ours | plain langdetect |", "|---|---|---|"]
        for lang, m in r.language_id.items():
            out.append(f"| {lang} | {m['ours']:.3f} | {m['plain']:.3f} |")
    if r.transcripts:
        t = r.transcripts
        out += ["", "## Transcripts", "", f"Turn-level macro-F1 **{t['turn_macro_f1']:.3f}** "
                f"(accuracy {t['turn_accuracy']:.3f}, {t['turns']} turns); conversation current-stage accuracy "
                f"**{t['current_stage_accuracy']:.3f}** ({t['conversations']} conversations)."]
    if r.plots:
        out += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in r.plots]
    return "\n".join(out) + "\n"


def _plots(out_dir: Path, r: Report, probs: np.ndarray, y: np.ndarray) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed, so no plots: pip install 'buyingstage[train]'")
        return []
    paths = []
    fig, ax = plt.subplots(figsize=(7, 6))
    m = np.array(r.confusion)
    ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(j, i, m[i, j], ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(LABELS)), [lab[:12] for lab in LABELS], rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), [lab[:12] for lab in LABELS])
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Confusion matrix (rows normalised)")
    paths.append(_save(fig, out_dir / "confusion.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    bins = reliability_bins(probs, y)
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.bar([b["confidence"] for b in bins], [b["accuracy"] for b in bins], width=0.05, alpha=0.7)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {r.calibration['ece']:.3f})")
    paths.append(_save(fig, out_dir / "reliability.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    curve = coverage_curve(probs, y, np.linspace(0, 0.99, 100))
    ax.plot([p["coverage"] for p in curve], [p["accuracy"] for p in curve])
    ax.set_xlabel("coverage (share of texts answered)")
    ax.set_ylabel("accuracy of answered texts")
    ax.set_title("Accuracy vs coverage")
    paths.append(_save(fig, out_dir / "coverage.png"))
    plt.close("all")
    return paths


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return str(path)


def language_id_accuracy(texts: list[str], langs: list[str]) -> dict[str, dict[str, float]]:
    from buyingstage.langid import detect_language, plain_langdetect

    out = {}
    for lang in sorted(set(langs)):
        idx = [i for i, g in enumerate(langs) if g == lang]
        out[lang] = {"ours": float(np.mean([detect_language(texts[i]).lang == lang for i in idx])),
                     "plain": float(np.mean([plain_langdetect(texts[i]) == lang for i in idx])), "n": len(idx)}
    return out


def _load_eval_rows(data_path: Path) -> tuple[list[dict], Path | None]:
    """Test split of a corpus folder, or a labelled file."""
    from buyingstage.data import load_texts, read_labelled_file

    if data_path.is_dir():
        return load_texts(data_path, split="test"), data_path
    return read_labelled_file(data_path), None


def evaluate_model(model_path, data_path, out_dir=None, baselines: bool = False,
                   transcripts_path=None, english_only_model=None) -> Report:
    """Evaluate a model folder on labelled data and write the report files."""
    from buyingstage.langid import detect_language
    from buyingstage.predict import StageClassifier

    data_path = Path(data_path)
    clf = StageClassifier.load(model_path)
    rows, corpus_dir = _load_eval_rows(data_path)
    texts = [r["text"] for r in rows]
    y = np.array([LABEL2ID[r["label"]] for r in rows])
    probs = clf.predict_proba(texts)
    langs = [r.get("lang") or detect_language(t).lang for r, t in zip(rows, texts)]
    raw = softmax(np.log(np.clip(probs, 1e-12, 1)) * clf.settings.temperature)  # scaling undone, for "before"

    groups: dict[str, list[int]] = defaultdict(list)
    for i, lang in enumerate(langs):
        groups[lang].append(i)
    report = Report(
        model=str(model_path), data=str(data_path), overall=score(y, probs),
        languages=by_language(langs, y, probs), labels=per_label(y, probs),
        labels_by_language={lang: per_label(y[idx], probs[idx]) for lang, idx in sorted(groups.items())},
        confusion=confusion(y, probs),
        confusion_by_language={lang: confusion(y[idx], probs[idx]) for lang, idx in sorted(groups.items())},
        calibration={"ece": expected_calibration_error(probs, y), "ece_uncalibrated":
                     expected_calibration_error(raw, y), "temperature": clf.settings.temperature,
                     "abstain_threshold": clf.threshold, "bins": reliability_bins(probs, y)},
        coverage=coverage_curve(probs, y),
        language_id=language_id_accuracy(texts, langs) if any(r.get("lang") for r in rows) else {},
    )
    if baselines and corpus_dir is not None:
        report.baselines = run_baselines(corpus_dir, rows, langs, y)
    if english_only_model:
        en_probs = StageClassifier.load(english_only_model).predict_proba(texts)
        report.cross_lingual = {"all": score(y, en_probs), **by_language(langs, y, en_probs)}
    transcripts = _transcripts_for(corpus_dir, transcripts_path)
    if transcripts:
        from buyingstage.transcripts import evaluate_transcripts

        report.transcripts = evaluate_transcripts(clf, transcripts)
    out_dir = Path(out_dir) if out_dir else Path(model_path) / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)
    report.plots = [Path(p).name for p in _plots(out_dir, report, probs, y)]
    (out_dir / "report.json").write_text(json.dumps(report.to_json(), indent=2))
    (out_dir / "report.md").write_text(report.to_markdown())
    logger.info("wrote %s", out_dir / "report.md")
    return report


def _transcripts_for(corpus_dir: Path | None, transcripts_path) -> list[dict]:
    from buyingstage.data import load_transcripts, read_jsonl

    if transcripts_path:
        return read_jsonl(Path(transcripts_path))
    if corpus_dir is not None:
        return load_transcripts(corpus_dir, split="test")
    return []


def run_baselines(corpus_dir: Path, test_rows: list[dict], langs: list[str], y: np.ndarray) -> dict:
    """Majority, TF-IDF + logistic regression and zero-shot, on the same test texts."""
    from buyingstage import baselines as b
    from buyingstage.data import load_texts

    train_rows = load_texts(corpus_dir, split="train")
    texts = [r["text"] for r in test_rows]
    systems = {
        "majority": lambda: b.majority([r["label"] for r in train_rows], len(texts)),
        "tfidf_logreg": lambda: b.tfidf_logreg([r["text"] for r in train_rows],
                                               [r["label"] for r in train_rows], texts),
        "zero_shot_e5": lambda: b.zero_shot(texts),
    }
    out = {}
    for name, run in systems.items():
        probs = run()
        out[name] = {"all": score(y, probs), **by_language(langs, y, probs)}
    return out

