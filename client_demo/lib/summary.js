// The badge's polite announcements: what changed across its blogs, told as one short summary
// at most once a minute, however busy the blogs are. Changes wait until the minute since the
// last summary is over (the first one waits a second, so a burst is told once).
//
//   "Election night: 2 new posts, latest: Polls close in Ohio. Storm watch has ended."

import { Announcer } from "./announcer.js";

export const EVERY_MS = 60_000;
const SETTLE_MS = 1_000;
const MOST_BLOGS = 3; // named in one summary; the rest are counted

export class Summary {
  constructor(region) {
    this.announcer = new Announcer(region);
    this.changes = new Map(); // blog id -> {title, posts, latest, status}
    this.lastSaid = -Infinity;
    this.timer = 0;
  }

  newPost(blogId, title, headline) {
    const change = this.change(blogId, title);
    change.posts += 1;
    change.latest = headline;
  }

  /** The blog went from live to ended, or back. */
  status(blogId, title, status) {
    this.change(blogId, title).status = status;
  }

  change(blogId, title) {
    if (!this.changes.has(blogId)) this.changes.set(blogId, { title, posts: 0, latest: "", status: null });
    const change = this.changes.get(blogId);
    change.title = title;
    this.timer ||= setTimeout(() => this.flush(), Math.max(SETTLE_MS, this.lastSaid + EVERY_MS - Date.now()));
    return change;
  }

  flush() {
    this.timer = 0;
    const changes = [...this.changes.values()];
    this.changes.clear();
    const told = changes.slice(0, MOST_BLOGS).map(describe);
    const rest = changes.length - told.length;
    if (rest) told.push(rest === 1 ? "1 more blog updated." : `${rest} more blogs updated.`);
    this.lastSaid = Date.now();
    this.announcer.say(told.join(" "));
  }
}

function describe({ title, posts, latest, status }) {
  const news = posts ? `${posts === 1 ? "1 new post" : `${posts} new posts`}, latest: ${latest}` : "";
  const turn = { ended: "has ended", live: "is live again" }[status] || "";
  if (news && turn) return `${title}: ${news}. It ${turn}.`;
  return news ? `${title}: ${news}.` : `${title} ${turn}.`;
}
