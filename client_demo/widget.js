// livepush reader widget. Keeps a live blog current on the page, with no build step:
//
//   on the server's reader page, it takes over the rendered <main class="lp-blog"> in place;
//   on any other site, one tag embeds a blog right after the tag:
//     <script type="module" src="https://SERVER/client/widget.js" data-livepush-blog="BLOG"></script>
//
// The server is wherever this file was loaded from. The widget's root carries data-state
// (connecting, live, reconnecting, stopped) and data-transport (websocket, sse) for styling
// and debugging.

import { LiveBlog } from "./lib/liveblog.js";
import { renderShell } from "./lib/render.js";

const origin = new URL(import.meta.url).origin;

function ensureStylesheet() {
  const href = new URL("livepush.css", import.meta.url).href;
  if ([...document.styleSheets].some((sheet) => sheet.href === href)) return;
  document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href }));
}

/** The blogs to run: server-rendered ones, plus a new shell after each embed tag without one. */
function findRoots() {
  const roots = [...document.querySelectorAll(".lp-blog[data-blog]")];
  for (const script of document.querySelectorAll("script[data-livepush-blog]")) {
    const blogId = script.dataset.livepushBlog;
    if (roots.some((root) => root.dataset.blog === blogId)) continue;
    ensureStylesheet();
    const shell = renderShell(blogId);
    script.after(shell);
    roots.push(shell);
  }
  return roots.filter((root) => !root.dataset.state); // not running yet
}

const widgets = findRoots().map((root) => new LiveBlog(root, origin).start());
// For debugging from the console: window.livepush.widgets[0].seq, .connection.transport, ...
window.livepush = { widgets: [...(window.livepush?.widgets || []), ...widgets] };
