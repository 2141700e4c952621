// A copy of the server's HTML allowlist (server/sanitize.py), for the console's live preview only:
// what an editor types is shown as readers will see it, without running anything it contains.
// The server sanitizes again on every write; this module is never trusted for more than a preview.

const TAGS = new Set(["p", "br", "hr", "strong", "b", "em", "i", "u", "s", "small", "sub", "sup", "mark", "abbr",
  "blockquote", "q", "cite", "code", "pre", "ul", "ol", "li", "h3", "h4", "a", "figure", "figcaption", "img",
  "span", "aside"]);
const ATTRIBUTES = { a: ["href", "title"], img: ["src", "alt", "width", "height"], abbr: ["title"], ol: ["start"] };
const CLASSES = { span: "credit", aside: "context" };
const DROPPED = new Set(["script", "style", "template", "iframe", "object", "embed", "noscript", "svg", "math"]);

function allowed(tag, name, value) {
  if (!(ATTRIBUTES[tag] || []).includes(name)) return false;
  if (["width", "height", "start"].includes(name)) return /^[0-9]{1,4}$/.test(value);
  if (name === "src") {  // browsers drop tabs and line breaks from URLs and read "\\" as "/": "/\\host" is "//host"
    if (/[\u0000-\u001f\u007f\\]/.test(value)) return false;
    return value.startsWith("https://") || (value.startsWith("/") && !value.startsWith("//"));
  }
  if (name === "href") return linkable(value);
  return true;
}

// Resolved the way the browser will resolve it, so " java\tscript:" cannot pass for a relative link.
function linkable(href) {
  try {
    return ["http:", "https:", "mailto:"].includes(new URL(href, location.href).protocol);
  } catch {
    return false;
  }
}

function clean(parent) {
  for (const node of [...parent.childNodes]) {
    if (node.nodeType === Node.TEXT_NODE) continue;
    if (node.nodeType !== Node.ELEMENT_NODE || DROPPED.has(node.localName)) {
      node.remove();
      continue;
    }
    clean(node);
    if (!TAGS.has(node.localName)) {
      node.replaceWith(...node.childNodes);
      continue;
    }
    const keptClass = node.classList.contains(CLASSES[node.localName]) ? CLASSES[node.localName] : null;
    for (const { name, value } of [...node.attributes]) {
      if (!allowed(node.localName, name, value)) node.removeAttribute(name);
    }
    if (keptClass) node.setAttribute("class", keptClass);
  }
}

/** *html* reduced to the post allowlist. Parsed in an inert document: nothing loads or runs. */
export function sanitizePreview(html) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  clean(doc.body);
  return doc.body.innerHTML;
}
