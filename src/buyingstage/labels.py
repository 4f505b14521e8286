"""The six labels of ../LABELS.md, in a fixed order shared by data, models and reports."""
from __future__ import annotations

LABELS: tuple[str, ...] = (
    "problem_recognition",
    "information_search",
    "evaluation_of_alternatives",
    "purchase_decision",
    "post_purchase",
    "none",
)
LABEL2ID = {label: i for i, label in enumerate(LABELS)}

# Short descriptions, used by the zero-shot baseline (similarity to each description).
DESCRIPTIONS = {
    "problem_recognition": "I have a problem or a need and I am not yet looking for a solution.",
    "information_search": "Which options exist, what do you recommend, where can I find one?",
    "evaluation_of_alternatives": "Comparing two specific products: which one is better, is it worth the price?",
    "purchase_decision": "I want to order and pay: delivery, stock, discount code, checkout.",
    "post_purchase": "I bought it: my review, complaint, return, refund, warranty or support.",
    "none": "Hello, thanks, bye; small talk with no product or purchase.",
}

LANGUAGES: tuple[str, ...] = ("nl", "lv", "es", "fr", "en")
