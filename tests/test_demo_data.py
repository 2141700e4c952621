"""Sanity checks for the bundled demo live blog (server/demo/russia-ukraine-2023-07-26.json)."""

import json
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "server" / "demo"
DEMO_JSON = DEMO_DIR / "russia-ukraine-2023-07-26.json"
IMAGES_DIR = DEMO_DIR / "images"

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

EXPECTED_IMAGES = [
    "shoigu-pyongyang.svg",
    "wagner-center-st-petersburg.svg",
    "carlsberg-pint-copenhagen.svg",
    "trevor-reed-moscow-court.svg",
]

# Headlines in page order, exactly as on the page (the Wagner one has
# non-breaking spaces in the source text).
EXPECTED_HEADLINES = [
    "Russia, North Korea defense ministries to strengthen ties after Pyongyang talks",
    "Ukraine denies losses in northeastern part of country",
    "Ukraine launches major offensive south of Orikhiv, Russian officials and military"
    " bloggers claim, while Kyiv remains silent",
    "UK government heavily criticized in report for underestimating Wagner Group",
    "Why so many Western firms are staying put in Russia",
    "Ukraine says it made advances in the south and east. Here's what you need to know",
    "Trevor Reed's fighting in Ukraine shouldn't affect negotiations to free other"
    " Americans, Blinken says",
    "2 children killed in cluster shelling in eastern Ukraine, military official says",
    "US officials raise alarm over Russia's drone partnership with Iran",
]

ALLOWED_ATTRS = {
    "p": set(), "strong": set(), "em": set(), "ul": set(), "li": set(),
    "blockquote": set(), "figure": set(), "figcaption": set(),
    "a": {"href"}, "img": {"src", "alt", "width", "height"},
    "span": {"class"}, "aside": {"class"},
}


def load() -> Any:
    with DEMO_JSON.open(encoding="utf-8") as fh:
        return json.load(fh)


def test_nine_posts() -> None:
    assert len(load()["posts"]) == 9


def test_ids_unique_and_slug_shaped() -> None:
    ids = [p["id"] for p in load()["posts"]]
    assert len(ids) == len(set(ids))
    for pid in ids:
        assert SLUG_RE.match(pid), pid


def test_timestamps_are_utc_and_parse() -> None:
    data = load()
    for post in data["posts"]:
        for key in ("published_at", "updated_at"):
            value = post[key]
            assert value.endswith("Z"), (post["id"], key, value)
            datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
        assert post["updated_at"] == post["published_at"]
    assert data["blog"]["updated_at"] == "2023-07-27T04:43:00Z"


def test_images_exist_and_are_referenced() -> None:
    bodies = "".join(p["body"] for p in load()["posts"])
    referenced = set(re.findall(r'src="/static/demo/([^"]+)"', bodies))
    assert referenced == set(EXPECTED_IMAGES)
    for name in EXPECTED_IMAGES:
        path = IMAGES_DIR / name
        assert path.is_file(), path
        assert path.stat().st_size < 2048, path


@pytest.mark.parametrize("needle", ["<script", "style=", "http://"])
def test_bodies_have_no_unsafe_markup(needle: str) -> None:
    for post in load()["posts"]:
        assert needle not in post["body"].lower(), (post["id"], needle)


def test_bodies_have_no_event_handler_attributes() -> None:
    # " on" is ordinary prose ("on Tuesday", also inside alt text), so check
    # the parsed attribute names rather than the raw string.
    class Checker(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            for name, _ in attrs:
                assert not name.lower().startswith("on"), (tag, name)

    for post in load()["posts"]:
        Checker().feed(post["body"])


def test_bodies_use_only_allowed_tags_and_attributes() -> None:
    class Checker(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            assert tag in ALLOWED_ATTRS, tag
            for name, value in attrs:
                assert name in ALLOWED_ATTRS[tag], (tag, name)
                assert value is not None
                if tag == "a":
                    assert value.startswith("https://"), value
                if tag == "span":
                    assert value == "credit", value
                if tag == "aside":
                    assert value == "context", value

    for post in load()["posts"]:
        Checker().feed(post["body"])


def test_headlines_match_page() -> None:
    assert [p["headline"] for p in load()["posts"]] == EXPECTED_HEADLINES
