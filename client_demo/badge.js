// livepush homepage badge: several live blogs at a glance (title, Live or Ended, post count,
// latest headline, "updated N min ago"), kept current over one WebSocket. No build step:
//
//   <ul class="lp-badge" aria-label="Live coverage">
//     <li><a href="https://SERVER/blogs/a">Election night</a></li>
//     <li><a href="https://SERVER/blogs/b">Storm watch</a></li>
//   </ul>
//   <script type="module" src="https://SERVER/client/badge.js" data-livepush-blogs="a,b"></script>
//
// Without JavaScript the list is plain links. The badge enhances the `.lp-badge` element just
// before its script tag (or builds one there), finding each blog's item by its link to
// SERVER/blogs/<id> and adding one for a blog that has none. The server is wherever this file was
// loaded from. Every badge on the page shares one connection and one polite live region.

import { BadgeBlog } from "./lib/badgeblog.js";
import { backoffDelay } from "./lib/connection.js";
import { Multiplex } from "./lib/multiplex.js";
import { h } from "./lib/render.js";
import { Summary } from "./lib/summary.js";

const origin = new URL(import.meta.url).origin;
const SLUG = /^[a-z0-9][a-z0-9-]{0,63}$/;
const BLOG_PATH = /^\/blogs\/([a-z0-9][a-z0-9-]{0,63})\/?$/;
const MOST_BLOGS = 50; // LIVEPUSH_MAX_BLOGS_PER_STREAM's default
const TICK_MS = 15_000; // "updated N min ago" is at most this late
const NOTES = { reconnecting: "Reconnecting…", stopped: "Live updates are off" };

function ensureStylesheet() {
  const href = new URL("badge.css", import.meta.url).href;
  if ([...document.styleSheets].some((sheet) => sheet.href === href)) return;
  document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href }));
}

function blogIds(script) {
  const ids = script.dataset.livepushBlogs.split(",").map((id) => id.trim()).filter((id) => SLUG.test(id));
  return [...new Set(ids)];
}

/** The blog id a link points at on the server, or null. */
function linkedBlog(link) {
  const url = new URL(link.href, location.href);
  return url.origin === origin ? BLOG_PATH.exec(url.pathname)?.[1] ?? null : null;
}

function findContainer(script) {
  const before = script.previousElementSibling;
  if (before?.classList.contains("lp-badge")) return before;
  const built = h("ul", { class: "lp-badge", "aria-label": "Live coverage" });
  script.before(built);
  return built;
}

/** The element to enhance for *blogId*: the item around its link, or a new item and link. */
function findItem(container, blogId) {
  const link = [...container.querySelectorAll("a[href]")].find((a) => linkedBlog(a) === blogId);
  const tag = container.matches("ul, ol") ? "li" : "div";
  if (!link) {
    const made = h("a", { href: `${origin}/blogs/${blogId}` }, blogId);
    return { item: container.appendChild(h(tag, {}, made)), link: made };
  }
  if (link.parentElement !== container) return { item: link.parentElement, link };
  const item = h(tag);
  link.replaceWith(item);
  item.append(link);
  return { item, link };
}

function start() {
  const scripts = [...document.querySelectorAll("script[data-livepush-blogs]")]
    .filter((script) => !script.dataset.livepushStarted);
  if (!scripts.length) return null;
  ensureStylesheet();
  const blogs = new Map();
  const containers = [];
  let summary = null;
  for (const script of scripts) {
    script.dataset.livepushStarted = "1";
    const container = findContainer(script);
    const note = h("p", { class: "lp-badge-note", hidden: true });
    const aside = h("div", { class: "lp-badge-aside" }, note);
    if (!summary) {
      const region = h("div", { class: "lp-badge-live lp-badge-sr", role: "status", "aria-live": "polite" });
      aside.append(region);
      summary = new Summary(region);
    }
    container.after(aside);
    containers.push({ container, note });
    for (const blogId of blogIds(script)) {
      if (!blogs.has(blogId) && blogs.size === MOST_BLOGS) break;
      if (!blogs.has(blogId)) blogs.set(blogId, new BadgeBlog(blogId, origin, summary));
      const { item, link } = findItem(container, blogId);
      blogs.get(blogId).addView(item, link);
    }
  }

  const connection = new Multiplex({
    origin,
    blogs: [...blogs.keys()],
    position: (blogId) => ({ since: blogs.get(blogId).seq, epoch: blogs.get(blogId).epoch }),
    onMessage: (message) => {
      const blogId = typeof message.blog === "string" ? message.blog : message.blog?.id;
      const blog = blogs.get(blogId);
      if (!blog) return;
      if (message.type !== "error") {
        blog.receive(message);
        return;
      }
      if (message.code === "unavailable") {
        // The server's storage is down for now: ask again later, with jitter like a reconnect.
        setTimeout(() => connection.subscribe(blogId), backoffDelay(3));
        return;
      }
      // Refused (unknown blog, over the limit): its link stays, and later reconnects skip it.
      blog.fail(message);
      connection.blogs.delete(blogId);
    },
    onState: (state) => {
      for (const { container, note } of containers) {
        container.dataset.state = state;
        note.hidden = !NOTES[state];
        note.textContent = NOTES[state] || "";
      }
    },
  });
  const tick = () => blogs.forEach((blog) => blog.tick(Date.now()));
  setInterval(tick, TICK_MS);
  document.addEventListener("visibilitychange", () => document.hidden || tick());
  connection.start();
  return { connection, blogs, summary };
}

const badge = start();
// For debugging from the console: window.livepush.badge.blogs.get("a").seq, .connection.opens, ...
if (badge) window.livepush = { ...window.livepush, badge };
