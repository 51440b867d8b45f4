// Toasts (with an optional action such as Undo) and the confirmation dialog.

import { byId, h } from "./dom.js";

const TOAST_MS = 7000;

/** Show a short message; action = {label, run} adds a button (e.g. Undo). */
export function toast(message, { action = null, error = false } = {}) {
  // NOTE: an open modal dialog makes the page behind it inert, so a toast
  // raised from the lightbox goes into the lightbox's own toast strip.
  const box = document.querySelector("dialog[open] .toasts") || byId("toasts");
  const el = h("div", { class: error ? "toast toast-error" : "toast", role: error ? "alert" : null }, h("span", {}, message));
  let timer = 0;
  const close = () => {
    clearTimeout(timer);
    el.remove();
  };
  if (action) {
    el.append(
      h("button", {
        type: "button",
        class: "btn btn-small toast-action",
        onclick: () => {
          close();
          action.run();
        },
      }, action.label),
    );
  }
  el.append(h("button", { type: "button", class: "btn btn-icon btn-small", "aria-label": "Dismiss", onclick: close }, "×"));
  box.append(el);
  timer = setTimeout(close, action ? TOAST_MS * 1.5 : TOAST_MS);
  return close;
}

/** Show an API error as a toast. */
export function showError(err, what = "That did not work") {
  if (err && err.name === "AbortError") return;
  console.warn(what, err);
  toast(`${what}: ${err && err.message ? err.message : err}`, { error: true });
}

/**
 * Ask before a destructive or bulk step. Resolves to true/false, or to the
 * typed text when ``input`` is given ({label, placeholder}); null on cancel.
 */
export function confirmDialog({ title, text = "", ok = "OK", danger = false, input = null }) {
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
