"""The self-contained HTML report: one file, inline CSS and SVG, nothing fetched when opened."""

from __future__ import annotations

import math
from html import escape

from server.loadtest.console import arrivals_line, ms
from server.loadtest.summary import Percentiles, Summary
from server.loadtest.svg import PALETTE, Band, Chart, Series, render

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #0f172a; margin: 24px auto; max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.verdict { padding: 10px 14px; border-radius: 6px; font-weight: 600; margin: 14px 0; }
.ok { background: #dcfce7; color: #166534; } .bad { background: #fee2e2; color: #991b1b; }
.warn { background: #fef9c3; color: #854d0e; padding: 6px 14px; border-radius: 6px; margin: 6px 0; }
table { border-collapse: collapse; margin: 6px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #e2e8f0; }
th { text-align: left; font-weight: 600; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; }
.card { background: #f8fafc; border: 1px solid #e2e8f0; border-radius: 6px; padding: 8px 12px; }
.card b { display: block; font-size: 20px; } .card span { color: #475569; font-size: 12px; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 8px 0 18px; }
code, pre { font: 12px ui-monospace, monospace; } pre { background: #f8fafc; padding: 8px; overflow-x: auto; }
.muted { color: #64748b; } td.fail { color: #b91c1c; font-weight: 600; }
"""

PERCENTILE_TICKS = ((0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%"), (5.0, "99.999%"))


def render_report(summary: Summary) -> str:
    """The whole report as one HTML document."""
    config = summary.config
    title = f"livepush loadtest: {config['readers']:,} readers, {config['transport']}, {summary.started_at}"
    verdict = ('<div class="verdict ok">Healthy: no event lost, duplicated or reordered</div>' if summary.healthy
               else f'<div class="verdict bad">Unhealthy: {escape("; ".join(summary.problems))}</div>')
    warnings = "".join(f'<div class="warn">{escape(w)}</div>' for w in summary.warnings)
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>livepush loadtest</h1><div class='muted'>{escape(', '.join(config.get('urls', [config['url']])))} · blog "
        f"<code>{escape(config['blog'])}</code> · started {escape(summary.started_at)} · "
        f"{summary.wall_seconds:.1f} s</div>",
        verdict, warnings, _cards(summary),
        "<h2>Latency</h2>", _percentile_table(summary),
        render(_latency_chart(summary)), render(_last_reader_chart(summary)), render(_latency_over_time(summary)),
        "<h2>Connections and deliveries</h2>",
        render(_connected_chart(summary)), render(_churn_chart(summary)), render(_deliveries_chart(summary)),
        render(_cpu_chart(summary)),
        _arrivals_section(summary),
        "<h2>Correctness</h2>", _checks_table(summary),
        "<h2>Counts</h2>", _counts_table(summary),
        "<h2>Configuration</h2>", _config_table(summary),
    ]
    if summary.error_samples:
        parts.append("<h2>Error samples</h2><pre>" + escape("\n".join(summary.error_samples)) + "</pre>")
    parts.append(_posts_table(summary))
    parts.append("</body></html>")
    return "\n".join(parts)


def _cards(summary: Summary) -> str:
    cpu = summary.cpu
    cards = [
        (f"{summary.started:,}", f"readers served (peak {summary.peak_connected:,} connected at once)"),
        (f"{summary.publisher.acknowledged:,}", f"posts acknowledged at {summary.config['publish_rate']}/s"),
        (f"{summary.deliveries_per_second:,.0f}/s", f"deliveries while publishing (peak "
                                                    f"{summary.peak_deliveries_per_second:,}/s)"),
        (ms(summary.latency.p50), "publish → receive p50"),
        (ms(summary.latency.p99), "publish → receive p99"),
        (ms(summary.time_to_last_reader.p99), "time to last reader p99 (per post)"),
        ("-" if summary.all_served_after is None else f"{summary.all_served_after:.2f} s",
         f"until every reader had its snapshot (ramp {summary.ramp_end:g} s)"),
        (f"{cpu.total:.1f} s / {cpu.wall:.1f} s", f"tool CPU / wall ({cpu.cores:.2f} cores, "
                                                  f"busiest worker {cpu.peak_worker_percent:.0f}%)"),
    ]
    return '<div class="grid">' + "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>'
                                          for v, k in cards) + "</div>"


def _percentile_table(summary: Summary) -> str:
    rows = [("publish → receive (every live delivery)", summary.latency),
            ("time to last reader (per post)", summary.time_to_last_reader),
            ("POST round trip (publisher)", summary.publisher.latency),
            ("connect + handshake (every connection)", summary.handshake)]
    if summary.arrivals is not None:
        rows += [("arrivals: page request", summary.arrivals.page),
                 ("arrivals: time to interactive", summary.arrivals.time_to_interactive)]
    head = "".join(f"<th>{h}</th>" for h in ("", "count", "p50", "p90", "p99", "p99.9", "max", "mean"))
    body = "".join(f"<tr><th>{escape(name)}</th>{_percentile_cells(p)}</tr>" for name, p in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _arrivals_section(summary: Summary) -> str:
    if summary.arrivals is None:
        return ""
    return f"<h2>Arrivals</h2><p>{escape(arrivals_line(summary.arrivals))}</p>"


def _percentile_cells(p: Percentiles) -> str:
    values = (f"{p.count:,}", ms(p.p50), ms(p.p90), ms(p.p99), ms(p.p999), ms(p.max), ms(p.mean))
    return "".join(f'<td class="n">{escape(v)}</td>' for v in values)


def _bands(summary: Summary) -> list[Band]:
    end = _x_range(summary)[1]
    return [Band(0, summary.ramp_end, "ramp"), Band(summary.ramp_end, summary.publish_start, "", "#e2e8f0"),
            Band(summary.publish_start, summary.publish_end, "publishing", "#ffffff"),
            Band(summary.publish_end, end, "drain")]


def _x_range(summary: Summary) -> tuple[float, float]:
    return 0.0, float(max(summary.wall_seconds, summary.publish_end, len(summary.series), 1.0))


def _latency_chart(summary: Summary) -> Chart:
    points = [(-math.log10(max(1e-5, 1 - p / 100)), value) for p, value in summary.latency_curve]
    return Chart("Publish → receive latency by percentile (all live deliveries)", "percentile", "ms",
                 [Series("latency", points, PALETTE[0])], x_ticks=PERCENTILE_TICKS,
                 x_range=(0.0, max(5.0, max((x for x, _ in points), default=0.0))))


def _last_reader_chart(summary: Summary) -> Chart:
    points = [(p.sent_at, p.last_reader_ms) for p in summary.posts if p.last_reader_ms is not None]
    publish = [(p.sent_at, p.publish_ms) for p in summary.posts]
    return Chart("Time to last reader, per post", "seconds since start (when the post was sent)", "ms",
                 [Series("last reader", points, PALETTE[1], "dots"), Series("POST round trip", publish, PALETTE[0],
                                                                            "dots")],
                 bands=_bands(summary), x_range=_x_range(summary))


def _latency_over_time(summary: Summary) -> Chart:
    p50 = [(s.t + 0.5, s.p50_ms) for s in summary.series if s.p50_ms is not None]
    p99 = [(s.t + 0.5, s.p99_ms) for s in summary.series if s.p99_ms is not None]
    return Chart("Publish → receive latency per second", "seconds since start", "ms",
                 [Series("p50", p50, PALETTE[0]), Series("p99", p99, PALETTE[1])],
                 bands=_bands(summary), x_range=_x_range(summary))


def _connected_chart(summary: Summary) -> Chart:
    points = [(s.t + 1.0, float(s.connected)) for s in summary.series]
    return Chart("Connected readers", "seconds since start", "readers",
                 [Series("connected", [(0.0, 0.0), *points], PALETTE[2])], bands=_bands(summary),
                 x_range=_x_range(summary))


def _churn_chart(summary: Summary) -> Chart:
    connects = [(s.t + 0.5, float(s.connects)) for s in summary.series]
    disconnects = [(s.t + 0.5, float(s.disconnects)) for s in summary.series]
    evicted = [(s.t + 0.5, float(s.evicted)) for s in summary.series]
    return Chart("Connects and disconnects per second", "seconds since start", "per second",
                 [Series("connects", connects, PALETTE[2]), Series("disconnects", disconnects, PALETTE[4]),
                  Series("1013 (slow)", evicted, PALETTE[3])], bands=_bands(summary), x_range=_x_range(summary))


def _deliveries_chart(summary: Summary) -> Chart:
    deliveries = [(s.t + 0.5, float(s.deliveries)) for s in summary.series]
    return Chart("Deliveries per second (events received by all readers)", "seconds since start", "per second",
                 [Series("deliveries", deliveries, PALETTE[0], "bars")], bands=_bands(summary),
                 x_range=_x_range(summary))


def _cpu_chart(summary: Summary) -> Chart:
    cpu = [(s.t + 0.5, s.cpu_percent) for s in summary.series]
    return Chart(f"Load-test tool CPU ({summary.cpu.processes} processes; 100% = one core)", "seconds since start",
                 "% of a core", [Series("tool CPU", cpu, PALETTE[5])], bands=_bands(summary),
                 x_range=_x_range(summary))


def _checks_table(summary: Summary) -> str:
    checks = summary.checks
    rows = [
        ("steady readers (connected throughout)", checks.steady_readers, False),
        ("lost (steady reader × acknowledged post never received)", checks.lost, True),
        ("posts missed by at least one steady reader", checks.lost_posts, True),
        ("duplicated", checks.duplicated, True), ("reordered", checks.reordered, True),
        ("gaps", checks.gaps, True), ("resumed behind an earlier position", checks.regressions, True),
        ("resumes served by a snapshot (history too short)", checks.resume_snapshots, False),
        ("epoch changes", checks.epoch_changes, False),
    ]
    if summary.arrivals is not None:
        rows += [("arrivals checked (connected to the end)", summary.arrivals.checked, False),
                 ("arrivals that raced a post (replayed between page and stream)", summary.arrivals.raced, False),
                 ("missed by an arrival (acknowledged after its page, never received)", summary.arrivals.missed, True)]
    body = "".join(f'<tr><th>{escape(name)}</th><td class="n{" fail" if must and value else ""}">{value:,}</td></tr>'
                   for name, value, must in rows)
    return f"<table>{body}</table>"


def _counts_table(summary: Summary) -> str:
    rows = list(summary.counts.items()) + [(f"POST {status}", count)
                                          for status, count in summary.publisher.statuses.items()]
    body = "".join(f'<tr><th>{escape(name)}</th><td class="n">{value:,}</td></tr>' for name, value in rows)
    return f"<table>{body}</table>"


def _config_table(summary: Summary) -> str:
    cpu = summary.cpu
    rows = [(k, str(v)) for k, v in summary.config.items()] + [
        ("event loop", cpu.loop), ("processes (workers + coordinator)", str(cpu.processes)),
        ("largest worker's peak memory", f"{cpu.worker_peak_rss_mib:.0f} MiB"),
        ("blog seq / epoch at start", f"{summary.blog_seq_at_start} / {summary.blog_epoch}")]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _posts_table(summary: Summary) -> str:
    if not summary.posts:
        return ""
    head = "".join(f"<th>{h}</th>" for h in ("seq", "write", "kind", "sent at", "request", "last reader",
                                             "live receivers"))
    body = "".join(f'<tr><td class="n">{p.seq}</td><td class="n">{p.number}</td><td>{escape(p.kind)}</td>'
                   f'<td class="n">{p.sent_at:.3f} s</td>'
                   f'<td class="n">{ms(p.publish_ms)}</td><td class="n">{ms(p.last_reader_ms)}</td>'
                   f'<td class="n">{p.receivers:,}</td></tr>' for p in summary.posts)
    return (f"<details><summary><b>Per write ({len(summary.posts):,})</b></summary>"
            f"<table><tr>{head}</tr>{body}</table></details>")
