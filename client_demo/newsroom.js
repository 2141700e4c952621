// The newsroom console (/newsroom): sign in with a token, pick or create a blog, then write,
// publish, edit, pin, mark, correct and delete posts, and end the blog. The token lives in
// sessionStorage: it is forgotten when the tab closes.

import { api } from "./lib/api.js";
import { Composer } from "./lib/composer.js";
import { clearErrors, confirmAction, say, showProblem } from "./lib/forms.js";
import { PostList } from "./lib/postlist.js";
import { h } from "./lib/render.js";

const TOKEN = "livepush.token";
const BLOG = "livepush.blog";
const byId = (id) => document.getElementById(id);

class Desk {
  constructor() {
    this.blog = null;
    this.signin = byId("nr-signin");
    this.app = byId("nr-app");
    this.picker = byId("nr-blog");
    this.composer = new Composer(byId("nr-post-form"), byId("nr-preview"), this);
    this.posts = new PostList(byId("nr-posts"), this, this.composer);
    this.signin.addEventListener("submit", (event) => this.signIn(event));
    byId("nr-signout").addEventListener("click", () => this.signOut());
    this.picker.addEventListener("change", () => {
      this.choose(this.picker.value).catch((problem) => this.posts.report(problem));
    });
    byId("nr-blog-form").addEventListener("submit", (event) => this.createBlog(event));
    byId("nr-end").addEventListener("click", () => this.toggleEnded());
  }

  token() {
    return sessionStorage.getItem(TOKEN);
  }

  blogId() {
    return this.blog?.id;
  }

  zone() {
    return this.blog?.timezone || "America/New_York";
  }

  async start() {
    if (this.token()) await this.enter();
    else this.show(false);
  }

  show(signedIn) {
    this.signin.hidden = signedIn;
    this.app.hidden = !signedIn;
  }

  // The API has no "who am I" call, so a token is tried by the first write; a refused token brings
  // the editor back here (the draft stays in its form).
  async signIn(event) {
    event.preventDefault();
    const token = this.signin.elements.token.value.trim();
    clearErrors(this.signin);
    if (!token) {
      showProblem(this.signin, { field: "Authorization", message: "Enter your token." });
      return;
    }
    sessionStorage.setItem(TOKEN, token);
    this.signin.reset();
    await this.enter();
  }

  /** Forget the token; with *problem* (a refused token), say why on the sign-in form. */
  signOut(problem = null) {
    sessionStorage.removeItem(TOKEN);
    this.posts.close();
    if (!problem) this.composer.reset(); // signing out on purpose leaves nothing behind
    this.show(false);
    if (problem) showProblem(this.signin, { field: "Authorization", message: "The server does not accept this token." });
    this.signin.elements.token.focus();
  }

  async enter() {
    try {
      await this.loadBlogs(sessionStorage.getItem(BLOG));
    } catch (problem) {
      showProblem(this.signin, problem);
      return;
    }
    this.show(true);
  }

  async loadBlogs(wanted) {
    const blogs = [];
    let cursor = null;
    do {  // the list comes a page at a time; the console offers every blog
      const page = await api(`/api/blogs?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      blogs.push(...page.blogs);
      cursor = page.next;
    } while (cursor);
    this.picker.replaceChildren(...blogs.map((blog) => h("option", { value: blog.id }, this.label(blog))));
    byId("nr-new-blog").open = blogs.length === 0;
    const chosen = blogs.find((blog) => blog.id === wanted) || blogs[0];
    if (chosen) await this.choose(chosen.id);
    else this.showBlog();
  }

  label(blog) {
    return `${blog.title} (${blog.status === "ended" ? "ended" : "live"})`;
  }

  async choose(blogId) {
    const blog = await api(`/api/blogs/${encodeURIComponent(blogId)}`);
    // A new post's draft may move to another blog; an edit belongs to its own.
    if (this.composer.editing && blog.id !== this.blogId()) this.composer.reset();
    this.blog = blog;
    sessionStorage.setItem(BLOG, blogId);
    this.picker.value = blogId;
    this.showBlog();
    await this.posts.open(blog);
  }

  /** The stream reported a change to the blog (status, title, ...). */
  blogChanged(blog) {
    if (blog.id !== this.blogId()) return;
    this.blog = blog;
    this.showBlog();
  }

  showBlog() {
    const blog = this.blog;
    byId("nr-workspace").hidden = !blog;
    if (!blog) return;
    const option = [...this.picker.options].find((item) => item.value === blog.id);
    if (option) option.textContent = this.label(blog);
    const ended = blog.status === "ended";
    byId("nr-open").href = `/blogs/${encodeURIComponent(blog.id)}`;
    byId("nr-blog-status").textContent = ended ? "Ended" : "Live";
    byId("nr-blog-status").dataset.status = blog.status;
    byId("nr-end").textContent = ended ? "Reopen this blog" : "End this blog";
    this.composer.renderPreview();
  }

  async toggleEnded() {
    const ended = this.blog.status === "ended";
    if (!ended && !await confirmAction(`End “${this.blog.title}”? Readers see it as ended and no new posts can be published.`, "End blog")) return;
    try {
      const blog = await api(`/api/blogs/${encodeURIComponent(this.blog.id)}`, { method: "PATCH",
        token: this.token(), json: { status: ended ? "live" : "ended" } });
      this.blogChanged(blog);
    } catch (problem) {
      if (problem.status === 401) this.signOut(problem);
      else say(byId("nr-post-form"), problem.message, "error");
    }
  }

  async createBlog(event) {
    event.preventDefault();
    const form = event.target;
    const fields = form.elements;
    const blog = { id: fields.id.value.trim(), title: fields.title.value.trim(), source: fields.source.value.trim(),
      timezone: fields.timezone.value.trim() || "America/New_York",
      authors: fields.authors.value.split(",").map((name) => name.trim()).filter(Boolean) };
    clearErrors(form);
    try {
      await api("/api/blogs", { method: "POST", token: this.token(), json: blog });
    } catch (problem) {
      if (problem.status === 401) this.signOut(problem);
      else showProblem(form, problem);
      return;
    }
    form.reset();
    byId("nr-new-blog").open = false;
    await this.loadBlogs(blog.id);
  }
}

window.livepush = { desk: new Desk() };
window.livepush.desk.start();
