"""Signed webhooks (Standard Webhooks 1.0): every acknowledged event, POSTed to the endpoints that asked for it.

- `signing.py`: secrets, message ids and the `webhook-signature` header.
- `guard.py`: which URLs and addresses may be called (the SSRF guard).
- `sender.py`: one attempt: resolve, check, connect to the checked address, POST, read a capped answer.
- `worker.py`: one endpoint's delivery: a lane per blog, in seq order, with retries and backoff.
- `dispatcher.py`: which endpoints this process delivers (leases), and waking them on new events.
- `service.py`: what the API does (create, list, delete, deliveries); `model.py` its shapes.
- `metrics.py`: the Prometheus view.

The events themselves are not copied: the engine's per-blog history is the outbox, and each
endpoint keeps a cursor per blog (see server.engine.outbox).
"""
