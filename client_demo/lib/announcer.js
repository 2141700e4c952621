// The polite live region: tells screen-reader users about new posts (not edits), batched so a
// burst of posts (or a catch-up after reconnecting) is one short announcement, not a queue.

import { h } from "./render.js";

const BATCH_MS = 300;

export class Announcer {
  constructor(region) {
    this.region = region;
    this.headlines = [];
    this.timer = 0;
  }

  newPost(headline) {
    this.headlines.push(headline);
    this.timer ||= setTimeout(() => this.flush(), BATCH_MS);
  }

  flush() {
    const [count, latest] = [this.headlines.length, this.headlines.at(-1)];
    this.headlines = [];
    this.timer = 0;
    this.say(count === 1 ? `New post: ${latest}` : `${count} new posts. Latest: ${latest}`);
  }

  /** Replace the region's content: screen readers announce the new node. */
  say(text) {
    this.region.replaceChildren(h("p", {}, text));
  }
}
