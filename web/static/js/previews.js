// Video previews in the grid: a video tile plays muted inline while the
// pointer is over it or its open button has the focus.
//
// The <video> is made when the preview starts and removed when it ends, so
// the grid holds at most one, and only one plays at a time. With
// prefers-reduced-motion nothing plays by itself (the viewer's player still does).

import { h } from "./dom.js";

let current = null; // { tile, video }

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

/** Start the preview of a video tile (stopping any other). */
export function startPreview(tile) {
  if (!tile || !tile.dataset.video || reducedMotion.matches) return;
  if (current && current.tile === tile && current.video.isConnected) return;
  stopPreview();
  const poster = tile.querySelector(".tile-open img");
  const video = h("video", {
    class: "tile-preview",
    "data-testid": "tile-preview",
    muted: true,
    loop: true,
    playsinline: true,
    preload: "auto",
    "aria-hidden": "true",
    tabindex: "-1",
    disablepictureinpicture: true,
  });
  // NOTE: the muted property (not only the attribute) is what lets a browser autoplay.
  video.muted = true;
  if (poster && poster.currentSrc) video.poster = poster.currentSrc;
  video.src = tile.dataset.video;
  tile.classList.add("previewing");
  tile.querySelector(".tile-open").after(video);
  current = { tile, video };
  // NOTE: play() rejects when the preview is stopped before it starts; that is expected.
  video.play().catch(() => {});
}

/** Stop and remove the playing preview, if any. */
export function stopPreview() {
  if (!current) return;
  const { tile, video } = current;
  current = null;
  video.pause();
  video.removeAttribute("src");
  video.load();
  video.remove();
  tile.classList.remove("previewing");
}

/** Hover (mouse and pen) and focus start a tile's preview; leaving, blur and a click stop it. */
export function bindPreviews(grid) {
  grid.addEventListener("pointerover", (event) => {
    if (event.pointerType === "touch") return;
    const tile = event.target.closest(".tile[data-video]");
    if (tile) startPreview(tile);
  });
  grid.addEventListener("pointerout", (event) => {
    if (!current || event.pointerType === "touch") return;
    if (!current.tile.contains(event.relatedTarget)) stopPreview();
  });
  grid.addEventListener("focusin", (event) => {
    if (event.target.classList.contains("tile-open")) startPreview(event.target.closest(".tile[data-video]"));
  });
  grid.addEventListener("focusout", (event) => {
    if (current && !current.tile.contains(event.relatedTarget) && !current.tile.matches(":hover")) stopPreview();
  });
  grid.addEventListener("click", () => stopPreview(), true);
}
