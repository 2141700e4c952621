// Several blogs over one WebSocket (`GET /ws`): the widget's Connection (backoff with jitter,
// dead-link detection, close codes), opened without a blog, with one `subscribe` per blog sent
// on every open. Each subscribe carries that blog's `since`/`epoch`, so after a reconnect the
// server replays exactly what each blog missed, or sends it a fresh snapshot.
//
// There is no multiplexed event-stream twin of `/ws`: where WebSockets cannot be opened at all,
// the connection stops and the page keeps its plain links.

import { Connection } from "./connection.js";

export class Multiplex extends Connection {
  /**
   * *blogs*: the ids to subscribe; *position(blogId)*: {since, epoch} to resume that blog from;
   * *onMessage(message)*: every message but pings (each carries `blog`); *onState(state)* as for
   * Connection.
   */
  constructor({ origin, blogs, position, onMessage, onState }) {
    super({ origin, blogId: null, position: () => ({ since: null, epoch: null }), onMessage, onState });
    this.transport = "websocket";
    this.blogs = new Set(blogs);
    this.blogPosition = position;
  }

  url() {
    // Like the widget: the badge keeps the latest state of each post, so a lagging connection
    // may have superseded edits dropped (`conflated`) rather than be closed.
    return `${this.origin.replace(/^http/, "ws")}/ws?conflate=1`;
  }

  open() {
    this.drop();
    this.openSocket();
  }

  /** Only reached when a WebSocket cannot even be constructed (CSP, privacy tools). */
  openEventSource() {
    this.current = null;
    this.stopped = true;
    this.onState("stopped");
  }

  opened() {
    super.opened();
    for (const blogId of this.blogs) this.subscribe(blogId);
  }

  closed(code, opened) {
    super.closed(code, opened);
    this.transport = "websocket"; // the base class would fall back to SSE, which /ws does not have
  }

  subscribe(blogId) {
    const { since, epoch } = this.blogPosition(blogId);
    const message = { type: "subscribe", blog: blogId };
    if (since !== null) {
      message.since = since;
      if (epoch) message.epoch = epoch;
    }
    this.send(message);
  }

  send(message) {
    if (this.current?.readyState === WebSocket.OPEN) this.current.send(JSON.stringify(message));
  }
}
