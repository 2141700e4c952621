"""The close-code table (server.closes) is complete, and the widget acts on each code as it says."""

from __future__ import annotations

import re
from pathlib import Path

from server.closes import ACTIONS, Action, Close, action

CONNECTION_JS = Path(__file__).resolve().parents[2] / "client_demo" / "lib" / "connection.js"


def _js_constant(name: str) -> str:
    found = re.search(rf"^const {name} = (.+?);", CONNECTION_JS.read_text(), re.MULTILINE)
    assert found is not None, f"connection.js has no {name}"
    return found.group(1)


def test_every_close_code_has_an_action() -> None:
    assert set(ACTIONS) == set(Close)


def test_the_widget_gives_up_exactly_on_the_codes_that_mean_never() -> None:
    final = {int(code) for code in re.findall(r"\d+", _js_constant("FINAL_CODES"))}
    assert final == {code for code, what in ACTIONS.items() if what is Action.NEVER}


def test_the_widget_reconnects_at_once_only_after_a_restart_and_backs_off_after_try_later() -> None:
    assert [code for code, what in ACTIONS.items() if what is Action.RECONNECT_NOW] == [Close.RESTARTING]
    assert int(_js_constant("RESTARTING")) == Close.RESTARTING
    assert int(_js_constant("TRY_LATER")) == Close.TRY_LATER
    assert action(Close.TRY_LATER) is Action.RECONNECT_LATER


def test_a_code_nobody_listed_means_try_later() -> None:
    """A proxy's or a library's code the table does not know is retried with backoff, never given up on."""
    assert action(1011) is Action.RECONNECT_LATER
    assert action(4999) is Action.RECONNECT_LATER
