// Tile elements for the grid: a generated image, a trashed image, an input.

import { h, icon } from "./dom.js";
import { dateTime, daysLeft, plural, shorten } from "./format.js";

/** Alt text from the prompt (or what the image is, when there is none). */
export function altText(item) {
  if (item.prompt) return shorten(item.prompt, 160);
  if (item.kind === "input" || item.kind === "control") return `Input image ${item.original_filename || ""}`.trim();
  return `Generated image from ${dateTime(item.created_at)}`;
}

function thumb(item) {
  const img = h("img", { alt: altText(item), loading: "lazy", decoding: "async", draggable: "false" });
  img.src = item.thumb_url || item.url;
  return img;
}

function actionButton(action, label, iconName, cls = "") {
  return h("button", { type: "button", class: `tile-action ${cls}`.trim(), "data-action": action, "aria-label": label, title: label }, icon(iconName));
}

/**
 * A tile: options.mode is "gallery", "trash" or "inputs"; selected marks it;
 * retentionDays gives the days left of a trashed image.
 */
export function renderTile(item, { mode, selected, retentionDays }) {
  const trashed = item.status === "trash";
  const tile = h("div", {
    class: `tile${selected ? " selected" : ""}${trashed ? " trashed" : ""}`,
    "data-testid": "gallery-item",
    "data-id": item.id,
  });
  if (mode === "inputs") {
    tile.append(h("a", { class: "tile-open", href: item.url, target: "_blank", rel: "noopener" }, thumb(item)));
    tile.append(h("span", { class: "tile-caption" }, item.original_filename || "input"));
  } else {
    tile.append(h("button", { type: "button", class: "tile-open", title: shorten(item.prompt || "", 300) || null }, thumb(item)));
    tile.append(
      h("button", {
        type: "button",
        class: "select-toggle",
        "data-testid": "select-toggle",
        "aria-pressed": String(Boolean(selected)),
        "aria-label": `Select: ${shorten(altText(item), 60)}`,
      }, icon("check")),
    );
  }
  if (item.favorite && !trashed) tile.append(h("span", { class: "tile-favorite", title: "Favorite" }, icon("heart", "icon icon-small"), h("span", { class: "visually-hidden" }, "Favorite")));
  if (trashed && mode !== "inputs") {
    const left = daysLeft(item.trashed_at, retentionDays);
    tile.append(h("span", { class: left <= 3 ? "tile-badge tile-badge-warn" : "tile-badge" }, left === 0 ? "Purged soon" : `${plural(left, "day")} left`));
  }
  const actions = h("div", { class: "tile-actions" });
  if (mode === "trash") {
    actions.append(actionButton("restore", "Restore", "restore"), actionButton("purge", "Delete forever", "trash", "danger"));
  } else if (mode === "inputs") {
    actions.append(trashed ? actionButton("restore-input", "Restore input", "restore") : actionButton("delete-input", "Delete input", "trash", "danger"));
  }
  if (actions.childElementCount) tile.append(actions);
  return tile;
}

/** A grey placeholder box where an image will be once its page is loaded. */
export function renderSkeleton() {
  return h("div", { class: "tile tile-skeleton", "aria-hidden": "true" });
}
