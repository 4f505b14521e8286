"""buyingstage: which stage of the customer buying process a text reflects.

>>> from buyingstage import StageClassifier
>>> StageClassifier.load().predict("Can I pay with PayPal?").label
'purchase_decision'
"""
from __future__ import annotations

from buyingstage.errors import BuyingStageError
from buyingstage.labels import LABELS, LANGUAGES
from buyingstage.predict import Prediction, StageClassifier

__version__ = "0.1.0"

__all__ = ["BuyingStageError", "LABELS", "LANGUAGES", "Prediction", "StageClassifier", "__version__"]
