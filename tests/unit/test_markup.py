"""The pre-scan that bounds the sanitizer's work: what a newsroom writes passes, pathological markup does not."""

from __future__ import annotations

import pytest

from server.markup import MAX_ATTRIBUTES, MAX_DEPTH, MAX_TAGS, MarkupTooComplex, check_markup


@pytest.mark.parametrize("html", [
    "",
    "plain text with a < b and <3",
    "<p>One<p>Two<p>Three",  # unclosed paragraphs close each other
    "<ul>" + "<li>item" * 500 + "</ul>",
    "<dl>" + "<dt>term<dd>definition" * 300 + "</dl>",
    "<p><b>bold</p>more" * 20,  # a sloppy misnesting, now and then (each one nests the rest deeper)
    "<b><i>x</b></i>" * 500,
    "<blockquote>" * (MAX_DEPTH - 1) + "deep" + "</blockquote>" * (MAX_DEPTH - 1),
    "<br><img src=/a.png><hr>" * 1000,  # void elements never stay open
    f"<span{''.join(f' a{i}' for i in range(MAX_ATTRIBUTES))}>x</span>",
    '<a title="x > y <dl><dl>" href="/a">link</a>' * 100,  # a quoted `>` does not end the tag
], ids=["empty", "text", "unclosed_p", "unclosed_li", "unclosed_dd", "p_b_misnest", "b_i_misnest", "deep",
        "void", "attributes", "quoted"])
def test_what_a_newsroom_writes_passes(html: str) -> None:
    check_markup(html)


@pytest.mark.parametrize(("html", "reason"), [
    ("<dl>" * 65500, "deep"),
    ("<div>" * (MAX_DEPTH + 1), "deep"),
    ("<span><p></span>" * 40, "deep"),  # an end tag the parser ignores does not close anything
    ("<b>" * (MAX_DEPTH + 1), "deep"),
    ('<b ="><dl>' + "<dl>" * MAX_DEPTH + '">', "deep"),  # `=` starts a name here, not a value: no quote
    ("<b></b>" * (MAX_TAGS // 2 + 1), "tags"),
    (f"<b{''.join(f' a{i}' for i in range(MAX_ATTRIBUTES + 1))}>", "attributes"),
    (f"<b{''.join(f' a{i}=x' for i in range(20_000))}>", "attributes"),
    ("<div>" + "<b>" * 62 + "</div>" + "<p>x</p>" * 100, "formatting"),  # recreated in every block
], ids=["dl_65500", "div_65", "ignored_end_tags", "unclosed_b", "not_a_quote", "tags", "attributes_33",
        "attributes_20000", "carried_formatting"])
def test_pathological_markup_is_refused(html: str, reason: str) -> None:
    with pytest.raises(MarkupTooComplex, match=reason):
        check_markup(html)
