"""The load-test tool's several-node options: `--url` repeated names the nodes of one deployment, in order.

One `--url` keeps the configuration (and its JSON) a one-node run always had; the nodes are checked
one by one (loopback, once each), and Nchan, whose writes the tool numbers itself, takes one.
"""

from __future__ import annotations

import pytest

from server.loadtest.cli import build_parser, config_from_args
from server.loadtest.config import ConfigError, LoadConfig

A, B, C = "http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://localhost:8003/prefix"


def config(*argv: str) -> LoadConfig:
    return config_from_args(build_parser().parse_args(list(argv)))


def test_repeated_urls_become_the_nodes_in_order() -> None:
    """The first --url is `url` (the publisher prepares the blog there); every node is a target, in order."""
    nodes = config("--url", A, "--url", B, "--url", C)
    assert nodes.url == A and nodes.urls == (A, B, C)
    assert [target.port for target in nodes.targets] == [8001, 8002, 8003]
    assert nodes.targets[2].prefix == "/prefix"
    assert nodes.public()["urls"] == [A, B, C]
    nodes.validate()


def test_one_url_or_none_is_a_one_node_run_as_before() -> None:
    """Without --url the default node; with one, that node; neither adds anything to the JSON config."""
    assert config().urls == (LoadConfig().url,)
    single = config("--url", A)
    assert single.urls == (A,) and single.more_urls == ()
    public = single.public()
    assert public["url"] == A and "urls" not in public and "more_urls" not in public


@pytest.mark.parametrize(("argv", "message"), [
    (("--url", A, "--url", A), "each node once"),
    (("--url", A, "--url", "http://192.0.2.1:8000"), "not a loopback address"),
    (("--url", A, "--url", "ftp://127.0.0.1:8002"), "expected http://"),
    (("--url", A, "--url", B, "--server", "nchan"), "one --url"),
])
def test_every_node_is_checked(argv: tuple[str, ...], message: str) -> None:
    """A node named twice, a remote one (without --allow-remote), a bad URL, or several Nchans: refused."""
    with pytest.raises(ConfigError, match=message):
        config(*argv).validate()
