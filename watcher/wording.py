"""Numbers in the user's words: "1 page", "2 pages", "1,960 pages", never "2 page(s)".

One helper for every message (log lines, reason files, the CLI), so that no message counts
its own way.
"""

from __future__ import annotations


def count(number: int, noun: str, plural: str = "") -> str:
    """`number` with its noun, singular for exactly one: count(1, "page") is "1 page",
    count(1960, "page") is "1,960 pages"; `plural` for nouns that do not take an "s"."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"
