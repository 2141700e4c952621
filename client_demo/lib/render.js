// The reader markup, built in the DOM. It mirrors server/pages/templates/blog.html element for
// element (a browser test compares the two), so the widget can take over a server-rendered page
// and render live posts without any visible difference. Only a post's body, which the server
// has sanitized, is inserted as HTML; every other field is text.

import { countLabel, formatStamp } from "./timefmt.js";

/** Create an element with attributes and children (strings become text nodes). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) element.setAttribute(name, String(value));
  }
  element.append(...children.flat().filter((child) => child || child === 0));
  return element;
}

/** "A", "A and B", "A, B and C". */
export function joinNames(names) {
  const clean = (names || []).map((name) => name.trim()).filter(Boolean);
  return clean.length <= 1 ? clean.join("") : `${clean.slice(0, -1).join(", ")} and ${clean.at(-1)}`;
}

/** The blog's byline: "By A, B and C, CNN"; "" when there are neither authors nor a source. */
export function blogByline(authors, source) {
  const names = joinNames(authors);
  source = (source || "").trim();
  if (names && source) return `By ${names}, ${source}`;
  return names || source ? `By ${names || source}` : "";
}

function stamp(iso, zone) {
  return h("time", { datetime: iso }, formatStamp(iso, zone));
}

function flags(post) {
  if (!post.pinned && !post.key_event) return null;
  return h("p", { class: "lp-flags" },
    post.pinned && h("span", { class: "lp-pinned" }, "Pinned"),
    post.pinned && post.key_event && " ",
    post.key_event && h("span", { class: "lp-key" }, "Key event"));
}

/** Make root-relative links and images absolute, for a widget embedded on another site. */
function resolveUrls(body, base) {
  for (const [selector, attribute] of [["img[src]", "src"], ["a[href]", "href"]]) {
    for (const element of body.querySelectorAll(selector)) {
      const value = element.getAttribute(attribute);
      if (value.startsWith("/") && !value.startsWith("//")) element.setAttribute(attribute, new URL(value, base).href);
    }
  }
}

/**
 * One post as <article class="lp-post">. *base* is the server's origin when the widget runs on
 * another site, so "/static/..." images load from the server.
 */
export function renderPost(post, zone, base = null) {
  const id = `post-${post.id}`;
  const body = h("div", { class: "lp-body" });
  body.innerHTML = post.body || ""; // sanitized by the server's allowlist (server/sanitize.py)
  if (base && base !== location.origin) resolveUrls(body, base);
  return h("article", { class: "lp-post", id, "data-id": post.id, "data-version": post.version,
    "data-published": post.published_at, "aria-labelledby": `${id}-h` },
  flags(post),
  h("a", { class: "lp-post-time", href: `#${id}` }, stamp(post.published_at, zone)),
  h("h2", { class: "lp-headline", id: `${id}-h` }, post.headline),
  post.byline && h("p", { class: "lp-post-byline" }, post.byline),
  body,
  post.correction && h("p", { class: "lp-correction" }, h("strong", {}, "Correction:"), ` ${post.correction}`));
}

function sortLink(order, current, label) {
  return h("a", { href: `?order=${order}`, "aria-current": String(order === current) }, label);
}

/** The blog's header: title, description, byline, Updated, count, ended note and Sort by. */
export function renderHeader(blog, order) {
  const byline = blogByline(blog.authors, blog.source);
  return h("header", { class: "lp-header" },
    h("h1", { class: "lp-title" }, blog.title),
    blog.description && h("p", { class: "lp-description" }, blog.description),
    byline && h("p", { class: "lp-byline" }, byline),
    h("p", { class: "lp-updated" }, "Updated ", stamp(blog.updated_at, blog.timezone)),
    h("p", { class: "lp-count" }, countLabel(blog.post_count)),
    blog.status === "ended" && h("p", { class: "lp-status" }, "This live blog has ended."),
    h("nav", { class: "lp-sort", "aria-label": "Sort posts" }, "Sort by ",
      sortLink("newest", order, "Newest first"), " ", sortLink("oldest", order, "Oldest first")));
}

/** The "Load more posts" link; its href works without JavaScript when a cursor is known. */
export function renderMoreLink() {
  return h("a", { class: "lp-more", href: "#", rel: "next" }, "Load more posts");
}

/** The note shown while a blog has no posts. */
export function renderEmptyNote() {
  return h("p", { class: "lp-empty" }, "No posts yet. New posts appear here as they are published.");
}

/** An empty widget for a page the server did not render (the embed): filled by the first snapshot. */
export function renderShell(blogId) {
  return h("section", { class: "lp-blog lp-embed", "data-blog": blogId, "data-order": "newest",
    "aria-label": "Live blog" },
  h("div", { class: "lp-live", role: "status", "aria-live": "polite" }),
  h("div", { class: "lp-posts", role: "feed", "aria-busy": "true" }));
}
