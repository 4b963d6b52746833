"""The platform's one word tokenizer.

The model's word-match and term-gating features, the spelling corrector, and the feature store's
request-time view `query_item_match` all split text into words with `words`: a word that one of
them sees whole ("5.3", "7-1/4", "usb-c") is whole for the others too.
"""

from __future__ import annotations

import re

# A word of a lowercased text: letters and digits, joined by an inner "." or "-".
WORD = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")


def words(text: object) -> list[str]:
    """The lowercase words of `text`, in order (none for a null or non-text value)."""
    return WORD.findall(text.lower()) if isinstance(text, str) else []


def clean_text(value: object) -> str | None:
    """A usable text, or None for null, NaN and blank values (they embed to the zero vector)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None
