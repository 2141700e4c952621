"""Bounds on the markup of a post body, checked in one linear pass before the HTML parser runs.

nh3's HTML5 parser (html5ever) does work proportional to the stack of open elements for each
tag, to the square of one tag's attributes, and it recreates every formatting element (`<b>`,
`<a>`, ...) left open across a block in each following block: `<dl>` repeated 65,000 times
took 8 s, 30,000 unclosed `<b a=N>` took two minutes. `check_markup` refuses what no newsroom
writes: more than MAX_DEPTH open elements (unclosed ones count), more than MAX_TAGS tags,
more than MAX_ATTRIBUTES attributes on one tag, and formatting elements carried across blocks
more than MAX_REOPENED times in all. Within those bounds the slowest accepted body is sanitized
in tens of milliseconds (bench/sanitize_worst.py prints the figure), and the API validates large
bodies in a worker thread (nh3 releases the GIL), so the event loop never waits for it.

The pass reads tags as the HTML5 tokenizer does and follows the parser's stack of open elements
closely enough never to count less (but for the few elements the parser adds itself, such as
tbody): void elements never stay open, optional end tags (li, p, dd, ...) are closed by their
siblings and by their parent's end tag, a block's end tag closes the formatting elements inside
it and a formatting end tag the ones inside it (which stay active, and count), and any other
end tag that does not close the current element is ignored.
"""

from __future__ import annotations

import itertools
import re

MAX_DEPTH = 64  # a real post nests a handful deep: aside > p > strong > a
MAX_TAGS = 10_000  # a 64 KiB post has a tag every ~30 characters at most: about 2,000
MAX_ATTRIBUTES = 32  # per tag: even a pasted word-processor tag has a handful
MAX_REOPENED = MAX_TAGS  # one formatting element left open for a whole long post is still fine

_VOID = frozenset("area base basefont bgsound br col embed frame hr image img input keygen link meta param source "
                  "track wbr".split())
_FORMATTING = frozenset("a b big code em font i nobr s small strike strong tt u".split())
_IMPLIED_END = frozenset("dd dt li optgroup option p rb rp rt rtc".split())
_CLOSES_P = frozenset("address article aside blockquote center details dialog dir div dl fieldset figcaption figure "
                      "footer header hgroup main menu nav ol p pre search section summary ul h1 h2 h3 h4 h5 h6 li dd "
                      "dt".split())
_CLOSED_BY_SIBLING = {"li": ("li",), "dd": ("dd", "dt"), "dt": ("dd", "dt"), "option": ("option",),
                      "optgroup": ("option",)}
_BLOCK_END = _CLOSES_P | {"button", "listing"}
_PASSED_BY_BLOCK_END = _IMPLIED_END | _FORMATTING
# A tag as the HTML5 tokenizer reads it: a quote starts a value only after `=`, and `>` inside a
# quoted value does not end the tag. Reading it any other way would let a tag hide the next ones.
# (Possessive and atomic: a tag is never read twice.)
_WS = "\\t\\n\\f\\r "
_ATTRIBUTE = rf"""[^{_WS}/>][^{_WS}/>=]*+(?:[{_WS}]*+=[{_WS}]*+(?:"[^"]*+"|'[^']*+'|[^{_WS}>]*+))?+"""
_TAG = re.compile(rf"<(/?)([A-Za-z][^{_WS}/>]*+)((?>[{_WS}/]++|{_ATTRIBUTE})*+)")
_ATTRIBUTES = re.compile(_ATTRIBUTE)


class MarkupTooComplex(ValueError):
    """The body nests too deep or has too many tags or attributes to sanitize in bounded time."""


def check_markup(html: str) -> None:
    """Raise MarkupTooComplex when *html* is beyond the bounds above; linear in its length."""
    scan = _OpenElements()
    for count, tag in enumerate(_TAG.finditer(html), 1):
        if count > MAX_TAGS:
            raise MarkupTooComplex(f"must have at most {MAX_TAGS} tags")
        closing, name, attributes = tag.groups()
        # Each attribute but the last takes two characters or more: a short tag cannot have too many.
        if len(attributes) >= 2 * MAX_ATTRIBUTES and _too_many_attributes(attributes):
            raise MarkupTooComplex(f"must have at most {MAX_ATTRIBUTES} attributes in one tag")
        name = name.lower() if name.isascii() else name  # the parser lowercases ASCII letters only
        if name in _VOID:
            continue
        if closing:
            scan.close(name)
        else:
            scan.open(name)


def _too_many_attributes(attributes: str) -> bool:
    return sum(1 for _ in itertools.islice(_ATTRIBUTES.finditer(attributes), MAX_ATTRIBUTES + 1)) > MAX_ATTRIBUTES


class _OpenElements:
    """The parser's stack of open elements, as counted from the tags alone (never less than the parser's)."""

    __slots__ = ("active", "reopened", "stack")

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.active: list[str] = []  # formatting elements a block closed; the parser recreates them after it
        self.reopened = 0

    def close(self, name: str) -> None:
        self._reopen()
        if self.stack and self.stack[-1] == name:
            self.stack.pop()
        elif name in _BLOCK_END:
            self._close_through(name, _PASSED_BY_BLOCK_END)
        elif name in _FORMATTING and not self._close_through(name, _FORMATTING) and name in self.active:
            self.active.remove(name)  # closed by a block already: the parser forgets it

    def open(self, name: str) -> None:
        self._reopen()
        if name in _CLOSES_P:
            self._close_through("p", _PASSED_BY_BLOCK_END)
        if self.stack and self.stack[-1] in _CLOSED_BY_SIBLING.get(name, ()):
            self.stack.pop()
        self.stack.append(name)
        if len(self.stack) + len(self.active) > MAX_DEPTH:
            raise MarkupTooComplex(f"must not nest elements more than {MAX_DEPTH} deep (unclosed ones count)")

    def _close_through(self, name: str, passed: frozenset[str]) -> bool:
        """Close *name* and what is above it, if only elements in *passed* are; the formatting ones stay active."""
        at = len(self.stack) - 1
        while at >= 0 and self.stack[at] != name and self.stack[at] in passed:
            at -= 1
        if at < 0 or self.stack[at] != name:
            return False
        self.active += [inner for inner in self.stack[at + 1:] if inner in _FORMATTING]
        del self.stack[at:]
        return True

    def _reopen(self) -> None:
        # The parser may recreate every active formatting element before this tag: count them all.
        self.reopened += len(self.active)
        if self.reopened > MAX_REOPENED:
            raise MarkupTooComplex("must close formatting tags such as <b> inside the block that opens them")
