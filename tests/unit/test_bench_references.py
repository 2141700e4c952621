"""bench.references' table and wrk parsing work on today's results: a page without an ETag is a row that says so."""

from __future__ import annotations

from typing import Any

from bench.references import NGINX_CONF, WRK_ERRORS, WRK_LATENCY, WRK_RATE, markdown, ratio, versus

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:40000/blogs/bench
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.12ms    1.20ms  30.00ms   90.00%
  Latency Distribution
     50%    4.98ms
     75%    5.50ms
     90%    6.10ms
     99%  812.00us
  100000 requests in 8.00s, 2.60GB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  12500.25
Transfer/sec:    332.10MB
"""


def wrk_figures(per_core: float) -> dict[str, Any]:
    return {"requests_per_s": per_core / 2, "server_cores": 0.5, "per_core": per_core}


def test_wrk_output_is_read() -> None:
    rate = WRK_RATE.search(WRK_OUTPUT)
    errors = WRK_ERRORS.search(WRK_OUTPUT)
    assert rate is not None and float(rate.group(1)) == 12500.25
    assert errors is not None and sum(int(x) for x in errors.groups()) == 3
    assert [(m.group(1), m.group(2), m.group(3)) for m in WRK_LATENCY.finditer(WRK_OUTPUT)] == [
        ("50", "4.98", "ms"), ("99", "812.00", "us")]


def test_the_table_shows_no_etag_and_ratios_to_the_same_runs_reference() -> None:
    report: dict[str, Any] = {"rows": {
        "pages": {"cached": {"livepush": wrk_figures(500.0), "nginx": wrk_figures(40000.0), "ratio_per_core": 0.0125},
                  "304": {"livepush": "no ETag", "nginx": wrk_figures(42000.0)},
                  "live": {"livepush": wrk_figures(450.0), "nginx": "the cached row's figure",
                           "ratio_per_core": 0.011}},
        "handshakes": {"livepush": {"handshakes_per_s": 400.0, "server_cpu_per_handshake_us": 500.0,
                                    "all_served_s": 12.0, "rss_per_reader_kib": 16.0},
                       "nchan": {"handshakes_per_s": 800.0, "server_cpu_per_handshake_us": 100.0,
                                 "all_served_s": 6.0, "rss_per_reader_kib": 10.0}},
        "storm": {"error": "RuntimeError('nginx did not start')"},
    }}
    table = markdown(report)
    assert "| pages/s per core, 304 | no ETag | 42,000 (Nginx static) | - |" in table
    assert "| pages/s per core, cached (200) | 500 | 40,000 (Nginx static) | 0.0125 |" in table
    assert "| server CPU per handshake, 5 000 connecting at once | 500 µs | 100 µs (Nchan) | 5 |" in table
    assert "10 000" not in table  # a row that failed is left out, not shown as zeros
    assert versus(report["rows"]["handshakes"], "all_served_s") == 2.0
    assert ratio(None, 3.0) is None and ratio(1.0, 0.0) is None


def test_nginx_listens_on_loopback_only_with_one_worker() -> None:
    conf = NGINX_CONF.format(module="/m.so", tmp="/t", port=1234, blog="bench")
    assert "listen 127.0.0.1:1234" in conf and "worker_processes 1;" in conf
    assert conf.count("listen ") == 1
