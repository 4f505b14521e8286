"""The inference path: tokenizers + onnxruntime + numpy, no torch, no transformers.

A model folder holds ``model.onnx`` (int8), ``tokenizer.json`` and ``config.json``
(labels, temperature, abstain threshold, window length). Texts longer than the
window are split into overlapping windows whose calibrated probabilities are
averaged, weighted by their token counts: nothing is silently truncated.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from buyingstage.calibration import softmax
from buyingstage.errors import BuyingStageError
from buyingstage.langid import UNKNOWN, shared_identifier

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "buyingstage-e5-small"
ONNX_FILE = "model.onnx"


def default_model_path() -> Path:
    """The shipped model: ``$BUYINGSTAGE_MODEL``, else ``models/`` of a source checkout."""
    env = os.environ.get("BUYINGSTAGE_MODEL")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for candidate in (here.parent / "models" / DEFAULT_MODEL_NAME,
                      here.parents[2] / "models" / DEFAULT_MODEL_NAME):
        if (candidate / "config.json").is_file():
            return candidate
    raise BuyingStageError(
        f"no shipped model found (looked for models/{DEFAULT_MODEL_NAME} beside the package); "
        "pass a model folder, or set BUYINGSTAGE_MODEL"
    )


@dataclass
class Prediction:
    """One text's result. ``scores`` are calibrated probabilities for all six labels."""

    label: str
    confidence: float
    scores: dict[str, float]
    lang: str
    lang_supported: bool
    abstained: bool
    empty: bool = False
    windows: int = 1
    extra: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        return d


@dataclass(frozen=True)
class ModelSettings:
    """What ``config.json`` says about inference."""

    labels: tuple[str, ...]
    temperature: float
    abstain_threshold: float
    max_length: int
    stride: int
    pad_id: int
    bos_id: int
    eos_id: int

    @classmethod
    def from_folder(cls, folder: Path) -> "ModelSettings":
        config = json.loads((folder / "config.json").read_text())
        id2label = {int(k): v for k, v in config["id2label"].items()}
        bs = config.get("buyingstage", {})
        return cls(
            labels=tuple(id2label[i] for i in range(len(id2label))),
            temperature=float(bs.get("temperature", 1.0)),
            abstain_threshold=float(bs.get("abstain_threshold", 0.0)),
            max_length=int(bs.get("max_length", 128)),
            stride=int(bs.get("stride", 32)),
            pad_id=int(config.get("pad_token_id", 1)),
            bos_id=int(config.get("bos_token_id", 0)),
            eos_id=int(config.get("eos_token_id", 2)),
        )


def split_windows(ids: Sequence[int], size: int, overlap: int) -> list[list[int]]:
    """Overlapping windows of at most ``size`` ids covering all of ``ids``.

    >>> split_windows(list(range(10)), size=4, overlap=1)
    [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    """
    if len(ids) <= size:
        return [list(ids)]
    step = size - overlap
    starts = list(range(0, len(ids) - size, step)) + [len(ids) - size]
    return [list(ids[s:s + size]) for s in dict.fromkeys(starts)]


