"""Text normalisation shared by the contracts (duplicates, blank texts) and the feedback store (row keys)."""

from __future__ import annotations

# Zero-width and byte-order-mark characters: invisible, so a text of only these is blank.
INVISIBLE_CHARS = "\u200b\u200c\u200d\u2060\ufeff"
_DROP_INVISIBLE = str.maketrans("", "", INVISIBLE_CHARS)


def normalise_text(text: str) -> str:
    """Case-, whitespace- and zero-width-insensitive key of a text, for duplicate and conflict detection."""
    return " ".join(text.translate(_DROP_INVISIBLE).casefold().split())


def visible_text(text: str) -> str:
    """The text without surrounding whitespace and invisible characters (what a reader sees)."""
    return text.translate(_DROP_INVISIBLE).strip()
