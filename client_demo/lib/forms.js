// Form plumbing for the newsroom console: API problems shown next to the field they name, a
// form-level message otherwise, and a confirmation dialog for destructive actions.

import { h } from "./render.js";

/** The input an API field name refers to ("authors.2" -> the authors input). */
function inputFor(form, field) {
  if (!field) return null;
  const name = field.split(".")[0];
  return form.querySelector(`[data-field="${CSS.escape(name)}"]`) || form.elements.namedItem(name);
}

export function clearErrors(form) {
  for (const error of form.querySelectorAll(".nr-error")) error.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    const described = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.endsWith("-error"));
    if (described.length) input.setAttribute("aria-describedby", described.join(" "));
    else input.removeAttribute("aria-describedby");
  }
  say(form, "");
}

function fieldError(input, message) {
  const error = h("p", { class: "nr-error", id: `${input.id}-error` }, message);
  (input.closest(".nr-check") || input).after(error);
  input.setAttribute("aria-invalid", "true");
  const described = input.getAttribute("aria-describedby");
  input.setAttribute("aria-describedby", described ? `${described} ${error.id}` : error.id);
}

/** Show *problem* (an api.js Problem or an Error) on *form*; focus the first field to blame. */
export function showProblem(form, problem) {
  clearErrors(form);
  if (problem instanceof TypeError) {
    say(form, "The server cannot be reached. Check the connection and try again.", "error");
    return;
  }
  const items = problem.errors?.length ? problem.errors : [{ field: problem.field, message: problem.message }];
  const unplaced = [];
  let first = null;
  for (const { field, message } of items) {
    const input = inputFor(form, field);
    if (!input || input.type === "hidden") {
      unplaced.push(message);
      continue;
    }
    fieldError(input, message);
    first ||= input;
  }
  if (unplaced.length) say(form, unplaced.join(" "), "error");
  first?.focus();
}

/** The form's own status line: a success note or an error that names no field. */
export function say(form, text, kind = "note") {
  const line = form.querySelector(".nr-form-status");
  if (!line) return;
  line.textContent = text;
  line.dataset.kind = kind;
}

/** Ask in the page's <dialog id="nr-confirm">; resolves true when the editor confirms. */
export function confirmAction(question, action) {
  const dialog = document.getElementById("nr-confirm");
  dialog.querySelector(".nr-confirm-text").textContent = question;
  dialog.querySelector("[value=ok]").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}
