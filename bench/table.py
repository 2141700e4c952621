"""The benchmark table: measured columns, ratios to the baseline of the same run, the issue's references and targets.

Each row reads one figure per variant out of the run's results. A ratio is livepush's figure
divided by the baseline's (same engine kind: memory to memory, Redis to Redis), so below 1 is
better for costs and times and above 1 for throughput. A target that is missed says by how much.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Results = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    label: str
    unit: str
    read: Callable[[Results], float | None]
    target: float | None
    lower_is_better: bool
    references: tuple[str, str, str, str]  # Nchan (C), Node ws + Redis, Socket.IO + Redis, naive Python
    note: Callable[[Results], str] = lambda _: ""


def _get(results: Results, *path: Any) -> Any:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _cpu(readers: int) -> Callable[[Results], float | None]:
    return lambda r: _get(r, "publish", str(readers), "server_cpu_per_delivery_us")


def _memory(readers: int) -> Callable[[Results], float | None]:
    return lambda r: _get(r, "idle", str(readers), "rss_per_reader_kib")


def _served(readers: int) -> Callable[[Results], float | None]:
    return lambda r: _get(r, "idle", str(readers), "all_served_s")


def _cpu_at_max(r: Results) -> float | None:
    best = _get(r, "ladder", "max_rate")
    for step in _get(r, "ladder", "steps") or []:
        if step.get("rate") == best:
            value: float | None = step.get("server_cpu_per_delivery_us")
            return value
    return None


def _ttlr(r: Results) -> float | None:
    value = _get(r, "rush", "time_to_last_reader", "p99")
    return None if value is None else value / 1000


def _rush_note(r: Results) -> str:
    rush = _get(r, "rush")
    if not rush:
        return ""
    p50 = _get(rush, "time_to_last_reader", "p50")
    parts = [f"p50 {p50 / 1000:.3g} s" if p50 is not None else ""]
    if not rush.get("kept_up", True) or not rush.get("drained", True):
        parts.append(f"saturated: {rush['deliveries_per_s']:,.0f} of {rush['expected_deliveries_per_s']:,.0f}/s")
    if rush.get("tool_saturated"):
        parts.append("tool saturated")
    return ", ".join(p for p in parts if p)


def _ladder_note(r: Results) -> str:
    ladder = _get(r, "ladder")
    if not ladder:
        return ""
    if ladder.get("capped"):
        return f"every step passed (ladder cap {ladder['max_rate']:g} posts/s)"
    parts = [f"{ladder['max_rate']:g} posts/s passed, {ladder['first_failing_rate']:g} failed"
             if ladder.get("max_rate") is not None else "no step passed"]
    if ladder.get("tool_saturated_at_best"):
        parts.append("tool saturated")
    return ", ".join(parts)


def _cpu_note(readers: int) -> Callable[[Results], str]:
    def note(r: Results) -> str:
        run = _get(r, "publish", str(readers))
        if not run:
            return ""
        text = f"{run['deliveries_per_s']:,.0f}/s, server core {100 * run['server_core_share']:.0f}%"
        if run.get("redis_cpu_per_delivery_us"):
            text += f", +Redis {run['redis_cpu_per_delivery_us']:.2g} µs"
        return text
    return note


ROWS = (
    Row("cpu_1000", "server CPU per delivered message, 1 000 readers", "µs", _cpu(1000), 4.0, True,
        ("2.8-3.1 µs", "4.2-5.7 µs", "6-7 µs", "11-13 µs"), _cpu_note(1000)),
    Row("cpu_5000", "server CPU per delivered message, 5 000 readers", "µs", _cpu(5000), 4.0, True,
        ("2.8-3.1 µs", "4.2-5.7 µs", "6-7 µs", "11-13 µs"), _cpu_note(5000)),
    Row("cpu_10000", "server CPU per delivered message, 10 000 readers", "µs", _cpu(10000), 4.0, True,
        ("2.8-3.1 µs", "4.2-5.7 µs", "6-7 µs", "11-13 µs"), _cpu_note(10000)),
    Row("cpu_rush", "server CPU per delivered message, 10 000 readers at 20 posts/s", "µs",
        lambda r: _get(r, "rush", "server_cpu_per_delivery_us"), 4.0, True,
        ("2.8-3.1 µs", "4.2-5.7 µs", "6-7 µs", "11-13 µs")),
    Row("cpu_max", "server CPU per delivered message at that max rate, 5 000 readers", "µs", _cpu_at_max, 4.0, True,
        ("2.8-3.1 µs", "4.2-5.7 µs", "6-7 µs", "11-13 µs")),
    Row("max_rate", "max deliveries/s with p99 < 1 s, 5 000 readers", "/s",
        lambda r: _get(r, "ladder", "max_deliveries_per_s"), 240_000, False,
        ("~345 000", "~237 000", "~140 000", "~47 000"), _ladder_note),
    Row("ttlr", "10 000 readers, 20 posts/s: p99 time to last reader", "s", _ttlr, 0.1, True,
        ("77 ms", "1.8 s (saturated)", "9 s (saturated)", "7.5 s (saturated)"), _rush_note),
    Row("memory_1000", "memory per idle reader (server RSS), 1 000 readers", "KiB", _memory(1000), 12.0, True,
        ("10.3 KiB", "4.5-7.5 KiB", "12-13 KiB", "36 KiB")),
    Row("memory_5000", "memory per idle reader (server RSS), 5 000 readers", "KiB", _memory(5000), 12.0, True,
        ("10.3 KiB", "4.5-7.5 KiB", "12-13 KiB", "36 KiB")),
    Row("memory_10000", "memory per idle reader (server RSS), 10 000 readers", "KiB", _memory(10000), 12.0, True,
        ("10.3 KiB", "4.5-7.5 KiB", "12-13 KiB", "36 KiB")),
    Row("memory_ramped", "memory per idle reader (server RSS), 10 000 readers connected over 5 s", "KiB",
        lambda r: _get(r, "idle_ramped", "10000", "rss_per_reader_kib"), 12.0, True,
        ("10.3 KiB", "4.5-7.5 KiB", "12-13 KiB", "36 KiB")),
    Row("connect_1000", "1 000 readers connecting at once, all served", "s", _served(1000), None, True,
        ("", "", "", "")),
    Row("connect_5000", "5 000 readers connecting at once, all served", "s", _served(5000), None, True,
        ("", "", "", "")),
    Row("connect_10000", "10 000 readers connecting at once, all served", "s", _served(10000), 0.7, True,
        ("0.18 s", "0.72 s", "2.4 s", "4.3 s")),
)

LIVEPUSH = ("livepush-memory", "livepush-redis", "livepush-memory-asgi")
BASELINE_OF = {"livepush-memory": "baseline-memory", "livepush-redis": "baseline-redis",
               "livepush-memory-asgi": "baseline-memory"}
COLUMNS = ("livepush-memory", "livepush-redis", "livepush-memory-asgi", "baseline-memory", "baseline-redis")
HEADINGS = ("livepush memory", "livepush Redis", "livepush memory, ASGI path", "baseline memory", "baseline Redis")


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "/s":
        return f"{value:,.0f}".replace(",", " ")
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.3g} {unit}"


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def verdict(row: Row, value: float | None) -> str:
    """'met' or 'missed by X (Y%)' against the issue's target."""
    if row.target is None or value is None:
        return ""
    met = value <= row.target if row.lower_is_better else value >= row.target
    if met:
        return "met"
    gap = value - row.target if row.lower_is_better else row.target - value
    return f"missed by {fmt(gap, row.unit)} ({100 * gap / row.target:.0f}%)"


