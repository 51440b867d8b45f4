// Toasts (with an optional action such as Undo) and the confirmation dialog.

import { byId, h } from "./dom.js";
import { t } from "./i18n.js";

const TOAST_MS = 6000;
const ERROR_MS = 10000;
const ACTION_MS = 30000; // a toast with an action (Undo) lasts until dismissed or this long
const SHORTENED_MS = 2000; // what a toast keeps once another one waits

const queue = [];
let current = null;

/** The strip a toast goes into: an open modal dialog's own (the page behind it is inert), else the page's. */
function strip() {
  return document.querySelector("dialog[open] .toasts") || byId("toasts");
}

/**
 * Show a short message, one at a time: others wait in a queue. action =
 * {label, run} adds a button (e.g. Undo). Returns a handle whose update(message,
 * options) replaces the text in place (a progress message by its outcome) and
 * close() takes it away.
 */
export function toast(message, { action = null, error = false } = {}) {
  const handle = { message, action, error, el: null, timer: 0, closed: false };
  handle.close = () => closeToast(handle);
  handle.update = (text, options = {}) => {
    handle.message = text;
    handle.action = options.action ?? null;
    handle.error = Boolean(options.error);
    if (handle.el) draw(handle);
    else if (handle.closed) enqueue(handle);
  };
  const last = queue[queue.length - 1] || current;
  if (last && !last.closed && last.message === message && !action) return last;
  enqueue(handle);
  return handle;
}

function enqueue(handle) {
  handle.closed = false;
  queue.push(handle);
  // NOTE: a newer message supersedes the one on screen after a short while,
  // an Undo included (Ctrl+Z still reaches the latest Undo while it shows).
  if (!current) next();
  else restartTimer(current, SHORTENED_MS);
}

function next() {
  current = queue.shift() || null;
  if (!current) return;
  draw(current);
  strip().append(current.el);
}

function draw(handle) {
  const el = handle.el || h("div", { "data-testid": "toast" });
  el.className = handle.error ? "toast toast-error" : "toast";
  el.setAttribute("role", handle.error ? "alert" : "status");
  const parts = [h("span", { class: "toast-text" }, handle.message)];
  if (handle.action) {
    parts.push(h("button", {
      type: "button",
      class: "btn btn-small toast-action",
      onclick: () => {
        const run = handle.action.run;
        handle.close();
        run();
      },
    }, handle.action.label));
  }
  parts.push(h("button", { type: "button", class: "btn btn-icon btn-small", "aria-label": t("Dismiss"), onclick: () => handle.close() }, "×"));
  el.replaceChildren(...parts);
  handle.el = el;
  const ms = handle.action ? ACTION_MS : handle.error ? ERROR_MS : TOAST_MS;
  restartTimer(handle, queue.length ? SHORTENED_MS : ms);
}

function restartTimer(handle, ms) {
  clearTimeout(handle.timer);
  handle.timer = setTimeout(() => handle.close(), ms);
}

function closeToast(handle) {
  clearTimeout(handle.timer);
  if (handle.closed) return;
  handle.closed = true;
  const waiting = queue.indexOf(handle);
  if (waiting >= 0) queue.splice(waiting, 1);
  if (handle.el) handle.el.remove();
  handle.el = null;
  if (current === handle) next();
}

/** Run the action of the toast on screen (Ctrl+Z runs its Undo); false when it has none. */
export function runToastAction() {
  if (!current || !current.action) return false;
  const run = current.action.run;
  current.close();
  run();
  return true;
}

/** Move the toast on screen into the strip where it can be seen (a dialog opened or closed). */
export function moveToasts() {
  if (current && current.el) strip().append(current.el);
}

/** Show an API error as a toast. */
export function showError(err, what = t("That did not work")) {
  if (err && err.name === "AbortError") return;
  console.warn(what, err);
  toast(`${what}: ${err && err.message ? err.message : err}`, { error: true });
}

/**
 * Ask before a destructive or bulk step. Resolves to true/false, or to the
 * typed text when ``input`` is given ({label, placeholder}); null on cancel.
 */
export function confirmDialog({ title, text = "", ok = t("OK"), danger = false, input = null }) {
  const dialog = byId("confirm-dialog");
  byId("confirm-title").textContent = title;
  byId("confirm-text").textContent = text;
  byId("confirm-text").hidden = !text;
  const okButton = byId("confirm-ok");
  okButton.textContent = ok;
  okButton.className = danger ? "btn btn-danger" : "btn btn-primary";
  const field = byId("confirm-field");
  const fieldInput = byId("confirm-input");
  field.hidden = !input;
  fieldInput.value = "";
  if (input) {
    byId("confirm-label").textContent = input.label;
    fieldInput.placeholder = input.placeholder || "";
  }
  const onKey = (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      dialog.close("ok");
    }
  };
  fieldInput.addEventListener("keydown", onKey);
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        fieldInput.removeEventListener("keydown", onKey);
        const accepted = dialog.returnValue === "ok";
        if (input) resolve(accepted ? fieldInput.value : null);
        else resolve(accepted);
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    (input ? fieldInput : okButton).focus();
  });
}
