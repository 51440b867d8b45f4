// The keyboard shortcuts overlay ("?" in the grid or the lightbox).

import { h, trapFocus } from "./dom.js";
import { t } from "./i18n.js";

const KEYS = [
  ["Grid", [
    ["← → ↑ ↓", "Move between images"],
    ["Enter", "Open the image"],
    ["x", "Select or unselect the image"],
    ["Shift + arrows", "Extend the selection"],
    ["d", "Select the image's day"],
    ["Ctrl + A", "Select every image of the view"],
    ["Delete", "Move to the trash (in the trash: delete forever)"],
    ["r", "Restore (trash view)"],
    ["Ctrl + Z", "Undo"],
    ["Escape", "Clear the selection"],
  ]],
  ["Viewer", [
    ["← →", "Previous or next image"],
    ["f", "Favorite"],
    ["Delete", "Move to the trash"],
    ["z", "Zoom to full size and back"],
    ["d", "Download the original"],
    ["Space", "Play or pause a video (its player focused)"],
    ["Escape", "Close the viewer"],
  ]],
  ["Anywhere", [["?", "Show this help"]]],
];

export class HelpOverlay {
  constructor() {
    this.dialog = null;
    this.opener = null;
  }

  build() {
    const sections = KEYS.map(([title, rows]) => h("section", {},
      h("h3", {}, t(title)),
      h("dl", { class: "help-keys" }, ...rows.flatMap(([keys, what]) => [h("dt", {}, h("kbd", {}, t(keys))), h("dd", {}, t(what))])),
    ));
    const close = h("button", { type: "button", class: "btn", onclick: () => this.dialog.close() }, t("Close"));
    const dialog = h("dialog", { class: "help-dialog", id: "help-dialog", "aria-labelledby": "help-title", "data-testid": "help" },
      h("h2", { id: "help-title" }, t("Keyboard shortcuts")), ...sections, h("div", { class: "confirm-actions" }, close));
    dialog.addEventListener("close", () => {
      if (this.opener && this.opener.isConnected) this.opener.focus();
    });
    trapFocus(dialog);
    document.body.append(dialog);
    this.dialog = dialog;
    this.closeButton = close;
  }

  /** Show the overlay (over the lightbox when that is open). */
  open() {
    if (!this.dialog) this.build();
    if (this.dialog.open) return;
    this.opener = document.activeElement;
    this.dialog.showModal();
    this.closeButton.focus();
  }
}
