"""The HTML allowlist: what the seed's posts need survives; nothing executable does."""

from __future__ import annotations

import pytest

from server.sanitize import sanitize_html

# Known XSS vectors (OWASP filter-evasion cheat sheet and friends). None may keep a way to run script.
VECTORS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/xss.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="javascript:alert(1)">',
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<iframe src="https://evil.example"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<object data=x.swf></object><embed src=x.swf>",
    '<body onload="alert(1)">',
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<p style="position:fixed;top:0">overlay</p>',
    "<style>@import 'https://evil.example/x.css';</style>",
    '<base href="https://evil.example/">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<form action="https://evil.example"><input name=q><button>go</button></form>',
    '<details open ontoggle=alert(1)>',
    '<video><source onerror="alert(1)"></video>',
    '<a href="#" onclick="alert(1)">x</a>',
    '<p id="login" class="hijack" name="x">clobber</p>',
    "<template><script>alert(1)</script></template>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    "<!--<img src=x onerror=alert(1)>-->",
    '<img src="https://ok.example/a.png" srcset="javascript:alert(1)">',
    "<a href='https://ok.example' target=_blank>t</a>",
    "<<script>script>alert(1)<</script>/script>",
]
DANGEROUS = ["<script", "javascript:", "vbscript:", "data:", "onerror", "onload", "onclick", "ontoggle",
             "<iframe", "<object", "<embed", "<svg", "<math", "<style", "style=", "<base", "<meta", "<link",
             "<form", "<input", "srcdoc", "srcset", "id=", "name=", "hijack", "<template", "<!--", "target="]


@pytest.mark.parametrize("vector", VECTORS)
def test_no_vector_keeps_anything_executable(vector: str) -> None:
    clean = sanitize_html(vector).lower()
    for needle in DANGEROUS:
        assert needle not in clean, (vector, clean)


@pytest.mark.parametrize("vector", VECTORS)
def test_sanitizing_is_idempotent(vector: str) -> None:
    once = sanitize_html(vector)
    assert sanitize_html(once) == once


def test_what_the_seed_posts_need_survives() -> None:
    body = (
        '<figure><img src="/static/demo/a.svg" alt="Shoigu in Pyongyang" width="800" height="450">'
        '<figcaption>Shoigu is welcomed. <span class="credit">KCNA via Reuters</span></figcaption></figure>'
        "<p>He <strong>said</strong> <em>this</em>.</p>"
        '<aside class="context"><p><strong>Some context:</strong> Russia has...</p></aside>'
        "<ul><li><strong>Grain deal:</strong> The UK believes...</li></ul>"
        "<blockquote><p>“Zaporizhzhia front”</p></blockquote>"
        "<h3>Heading</h3><h4>Sub</h4>"
        '<p>Read the full story <a href="https://www.cnn.com/business">here</a>.</p>'
    )
    clean = sanitize_html(body)
    for kept in ['<img src="/static/demo/a.svg" alt="Shoigu in Pyongyang" width="800" height="450">',
                 '<span class="credit">KCNA via Reuters</span>', '<aside class="context">', "<figcaption>",
                 "<ul><li><strong>Grain deal:</strong>", "<blockquote>", "<h3>", "<h4>", "<em>this</em>",
                 '<a href="https://www.cnn.com/business" rel="noopener noreferrer">here</a>']:
        assert kept in clean, kept


def test_text_is_kept_when_markup_is_dropped() -> None:
    assert sanitize_html("<p>Hello <blink>brave</blink> <marquee>new</marquee> world</p>") == \
        "<p>Hello brave new world</p>"


@pytest.mark.parametrize(("src", "kept"), [("https://img.example/a.jpg", True), ("/static/demo/a.svg", True),
                                           ("http://img.example/a.jpg", False), ("//evil.example/a.jpg", False),
                                           ("a.jpg", False), ("/\\evil.example/x.png", False),
                                           ("/&#92;evil.example/x.png", False), ("/\t/evil.example/x.png", False),
                                           ("/&Tab;/evil.example/x.png", False), ("/\n/evil.example/x.png", False),
                                           ("/&#13;/evil.example/x.png", False), ("\\\\evil.example/x.png", False)])
def test_images_load_only_over_https_or_from_this_server(src: str, kept: bool) -> None:
    clean = sanitize_html(f'<img src="{src}" alt="">')
    assert (f'src="{src}"' in clean) if kept else ("src=" not in clean), clean


def test_classes_outside_the_two_hooks_are_dropped() -> None:
    assert sanitize_html('<span class="credit big">c</span>') == '<span class="credit">c</span>'
    assert sanitize_html('<p class="credit">c</p>') == "<p>c</p>"