def evaluate(results: dict[str, Results]) -> list[dict[str, Any]]:
    """Every row's figures, ratios and verdicts, JSON-ready."""
    rows = []
    for row in ROWS:
        values = {name: row.read(results[name]) if name in results else None for name in COLUMNS}
        ratios = {name: ratio(values[name], values[BASELINE_OF[name]]) for name in LIVEPUSH}
        rows.append({
            "key": row.key, "label": row.label, "unit": row.unit, "values": values,
            "ratios_to_baseline": {k: None if v is None else round(v, 3) for k, v in ratios.items()},
            "target": row.target, "lower_is_better": row.lower_is_better,
            "verdicts": {name: verdict(row, values[name]) for name in LIVEPUSH},
            "references": dict(zip(("nchan", "node_ws_redis", "socketio_redis", "naive_python"), row.references,
                                   strict=True)),
            "notes": {name: row.note(results[name]) for name in COLUMNS if name in results},
        })
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown: measured columns (with ratio to the same run's baseline), targets, references."""
    head = ["scenario", *HEADINGS, "livepush target", "Nchan (C)", "Node `ws` + Redis", "Socket.IO + Redis",
            "naive Python (issue)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    by_key = {row.key: row for row in ROWS}
    for data in rows:
        row = by_key[data["key"]]
        cells = [row.label]
        for name in COLUMNS:
            value = data["values"][name]
            text = fmt(value, row.unit)
            if name in LIVEPUSH:
                r = data["ratios_to_baseline"][name]
                if r is not None:
                    text += f" (×{r:.2g})"
                if data["verdicts"][name] and data["verdicts"][name] != "met":
                    text += f"; **{data['verdicts'][name]}**"
            note = data["notes"].get(name, "")
            if note:
                text += f"<br><sub>{note}</sub>"
            cells.append(text)
        target = "" if row.target is None else ("≤ " if row.lower_is_better else "≥ ") + fmt(row.target, row.unit)
        cells += [target, *row.references]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def misses(rows: list[dict[str, Any]]) -> list[str]:
    """One line per missed target, for the summary."""
    return [f"{data['label']}: {name} {fmt(data['values'][name], data['unit'])}, {verdict}"
            for data in rows for name, verdict in data["verdicts"].items() if verdict and verdict != "met"]


def floor_markdown(floor: dict[str, Any], variants: dict[str, Results]) -> str:
    """The kernel's floor per delivery on this machine (bench.floor) beside each variant's CPU per delivery."""
    if not floor:
        return ""
    head = ["readers (deliveries/s)", "kernel floor: one send() per delivery", *HEADINGS]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for readers, run in floor.items():
        cells = [f"{int(readers):,} ({run['sends_per_s']:,}/s)".replace(",", " "),
                 f"{run['cpu_us_per_send']:.2f} µs ({run['system_us_per_send']:.2f} µs kernel)"]
        for name in COLUMNS:
            value = _get(variants.get(name, {}), "publish", readers, "server_cpu_per_delivery_us")
            cells.append("–" if value is None else f"{value:.3g} µs (floor + {value - run['cpu_us_per_send']:.2g})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
