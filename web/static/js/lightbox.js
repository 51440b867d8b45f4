// The lightbox: one image large with its details, prev/next across pages,
// favorite, tags, copy prompt, download, workflow, share, use as input.

import { api } from "./api.js";
import { byId, h, icon, trapFocus } from "./dom.js";
import { bytes, dateTime, shorten } from "./format.js";
import { showError } from "./notify.js";

const FACTS = [
  ["Seed", (it) => it.seed],
  ["Workflow", (it) => it.workflow_id],
  ["Aspect ratio", (it) => it.aspect_ratio],
  ["Size", (it) => (it.width && it.height ? `${it.width} × ${it.height} px` : null)],
  ["File", (it) => [it.original_filename, bytes(it.bytes)].filter(Boolean).join(" · ")],
  ["Created", (it) => dateTime(it.created_at)],
  ["Model", (it) => it.source?.model ?? null],
  ["LoRAs", (it) => (it.source?.loras || []).map((l) => (l.strength_model != null ? `${l.name} (${l.strength_model})` : l.name)).join(", ")],
  ["Sampler", (it) => [it.source?.sampler, it.source?.scheduler].filter(Boolean).join(" · ")],
  ["Steps", (it) => it.source?.steps],
  ["CFG", (it) => it.source?.cfg],
  ["Guidance", (it) => it.source?.guidance],
];

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

export class Lightbox {
  /**
   * feed(): the current Feed; actions: {trash(item), restore(item), useAsInput(item)}
   * returning promises; onUpdate(item) after a PATCH.
   */
  constructor({ feed, actions, onUpdate, onClose }) {
    this.feed = feed;
    this.actions = actions;
    this.onUpdate = onUpdate;
    this.onClose = onClose;
    this.dialog = byId("lightbox");
    this.img = byId("lb-image");
    this.index = -1;
    this.item = null;
    this.opener = null;
    this.moving = false;
    this.workflowProbe = null;
    this.dialog.append(h("div", { class: "toasts" }));
    trapFocus(this.dialog);
    this.bind();
  }

