// The lightbox: one image large with its details, prev/next across pages,
// favorite, tags, copy prompt and parameters, download, workflow, share, use
// as input, zoom (z, double click, pinch), swipe, and a compare mode.

import { api } from "./api.js";
import { connection } from "./connection.js";
import { byId, h, icon, trapFocus } from "./dom.js";
import { bytes, clock, dateTime, shorten } from "./format.js";
import { t } from "./i18n.js";
import { moveToasts, showError } from "./notify.js";
import { isVideo } from "./tiles.js";

const FACTS = [
  ["Seed", (it) => it.seed],
  ["Workflow", (it) => it.workflow_id],
  ["Aspect ratio", (it) => it.aspect_ratio],
  ["Size", (it) => (it.width && it.height ? `${it.width} × ${it.height} px` : null)],
  ["File", (it) => [it.original_filename, bytes(it.bytes)].filter(Boolean).join(" · ")],
  ["Duration", (it) => (it.duration_ms ? (it.duration_ms < 60000 ? `${(it.duration_ms / 1000).toFixed(1)} s` : clock(it.duration_ms)) : null)],
  ["Frames", (it) => (it.frames > 1 ? it.frames.toLocaleString() : null)],
  ["Created", (it) => dateTime(it.created_at)],
  ["Model", (it) => it.source?.model ?? null],
  ["LoRAs", (it) => (it.source?.loras || []).map((l) => (l.strength_model != null ? `${l.name} (${l.strength_model})` : l.name)).join(", ")],
  ["Sampler", (it) => [it.source?.sampler, it.source?.scheduler].filter(Boolean).join(" · ")],
  ["Steps", (it) => it.source?.steps],
  ["CFG", (it) => it.source?.cfg],
  ["Guidance", (it) => it.source?.guidance],
];

// Facts whose values filter the gallery when clicked: label -> [listing parameter, [shown text, value] pairs].
const FILTERABLE = {
  Workflow: ["workflow_id", (it) => [[it.workflow_id, it.workflow_id]]],
  "Aspect ratio": ["aspect_ratio", (it) => [[it.aspect_ratio, it.aspect_ratio]]],
  Model: ["model", (it) => [[it.source?.model, it.source?.model]]],
  LoRAs: ["lora", (it) => (it.source?.loras || []).map((l) => [l.strength_model != null ? `${l.name} (${l.strength_model})` : l.name, l.name])],
  Sampler: ["sampler", (it) => [[[it.source?.sampler, it.source?.scheduler].filter(Boolean).join(" · "), it.source?.sampler]]],
};

const SWIPE_PX = 60;
const MAX_SCALE = 6;

/**
 * Whether a ComfyUI workflow is stored: true, false, or null when the record
 * does not say (its source summary predates the has_workflow field).
 */
// NOTE: ingest reads every PNG's ComfyUI metadata into ``source``; a record
// without ``source`` has none, so only an unknown summary is worth a request.
function storedWorkflow(item) {
  if (item.mime !== "image/png" || !item.source) return false;
  if (typeof item.source.has_workflow === "boolean") return item.source.has_workflow;
  return null;
}

