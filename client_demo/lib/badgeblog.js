// One blog in the homepage badge: its state, kept from the multiplexed stream's messages, and
// the badge items that show it (the host's link, enhanced with status, count, latest headline
// and "updated N min ago").
//
// Like the widget, it applies a message at most once (anything at or below the last seq applied
// is a replay) and takes the count and updated time from any event. The latest headline is the
// newest `published_at` among the posts it knows: the snapshot's, then each post event's.

import { fetchPosts } from "./api.js";
import { h } from "./render.js";
import { agoLabel, countLabel, formatStamp } from "./timefmt.js";

const KEEP_POSTS = 20; // the newest posts kept to know the latest after a deletion
const PRUNE_AT = 2 * KEEP_POSTS;

function newer(a, b) {
  return a.published_at > b.published_at || (a.published_at === b.published_at && a.id > b.id);
}

/** The fields the badge shows of a post. */
function brief(post) {
  return { id: post.id, headline: post.headline, published_at: post.published_at };
}

export class BadgeBlog {
  /** *origin*: the server; *summary*: the badge's Summary, told of new posts and endings. */
  constructor(id, origin, summary) {
    Object.assign(this, { id, origin, summary });
    this.seq = null;
    this.epoch = null;
    this.blog = null; // the blog object of the last snapshot or blog.updated
    this.postCount = 0;
    this.updatedAt = null;
    this.posts = new Map();
    this.failed = null;
    this.refilling = false;
    this.views = [];
  }

  /** Enhance *item* (an element holding the link to this blog's page). */
  addView(item, link) {
    link.classList.add("lp-badge-title");
    item.classList.add("lp-badge-blog");
    item.dataset.blog = this.id;
    const view = {
      item, link,
      status: h("span", { class: "lp-badge-status" }),
      count: h("span", { class: "lp-badge-count" }),
      latest: h("a", { class: "lp-badge-latest" }),
      time: h("time"),
    };
    view.details = h("span", { class: "lp-badge-details", hidden: true },
      " ", view.status, " ", view.count, " ",
      h("span", { class: "lp-badge-headline" }, h("span", { class: "lp-badge-sr" }, "Latest: "), view.latest),
      " ", h("span", { class: "lp-badge-updated" }, "updated ", view.time));
    link.after(view.details);
    this.views.push(view);
    if (this.blog) this.render();
  }

  // ---- the stream -----------------------------------------------------------------------

  receive(message) {
    if (message.type === "snapshot") {
      this.applySnapshot(message);
    } else if (typeof message.seq === "number" && (this.seq === null || message.seq > this.seq)) {
      this.applyEvent(message);
    } else {
      return;
    }
    this.failed = null;
    this.render();
  }

  applySnapshot(snapshot) {
    const before = this.blog?.status;
    this.seq = snapshot.seq;
    this.epoch = snapshot.epoch;
    this.applyBlog(snapshot.blog);
    this.posts = new Map(snapshot.posts.map((post) => [post.id, brief(post)]));
    // A snapshot after a reconnect replaces what was missed wholesale: its posts are not told
    // as new (their number is unknown), only a change of status.
    if (before && before !== this.blog.status) this.summary.status(this.id, this.blog.title, this.blog.status);
  }

  applyEvent(event) {
    this.seq = event.seq;
    if (typeof event.post_count === "number") this.postCount = event.post_count;
    if (event.updated_at) this.updatedAt = event.updated_at;
    if (event.type === "post.created" || event.type === "post.updated") {
      this.posts.set(event.post.id, brief(event.post));
      if (event.type === "post.created") this.summary.newPost(this.id, this.blog.title, event.post.headline);
      if (this.posts.size > PRUNE_AT) this.prune();
    } else if (event.type === "post.deleted") {
      this.posts.delete(event.post_id);
    } else if (event.type === "blog.updated") {
      const before = this.blog.status;
      this.applyBlog(event.blog);
      if (before !== this.blog.status) this.summary.status(this.id, this.blog.title, this.blog.status);
    }
  }

  applyBlog(blog) {
    this.blog = blog;
    this.postCount = blog.post_count;
    this.updatedAt = blog.updated_at;
  }

  /** The stream refused this blog (unknown, or over the per-connection limit): links only. */
  fail(error) {
    this.failed = error.code || "error";
    for (const view of this.views) view.item.dataset.state = "error";
  }

  prune() {
    const kept = [...this.posts.values()].sort((a, b) => (newer(a, b) ? -1 : 1)).slice(0, KEEP_POSTS);
    this.posts = new Map(kept.map((post) => [post.id, post]));
  }

  latest() {
    let latest = null;
    for (const post of this.posts.values()) if (!latest || newer(post, latest)) latest = post;
    return latest;
  }

  /** Every post the badge knew was deleted but some remain: read the newest from the API. */
  async refill() {
    this.refilling = true;
    try {
      const page = await fetchPosts(this.origin, this.id, { limit: KEEP_POSTS });
      if (this.posts.size) return;
      this.posts = new Map(page.posts.map((post) => [post.id, brief(post)]));
      this.render();
    } catch {
      // Offline or refused: the badge shows no headline until the next post.
    } finally {
      this.refilling = false;
    }
  }

  // ---- the items ------------------------------------------------------------------------

  render() {
    if (!this.blog) return;
    const latest = this.latest();
    if (!latest && this.postCount > 0 && !this.refilling) this.refill();
    const href = `${this.origin}/blogs/${encodeURIComponent(this.id)}`;
    const status = this.blog.status === "ended" ? "Ended" : "Live";
    for (const view of this.views) {
      const { item, link, latest: headline, time } = view;
      item.dataset.status = this.blog.status;
      item.dataset.state = "live";
      setText(link, this.blog.title);
      setText(view.status, status);
      setText(view.count, countLabel(this.postCount));
      headline.parentElement.hidden = !latest;
      if (latest) {
        headline.href = `${href}#post-${latest.id}`;
        setText(headline, latest.headline);
      }
      if (this.updatedAt && time.dateTime !== this.updatedAt) {
        time.dateTime = this.updatedAt;
        time.title = formatStamp(this.updatedAt, this.blog.timezone);
      }
      view.details.hidden = false;
    }
    this.tick(Date.now());
  }

  /** Bring "updated N min ago" up to *now*. */
  tick(now) {
    if (!this.updatedAt) return;
    const label = agoLabel(this.updatedAt, now);
    for (const view of this.views) setText(view.time, label);
  }
}

/** Write only what changed: a live region or a screen reader's cursor is not disturbed for nothing. */
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}
