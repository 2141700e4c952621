"""The model's validation and time format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from server.model import BlogCreate, BlogUpdate, PostCreate, PostUpdate, format_time, utc_now


def test_times_are_rfc3339_utc_with_z() -> None:
    assert format_time(datetime(2023, 7, 27, 4, 43, tzinfo=UTC)) == "2023-07-27T04:43:00Z"
    assert format_time(datetime(2023, 7, 27, 4, 43, 0, 123456, tzinfo=UTC)) == "2023-07-27T04:43:00.123Z"
    assert format_time(datetime(2023, 7, 27, 0, 43, tzinfo=timezone(timedelta(hours=-4)))) == "2023-07-27T04:43:00Z"
    assert utc_now().microsecond % 1000 == 0


def test_post_times_are_converted_to_utc_milliseconds() -> None:
    post = PostCreate.model_validate({"headline": "x", "published_at": "2023-07-26T06:34:00.1234567-04:00"})
    assert post.published_at == datetime(2023, 7, 26, 10, 34, 0, 123000, tzinfo=UTC)


def test_plain_text_is_stripped_and_nfc_normalized() -> None:
    post = PostCreate.model_validate({"headline": "  Cafe\u0301 opens  "})
    assert post.headline == "Caf\u00e9 opens"


def test_patches_report_only_the_fields_sent() -> None:
    assert PostUpdate.model_validate({"pinned": True}).changes() == {"pinned": True}
    assert BlogUpdate.model_validate({"status": "ended"}).changes() == {"status": "ended"}


@pytest.mark.parametrize("model", [PostUpdate, BlogUpdate])
def test_an_empty_patch_is_invalid(model: type[PostUpdate] | type[BlogUpdate]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate({})


def test_the_body_limit_applies_after_sanitizing() -> None:
    scripts = "<script>" + "x" * 100_000 + "</script>"
    assert PostCreate.model_validate({"headline": "x", "body": scripts[:200_000]}).body == ""
    with pytest.raises(ValidationError):
        PostCreate.model_validate({"headline": "x", "body": "<p>" + "y" * (64 * 1024) + "</p>"})


@pytest.mark.parametrize("slug", ["a", "russia-ukraine-2023-07-26", "0" * 64])
def test_slugs(slug: str) -> None:
    BlogCreate.model_validate({"id": slug, "title": "x"})


@pytest.mark.parametrize("slug", ["", "-a", "A", "a_b", "a b", "é", "a" * 65])
def test_bad_slugs(slug: str) -> None:
    with pytest.raises(ValidationError):
        BlogCreate.model_validate({"id": slug, "title": "x"})
