// The newsroom's post form: write or edit a post while a preview shows it exactly as readers will
// (the widget's own renderer), publish it, save edits. An edit based on an old version is never
// saved over a newer one: the server answers 412 and the newer version is shown next to the
// editor's, who then chooses.

import { api } from "./api.js";
import { clearErrors, say, showProblem } from "./forms.js";
import { h, renderPost } from "./render.js";
import { sanitizePreview } from "./sanitize.js";

const TEXT_FIELDS = ["headline", "byline", "body", "correction"];
const FLAGS = ["pinned", "key_event"];

function randomKey() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** An instant as the value of an <input type="datetime-local"> (the editor's own time zone). */
function localInput(iso) {
  const date = new Date(iso);
  const pad = (number) => String(number).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export class Composer {
  /** *desk* gives the session: token(), blogId(), zone(), signOut(problem). */
  constructor(form, preview, desk) {
    Object.assign(this, { form, preview, desk });
    this.editing = null; // the post being edited: its version goes in If-Match
    this.attempt = null; // {body, key} of the last publish, reused if the same draft is sent again
    this.conflictBox = form.querySelector(".nr-conflict");
    form.addEventListener("input", () => this.renderPreview());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    form.querySelector("[data-action=cancel]").addEventListener("click", () => this.reset());
  }

  get fields() {
    return this.form.elements;
  }

  values() {
    const values = Object.fromEntries(TEXT_FIELDS.map((name) => [name, this.fields[name].value.trim()]));
    for (const name of FLAGS) values[name] = this.fields[name].checked;
    const when = this.fields.published_at.value;
    if (when) values.published_at = new Date(when).toISOString();
    return values;
  }

  /** The draft as a post, for the preview. */
  draft(id = "preview") {
    const values = this.values();
    return { ...values, id, version: 1, headline: values.headline || "Your headline",
      body: sanitizePreview(values.body),
      published_at: values.published_at || this.editing?.published_at || new Date().toISOString() };
  }

  renderPreview() {
    this.preview.replaceChildren(renderPost(this.draft(), this.desk.zone()));
  }

  /** Edit *post*; *focus* names the field to start in. */
  load(post, focus = "headline") {
    this.reset();
    this.editing = post;
    for (const name of TEXT_FIELDS) this.fields[name].value = post[name] || "";
    for (const name of FLAGS) this.fields[name].checked = Boolean(post[name]);
    this.fields.published_at.value = localInput(post.published_at);
    this.setMode("edit");
    this.renderPreview();
    this.form.scrollIntoView({ block: "start" });
    this.fields[focus].focus({ preventScroll: true });
  }

  /** Back to an empty "New post" form. */
  reset() {
    this.form.reset();
    this.editing = null;
    this.hideConflict();
    clearErrors(this.form);
    this.setMode("new");
    this.renderPreview();
  }

  setMode(mode) {
    this.form.dataset.mode = mode;
    this.form.querySelector(".nr-form-title").textContent = mode === "edit" ? "Edit post" : "New post";
    this.form.querySelector("[type=submit]").textContent = mode === "edit" ? "Save changes" : "Publish";
    this.form.querySelector("[data-action=cancel]").hidden = mode !== "edit";
  }

  postsUrl(postId = "") {
    const path = `/api/blogs/${encodeURIComponent(this.desk.blogId())}/posts`;
    return postId ? `${path}/${encodeURIComponent(postId)}` : path;
  }

  async submit() {
    clearErrors(this.form);
    this.form.setAttribute("aria-busy", "true");
    try {
      if (this.editing) await this.save();
      else await this.publish();
    } catch (problem) {
      if (problem.status === 412) await this.showConflict();
      else if (problem.status === 401) this.desk.signOut(problem);
      else showProblem(this.form, problem);
    } finally {
      this.form.removeAttribute("aria-busy");
    }
  }

  async publish() {
    const values = this.values();
    const body = JSON.stringify(values);
    // Sending the same draft again (after a timeout, a double click) reuses its Idempotency-Key,
    // so the server returns the first result instead of publishing a duplicate.
    if (this.attempt?.body !== body) this.attempt = { body, key: randomKey() };
    const result = await api(this.postsUrl(), { method: "POST", token: this.desk.token(), json: values,
      headers: { "Idempotency-Key": this.attempt.key } });
    this.attempt = null;
    this.reset();
    say(this.form, `Published “${result.post.headline}”.`);
  }

  /** What the editor changed in the post being edited. */
  changes() {
    const values = this.values();
    const changes = {};
    for (const name of [...TEXT_FIELDS, ...FLAGS]) {
      if (values[name] !== (this.editing[name] ?? (FLAGS.includes(name) ? false : ""))) changes[name] = values[name];
    }
    // The input holds minutes only: send the time only if the editor changed it.
    if (this.fields.published_at.value !== localInput(this.editing.published_at) && values.published_at) {
      changes.published_at = values.published_at;
    }
    return changes;
  }

  async save() {
    const changes = this.changes();
    if (!Object.keys(changes).length) {
      say(this.form, "Nothing has changed.");
      return;
    }
    const result = await api(this.postsUrl(this.editing.id), { method: "PATCH", token: this.desk.token(),
      json: changes, headers: { "If-Match": `"${this.editing.version}"` } });
    this.reset();
    say(this.form, `Saved “${result.post.headline}” (version ${result.post.version}).`);
  }

  async showConflict() {
    const saved = await api(this.postsUrl(this.editing.id));
    const zone = this.desk.zone();
    const title = h("h3", { tabindex: "-1" }, "Someone else changed this post");
    const keepMine = h("button", { type: "button" }, "Save mine over it");
    const takeTheirs = h("button", { type: "button" }, "Edit the saved version instead");
    keepMine.addEventListener("click", () => {
      this.editing = saved; // re-based: what differs from the saved version is sent, with its version
      this.hideConflict();
      this.submit();
    });
    takeTheirs.addEventListener("click", () => this.load(saved));
    this.conflictBox.replaceChildren(title,
      h("p", {}, `Nothing was overwritten. The post is at version ${saved.version} now; your edit started from `
        + `version ${this.editing.version}. Compare, then choose.`),
      h("div", { class: "nr-versions" },
        h("section", { "aria-label": "Saved version" }, h("h4", {}, `Saved (version ${saved.version})`),
          renderPost({ ...saved, id: "conflict-saved" }, zone)),
        h("section", { "aria-label": "Your version" }, h("h4", {}, "Yours"),
          renderPost(this.draft("conflict-yours"), zone))),
      h("p", { class: "nr-actions" }, keepMine, " ", takeTheirs));
    this.conflictBox.hidden = false;
    title.focus();
  }

  hideConflict() {
    this.conflictBox.hidden = true;
    this.conflictBox.replaceChildren();
  }
}
