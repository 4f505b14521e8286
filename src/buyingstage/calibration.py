"""Temperature scaling, expected calibration error and the abstain threshold."""
from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities along the last axis, computed stably."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    return float(-log_softmax(logits / temperature)[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``y`` (fitted on dev).

    >>> round(fit_temperature(np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0]]), np.array([0, 1, 1])), 1) > 1
    True
    """
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(lambda log_t: nll(logits, y, float(np.exp(log_t))),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins (the usual 15)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability_bins(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> list[dict]:
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            out.append({"lo": float(lo), "hi": float(hi), "count": int(in_bin.sum()),
                        "accuracy": float(correct[in_bin].mean()), "confidence": float(confidence[in_bin].mean())})
    return out


def coverage_curve(probs: np.ndarray, y: np.ndarray, thresholds=None) -> list[dict]:
    """Accuracy of the predictions kept, and the share kept, when low confidence abstains."""
    thresholds = np.round(np.arange(0.0, 1.0, 0.05), 2) if thresholds is None else thresholds
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    out = []
    for t in thresholds:
        kept = confidence >= t
        out.append({"threshold": float(t), "coverage": float(kept.mean()),
                    "accuracy": float(correct[kept].mean()) if kept.any() else float("nan")})
    return out


def choose_abstain_threshold(calibrated_logits: np.ndarray, y: np.ndarray, target_accuracy: float) -> float:
    """The lowest confidence threshold at which the kept dev predictions reach ``target_accuracy``."""
    for point in coverage_curve(softmax(calibrated_logits), y, np.round(np.arange(0.0, 0.96, 0.01), 2)):
        if point["coverage"] >= 0.05 and point["accuracy"] >= target_accuracy:
            return point["threshold"]
    return 0.5
