// One live blog on the page: applies the stream's messages to the header and the feed, and
// runs the reader's controls (new posts, Load more, permalinks, Sort by).
//
// A message is applied at most once: events carry the blog's seq, and anything at or below the
// last seq applied is a replay and is skipped. The header's count and Updated come from every
// event, so they never need a separate fetch.

import { fetchPosts } from "./api.js";
import { Announcer } from "./announcer.js";
import { Connection } from "./connection.js";
import { Feed } from "./feed.js";
import { NewPosts } from "./newposts.js";
import { h, renderEmptyNote, renderHeader, renderMoreLink } from "./render.js";
import { countLabel, formatStamp, learnZoneLabels } from "./timefmt.js";

const FRESH_MS = 3000;
const PERMALINK = /^#post-([a-z0-9][a-z0-9-]{0,63})$/;
const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");

function cursorOf(link) {
  return link ? new URL(link.href, location.href).searchParams.get("before") : null;
}

export class LiveBlog {
  /** *root* is main.lp-blog (server-rendered) or the embed's shell; *origin* is the server. */
  constructor(root, origin) {
    const data = root.dataset;
    this.root = root;
    this.origin = origin;
    this.blogId = data.blog;
    this.zone = data.timezone || "America/New_York";
    this.order = data.order === "oldest" ? "oldest" : "newest";
    this.embedded = root.classList.contains("lp-embed");
    // A later page (?before=...) shows older posts only: new ones are offered, not inserted.
    this.laterPage = !this.embedded && this.order === "newest" && new URLSearchParams(location.search).has("before");
    this.seq = data.seq ? Number(data.seq) : null;
    this.epoch = data.epoch || null;
    const more = root.querySelector(".lp-more");
    this.hasMore = more !== null;
    this.cursor = cursorOf(more);
    this.generation = 0; // bumped whenever the list is replaced, so late pages are dropped

    learnZoneLabels(root, this.zone);
    this.list = root.querySelector(".lp-posts");
    this.feed = new Feed(this.list, { zone: this.zone, order: this.order, base: origin });
    this.announcer = new Announcer(root.querySelector(".lp-live"));
    const bar = h("div", { class: "lp-bar" });
    this.list.before(bar);
    this.newPosts = new NewPosts(bar, () => this.revealNewPosts(true));
    this.notice = h("p", { class: "lp-connection", hidden: true });
    bar.append(this.notice);
    this.connection = new Connection({
      origin, blogId: this.blogId,
      position: () => ({ since: this.seq, epoch: this.epoch }),
      onMessage: (message) => this.receive(message),
      onState: (state) => this.showState(state),
    });
  }

  start() {
    this.root.addEventListener("click", (event) => this.click(event));
    addEventListener("scroll", () => this.scrolled(), { passive: true });
    addEventListener("hashchange", () => this.showPermalink());
    this.connection.start();
    this.showPermalink();
    return this;
  }

  // ---- the stream -------------------------------------------------------------------------

  receive(message) {
    if (message.type === "snapshot") {
      this.applySnapshot(message);
      return;
    }
    if (typeof message.seq !== "number" || (this.seq !== null && message.seq <= this.seq)) return;
    this.seq = message.seq;
    this.showStats(message.post_count, message.updated_at);
    if (message.type === "post.created" || message.type === "post.updated") {
      this.applyPost(message.post, message.type === "post.created");
    } else if (message.type === "post.deleted") {
      this.newPosts.drop(message.post_id);
      this.feed.remove(message.post_id);
    } else if (message.type === "blog.updated") {
      this.applyBlog(message.blog);
    }
    this.syncControls();
  }

  applySnapshot(snapshot) {
    if (snapshot.epoch !== this.epoch) this.feed.forgetElsewhere();
    this.seq = snapshot.seq;
    this.epoch = snapshot.epoch;
    this.applyBlog(snapshot.blog);
    this.newPosts.take();
    if (this.order === "oldest") {
      this.reload(); // the snapshot holds the newest posts; oldest-first pages come from the API
      return;
    }
    this.generation += 1;
    this.feed.reset(snapshot.posts, "newest");
    this.hasMore = snapshot.has_more;
    this.cursor = null;
    this.list.setAttribute("aria-busy", "false");
    this.syncControls();
  }

  applyPost(post, created) {
    if (this.newPosts.has(post.id)) {
      this.newPosts.add(post);
      return;
    }
    const known = this.feed.has(post.id);
    if (created && !known && (this.laterPage || this.readerIsAway())) {
      this.newPosts.add(post);
      this.announcer.newPost(post.headline);
      return;
    }
    const element = this.feed.upsert(post, { hasMore: this.hasMore });
    if (created && element && !known) {
      this.highlight(element);
      this.announcer.newPost(post.headline);
    }
  }

  applyBlog(blog) {
    this.root.dataset.status = blog.status;
    if (blog.timezone !== this.zone) {
      this.zone = blog.timezone;
      this.root.dataset.timezone = blog.timezone;
      this.feed.restamp(blog.timezone);
    }
    const header = this.root.querySelector(".lp-header");
    const fresh = renderHeader(blog, this.order);
    if (!header) this.root.prepend(fresh);
    else if (!header.isEqualNode(fresh)) this.replaceKeepingFocus(header, fresh);
    if (!this.embedded) this.newPosts.setTitle(blog.title);
  }

  replaceKeepingFocus(old, fresh) {
    const focused = old.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
    old.replaceWith(fresh);
    if (focused) fresh.querySelector(`a[href="${focused}"]`)?.focus();
  }

