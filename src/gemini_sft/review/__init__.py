"""Blind side-by-side review of base and tuned answers by people.

* ``items``: the pairs from an evaluation's predictions, with a recorded per-prompt order;
* ``ratings``: ``human_ratings.jsonl`` (durable appends) and the win rate with a Wilson interval;
* ``server`` / ``page``: the local web page the ``gemini-sft review`` command serves.
"""

from gemini_sft.review.items import ReviewItem, find_predictions, load_items
from gemini_sft.review.ratings import RATINGS_FILE, Rating, RatingsFile, ReviewSummary, read_ratings, summarize

__all__ = [
    "RATINGS_FILE",
    "Rating",
    "RatingsFile",
    "ReviewItem",
    "ReviewSummary",
    "find_predictions",
    "load_items",
    "read_ratings",
    "summarize",
]
