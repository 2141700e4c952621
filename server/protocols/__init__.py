"""livepush's subclasses of uvicorn's protocols, in one place for the next uvicorn upgrade to check.

`http.py`: the httptools HTTP protocol with read limits and the WebSocket upgrade fast path hook.
`direct.py`: the WebSocket protocol with the direct write path and detached connections.
`reader.py`: that protocol for a reader whose handshake the fast path answered. They
read what they need from the app's lifespan state (`SETTINGS`, `UPGRADES`), never the services.
"""
