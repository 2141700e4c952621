// The HTTP API: JSON in and out, errors as RFC 9457 problem details.

/** An API error; `field` and `errors[].field` name the inputs to blame. */
export class Problem extends Error {
  constructor(status, body = {}, etag = null) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || "";
    this.field = body.field || null;
    this.errors = Array.isArray(body.errors) ? body.errors : [];
    this.etag = etag;
  }
}

async function parse(response) {
  const text = await response.text();
  let body = {};
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    body = { detail: text.slice(0, 200) };
  }
  if (!response.ok) throw new Problem(response.status, body, response.headers.get("ETag"));
  return body;
}

/**
 * Call the API. *options*: method, token (sent as a Bearer token), json (the request body) and
 * headers. Resolves to the decoded JSON; rejects with a Problem (or a TypeError when offline).
 */
export async function api(url, { method = "GET", token = null, json, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  return parse(await fetch(url, init));
}

/** One page of a blog's posts: {posts, next}. */
export function fetchPosts(origin, blogId, { before = null, order = "newest", limit = 20 } = {}) {
  const query = new URLSearchParams({ limit: String(limit), order });
  if (before) query.set("before", before);
  return api(`${origin}/api/blogs/${encodeURIComponent(blogId)}/posts?${query}`);
}
