// One blog's stream: a WebSocket, or server-sent events where a WebSocket cannot be opened.
//
// Every (re)connect asks the owner where it stands (`position()` -> {since, epoch}), so the
// server replays exactly what was missed, or sends a fresh snapshot when it cannot. Retries
// wait a random delay (full jitter) that grows with each failure, so a whole audience dropped
// by a restart does not come back in one wave.

const DEAD_AFTER_MS = 45_000; // the server pings after 25 s of quiet: longer silence means a dead link
const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
// What each close code means for the client: server/closes.py (ACTIONS), checked by tests/unit/test_closes.py.
const FINAL_CODES = new Set([1003, 1007, 1008, 1009, 4404]); // never: fix the request, don't retry it
const RESTARTING = 1012; // reconnect now (after a short random delay)
const TRY_LATER = 1013; // reconnect later, with backoff

export function backoffDelay(attempt) {
  const ceiling = Math.min(MAX_DELAY_MS, 1000 * 2 ** attempt);
  return MIN_DELAY_MS + Math.random() * (ceiling - MIN_DELAY_MS);
}

export class Connection {
  /**
   * *origin*: the server ("https://live.example"); *position()*: {since, epoch} to resume from;
   * *onMessage(message)*: every message but pings; *onState(state)*: "connecting", "live",
   * "reconnecting" or "stopped" (the server refused for good).
   */
  constructor({ origin, blogId, position, onMessage, onState }) {
    Object.assign(this, { origin, blogId, position, onMessage, onState });
    this.transport = "WebSocket" in window ? "websocket" : "sse";
    this.current = null;
    this.attempt = 0;
    this.failedOpens = 0;
    this.everOpened = false;
    this.opens = 0;
    this.timers = { retry: 0, dead: 0 };
  }

  start() {
    this.stopped = false;
    this.onState("connecting");
    this.open();
    window.addEventListener("online", () => this.retryNow());
  }

  stop() {
    this.stopped = true;
    this.drop();
    clearTimeout(this.timers.retry);
  }

  retryNow() {
    if (this.stopped || this.current) return;
    clearTimeout(this.timers.retry);
    this.open();
  }

  url(path) {
    const { since, epoch } = this.position();
    // The widget applies posts by id and version and the header from any event, so when this
    // reader lags the server may replace older edits with newer ones (a `conflated` notice).
    const query = new URLSearchParams({ conflate: "1" });
    if (since !== null) {
      query.set("since", String(since));
      if (epoch) query.set("epoch", epoch);
    }
    const base = path === "ws" ? this.origin.replace(/^http/, "ws") : this.origin;
    return `${base}/${path}/blogs/${encodeURIComponent(this.blogId)}?${query}`;
  }

  open() {
    this.drop();
    if (this.transport === "websocket") this.openSocket();
    else this.openEventSource();
  }

  openSocket() {
    let socket;
    try {
      socket = new WebSocket(this.url("ws"));
    } catch {
      this.transport = "sse"; // blocked outright (CSP, privacy tools): no point retrying
      this.openEventSource();
      return;
    }
    let opened = false;
    this.current = socket;
    socket.onopen = () => {
      opened = true;
      this.opened();
    };
    socket.onmessage = (event) => this.received(event.data);
    socket.onclose = (event) => {
      if (this.current === socket) this.closed(event.code, opened);
    };
  }

  openEventSource() {
    const source = new EventSource(this.url("sse"));
    this.current = source;
    source.onopen = () => this.opened();
    source.onmessage = (event) => this.received(event.data);
    // EventSource would retry on its own, but without our backoff or a fresh `since`.
    source.onerror = () => {
      if (this.current === source) this.closed(0, true);
    };
  }

  opened() {
    this.everOpened = true;
    this.failedOpens = 0;
    this.attempt = 0;
    this.opens += 1;
    this.onState("live");
    this.watch();
  }

  received(data) {
    this.watch();
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type !== "ping") this.onMessage(message);
  }

  watch() {
    clearTimeout(this.timers.dead);
    this.timers.dead = setTimeout(() => this.closed(0, true), DEAD_AFTER_MS);
  }

  drop() {
    clearTimeout(this.timers.dead);
    const current = this.current;
    this.current = null;
    current?.close();
  }

  closed(code, opened) {
    this.drop();
    if (this.stopped) return;
    if (FINAL_CODES.has(code)) {
      this.stopped = true;
      this.onState("stopped");
      return;
    }
    if (this.transport === "websocket" && !opened) {
      this.failedOpens += 1;
      // Two refused handshakes before any success: something on the way blocks WebSockets.
      if (this.failedOpens >= 2 && !this.everOpened) this.transport = "sse";
    }
    if (code === RESTARTING) this.attempt = 0;
    if (code === TRY_LATER) this.attempt = Math.max(this.attempt, 3);
    this.onState("reconnecting");
    this.timers.retry = setTimeout(() => this.open(), backoffDelay(this.attempt));
    this.attempt += 1;
  }
}
