// Tile elements for the grid: a generated image, a trashed image, an input.
//
// A tile has one tab stop (its open button, managed by the grid's roving
// tabindex); its select circle and actions are for the pointer, the keyboard
// has x, Delete and r on the focused tile.

import { h, icon } from "./dom.js";
import { clock, dateTime, daysLeft, shorten } from "./format.js";
import { t, tn } from "./i18n.js";

/** Whether a record is a video (MP4 or WebM). */
export function isVideo(item) {
  return String(item.mime || "").startsWith("video/");
}

/** Whether a record is an animated image (APNG or animated WebP). */
export function isAnimated(item) {
  return !isVideo(item) && (item.frames || 0) > 1;
}

/** Alt text from the prompt (or what the image is, when there is none). */
export function altText(item) {
  if (item.prompt) return shorten(item.prompt, 160);
  if (isVideo(item)) return t("Video from {date}", { date: dateTime(item.created_at) });
  if (item.kind === "input" || item.kind === "control") return t("Input image {name}", { name: item.original_filename || "" }).trim();
  return t("Generated image from {date}", { date: dateTime(item.created_at) });
}

function thumb(item) {
  const img = h("img", { alt: altText(item), loading: "lazy", decoding: "async", draggable: "false" });
  img.src = item.thumb_url || item.url;
  return img;
}

function actionButton(action, label, iconName, cls = "") {
  return h("button", { type: "button", class: `tile-action ${cls}`.trim(), "data-action": action, "aria-label": label, title: label, tabindex: "-1" }, icon(iconName));
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
  // NOTE: a video tile names its original; the grid's preview plays it on hover or focus (previews.js).
  if (isVideo(item) && !trashed) tile.dataset.video = item.url;
  // NOTE: the image's dominant colour (stored at ingest) fills the box until the thumbnail arrives.
  if (item.color && /^#[0-9a-f]{6}$/i.test(item.color)) tile.style.backgroundColor = item.color;
  const label = mode === "inputs" ? item.original_filename || t("input") : shorten(item.prompt || "", 300);
  tile.append(h("button", { type: "button", class: "tile-open", tabindex: "-1", title: label || null }, thumb(item)));
  if (mode === "inputs") tile.append(h("span", { class: "tile-caption" }, item.original_filename || t("input")));
  tile.append(
    h("button", {
      type: "button",
      class: "select-toggle",
      tabindex: "-1",
      "data-testid": "select-toggle",
      "aria-pressed": String(Boolean(selected)),
      "aria-label": t("Select: {what}", { what: shorten(altText(item), 60) }),
    }, icon("check")),
  );
  if (isVideo(item)) {
    tile.append(h("span", { class: "tile-media tile-play", "data-testid": "play-badge" },
      icon("play", "icon icon-small"), h("span", { class: "visually-hidden" }, t("Video")),
      item.duration_ms ? h("span", { class: "tile-duration" }, clock(item.duration_ms)) : null));
  } else if (isAnimated(item)) {
    tile.append(h("span", { class: "tile-media", "data-testid": "animated-badge" }, t("Animated")));
  }
  if (item.favorite && !trashed) tile.append(h("span", { class: "tile-favorite", title: t("Favorite") }, icon("heart", "icon icon-small"), h("span", { class: "visually-hidden" }, t("Favorite"))));
  if (trashed && mode !== "inputs") {
    const left = daysLeft(item.trashed_at, retentionDays);
    tile.append(h("span", { class: left <= 3 ? "tile-badge tile-badge-warn" : "tile-badge" }, left === 0 ? t("Purged soon") : tn("{n} day left", "{n} days left", left)));
  }
  const actions = h("div", { class: "tile-actions" });
  if (mode === "trash") {
    actions.append(actionButton("restore", t("Restore"), "restore"), actionButton("purge", t("Delete forever"), "trash", "danger"));
  } else if (mode === "inputs") {
    actions.append(trashed ? actionButton("restore-input", t("Restore input"), "restore") : actionButton("delete-input", t("Delete input"), "trash", "danger"));
  }
  if (actions.childElementCount) tile.append(actions);
  return tile;
}

/** A grey placeholder box where an image will be once its page is loaded. */
export function renderSkeleton() {
  return h("div", { class: "tile tile-skeleton", "aria-hidden": "true" });
}
