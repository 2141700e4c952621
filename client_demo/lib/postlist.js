// The newsroom's list of a blog's posts, kept live over the same stream readers use (so edits by
// colleagues show up at once), with the per-post actions: edit, pin, key event, correction, delete.

import { api, fetchPosts } from "./api.js";
import { Connection } from "./connection.js";
import { confirmAction } from "./forms.js";
import { comparePosts } from "./order.js";
import { h } from "./render.js";
import { formatStamp } from "./timefmt.js";

const PAGE = 50;

export class PostList {
  /** *desk* gives the session (token, blogId, zone, signOut, blogChanged); *composer* edits posts. */
  constructor(section, desk, composer) {
    Object.assign(this, { section, desk, composer });
    this.list = section.querySelector(".nr-posts");
    this.status = section.querySelector(".nr-list-status");
    this.more = section.querySelector(".nr-more");
    this.posts = new Map();
    this.list.addEventListener("click", (event) => this.act(event));
    this.more.addEventListener("click", () => this.loadMore());
  }

  /** Show *blog*'s posts and follow its changes from *blog.seq* on. */
  async open(blog) {
    this.close();
    this.seq = blog.seq;
    this.epoch = blog.epoch;
    await this.reload();
    this.connection = new Connection({
      origin: location.origin, blogId: blog.id,
      position: () => ({ since: this.seq, epoch: this.epoch }),
      onMessage: (message) => this.receive(message),
      onState: (state) => {
        this.section.dataset.state = state;
      },
    });
    this.connection.start();
  }

  close() {
    this.connection?.stop();
    this.connection = null;
    this.posts.clear();
    this.render();
  }

  async reload() {
    this.posts.clear();
    this.cursor = null;
    await this.loadMore();
  }

  async loadMore() {
    try {
      const page = await fetchPosts(location.origin, this.desk.blogId(), { before: this.cursor, limit: PAGE });
      page.posts.forEach((post) => this.keep(post));
      this.cursor = page.next;
    } catch (problem) {
      this.report(problem);
    }
    this.render();
  }

  receive(message) {
    if (message.type === "snapshot") {
      [this.seq, this.epoch] = [message.seq, message.epoch];
      this.desk.blogChanged(message.blog);
      this.reload();
      return;
    }
    if (message.seq <= this.seq) return;
    this.seq = message.seq;
    if (message.post) this.keep(message.post);
    if (message.type === "post.deleted") this.posts.delete(message.post_id);
    if (message.type === "blog.updated") this.desk.blogChanged(message.blog);
    this.render();
  }

  keep(post) {
    const known = this.posts.get(post.id);
    if (!known || known.version < post.version) this.posts.set(post.id, post);
  }

  render() {
    // Rows are rebuilt on every change; the focused button is found again by post and action.
    const focused = document.activeElement?.closest?.(".nr-post [data-action]");
    const refocus = focused && [focused.closest(".nr-post").dataset.id, focused.dataset.action];
    const posts = [...this.posts.values()].sort((a, b) => comparePosts(a, b, "newest"));
    this.list.replaceChildren(...posts.map((post) => this.row(post)));
    if (!posts.length) this.list.append(h("li", { class: "nr-none" }, "No posts yet."));
    this.more.hidden = !this.cursor;
    if (refocus) this.list.querySelector(`[data-id="${refocus[0]}"] [data-action="${refocus[1]}"]`)?.focus();
  }

  row(post) {
    const headlineId = `nr-headline-${post.id}`;
    const button = (action, label, pressed = null) => h("button", { type: "button", "data-action": action,
      "aria-pressed": pressed === null ? null : String(pressed), "aria-describedby": headlineId }, label);
    return h("li", { class: "nr-post", "data-id": post.id },
      h("div", { class: "nr-post-text" },
        h("p", { class: "nr-post-meta" },
          h("time", { datetime: post.published_at }, formatStamp(post.published_at, this.desk.zone())),
          ` · version ${post.version}`,
          post.pinned && h("span", { class: "lp-pinned" }, "Pinned"),
          post.key_event && h("span", { class: "lp-key" }, "Key event"),
          post.correction && h("span", { class: "nr-corrected" }, "Corrected")),
        h("p", { class: "nr-post-headline", id: headlineId }, post.headline)),
      h("div", { class: "nr-post-actions" },
        button("edit", "Edit"),
        button("pin", "Pin", post.pinned),
        button("key", "Key event", post.key_event),
        button("correct", "Correction"),
        button("delete", "Delete")));
  }

  async act(event) {
    const button = event.target.closest("button[data-action]");
    const post = button && this.posts.get(button.closest(".nr-post").dataset.id);
    if (!post) return;
    this.say("");
    const action = button.dataset.action;
    if (action === "edit") this.composer.load(post);
    else if (action === "correct") this.composer.load(post, "correction");
    else if (action === "pin") await this.change(post, { pinned: !post.pinned });
    else if (action === "key") await this.change(post, { key_event: !post.key_event });
    else if (action === "delete") await this.remove(post);
  }

  url(post) {
    return `/api/blogs/${encodeURIComponent(this.desk.blogId())}/posts/${encodeURIComponent(post.id)}`;
  }

  async change(post, changes) {
    try {
      await api(this.url(post), { method: "PATCH", token: this.desk.token(), json: changes,
        headers: { "If-Match": `"${post.version}"` } });
    } catch (problem) {
      this.report(problem);
    }
  }

  async remove(post) {
    if (!await confirmAction(`Delete “${post.headline}”? Readers will no longer see it.`, "Delete post")) return;
    try {
      await api(this.url(post), { method: "DELETE", token: this.desk.token(),
        headers: { "If-Match": `"${post.version}"` } });
      this.say(`Deleted “${post.headline}”.`);
    } catch (problem) {
      this.report(problem);
    }
  }

  report(problem) {
    if (problem.status === 401) this.desk.signOut(problem);
    else if (problem.status === 412) this.say("Someone changed this post a moment ago; the list shows the latest version now. Try again.");
    else this.say(problem instanceof TypeError ? "The server cannot be reached." : problem.message);
  }

  say(text) {
    this.status.textContent = text;
  }
}