  bind() {
    byId("lb-prev").addEventListener("click", () => this.step(-1));
    byId("lb-next").addEventListener("click", () => this.step(1));
    byId("lb-close").addEventListener("click", () => this.close());
    byId("lb-favorite").addEventListener("click", () => this.toggleFavorite());
    byId("lb-copy-prompt").addEventListener("click", () => this.copy(this.item?.prompt || "", "Prompt copied"));
    byId("lb-share").addEventListener("click", () => this.share());
    byId("lb-share-copy").addEventListener("click", () => this.copy(byId("lb-share-url").value, "Link copied"));
    byId("lb-share-expires").addEventListener("change", () => this.share());
    byId("lb-use-input").addEventListener("click", () => this.run(this.actions.useAsInput));
    byId("lb-delete").addEventListener("click", () => this.run(this.actions.trash));
    byId("lb-restore").addEventListener("click", () => this.run(this.actions.restore));
    const tagInput = byId("lb-tag-input");
    tagInput.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        const tag = tagInput.value.trim();
        if (tag) this.editTags([...(this.item.tags || []).filter((t) => t !== tag), tag]).then((ok) => ok && (tagInput.value = ""));
      }
    });
    this.dialog.addEventListener("keydown", (event) => {
      if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
      if (event.key === "ArrowRight") {
        event.preventDefault();
        this.step(1);
      } else if (event.key === "ArrowLeft") {
        event.preventDefault();
        this.step(-1);
      }
    });
    // Escape fires "cancel" on a modal dialog; closing through our own path restores focus.
    this.dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      this.close();
    });
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog) this.close();
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  /** Open on item ``index`` of the current feed. */
  open(index) {
    this.opener = document.activeElement;
    if (!this.dialog.open) this.dialog.showModal();
    this.show(index);
    byId("lb-close").focus();
  }

  close() {
    if (!this.dialog.open) return;
    this.dialog.close();
    const strip = this.dialog.querySelector(".toasts");
    byId("toasts").append(...strip.children);
    this.img.removeAttribute("src");
    const index = this.index;
    this.index = -1;
    this.item = null;
    this.onClose(index, this.opener);
  }

  /** Show item ``index`` (already loaded). */
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
    this.img.src = item.url;
    this.img.alt = item.prompt ? `Image: ${shorten(item.prompt, 200)}` : "Generated image";
    if (item.width && item.height) {
      this.img.width = item.width;
      this.img.height = item.height;
    }
    const total = feed.size;
    byId("lb-position").textContent = `${index + 1} of ${total.toLocaleString()}`;
    byId("lb-prev").disabled = index === 0;
    byId("lb-next").disabled = index + 1 >= total;
    this.renderDetails(item);
    byId("lb-share-box").hidden = true;
    byId("lb-share-url").value = "";
    byId("lb-status").textContent = "";
    this.probeWorkflow(item);
    this.preload(index + 1);
  }

  renderDetails(item) {
    const trashed = item.status === "trash";
    const fav = byId("lb-favorite");
    fav.setAttribute("aria-pressed", String(Boolean(item.favorite)));
    fav.querySelector(".lb-favorite-label").textContent = item.favorite ? "Favorited" : "Favorite";
    fav.disabled = trashed;
    const download = byId("lb-download");
    download.href = item.url;
    download.setAttribute("download", item.original_filename || `${item.id}.${(item.mime || "image/png").split("/")[1].replace("jpeg", "jpg")}`);
    byId("lb-share").hidden = trashed;
    byId("lb-use-input").hidden = trashed;
    byId("lb-delete").hidden = trashed;
    byId("lb-restore").hidden = !trashed;
    byId("lb-prompt").textContent = item.prompt || "No prompt stored.";
    byId("lb-prompt").classList.toggle("muted", !item.prompt);
    byId("lb-copy-prompt").disabled = !item.prompt;
    byId("lb-negative").textContent = item.negative_prompt || "";
    byId("lb-negative").hidden = !item.negative_prompt;
    byId("lb-neg-head").hidden = !item.negative_prompt;
    const facts = byId("lb-facts");
    facts.replaceChildren();
    for (const [label, get] of FACTS) {
      const value = get(item);
      if (value === null || value === undefined || value === "") continue;
      facts.append(h("dt", {}, label), h("dd", {}, String(value)));
    }
    if (trashed && item.trashed_at) facts.append(h("dt", {}, "Trashed"), h("dd", {}, dateTime(item.trashed_at)));
    this.renderTags(item);
    byId("lb-tag-input").disabled = trashed;
  }

  renderTags(item) {
    const list = byId("lb-tags");
    list.replaceChildren();
    for (const tag of item.tags || []) {
      list.append(
        h("li", { class: "tag" },
          h("span", {}, tag),
          h("button", {
            type: "button",
            class: "tag-remove",
            "aria-label": `Remove tag ${tag}`,
            disabled: item.status === "trash",
            onclick: () => this.editTags((this.item.tags || []).filter((t) => t !== tag)),
          }, icon("x", "icon icon-small")),
        ),
      );
    }
    if (!(item.tags || []).length) list.append(h("li", { class: "muted" }, "No tags"));
  }

  /** Move by delta, loading the next page when the step crosses the loaded end. */
  async step(delta) {
    if (this.moving || this.index < 0) return;
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
    if (next) new Image().src = next.url;
  }

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
      showError(err, "Could not save");
      return false;
    }
  }

  async run(action) {
    const item = this.item;
    if (!item) return;
    try {
      await action(item);
    } catch (err) {
      showError(err);
    }
  }

  /** After the shown item left the listing: show what took its place (fetching it when not loaded). */
  async afterRemoval() {
    if (!this.isOpen) return;
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
      byId("lb-share-expiry").textContent = link.expires_at ? `(until ${dateTime(link.expires_at)})` : "";
      byId("lb-share-box").hidden = false;
      input.focus();
      input.select();
    } catch (err) {
      showError(err, "Could not make a share link");
    }
  }

  async copy(text, done) {
    if (!text) return;
    try {
      await navigator.clipboard.writeText(text);
      byId("lb-status").textContent = done;
    } catch {
      // NOTE: the clipboard API needs a secure context; fall back to selecting the text.
      const field = h("textarea", { class: "visually-hidden", readonly: true });
      field.value = text;
      this.dialog.append(field);
      field.select();
      const ok = document.execCommand("copy");
      field.remove();
      byId("lb-status").textContent = ok ? done : "Select the text and copy it by hand";
    }
  }

  /** Show "Reload workflow" when the record says a workflow is stored or the endpoint has one. */
  probeWorkflow(item) {
    const link = byId("lb-workflow");
    const href = `/api/v1/images/${item.id}/workflow`;
    link.href = href;
    link.setAttribute("download", `${item.id}-workflow.json`);
    const known = storedWorkflow(item);
    link.hidden = known !== true;
    if (known !== null) return;
    if (this.workflowProbe) this.workflowProbe.abort();
    const probe = new AbortController();
    this.workflowProbe = probe;
    fetch(href, { method: "HEAD", credentials: "same-origin", signal: probe.signal })
      .then((resp) => {
        if (this.item && this.item.id === item.id) link.hidden = !resp.ok;
      })
      .catch(() => {});
  }
}
