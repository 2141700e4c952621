"""Prometheus metrics for `/metrics`, in a registry of this app's own.

Counters on the fan-out path are plain integers kept by the hub, relay and feeds; they are
read only when Prometheus scrapes, so delivering a message costs no metrics work.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.admission import Admission, LoopLag
from server.cache import PageCache
from server.canary import Canary
from server.engine import Engine
from server.feed import Feeds
from server.hub import Hub
from server.relay import Relay

ENGINE_COUNTERS = {
    "reconnects": ("livepush_redis_reconnects", "Times this process's Redis pub/sub connection was re-established"),
    "epochs_moved": ("livepush_epoch_moves", "Blogs this process moved to a new epoch (Redis restart or failover)"),
    "wait_timeouts": ("livepush_redis_wait_timeouts",
                      "Writes the Redis primary took that fewer than LIVEPUSH_REDIS_WAIT_REPLICAS replicas confirmed"),
    "primary_switches": ("livepush_redis_primary_switches", "Failovers the Sentinels announced (+switch-master)"),
    "resubscribes": ("livepush_redis_resubscribes",
                     "Times this process rebuilt its Redis Cluster shard subscriptions after losing one"),
    "slot_moves": ("livepush_redis_slot_moves",
                   "Shard channels Redis Cluster dropped because their slot moved to another shard"),
    "subscriptions_lost": ("livepush_redis_shard_connections_lost",
                           "Redis Cluster shard pub/sub connections lost, refused or redirected"),
    "index_failures": ("livepush_redis_index_failures",
                       "Redis Cluster writes stored whose blog-list update failed (listed late)"),
    "redirects": ("livepush_redis_redirects",
                  "MOVED, ASK and TRYAGAIN answers a Redis Cluster write with WAIT followed to the slot's owner"),
}


class _FanoutCollector(Collector):
    def __init__(self, hub: Hub, relay: Relay, feeds: Feeds, canary: Canary | None,
                 admission: Admission | None, engine: Engine | None, loop_lag: LoopLag | None) -> None:
        self._engine = engine
        self._loop_lag = loop_lag
        self._admission = admission
        self._hub = hub
        self._relay = relay
        self._feeds = feeds
        self._canary = canary

    def collect(self) -> Iterator[Metric]:
        readers = GaugeMetricFamily("livepush_readers", "Readers connected to this process", labels=["blog"])
        for blog_id in self._hub.blogs():
            readers.add_metric([blog_id], self._hub.count(blog_id))
        yield readers
        yield CounterMetricFamily("livepush_deliveries", "Events queued to readers", value=self._hub.delivered)
        yield CounterMetricFamily("livepush_slow_reader_closes", "Readers closed with 1013 for falling behind",
                                  value=self._hub.evicted)
        yield CounterMetricFamily("livepush_conflations", "State events superseded for lagging readers",
                                  value=self._hub.conflations)
        yield CounterMetricFamily("livepush_gaps_repaired", "Event gaps filled from history",
                                  value=self._relay.gaps_repaired)
        yield CounterMetricFamily("livepush_history_resets", "Blogs whose readers had to start over",
                                  value=self._relay.resets)
        yield CounterMetricFamily("livepush_relay_rechecks", "Watched blogs re-read from history after the engine "
                                  "was interrupted (on a Cluster: those of the interrupted shard)",
                                  value=self._relay.rechecks)
        yield CounterMetricFamily("livepush_snapshots_encoded", "Snapshots read and encoded",
                                  value=self._feeds.snapshots_encoded)
        yield CounterMetricFamily("livepush_history_reads", "History reads for resuming readers (shared reads once)",
                                  value=self._feeds.history_reads)
        if self._admission is not None:
            yield GaugeMetricFamily("livepush_streams_open", "Streams open in this process", value=self._admission.open)
            yield CounterMetricFamily("livepush_streams_refused", "Streams refused by a cap",
                                      value=self._admission.refused)
        if self._engine is not None:
            for key, value in self._engine.counters().items():
                name, help_text = ENGINE_COUNTERS.get(key, (f"livepush_engine_{key}", f"Engine counter {key}"))
                yield CounterMetricFamily(name, help_text, value=value)
            shards = self._engine.subscriptions()
            if shards:
                gauge = GaugeMetricFamily("livepush_redis_subscriptions", "Blog channels this process subscribes to, "
                                          "per Redis Cluster shard (host:port of its primary)", labels=["shard"])
                for shard, count in sorted(shards.items()):
                    gauge.add_metric([shard], count)
                yield gauge
        if self._loop_lag is not None:
            yield GaugeMetricFamily("livepush_loop_lag_seconds", "How late this process's event loop ran, latest tick",
                                    value=self._loop_lag.lag)
        if self._canary is not None:
            yield GaugeMetricFamily("livepush_canary_age_seconds", "Since this process last heard its own canary",
                                    value=self._canary.age)


class _PageCacheCollector(Collector):
    def __init__(self, cache: PageCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("livepush_page_cache_hits", "Cached pages and first pages of posts served",
                                  value=self._cache.hits)
        yield CounterMetricFamily("livepush_page_renders", "Pages and first pages of posts read and rendered",
                                  value=self._cache.renders)
        yield GaugeMetricFamily("livepush_page_cache_bytes", "Bytes the page cache holds (its budget: "
                                "LIVEPUSH_PAGE_CACHE_BYTES)", value=self._cache.size)


class Metrics:
    """The app's metrics; `render()` is the body of `/metrics`."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, hub: Hub, relay: Relay, feeds: Feeds, canary: Canary | None = None,
                 admission: Admission | None = None, engine: Engine | None = None,
                 loop_lag: LoopLag | None = None, page_cache: PageCache | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise here
        self.registry = CollectorRegistry()
        self.writes = Counter("livepush_writes", "Acknowledged writes", ["kind"], registry=self.registry)
        self.write_seconds = Histogram(
            "livepush_write_seconds", "Time to commit a write", ["kind"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))
        self.errors = Counter("livepush_http_errors", "API errors by status", ["status"], registry=self.registry)
        self.streams = Counter("livepush_streams_opened", "Streams opened", ["transport", "start"],
                               registry=self.registry)
        self.fanout_seconds = Histogram(
            "livepush_fanout_seconds", "From an event reaching this process to its write to the last local reader",
            registry=self.registry, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        hub.observe_fanout = self.fanout_seconds.observe
        self.registry.register(_FanoutCollector(hub, relay, feeds, canary, admission, engine, loop_lag))
        if page_cache is not None:
            self.registry.register(_PageCacheCollector(page_cache))

    def render(self) -> bytes:
        return generate_latest(self.registry)