  showStats(postCount, updatedAt) {
    const count = this.root.querySelector(".lp-count");
    if (count) count.textContent = countLabel(postCount);
    const updated = this.root.querySelector(".lp-updated time");
    if (updated && updatedAt) {
      updated.dateTime = updatedAt;
      updated.textContent = formatStamp(updatedAt, this.zone);
    }
  }

  showState(state) {
    this.root.dataset.state = state;
    this.root.dataset.transport = this.connection.transport;
    const text = { reconnecting: "Reconnecting…", stopped: "Live updates are off" }[state];
    this.notice.hidden = !text;
    this.notice.textContent = text || "";
  }

  // ---- new posts while scrolled down ----------------------------------------------------

  /** True when the top of the feed is above the viewport: an insert there would shift the page. */
  readerIsAway() {
    return this.order === "newest" && this.list.getBoundingClientRect().top < 0;
  }

  scrolled() {
    if (this.newPosts.size && !this.laterPage && !this.readerIsAway()) this.revealNewPosts(false);
  }

  revealNewPosts(moveFocus) {
    if (this.laterPage) {
      location.assign(location.pathname); // the first page, where the new posts are
      return;
    }
    const shown = this.newPosts.take()
      .map((post) => this.feed.upsert(post, { hasMore: this.hasMore }))
      .filter(Boolean);
    shown.forEach((element) => this.highlight(element));
    this.syncControls();
    const first = shown.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1))[0];
    if (moveFocus && first) this.focusPost(first, "center");
  }

  highlight(element) {
    element.classList.add("lp-fresh");
    setTimeout(() => element.classList.remove("lp-fresh"), FRESH_MS);
  }

  focusPost(element, block) {
    element.tabIndex = -1;
    element.scrollIntoView({ block, behavior: reducedMotion.matches ? "auto" : "smooth" });
    element.focus({ preventScroll: true });
  }

  // ---- Load more, Sort by, permalinks ----------------------------------------------------

  click(event) {
    const more = event.target.closest(".lp-more");
    const sort = event.target.closest(".lp-sort a");
    if (more) {
      event.preventDefault();
      this.loadMore();
    } else if (sort) {
      event.preventDefault();
      this.sortBy(new URL(sort.href).searchParams.get("order"));
    }
  }

  /** Show the next page of older (or, oldest first, newer) posts. */
  loadMore() {
    this.loading ||= this.fetchMore().finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  async fetchMore() {
    const generation = this.generation;
    this.list.setAttribute("aria-busy", "true");
    try {
      let added = 0;
      // Without a cursor (after a snapshot) the first page re-reads what is shown: keep going.
      while (!added && this.hasMore) {
        const page = await fetchPosts(this.origin, this.blogId, { before: this.cursor, order: this.order });
        if (generation !== this.generation) return;
        added += this.feed.addPage(page.posts);
        this.cursor = page.next;
        this.hasMore = page.next !== null;
      }
    } catch {
      this.announcer.say("Could not load more posts. Please try again.");
    } finally {
      this.list.setAttribute("aria-busy", "false");
      this.syncControls();
    }
  }

  sortBy(order) {
    if (order !== "newest" && order !== "oldest") return;
    this.order = order;
    this.root.dataset.order = order;
    for (const link of this.root.querySelectorAll(".lp-sort a")) {
      link.setAttribute("aria-current", String(link.search === `?order=${order}`));
    }
    if (!this.embedded) {
      const url = new URL(location.href);
      url.searchParams.set("order", order);
      url.searchParams.delete("before");
      history.replaceState(history.state, "", url);
    }
    this.laterPage = false;
    this.reload().then((done) => done && this.announcer.say(`Showing ${order} posts first`));
  }

  /** Replace the list with the first page in the current order; false when that failed. */
  async reload() {
    const generation = ++this.generation;
    this.list.setAttribute("aria-busy", "true");
    try {
      const page = await fetchPosts(this.origin, this.blogId, { order: this.order });
      if (generation !== this.generation) return;
      this.newPosts.take();
      this.feed.reset(page.posts, this.order);
      this.cursor = page.next;
      this.hasMore = page.next !== null;
      return true;
    } catch {
      this.announcer.say("Could not load the posts. Please try again.");
      return false;
    } finally {
      this.list.setAttribute("aria-busy", "false");
      this.syncControls();
    }
  }

  /** Scroll to the post named by #post-<id>, loading older pages until it is found. */
  async showPermalink() {
    const id = PERMALINK.exec(location.hash)?.[1];
    if (!id) return;
    if (this.newPosts.has(id)) this.revealNewPosts(false);
    while (!this.feed.has(id) && this.hasMore) {
      const before = this.feed.size;
      await this.loadMore();
      if (this.feed.size === before) return; // the request failed: stop rather than spin
    }
    const element = this.feed.items.get(id)?.element;
    if (!element) return;
    element.classList.add("lp-target");
    this.focusPost(element, "start");
  }

  /** Keep "Load more" and the empty note in step with the list. */
  syncControls() {
    let more = this.root.querySelector(".lp-more");
    if (this.hasMore && !more) more = this.root.appendChild(renderMoreLink());
    if (!this.hasMore) more?.remove();
    if (more && this.hasMore) {
      const query = new URLSearchParams({ order: this.order });
      if (this.cursor) query.set("before", this.cursor);
      more.href = `?${query}`;
    }
    const empty = this.root.querySelector(".lp-empty");
    if (this.feed.size || this.newPosts.size) empty?.remove();
    else if (!empty) this.list.after(renderEmptyNote());
  }
}
