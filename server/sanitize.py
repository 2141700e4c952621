"""The HTML allowlist for post bodies (nh3, i.e. ammonia).

Keeps what a live-blog post needs (paragraphs, emphasis, links, lists, quotes, headings,
figures with caption and credit, "Some context:" boxes) and nothing that can execute:
no script, no event handlers, no style, no ids, no `javascript:`/`data:` URLs. Sanitizing is
idempotent (`sanitize_html(sanitize_html(x)) == sanitize_html(x)`), so re-saving a post
never changes it.

Sanitizing refuses (MarkupTooComplex, a ValueError) markup beyond the bounds of
`server.markup.check_markup` before nh3 parses it: nh3's HTML5 parser is quadratic on deep
nesting.
"""

from __future__ import annotations

import re

import nh3

from server.markup import check_markup

TAGS = {
    "p", "br", "hr", "strong", "b", "em", "i", "u", "s", "small", "sub", "sup", "mark", "abbr",
    "blockquote", "q", "cite", "code", "pre",
    "ul", "ol", "li",
    "h3", "h4",
    "a", "figure", "figcaption", "img", "span", "aside",
}
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "abbr": {"title"},
    "ol": {"start"},
}
# Classes are the only styling hooks a post may carry: the credit inside a caption and the
# context box. Free-form class/id would let a post restyle or clobber the host page.
CLASSES = {"span": {"credit"}, "aside": {"context"}}
CONTENT_DROPPED = {"script", "style", "template", "iframe", "object", "embed", "noscript", "svg", "math"}
LINK_SCHEMES = {"http", "https", "mailto"}
_SIZE = re.compile(r"^[0-9]{1,4}$")
_URL_CONFUSABLE = re.compile(r"[\x00-\x1f\x7f\\]")

_cleaner = None


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src":
        # Images load without a click: only https, or a path on this server ("/..." but not "//host").
        # Browsers drop tabs and line breaks from URLs and read "\" as "/", so "/\evil.example" and
        # "/<tab>/evil.example" are "//evil.example": no such character may pass the check.
        if _URL_CONFUSABLE.search(value):
            return None
        if value.startswith("https://") or (value.startswith("/") and not value.startswith("//")):
            return value
        return None
    if attribute in ("width", "height", "start"):
        return value if _SIZE.match(value) else None
    return value


def sanitize_html(html: str) -> str:
    """Return *html* reduced to the allowlist; text content is kept, markup outside it is dropped.

    Raises MarkupTooComplex (a ValueError) for markup beyond the bounds of `server.markup.check_markup`.
    """
    global _cleaner
    check_markup(html)
    if _cleaner is None:
        _cleaner = nh3.Cleaner(
            tags=TAGS,
            clean_content_tags=CONTENT_DROPPED,
            attributes=ATTRIBUTES,
            allowed_classes=CLASSES,
            attribute_filter=_keep_attribute,
            url_schemes=LINK_SCHEMES,
            link_rel="noopener noreferrer",
            tag_attribute_values={"img": {"loading": {"lazy"}}},
            strip_comments=True,
        )
    return _cleaner.clean(html).strip()

