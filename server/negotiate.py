"""Request headers a cached response depends on: `Accept-Encoding` and `If-None-Match`.

Both are read on the hit path, so both are cheap and total: any value, however malformed, gives
an answer (identity, or "no match") and never an exception. A browser sends the same
Accept-Encoding on every request, so the choice is remembered per distinct header value (in a
small table that is emptied when full, so forged values cannot grow it).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

CODINGS: Final = ("br", "gzip")
"""Content codings offered, most preferred first (brotli is smaller than gzip on HTML)."""
_MEMO_SIZE: Final = 256
_memo: dict[bytes, str] = {}


def choose_coding(accept_encoding: bytes | None) -> str:
    """The coding to send for this Accept-Encoding value: "br", "gzip" or "identity"."""
    if not accept_encoding:
        return "identity"
    chosen = _memo.get(accept_encoding)
    if chosen is None:
        chosen = _choose(accept_encoding)
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[accept_encoding] = chosen
    return chosen


def _choose(value: bytes) -> str:
    weights: dict[str, float] = {}
    for item in value.decode("latin-1").lower().split(","):
        name, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key == "q":
                weight = _quality(number)
        weights.setdefault(name.strip(), weight)
    star = weights.get("*", 0.0)
    offered = [(weights.get(coding, star), -rank, coding) for rank, coding in enumerate(CODINGS)]
    best = max(offered)
    return best[2] if best[0] > 0 else "identity"


def _quality(text: str) -> float:
    """An RFC 9110 qvalue ("0" .. "1" with up to three decimals); anything else counts as 0 (not acceptable)."""
    text = text.strip()
    if not text or len(text) > 5 or text[0] not in "01" or not all(c.isdigit() or c == "." for c in text):
        return 0.0
    try:
        number = float(text)
    except ValueError:
        return 0.0
    return number if 0.0 <= number <= 1.0 else 0.0


def none_match(if_none_match: bytes, tags: Collection[bytes]) -> bool:
    """True when *if_none_match* names one of *tags* (or is "*"): the client's copy is current.

    Comparison is weak, as RFC 9110 wants for If-None-Match: `W/"x"` matches `"x"`.
    """
    for item in if_none_match.split(b","):
        tag = item.strip()
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag in tags or tag == b"*":
            return True
    return False
