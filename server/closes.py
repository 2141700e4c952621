"""Every WebSocket close code livepush sends, and what the reader should do about each.

One table for the server (hub, streams, drain, relay), the widget (client_demo/lib/connection.js
keeps the same three sets; tests/unit/test_closes.py checks them against `ACTIONS`) and
docs/PROTOCOL.md. As in centrifuge's disconnect table, the code alone tells a client whether to
come back: at once (a restart), after a backoff (try later), or never (fix the request).
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Action(Enum):
    """What a client does after a close."""

    RECONNECT_NOW = "reconnect now"  # after a short random delay, with since+epoch
    RECONNECT_LATER = "reconnect later"  # with backoff and jitter, with since+epoch
    NEVER = "do not reconnect"  # the same request gets the same answer: fix it


class Close(IntEnum):
    """The close codes of the stream protocol."""

    NORMAL = 1000  # the reader left (recorded on the reader; the server never sends it)
    UNSUPPORTED_DATA = 1003  # a binary message: this stream takes none
    GONE = 1006  # never sent: recorded on a reader whose connection dropped (and what the client sees then)
    INVALID_DATA = 1007  # text that is not UTF-8
    POLICY = 1008  # origin not allowed, malformed since/epoch/conflate, a flood of messages
    TOO_BIG = 1009  # sent by the WebSocket library: a message over the size limit
    RESTARTING = 1012  # the process is draining for a restart
    TRY_LATER = 1013  # fell behind, history changed, a stream cap, storage unavailable
    UNKNOWN_BLOG = 4404  # no such blog


ACTIONS: dict[Close, Action] = {
    Close.NORMAL: Action.RECONNECT_LATER,  # the server never closes a reader normally: a proxy did
    Close.UNSUPPORTED_DATA: Action.NEVER,
    Close.GONE: Action.RECONNECT_LATER,
    Close.INVALID_DATA: Action.NEVER,
    Close.POLICY: Action.NEVER,
    Close.TOO_BIG: Action.NEVER,
    Close.RESTARTING: Action.RECONNECT_NOW,
    Close.TRY_LATER: Action.RECONNECT_LATER,
    Close.UNKNOWN_BLOG: Action.NEVER,
}


def action(code: int) -> Action:
    """What a client does after *code*; a code not in the table (a proxy's, say) means try later."""
    try:
        return ACTIONS[Close(code)]
    except ValueError:
        return Action.RECONNECT_LATER
