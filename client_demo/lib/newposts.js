// New posts that arrive while the reader is scrolled down wait behind one sticky "N new posts"
// button instead of pushing the page around; the tab title counts them: "(2) Title".

import { h } from "./render.js";

export class NewPosts {
  /** *bar* is the sticky bar above the feed; *onReveal* runs when the reader asks to see them. */
  constructor(bar, onReveal) {
    this.posts = new Map();
    this.title = document.title.replace(/^\(\d+\) /, "");
    this.button = h("button", { type: "button", class: "lp-new-posts", hidden: true });
    this.button.addEventListener("click", onReveal);
    bar.prepend(this.button);
  }

  get size() {
    return this.posts.size;
  }

  has(id) {
    return this.posts.has(id);
  }

  /** Keep *post* waiting (or its newer version). */
  add(post) {
    const waiting = this.posts.get(post.id);
    if (!waiting || waiting.version < post.version) this.posts.set(post.id, post);
    this.render();
  }

  drop(id) {
    if (this.posts.delete(id)) this.render();
  }

  /** The waiting posts, which stop waiting. */
  take() {
    const posts = [...this.posts.values()];
    this.posts.clear();
    this.render();
    return posts;
  }

  setTitle(title) {
    this.title = title;
    this.render();
  }

  render() {
    const count = this.posts.size;
    this.button.hidden = count === 0;
    this.button.replaceChildren(h("span", { "aria-hidden": "true" }, "↑ "),
      count === 1 ? "1 new post" : `${count} new posts`);
    const title = count ? `(${count}) ${this.title}` : this.title;
    if (document.title !== title) document.title = title;
  }
}