class StageClassifier:
    """Classify texts into buying stages.

    >>> clf = StageClassifier.load()
    >>> clf.predict("Can I pay with PayPal?").label
    'purchase_decision'
    """

    def __init__(self, folder: Path, threshold: float | None = None, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.settings = ModelSettings.from_folder(self.folder)
        self.labels = self.settings.labels
        self.threshold = self.settings.abstain_threshold if threshold is None else float(threshold)
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        options = ort.SessionOptions()
        threads = threads or int(os.environ.get("BUYINGSTAGE_THREADS", "0"))
        if threads:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.folder / ONNX_FILE), options,
                                            providers=["CPUExecutionProvider"])
        self._input_names = {i.name for i in self.session.get_inputs()}

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, threshold: float | None = None,
             threads: int | None = None) -> "StageClassifier":
        """Load a model folder (the shipped model when ``path`` is None)."""
        folder = Path(path) if path is not None else default_model_path()
        if not (folder / "config.json").is_file():
            raise BuyingStageError(f"{folder} is not a buyingstage model folder (no config.json)")
        if not (folder / ONNX_FILE).is_file():
            raise BuyingStageError(
                f"{folder} has no {ONNX_FILE}; export it with: buyingstage export {folder}"
            )
        return cls(folder, threshold=threshold, threads=threads)

    # -- model ---------------------------------------------------------------
    def _windows(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """All windows of all texts, and for each window the index of its text."""
        s = self.settings
        body = s.max_length - 2
        windows, owner = [], []
        for i, enc in enumerate(self.tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            for w in split_windows(enc.ids, body, s.stride):
                windows.append([s.bos_id, *w, s.eos_id])
                owner.append(i)
        return windows, owner

    def _run(self, windows: list[list[int]], batch_size: int) -> np.ndarray:
        """Logits for each window; batches sorted by length, padded only to their longest."""
        order = np.argsort([len(w) for w in windows], kind="stable")
        logits = np.zeros((len(windows), len(self.labels)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(windows[i]) for i in idx)
            ids = np.full((len(idx), width), self.settings.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, :len(windows[i])] = windows[i]
                mask[row, :len(windows[i])] = 1
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feed["token_type_ids"] = np.zeros_like(ids)
            logits[idx] = self.session.run(None, feed)[0]
        return logits

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities, shape (n_texts, n_labels), in ``self.labels`` order."""
        return self._proba_and_windows(texts, batch_size)[0]

    def _proba_and_windows(self, texts: Sequence[str], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        texts = [t.strip() for t in texts]
        probs = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        if not texts:
            return probs, np.zeros(0, dtype=int)
        windows, owner = self._windows(texts)
        window_probs = softmax(self._run(windows, batch_size) / self.settings.temperature)
        weights = np.array([max(len(w) - 2, 1) for w in windows], dtype=np.float64)
        np.add.at(probs, owner, window_probs * weights[:, None])
        totals = np.bincount(owner, weights=weights, minlength=len(texts))
        return probs / totals[:, None], np.bincount(owner, minlength=len(texts))

    # -- public --------------------------------------------------------------
    def predict(self, texts: str | Iterable[str], batch_size: int = 32,
                threshold: float | None = None) -> Prediction | list[Prediction]:
        """One string gives one :class:`Prediction`; a list gives a list.

        ``threshold``: abstain (``abstained=True``) when the confidence is below it;
        defaults to the model's threshold chosen on dev.
        """
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        bad = [type(t).__name__ for t in items if not isinstance(t, str)]
        if bad:
            raise TypeError(f"predict takes strings, got {bad[0]}")
        results = self._predict_many(items, batch_size, self.threshold if threshold is None else threshold)
        return results[0] if single else results

    def _predict_many(self, texts: list[str], batch_size: int, threshold: float) -> list[Prediction]:
        filled = [i for i, t in enumerate(texts) if t.strip()]
        probs, windows_per_text = self._proba_and_windows([texts[i] for i in filled], batch_size)
        results: list[Prediction] = [self._empty_result() for _ in texts]
        ident = shared_identifier()
        for row, i in enumerate(filled):
            p = probs[row]
            best = int(np.argmax(p))
            guess = ident.detect(texts[i])
            results[i] = Prediction(
                label=self.labels[best], confidence=float(p[best]),
                scores={label: round(float(x), 6) for label, x in zip(self.labels, p)},
                lang=guess.lang, lang_supported=guess.supported,
                abstained=bool(p[best] < threshold), windows=int(windows_per_text[row]),
            )
        return results

    def _empty_result(self) -> Prediction:
        scores = {label: (1.0 if label == "none" else 0.0) for label in self.labels}
        return Prediction(label="none", confidence=1.0, scores=scores, lang=UNKNOWN,
                          lang_supported=False, abstained=False, empty=True, windows=0)
