// Display order of posts, matching server/paging.py: pinned first, then by published time
// (newest or oldest first), then by id, so live inserts land where "Load more" would put them.

/** Negative when *a* is shown before *b*. Posts need `id`, `pinned` and `published_at`. */
export function comparePosts(a, b, order) {
  if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
  const time = Date.parse(a.published_at) - Date.parse(b.published_at);
  if (time !== 0) return order === "oldest" ? time : -time;
  if (a.id === b.id) return 0;
  return (a.id < b.id) === (order === "oldest") ? -1 : 1;
}
