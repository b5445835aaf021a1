"""Masking personal data in example text: e-mail addresses, phone numbers and payment card numbers.

Each match is replaced by a placeholder (``[EMAIL]``, ``[PHONE]``,
``[CARD]``) and counted per kind. Card numbers are masked only when their
digits pass the Luhn check, so order numbers and the like survive. Phone
numbers are recognised in the usual written shapes (an international
``+CC`` prefix, a bracketed area code, or ``ddd-ddd-dddd``) to leave dates,
amounts and IDs alone. This is a safety net before data leaves the premises,
not a guarantee: review data that must be free of personal information.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PII_KINDS: tuple[str, ...] = ("email", "phone", "card")
PLACEHOLDERS: dict[str, str] = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]"}

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # +44 20 7946 0958
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}"  # (415) 555-0132
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 415-555-0132
    r")(?!\w)"
)


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


@dataclass
class PiiCounts:
    """How many matches of each kind were masked."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PII_KINDS, 0))

    @property
    def total(self) -> int:
        """All masked matches."""
        return sum(self.counts.values())


def mask_pii(text: str, counts: PiiCounts) -> str:
    """``text`` with e-mails, phone numbers and Luhn-valid card numbers replaced; ``counts`` updated."""
    tally = counts.counts
    if "@" in text:
        text, found = _EMAIL.subn(PLACEHOLDERS["email"], text)
        tally["email"] += found

    def card(match: re.Match[str]) -> str:
        digits = match.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            tally["card"] += 1
            return PLACEHOLDERS["card"]
        return match.group()

    def phone(match: re.Match[str]) -> str:
        digits = sum(c.isdigit() for c in match.group())
        if 7 <= digits <= 15:
            tally["phone"] += 1
            return PLACEHOLDERS["phone"]
        return match.group()

    text = _CARD.sub(card, text)
    return _PHONE.sub(phone, text)
