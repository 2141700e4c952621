"""Webhook metrics, read from the dispatcher's plain counters only when Prometheus scrapes."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.webhooks.dispatcher import Dispatcher


class WebhookCollector(Collector):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        tally = self._dispatcher.tally
        yield CounterMetricFamily("livepush_webhook_attempts", "Webhook POSTs attempted by this process",
                                  value=tally.attempts)
        yield CounterMetricFamily("livepush_webhook_delivered", "Webhook events acknowledged with a 2xx",
                                  value=tally.delivered)
        failures = CounterMetricFamily("livepush_webhook_failures", "Failed webhook attempts by kind",
                                       labels=["kind"])
        for kind in ("http", "timeout", "refused", "connection"):
            failures.add_metric([kind], tally.failures.get(kind, 0))
        yield failures
        yield CounterMetricFamily("livepush_webhook_disabled", "Endpoints this process disabled",
                                  value=tally.disabled)
        depth = GaugeMetricFamily("livepush_webhook_queue_depth",
                                  "Undelivered events of the endpoints this process delivers", labels=["endpoint"])
        oldest = GaugeMetricFamily("livepush_webhook_oldest_undelivered_seconds",
                                   "Age of the oldest event an endpoint is still trying to deliver",
                                   labels=["endpoint"])
        now = time.time()
        for endpoint_id, worker in list(self._dispatcher.workers.items()):
            depth.add_metric([endpoint_id], sum(worker.depth.values()))
            oldest.add_metric([endpoint_id], max((now - moment for moment in worker.oldest.values()), default=0.0))
        yield depth
        yield oldest
        yield GaugeMetricFamily("livepush_webhook_endpoints_delivering",
                                "Endpoints whose lease this process holds", value=len(self._dispatcher.workers))
