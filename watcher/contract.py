"""Facts of the pdfocr.org API contract (see shared/API.md), shared by the client and the sandbox.

Kept in one place so that the client, the config validator and the sandbox can never disagree
about which languages or formats exist or what a safe remote name looks like.
"""

from __future__ import annotations

import re

DEFAULT_ENDPOINT = "https://pdfocr.org/ocrapiv1.html"

LANGUAGES: tuple[str, ...] = (
    "English",
    "French",
    "Spanish",
    "German",
    "Italian",
    "Turkish",
    "Thai",
    "Arabic",
    "Russian",
    "Korean",
    "Japanese",
    "Indonesian",
    "Portuguese",
    "Vietnamese",
    "ChineseSimplified",
    "ChineseTraditional",
)

# The formats the documentation names. It says "and more" without listing them, so anything
# else is refused rather than paid for and failed by the service.
OUTFORMATS: tuple[str, ...] = ("docx", "xlsx", "pptx", "txt", "pdf")

# What the service converts besides PDFs: scans, which it reads by OCR.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
)

# "File names may contain only letters, digits and hyphens (plus the extension)."
REMOTE_NAME_RE = re.compile(r"^[A-Za-z0-9-]+\.[A-Za-z0-9]+$")

# Price per page by pack size (pages, dollars), for spend estimates.
PRICE_TABLE: tuple[tuple[int, int], ...] = (
    (1_000, 40),
    (3_000, 80),
    (5_000, 100),
    (10_000, 150),
    (30_000, 300),
    (50_000, 400),
)


def estimated_cost(pages: int) -> tuple[float, float]:
    """What `pages` cost in dollars at the cheapest and the dearest per-page price of the
    packs: which pack the user bought is not known here."""
    prices = [dollars / size for size, dollars in PRICE_TABLE]
    return pages * min(prices), pages * max(prices)


def canonical_language(value: str) -> str | None:
    """The documented spelling of a language given in any case, or None if it is not one."""
    folded = value.strip().casefold()
    for language in LANGUAGES:
        if language.casefold() == folded:
            return language
    return None
