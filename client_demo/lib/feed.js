// The posts on the page, in display order: one <article> per post id, never two, never older
// than a version already shown. Posts that belong past the loaded range (they arrive with
// "Load more") are remembered, not shown, so a page fetched later cannot bring back a stale
// version or a deleted post.

import { comparePosts } from "./order.js";
import { renderPost } from "./render.js";
import { formatStamp } from "./timefmt.js";

function itemOf(article) {
  return {
    id: article.dataset.id,
    version: Number(article.dataset.version),
    published_at: article.dataset.published,
    pinned: article.querySelector(".lp-flags .lp-pinned") !== null,
    element: article,
  };
}

export class Feed {
  /** *list* is the .lp-posts element; its server-rendered articles are adopted as they are. */
  constructor(list, { zone, order, base }) {
    Object.assign(this, { list, zone, order, base });
    this.items = new Map(); // id -> {id, version, published_at, pinned, element}
    this.elsewhere = new Map(); // id -> newest post not shown, or null once deleted
    for (const article of list.querySelectorAll(":scope > article.lp-post")) {
      this.items.set(article.dataset.id, itemOf(article));
    }
  }

  get size() {
    return this.items.size;
  }

  has(id) {
    return this.items.has(id);
  }

  /** The items in page order, optionally leaving one id out. */
  *shown(except = null) {
    for (const article of this.list.children) {
      const item = this.items.get(article.dataset.id);
      if (item && item.id !== except) yield item;
    }
  }

  /** The newest version known of *post*, or null when it was deleted. */
  freshest(post) {
    if (!this.elsewhere.has(post.id)) return post;
    const known = this.elsewhere.get(post.id);
    if (known === null) return null;
    return known.version > post.version ? known : post;
  }

  /** Whether *post* falls inside the loaded range (past it, "Load more" brings it). */
  fits(post, hasMore) {
    if (!hasMore) return true;
    const last = [...this.shown(post.id)].at(-1);
    return !last || comparePosts(post, last, this.order) < 0;
  }

  /**
   * Show *post* (new or newer) at its place; returns its element, or null when it is not shown.
   * With *force*, the post is shown even past the loaded range (it comes from a loaded page).
   */
  upsert(post, { hasMore = false, force = false } = {}) {
    post = this.freshest(post);
    if (!post) return null;
    const current = this.items.get(post.id);
    if (current && current.version >= post.version) return current.element;
    if (!force && !this.fits(post, hasMore)) {
      this.forget(post.id);
      this.elsewhere.set(post.id, post);
      return null;
    }
    const element = renderPost(post, this.zone, this.base);
    const next = [...this.shown(post.id)].find((item) => comparePosts(post, item, this.order) < 0);
    current?.element.remove();
    this.list.insertBefore(element, next ? next.element : null);
    this.items.set(post.id, { ...post, element });
    this.elsewhere.delete(post.id);
    return element;
  }

  /** Add a page from "Load more"; returns how many posts were not shown before. */
  addPage(posts) {
    let added = 0;
    for (const post of posts) {
      const known = this.has(post.id);
      if (this.upsert(post, { force: true }) && !known) added += 1;
    }
    return added;
  }

  remove(id) {
    this.forget(id);
    this.elsewhere.set(id, null);
  }

  forget(id) {
    this.items.get(id)?.element.remove();
    this.items.delete(id);
  }

  /** Show exactly *posts* in *order*, keeping the elements of posts that did not change. */
  reset(posts, order) {
    this.order = order;
    const items = new Map();
    for (const incoming of posts) {
      const post = this.freshest(incoming);
      if (!post) continue;
      const current = this.items.get(post.id);
      const keep = current && current.version >= post.version;
      items.set(post.id, keep ? current : { ...post, element: renderPost(post, this.zone, this.base) });
      this.elsewhere.delete(post.id);
    }
    this.items = items;
    const sorted = [...items.values()].sort((a, b) => comparePosts(a, b, order));
    this.list.replaceChildren(...sorted.map((item) => item.element));
  }

  /** A new history (the server lost ours): nothing remembered applies any more. */
  forgetElsewhere() {
    this.elsewhere.clear();
  }

  /** Re-format every time stamp for a new time zone. */
  restamp(zone) {
    this.zone = zone;
    for (const time of this.list.querySelectorAll("time[datetime]")) {
      time.textContent = formatStamp(time.dateTime, zone);
    }
  }
}