/** The generation parameters of a record as text (what "Copy parameters" copies). */
export function parametersText(item) {
  const lines = [];
  if (item.prompt) lines.push(item.prompt);
  if (item.negative_prompt) lines.push(`Negative prompt: ${item.negative_prompt}`);
  const src = item.source || {};
  const parts = [
    ["Steps", src.steps], ["Sampler", src.sampler], ["Scheduler", src.scheduler], ["CFG scale", src.cfg],
    ["Guidance", src.guidance], ["Seed", item.seed], ["Size", item.width && item.height ? `${item.width}x${item.height}` : null],
    ["Model", src.model], ["Workflow", item.workflow_id],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  for (const lora of src.loras || []) parts.push(["Lora", lora.strength_model != null ? `${lora.name}:${lora.strength_model}` : lora.name]);
  if (parts.length) lines.push(parts.map(([k, v]) => `${k}: ${v}`).join(", "));
  return lines.join("\n");
}

export class Lightbox {
  /**
   * feed(): the current Feed; actions: {trash(item), restore(item), useAsInput(item)}
   * returning promises; onUpdate(item) after a PATCH; help() opens the key overlay.
   */
  constructor({ feed, actions, onUpdate, onClose, help, filterBy = null }) {
    this.filterBy = filterBy;
    this.feed = feed;
    this.actions = actions;
    this.onUpdate = onUpdate;
    this.onClose = onClose;
    this.help = help;
    this.dialog = byId("lightbox");
    this.stage = byId("lb-stage");
    this.img = byId("lb-image");
    this.video = byId("lb-video");
    this.index = -1;
    this.item = null;
    this.opener = null;
    this.moving = false;
    this.workflowProbe = null;
    this.comfyUrl = document.body.dataset.comfyUrl || "";
    this.scale = 1;
    this.dialog.append(h("section", { class: "toasts", "aria-label": t("Viewer notifications") }));
    trapFocus(this.dialog);
    this.bind();
    this.bindTouch();
  }

  bind() {
    byId("lb-prev").addEventListener("click", () => this.step(-1));
    byId("lb-next").addEventListener("click", () => this.step(1));
    byId("lb-close").addEventListener("click", () => this.close());
    byId("lb-help").addEventListener("click", () => this.help());
    byId("lb-favorite").addEventListener("click", () => this.toggleFavorite());
    byId("lb-copy-prompt").addEventListener("click", () => this.copy(this.item?.prompt || "", t("Prompt copied")));
    byId("lb-copy-params").addEventListener("click", () => this.copy(this.item ? parametersText(this.item) : "", t("Parameters copied")));
    byId("lb-share").addEventListener("click", () => this.share());
    byId("lb-share-copy").addEventListener("click", () => this.copy(byId("lb-share-url").value, t("Link copied")));
    byId("lb-share-expires").addEventListener("change", () => this.share());
    byId("lb-use-input").addEventListener("click", () => this.run(this.actions.useAsInput));
    byId("lb-delete").addEventListener("click", () => this.run(this.actions.trash));
    byId("lb-restore").addEventListener("click", () => this.run(this.actions.restore));
    byId("lb-zoom").addEventListener("click", () => this.toggleZoom());
    byId("lb-retry").addEventListener("click", () => this.retry(true));
    byId("lb-compare-mode").addEventListener("click", () => this.setSlider(!byId("lb-compare").classList.contains("slider")));
    byId("lb-compare-split").addEventListener("input", () => this.setSplit());
    byId("lb-prompt-more").addEventListener("click", (event) => {
      const open = byId("lb-prompt").classList.toggle("expanded");
      event.currentTarget.setAttribute("aria-expanded", String(open));
      event.currentTarget.textContent = open ? t("Show less") : t("Show all");
    });
    this.img.addEventListener("load", () => this.loaded(true));
    this.img.addEventListener("error", () => this.loaded(false));
    this.img.addEventListener("dblclick", () => this.toggleZoom());
    this.video.addEventListener("loadedmetadata", () => this.loaded(true));
    this.video.addEventListener("error", () => this.loaded(false));
    const tagInput = byId("lb-tag-input");
    tagInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        const tag = tagInput.value.trim();
        if (tag) this.editTags([...(this.item.tags || []).filter((x) => x !== tag), tag]).then((ok) => ok && (tagInput.value = ""));
      }
    });
    this.dialog.addEventListener("keydown", (event) => this.key(event));
    // Escape fires "cancel" on a modal dialog; closing through our own path restores focus.
    this.dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      this.close();
    });
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog) this.close();
    });
  }

  /** The viewer's keys: arrows, f, Delete, z, d, ?. */
  key(event) {
    const target = event.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    // NOTE: a focused player's own keys (Space plays or pauses) are the browser's.
    const item = this.item;
    const actions = {
      ArrowRight: () => this.step(1),
      ArrowLeft: () => this.step(-1),
      f: () => item && !byId("lb-favorite").hidden && !byId("lb-favorite").disabled && this.toggleFavorite(),
      Delete: () => item && (item.status === "trash" ? null : this.run(this.actions.trash)),
      z: () => this.toggleZoom(),
      d: () => item && byId("lb-download").click(),
      "?": () => this.help(),
    };
    const run = actions[event.key];
    if (!run) return;
    event.preventDefault();
    run();
  }

  get isOpen() {
    return this.dialog.open;
  }

  /** Open on item ``index`` of the current feed. */
  open(index) {
    this.opener = document.activeElement;
    this.endCompare();
    if (!this.dialog.open) this.dialog.showModal();
    moveToasts();
    this.show(index);
    byId("lb-close").focus();
  }

  close() {
    if (!this.dialog.open) return;
    this.dialog.close();
    moveToasts();
    this.img.removeAttribute("src");
    this.clearVideo();
    this.endCompare();
    const index = this.index;
    this.index = -1;
    this.item = null;
    this.onClose(index, this.opener);
  }

  /** Show item ``index`` (already loaded): details at once, the image once it has arrived. */
  show(index) {
    const feed = this.feed();
    const item = feed.items[index];
    if (!item) {
      this.close();
      return;
    }
    this.index = index;
    this.item = item;
    this.dialog.dataset.id = item.id;
    this.setZoom(1);
    // NOTE: the old image is hidden at once, so it never stands beside the new details.
    this.dialog.dataset.state = "loading";
    byId("lb-loading").hidden = false;
    byId("lb-error").hidden = true;
    this.img.removeAttribute("src");
    this.clearVideo();
    const video = isVideo(item);
    // NOTE: hiding the focused player would drop the focus out of the dialog (and its keys with it).
    if (!video && document.activeElement === this.video) byId("lb-close").focus();
    this.img.hidden = video;
    this.video.hidden = !video;
    const media = this.media();
    if (item.width && item.height) {
      media.width = item.width;
      media.height = item.height;
    }
    if (video) {
      // NOTE: the original plays as stored (the server answers its Range requests); the thumbnail is the poster.
      if (item.thumb_url) this.video.poster = item.thumb_url;
      this.video.setAttribute("aria-label", item.prompt ? t("Video: {prompt}", { prompt: shorten(item.prompt, 200) }) : t("Generated video"));
      this.video.src = item.url;
    } else {
      // NOTE: an animated image plays as the original file itself.
      this.img.src = item.url;
      this.img.alt = item.prompt ? t("Image: {prompt}", { prompt: shorten(item.prompt, 200) }) : t("Generated image");
    }
    const total = feed.size;
    byId("lb-position").textContent = t("{n} of {total}", { n: (index + 1).toLocaleString(), total: total.toLocaleString() });
    byId("lb-prev").disabled = index === 0;
    byId("lb-next").disabled = index + 1 >= total;
    this.renderDetails(item);
    byId("lb-share-box").hidden = true;
    byId("lb-share-url").value = "";
    byId("lb-status").textContent = "";
    this.probeWorkflow(item);
    this.preload(index + 1);
  }

  /** The element that shows the current item: the video player or the image. */
  media() {
    return this.item && isVideo(this.item) ? this.video : this.img;
  }

  /** Stop the video player and let go of its file. */
  clearVideo() {
    if (!this.video.getAttribute("src")) return;
    this.video.pause();
    this.video.removeAttribute("src");
    this.video.removeAttribute("poster");
    this.video.load();
  }

  /** The image arrived (ok) or failed: drop the loading state, or offer Retry. */
  loaded(ok) {
    if (!this.item || !this.media().getAttribute("src")) return;
    byId("lb-loading").hidden = true;
    byId("lb-error").hidden = ok;
    this.dialog.dataset.state = ok ? "ready" : "error";
    if (!ok) connection.checkResource(this.item.url);
  }

  /** Load the shown image again (after an error, or when the server is back). */
  retry(force = false) {
    if (!this.isOpen || !this.item) return;
    if (!force && this.dialog.dataset.state !== "error") return;
    const url = this.item.url;
    this.dialog.dataset.state = "loading";
    byId("lb-error").hidden = true;
    byId("lb-loading").hidden = false;
    const media = this.media();
    media.removeAttribute("src");
    if (media === this.video) this.video.load();
    media.src = url;
  }

  renderDetails(item) {
    const trashed = item.status === "trash";
    const generated = !item.kind || item.kind === "generated";
    const fav = byId("lb-favorite");
    fav.setAttribute("aria-pressed", String(Boolean(item.favorite)));
    fav.querySelector(".lb-favorite-label").textContent = item.favorite ? t("Favorited") : t("Favorite");
    fav.disabled = trashed;
    fav.hidden = !generated;
    const download = byId("lb-download");
    download.href = item.url;
    download.setAttribute("download", item.original_filename || `${item.id}.${(item.mime || "image/png").split("/")[1].replace("jpeg", "jpg")}`);
    byId("lb-share").hidden = trashed || !generated;
    byId("lb-use-input").hidden = trashed || !generated;
    byId("lb-delete").hidden = trashed;
    byId("lb-restore").hidden = !trashed;
    byId("lb-prompt-section").hidden = !generated;
    byId("lb-tags-section").hidden = !generated;
    const prompt = byId("lb-prompt");
    prompt.textContent = item.prompt || t("No prompt stored.");
    prompt.classList.toggle("muted", !item.prompt);
    prompt.classList.remove("expanded");
    prompt.setAttribute("aria-label", t("Prompt"));
    byId("lb-copy-prompt").disabled = !item.prompt;
    const more = byId("lb-prompt-more");
    more.textContent = t("Show all");
    more.setAttribute("aria-expanded", "false");
    requestAnimationFrame(() => {
      more.hidden = prompt.scrollHeight <= prompt.clientHeight + 2;
    });
    byId("lb-negative").textContent = item.negative_prompt || "";
    byId("lb-negative").hidden = !item.negative_prompt;
    byId("lb-negative").setAttribute("aria-label", t("Negative prompt"));
    byId("lb-neg-head").hidden = !item.negative_prompt;
    const facts = byId("lb-facts");
    facts.replaceChildren();
    for (const [label, get] of FACTS) {
      const value = get(item);
      if (value === null || value === undefined || value === "") continue;
      const dd = h("dd", {}, this.filterBy && FILTERABLE[label] ? this.filterLinks(label, item) : String(value));
      if (label === "Seed") dd.append(" ", h("button", { type: "button", class: "btn btn-small btn-quiet", "data-testid": "copy-seed", onclick: () => this.copy(String(item.seed), t("Seed copied")) }, t("Copy")));
      facts.append(h("dt", {}, t(label)), dd);
    }
    if (trashed && item.trashed_at) facts.append(h("dt", {}, t("Trashed")), h("dd", {}, dateTime(item.trashed_at)));
    this.renderTags(item);
    byId("lb-tag-input").disabled = trashed;
  }

  /** The values of a fact as buttons that filter the gallery by them. */
  filterLinks(label, item) {
    const [key, pairs] = FILTERABLE[label];
    const parts = [];
    for (const [text, value] of pairs(item)) {
      if (!value) continue;
      if (parts.length) parts.push(", ");
      parts.push(h("button", {
        type: "button", class: "link-button", "data-filter": key, title: t("Filter by {value}", { value }),
        onclick: () => this.filterBy(key, value),
      }, text));
    }
    return parts;
  }

  renderTags(item) {
    const list = byId("lb-tags");
    list.replaceChildren();
    for (const tag of item.tags || []) {
      list.append(
        h("li", { class: "tag" },
          this.filterBy
            ? h("button", { type: "button", class: "link-button tag-filter", "data-filter": "tag", title: t("Filter by {value}", { value: tag }), onclick: () => this.filterBy("tag", tag) }, tag)
            : h("span", {}, tag),
          h("button", {
            type: "button",
            class: "tag-remove",
            "aria-label": t("Remove tag {tag}", { tag }),
            disabled: item.status === "trash",
            onclick: () => this.editTags((this.item.tags || []).filter((x) => x !== tag)),
          }, icon("x", "icon icon-small")),
        ),
      );
    }
    if (!(item.tags || []).length) list.append(h("li", { class: "muted" }, t("No tags")));
  }

  /** Move by delta, loading the next page when the step crosses the loaded end. */
  async step(delta) {
    if (this.moving || this.index < 0 || this.dialog.dataset.mode === "compare") return;
    const target = this.index + delta;
    if (target < 0) return;
    this.moving = true;
    try {
      const feed = this.feed();
      const item = await feed.ensure(target);
      if (item && this.isOpen) this.show(target);
    } finally {
      this.moving = false;
    }
  }

  preload(index) {
    const next = this.feed().items[index];
    // NOTE: a video is not fetched ahead (the player streams it); its poster is.
    const url = next && (isVideo(next) ? next.thumb_url : next.url);
    if (url) new Image().src = url;
  }

  // --- zoom, pinch and swipe ---------------------------------------------------------------

  toggleZoom() {
    this.setZoom(this.scale > 1 ? 1 : Math.max(2, (this.item?.width || 0) / (this.media().clientWidth || 1)));
  }

  setZoom(scale) {
    this.scale = Math.min(MAX_SCALE, Math.max(1, scale));
    this.pan = this.scale === 1 ? { x: 0, y: 0 } : this.pan || { x: 0, y: 0 };
    const transform = this.scale === 1 ? "" : `translate(${this.pan.x}px, ${this.pan.y}px) scale(${this.scale})`;
    this.img.style.transform = this.media() === this.img ? transform : "";
    this.video.style.transform = this.media() === this.video ? transform : "";
    this.stage.classList.toggle("zoomed", this.scale > 1);
    byId("lb-zoom").setAttribute("aria-pressed", String(this.scale > 1));
  }

  /** Touch: swipe left/right to move, pinch to zoom, drag to pan a zoomed image. */
  bindTouch() {
    const points = new Map();
    let start = null;
    this.stage.addEventListener("pointerdown", (event) => {
      if (event.pointerType !== "touch") return;
      points.set(event.pointerId, { x: event.clientX, y: event.clientY });
      if (points.size === 1) start = { x: event.clientX, y: event.clientY, pan: { ...(this.pan || { x: 0, y: 0 }) }, scale: this.scale };
      if (points.size === 2) {
        const [a, b] = [...points.values()];
        start = { pinch: Math.hypot(a.x - b.x, a.y - b.y), scale: this.scale, pan: { ...(this.pan || { x: 0, y: 0 }) } };
      }
    });
    this.stage.addEventListener("pointermove", (event) => {
      if (!points.has(event.pointerId) || !start) return;
      points.set(event.pointerId, { x: event.clientX, y: event.clientY });
      if (points.size === 2 && start.pinch) {
        const [a, b] = [...points.values()];
        this.setZoom(start.scale * (Math.hypot(a.x - b.x, a.y - b.y) / start.pinch));
      } else if (points.size === 1 && this.scale > 1 && !start.pinch) {
        this.pan = { x: start.pan.x + event.clientX - start.x, y: start.pan.y + event.clientY - start.y };
        this.setZoom(this.scale);
      }
    });
    const end = (event) => {
      if (!points.has(event.pointerId)) return;
      points.delete(event.pointerId);
      if (points.size === 0 && start && !start.pinch && start.scale === 1 && this.scale === 1) {
        const dx = event.clientX - start.x;
        const dy = event.clientY - start.y;
        if (Math.abs(dx) > SWIPE_PX && Math.abs(dx) > 2 * Math.abs(dy)) this.step(dx < 0 ? 1 : -1);
      }
      if (points.size === 0) start = null;
    };
    this.stage.addEventListener("pointerup", end);
    this.stage.addEventListener("pointercancel", end);
  }

  // --- compare ---------------------------------------------------------------------------------

  /** Show two images side by side (the selection's two). */
  compare(a, b) {
    if (!a || !b) return;
    this.opener = document.activeElement;
    if (!this.dialog.open) this.dialog.showModal();
    moveToasts();
    this.dialog.dataset.mode = "compare";
    this.index = -1;
    this.item = a;
    this.dialog.dataset.id = a.id;
    byId("lb-compare").hidden = false;
    for (const [el, it] of [[byId("lb-compare-a"), a], [byId("lb-compare-b"), b]]) {
      // NOTE: a video is compared by its poster (the compare view shows still images).
      el.src = isVideo(it) ? it.thumb_url || "" : it.url;
      el.alt = it.prompt ? t("Image: {prompt}", { prompt: shorten(it.prompt, 120) }) : t("Generated image");
    }
    byId("lb-loading").hidden = true;
    byId("lb-error").hidden = true;
    byId("lb-position").textContent = t("Comparing two images");
    this.renderDetails(a);
    byId("lb-close").focus();
  }

  /** Compare side by side, or one over the other with a slider that moves the split. */
  setSlider(on) {
    byId("lb-compare").classList.toggle("slider", on);
    byId("lb-compare-mode").setAttribute("aria-pressed", String(on));
    byId("lb-compare-split").hidden = !on;
    this.setSplit();
  }

  setSplit() {
    const on = byId("lb-compare").classList.contains("slider");
    const split = Number(byId("lb-compare-split").value);
    byId("lb-compare-b").style.clipPath = on ? `inset(0 0 0 ${split}%)` : "";
  }

  endCompare() {
    this.setSlider(false);
    delete this.dialog.dataset.mode;
    byId("lb-compare").hidden = true;
    byId("lb-compare-a").removeAttribute("src");
    byId("lb-compare-b").removeAttribute("src");
  }

  // --- actions ---------------------------------------------------------------------------------

  async toggleFavorite() {
    const item = this.item;
    await this.patch(item, { favorite: !item.favorite });
  }

  async editTags(tags) {
    return this.patch(this.item, { tags });
  }

  async patch(item, body) {
    try {
      const updated = await api(`/images/${item.id}`, { method: "PATCH", body });
      this.onUpdate(updated);
      if (this.item && this.item.id === updated.id) {
        this.item = updated;
        this.renderDetails(updated);
      }
      return true;
    } catch (err) {
      showError(err, t("Could not save"));
      return false;
    }
  }

  async run(action) {
    const item = this.item;
    if (!item) return;
    try {
      await action(item);
    } catch (err) {
      showError(err, t("That did not work"));
    }
  }

  /** After the shown item left the listing: show what took its place (fetching it when not loaded). */
  async afterRemoval() {
    if (!this.isOpen) return;
    if (this.dialog.dataset.mode === "compare") {
      this.close();
      return;
    }
    const feed = this.feed();
    const index = Math.min(this.index, feed.size - 1);
    const item = index >= 0 ? await feed.ensure(index) : null;
    if (!this.isOpen) return;
    if (item) this.show(index);
    else this.close();
  }

  async share() {
    const item = this.item;
    if (!item) return;
    const expiresIn = Number(byId("lb-share-expires").value);
    try {
      const link = await api(`/images/${item.id}/share`, { method: "POST", body: { expires_in: expiresIn } });
      if (!this.item || this.item.id !== item.id) return;
      const url = new URL(link.url, location.origin).href;
      const input = byId("lb-share-url");
      input.value = url;
      byId("lb-share-expiry").textContent = link.expires_at ? t("(until {date})", { date: dateTime(link.expires_at) }) : "";
      byId("lb-share-box").hidden = false;
      input.focus();
      input.select();
    } catch (err) {
      showError(err, t("Could not make a share link"));
    }
  }

  async copy(text, done) {
    if (!text) return;
    try {
      await navigator.clipboard.writeText(text);
      byId("lb-status").textContent = done;
    } catch {
      // NOTE: the clipboard API needs a secure context; fall back to selecting the text.
      const field = h("textarea", { class: "visually-hidden", readonly: true, "aria-hidden": "true" });
      field.value = text;
      this.dialog.append(field);
      field.select();
      const ok = document.execCommand("copy");
      field.remove();
      byId("lb-status").textContent = ok ? done : t("Select the text and copy it by hand");
    }
  }

  /** Show "Reload workflow" (and "Open in ComfyUI") when the record says a workflow is stored or the endpoint has one. */
  probeWorkflow(item) {
    const link = byId("lb-workflow");
    const href = `/api/v1/images/${item.id}/workflow`;
    link.href = href;
    link.setAttribute("download", `${item.id}-workflow.json`);
    const known = storedWorkflow(item);
    this.showWorkflow(known === true);
    if (known !== null) return;
    if (this.workflowProbe) this.workflowProbe.abort();
    const probe = new AbortController();
    this.workflowProbe = probe;
    fetch(href, { method: "HEAD", credentials: "same-origin", signal: probe.signal })
      .then((resp) => {
        if (this.item && this.item.id === item.id) this.showWorkflow(resp.ok);
      })
      .catch(() => {});
  }

  showWorkflow(on) {
    byId("lb-workflow").hidden = !on;
    let open = document.getElementById("lb-open-comfy");
    if (!this.comfyUrl) return;
    if (!open) {
      open = h("button", { type: "button", class: "btn", id: "lb-open-comfy", "data-testid": "open-comfy", onclick: () => this.openInComfy() }, t("Open in ComfyUI"));
      byId("lb-workflow").after(open);
    }
    open.hidden = !on;
  }

  /**
   * ComfyUI loads a workflow pasted into its canvas: copy the workflow JSON and
   * open the configured ComfyUI in a new tab.
   */
  async openInComfy() {
    const item = this.item;
    if (!item) return;
    window.open(this.comfyUrl, "_blank", "noopener");
    try {
      const workflow = await fetch(`/api/v1/images/${item.id}/workflow`, { credentials: "same-origin" }).then((r) => (r.ok ? r.text() : ""));
      if (workflow) await this.copy(workflow, t("Workflow copied: paste it into ComfyUI with Ctrl+V"));
    } catch (err) {
      showError(err, t("Could not copy the workflow"));
    }
  }
}
