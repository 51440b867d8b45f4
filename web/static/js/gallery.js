// The gallery page: views (gallery, trash, inputs), filters in the URL,
// the windowed grid, selection and bulk actions, the lightbox and the quota bar.

import { api } from "./api.js";
import { byId, h } from "./dom.js";
import { bytes, plural } from "./format.js";
import { Feed } from "./feed.js";
import { VirtualGrid } from "./grid.js";
import { Lightbox } from "./lightbox.js";
import { confirmDialog, showError, toast } from "./notify.js";
import { QuotaBar } from "./quota.js";
import { Selection } from "./selection.js";
import { apiParams, filtered, parseState, stateSearch } from "./state.js";
import { renderSkeleton, renderTile } from "./tiles.js";
import { Uploader } from "./uploads.js";

const ASPECTS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "9:21", "21:9"];
const BULK_MAX = 500; // ids per bulk request (the API's limit)
const ZIP_MAX = 1000; // ids per archive (the API's limit)
const SEARCH_DELAY = 350;
const POSITION_DELAY = 400; // ms after scrolling stops before the URL records the position

let state = parseState(location.search);
let feed = new Feed("/images");
const quota = new QuotaBar();
const selection = new Selection(() => selectionChanged());
const seenTags = new Set();
const seenWorkflows = new Set();
const seenAspects = new Set(ASPECTS);

const grid = new VirtualGrid(byId("grid"), {
  renderTile: (item) => renderTile(item, { mode: state.view, selected: selection.has(item.id), retentionDays: quota.retentionDays }),
  renderSkeleton,
  onChange: () => gridChanged(),
});

const lightbox = new Lightbox({
  feed: () => feed,
  actions: {
    trash: (item) => trashItems([item.id], { fromLightbox: true }),
    restore: (item) => restoreItems([item.id], { fromLightbox: true }),
    useAsInput: async (item) => {
      await api("/inputs/copy", { method: "POST", body: { image_id: item.id } });
      toast("Added to your input library");
      quota.refresh();
    },
  },
  onUpdate: (item) => {
    feed.update(item);
    remember([item]);
  },
  onClose: (index) => {
    if (index >= 0 && feed.items[index]) grid.focusIndex(index);
  },
});

new Uploader({
  isActive: () => state.view === "inputs",
  path: () => `/${state.lib}/upload`,
  onUploaded: (item) => {
    if (state.view === "inputs" && !state.deleted) feed.insert([item]);
    quota.refresh();
  },
});

// --- views and filters ------------------------------------------------------------

/** The position in a URL's hash ("#at=5000": the 5,001st item of the listing at the top of the view). */
// NOTE: a position, not an id: it survives a reload and the back button, and
// opening it fetches that region directly; new images shift it by their number.
function hashPosition(hash) {
  const m = /^#at=(\d{1,9})$/.exec(hash);
  return m ? Number(m[1]) : 0;
}

/** Show a state: tabs, bars, form, and a fresh listing (scrolled to position ``at``). */
function apply(next, at = 0) {
  state = next;
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.view === state.view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  document.body.dataset.view = state.view;
  byId("filters").hidden = state.view === "inputs";
  byId("inputs-bar").hidden = state.view !== "inputs";
  byId("trash-bar").hidden = state.view !== "trash";
  byId("show-deleted-inputs").checked = state.deleted;
  for (const radio of document.querySelectorAll("input[name=lib]")) radio.checked = radio.value === state.lib;
  fillForm();
  selection.clear();
  feed = new Feed(state.view === "inputs" ? `/${state.lib}` : "/images", apiParams(state));
  feed.subscribe((_, change) => {
    if (change === "load" || change === "rebuild") remember(feed.lastPage);
  });
  window.scrollTo(0, 0);
  grid.setFeed(feed, at);
  if (at > 0) grid.scrollToIndex(at);
  const titles = { gallery: "Your images", trash: "Trash", inputs: state.lib === "controls" ? "Control images" : "Input library" };
  document.title = `${titles[state.view]} · casvault`;
}

/** Go to a state, adding a history entry (the back button comes back here). */
function navigate(next, { replace = false } = {}) {
  const url = stateSearch(next);
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  apply(next);
}

function fillForm() {
  const form = byId("filters");
  for (const key of ["q", "tag", "workflow_id", "from_date", "to_date"]) form.elements[key].value = state[key];
  form.elements.favorite.checked = state.favorite === "1";
  if (state.aspect_ratio) seenAspects.add(state.aspect_ratio);
  fillAspects();
  form.elements.aspect_ratio.value = state.aspect_ratio;
  byId("clear-filters").hidden = !filtered(state);
  const active = ["aspect_ratio", "tag", "workflow_id", "from_date", "to_date", "favorite"].filter((k) => state[k]).length;
  byId("filters-toggle").textContent = active ? `Filters (${active})` : "Filters";
}

function fillAspects() {
  const select = byId("filters").elements.aspect_ratio;
  const have = new Set([...select.options].map((o) => o.value));
  const sorted = [...seenAspects].sort((a, b) => ratio(a) - ratio(b));
  for (const value of sorted) {
    if (have.has(value)) continue;
    const option = h("option", { value }, value);
    const after = [...select.options].find((o) => o.value && ratio(o.value) > ratio(value));
    select.insertBefore(option, after || null);
  }
}

function ratio(text) {
  const [w, hgt] = text.split(":").map(Number);
  return w && hgt ? w / hgt : 99;
}

/** Offer the tags, workflows and aspect ratios seen so far as suggestions. */
function remember(items) {
  let changed = false;
  for (const item of items) {
    for (const tag of item.tags || []) if (seenTags.size < 500 && !seenTags.has(tag)) (seenTags.add(tag), (changed = true));
    if (item.workflow_id && seenWorkflows.size < 200 && !seenWorkflows.has(item.workflow_id)) (seenWorkflows.add(item.workflow_id), (changed = true));
    if (item.aspect_ratio && !seenAspects.has(item.aspect_ratio)) (seenAspects.add(item.aspect_ratio), (changed = true));
  }
  if (!changed) return;
  byId("tag-options").replaceChildren(...[...seenTags].sort().map((t) => h("option", { value: t })));
  byId("workflow-options").replaceChildren(...[...seenWorkflows].sort().map((w) => h("option", { value: w })));
  fillAspects();
}

function formState() {
  const form = byId("filters");
  const next = { ...state };
  for (const key of ["q", "aspect_ratio", "tag", "workflow_id", "from_date", "to_date"]) next[key] = form.elements[key].value.trim();
  next.favorite = form.elements.favorite.checked ? "1" : "";
  return next;
}

function sameFilters(a, b) {
  return ["q", "aspect_ratio", "tag", "workflow_id", "from_date", "to_date", "favorite"].every((k) => a[k] === b[k]);
}

function commitFilters() {
  const next = formState();
  if (!sameFilters(next, state)) navigate(next);
}

function bindFilters() {
  const form = byId("filters");
  let timer = 0;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    commitFilters();
  });
  form.elements.q.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(commitFilters, SEARCH_DELAY);
  });
  for (const name of ["aspect_ratio", "tag", "workflow_id", "from_date", "to_date", "favorite"]) {
    form.elements[name].addEventListener("change", commitFilters);
  }
  byId("filters-toggle").addEventListener("click", (event) => {
    const open = form.classList.toggle("open");
    event.currentTarget.setAttribute("aria-expanded", String(open));
  });
  byId("clear-filters").addEventListener("click", () => navigate({ ...state, q: "", aspect_ratio: "", tag: "", workflow_id: "", from_date: "", to_date: "", favorite: "" }));
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      if (tab.dataset.view !== state.view) navigate({ ...parseState(""), view: tab.dataset.view });
    });
  }
  byId("quota-trash").addEventListener("click", (event) => {
    event.preventDefault();
    if (state.view !== "trash") navigate({ ...parseState(""), view: "trash" });
  });
  byId("show-deleted-inputs").addEventListener("change", (event) => navigate({ ...state, deleted: event.target.checked }));
  for (const radio of document.querySelectorAll("input[name=lib]")) {
    radio.addEventListener("change", () => navigate({ ...state, lib: radio.value, deleted: false }));
  }
  window.addEventListener("popstate", () => {
    if (lightbox.isOpen) lightbox.close();
    apply(parseState(location.search), hashPosition(location.hash));
  });
  let positionTimer = 0;
  window.addEventListener("scroll", () => {
    clearTimeout(positionTimer);
    positionTimer = setTimeout(recordPosition, POSITION_DELAY);
  }, { passive: true });
}

/** Keep the position at the top of the view in the URL's hash (no history entry). */
function recordPosition() {
  if (!feed.size) return;
  const at = grid.firstVisibleIndex();
  const hash = at > 0 ? `#at=${at}` : "";
  if (hash !== location.hash) history.replaceState(history.state, "", stateSearch(state) + hash);
}

// --- grid status ------------------------------------------------------------------------

/** Set a text only when it changed (the grid calls gridChanged on every frame; live regions would re-announce). */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function gridChanged() {
  const status = byId("grid-status");
  const summary = byId("summary");
  byId("grid").setAttribute("aria-busy", String(Boolean(feed.pending)));
  if (feed.error) {
    if (!status.querySelector("button")) status.replaceChildren(`Could not load: ${feed.error.message} `, h("button", { type: "button", class: "btn btn-small", onclick: () => feed.retry() }, "Retry"));
  } else if (feed.total === 0) {
    setText(status, emptyText());
  } else if (feed.pending && !feed.items.length) {
    setText(status, "Loading…");
  } else if (feed.done && feed.items.length > 0) {
    setText(status, state.view === "inputs" ? "" : "That is everything.");
  } else {
    setText(status, "");
  }
  if (feed.total === null) return;
  const what = { gallery: "image", trash: "image", inputs: state.lib === "controls" ? "control image" : "input" }[state.view];
  let text = plural(feed.size, what);
  if (state.view === "trash") text += " in the trash";
  else if (filtered(state)) text += " match";
  setText(summary, text);
  byId("empty-trash").disabled = state.view === "trash" && feed.size === 0 && !filtered(state);
  setText(byId("trash-note"), `Trashed images are deleted for good ${plural(quota.retentionDays, "day")} after they were trashed.`);
}

function emptyText() {
  if (state.view === "trash") return filtered(state) ? "Nothing in the trash matches." : "The trash is empty.";
  if (state.view === "inputs") {
    const what = state.lib === "controls" ? "control images" : "inputs";
    return state.deleted ? `No deleted ${what}.` : `No ${what} yet: drop images above to add some.`;
  }
  return filtered(state) ? "No images match these filters." : "No images yet.";
}

// --- selection and bulk actions ------------------------------------------------------------

function selectionChanged() {
  const count = selection.size;
  document.body.classList.toggle("selecting", count > 0);
  const bar = byId("selection-bar");
  bar.hidden = count === 0 || state.view === "inputs";
  byId("selection-count").textContent = `${plural(count, "image")} selected`;
  const trash = state.view === "trash";
  byId("bulk-delete").hidden = trash;
  byId("bulk-tag").hidden = trash;
  byId("bulk-download").hidden = trash;
  byId("bulk-restore").hidden = !trash;
  byId("bulk-purge").hidden = !trash;
  const zip = byId("bulk-download");
  zip.disabled = count > ZIP_MAX;
  zip.title = count > ZIP_MAX ? `At most ${ZIP_MAX.toLocaleString()} images per ZIP` : "";
  for (const tile of grid.tiles()) {
    const on = selection.has(tile.dataset.id);
    tile.classList.toggle("selected", on);
    tile.querySelector(".select-toggle")?.setAttribute("aria-pressed", String(on));
  }
}

/** POST /images/bulk in chunks; resolves to {ok: [items or ids], failed: [{id, error}]}. */
async function bulk(action, ids, extra = {}) {
  const ok = [];
  const failed = [];
  for (let i = 0; i < ids.length; i += BULK_MAX) {
    const answer = await api("/images/bulk", { method: "POST", body: { action, ids: ids.slice(i, i + BULK_MAX), ...extra } });
    for (const result of answer.results) {
      if (result.ok) ok.push(result.item || { id: result.id });
      else failed.push(result);
    }
  }
  if (failed.length) toast(`${plural(failed.length, "image")} failed: ${failed[0].error.message}`, { error: true });
  return { ok, failed };
}

async function trashItems(ids, { fromLightbox = false } = {}) {
  const { ok } = ids.length === 1 && fromLightbox ? { ok: [await api(`/images/${ids[0]}/delete`, { method: "POST" })] } : await bulk("delete", ids);
  const gone = ok.map((item) => item.id);
  feed.remove(gone);
  selection.drop(gone);
  if (fromLightbox) lightbox.afterRemoval();
  quota.refresh();
  if (gone.length) {
    toast(`Moved ${plural(gone.length, "image")} to the trash`, {
      action: { label: "Undo", run: () => undoTrash(gone) },
    });
  }
}

async function undoTrash(ids) {
  try {
    const { ok } = await bulk("restore", ids);
    if (state.view === "gallery") feed.insert(ok.filter((item) => item.created_at && matchesView(item)));
    quota.refresh();
    toast(`Restored ${plural(ok.length, "image")}`);
  } catch (err) {
    showError(err, "Could not undo");
  }
}

/** Whether a restored item belongs in the filtered gallery view now shown (else it would vanish on reload). */
function matchesView(item) {
  if (state.tag && !(item.tags || []).includes(state.tag)) return false;
  if (state.aspect_ratio && item.aspect_ratio !== state.aspect_ratio) return false;
  if (state.workflow_id && item.workflow_id !== state.workflow_id) return false;
  if (state.favorite && !item.favorite) return false;
  if (state.q) {
    const text = (item.prompt || "").toLowerCase();
    if (!state.q.toLowerCase().split(/\s+/).every((w) => text.includes(w))) return false;
  }
  return true;
}

async function restoreItems(ids, { fromLightbox = false } = {}) {
  const { ok } = ids.length === 1 && fromLightbox ? { ok: [await api(`/images/${ids[0]}/restore`, { method: "POST" })] } : await bulk("restore", ids);
  const back = ok.map((item) => item.id);
  feed.remove(back);
  selection.drop(back);
  if (fromLightbox) lightbox.afterRemoval();
  quota.refresh();
  if (back.length) toast(`Restored ${plural(back.length, "image")}`);
}

async function purgeItems(ids) {
  const yes = await confirmDialog({
    title: `Delete ${plural(ids.length, "image")} forever?`,
    text: "They are removed from the trash for good. This cannot be undone.",
    ok: "Delete forever",
    danger: true,
  });
  if (!yes) return;
  const { ok } = ids.length === 1 ? { ok: [await api(`/images/${ids[0]}/purge`, { method: "POST" })] } : await bulk("purge", ids);
  const gone = ok.map((item) => item.id);
  feed.remove(gone);
  selection.drop(gone);
  quota.refresh();
  if (gone.length) toast(`Deleted ${plural(gone.length, "image")} for good`);
}

async function tagSelection() {
  const ids = selection.ordered(feed.items);
  const text = await confirmDialog({
    title: `Tag ${plural(ids.length, "image")}`,
    ok: "Add tags",
    input: { label: "Tags, separated by commas", placeholder: "portrait, favorite-style" },
  });
  if (text === null) return;
  const tags = [...new Set(text.split(",").map((t) => t.trim()).filter(Boolean))];
  if (!tags.length) return;
  const { ok } = await bulk("tag", ids, { tags });
  feed.updateMany(ok);
  remember(ok);
  toast(`Tagged ${plural(ok.length, "image")} with ${tags.join(", ")}`);
}

/**
 * Download the selection as one ZIP: a plain form post into a hidden frame,
 * so the browser saves the streamed answer itself (nothing buffered in the page).
 */
// NOTE: the ids go in the body because a link holds about 100 of them (gunicorn
// refuses request lines over 4094 bytes); the browser sends the form's
// same-origin Origin header, which is the server's CSRF check.
function downloadZip() {
  const ids = selection.ordered(feed.items);
  if (!ids.length || ids.length > ZIP_MAX) return;
  const form = byId("zip-form");
  form.elements.ids.value = ids.join(",");
  form.submit();
  toast(`Preparing a ZIP of ${plural(ids.length, "image")}…`);
}

/** A download answers as an attachment and never loads the frame; an error page does. */
function zipFailed() {
  const frame = byId("zip-frame");
  let message = "The ZIP could not be made";
  try {
    const body = JSON.parse(frame.contentDocument?.body?.textContent || "null");
    if (body && body.error) message = `${message}: ${body.error.message}`;
  } catch {
    // not a JSON error (a proxy's page): keep the general message
  }
  if (frame.contentDocument?.URL !== "about:blank") toast(message, { error: true });
}

function guard(fn) {
  return (...args) => fn(...args).catch((err) => showError(err));
}

function bindBulk() {
  byId("select-all").addEventListener("click", () => selection.selectAll(feed.items));
  byId("select-none").addEventListener("click", () => selection.clear());
  byId("bulk-delete").addEventListener("click", guard(() => trashItems(selection.ordered(feed.items))));
  byId("bulk-restore").addEventListener("click", guard(() => restoreItems(selection.ordered(feed.items))));
  byId("bulk-purge").addEventListener("click", guard(() => purgeItems(selection.ordered(feed.items))));
  byId("bulk-tag").addEventListener("click", guard(tagSelection));
  byId("bulk-download").addEventListener("click", downloadZip);
  byId("zip-frame").addEventListener("load", zipFailed);
  byId("empty-trash").addEventListener("click", guard(emptyTrash));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && selection.size && !document.querySelector("dialog[open]")) selection.clear();
  });
}

async function emptyTrash() {
  const usage = (await quota.refresh())?.usage;
  const count = usage ? usage.trash_count : feed.size;
  const yes = await confirmDialog({
    title: "Empty the trash?",
    text: `${plural(count, "item")}${usage ? ` (${bytes(usage.trash_bytes)})` : ""} will be deleted for good, inputs included. This cannot be undone.`,
    ok: "Empty trash",
    danger: true,
  });
  if (!yes) return;
  const answer = await api("/images/purge-trash", { method: "POST" });
  toast(`Deleted ${plural(answer.count, "item")} for good, ${bytes(answer.bytes_freed)} freed`);
  quota.refresh();
  apply(state);
}

// --- tiles ---------------------------------------------------------------------------------

async function tileAction(action, item) {
  if (action === "restore") await restoreItems([item.id]);
  else if (action === "purge") await purgeItems([item.id]);
  else if (action === "delete-input" || action === "restore-input") {
    const verb = action === "delete-input" ? "delete" : "restore";
    const lib = state.lib;
    await api(`/${lib}/${item.id}/${verb}`, { method: "POST" });
    feed.remove([item.id]);
    quota.refresh();
    if (verb === "delete") {
      toast(lib === "controls" ? "Control image deleted" : "Input deleted", {
        action: {
          label: "Undo",
          run: () => api(`/${lib}/${item.id}/restore`, { method: "POST" }).then((back) => {
            if (state.view === "inputs" && state.lib === lib && !state.deleted) feed.insert([back]);
            quota.refresh();
          }).catch((err) => showError(err, "Could not undo")),
        },
      });
    } else {
      toast("Restored");
    }
  }
}

function bindGrid() {
  const el = byId("grid");
  el.addEventListener("click", (event) => {
    const tile = event.target.closest(".tile[data-index]");
    if (!tile) return;
    const index = Number(tile.dataset.index);
    const item = feed.items[index];
    if (!item) return;
    const action = event.target.closest("[data-action]");
    if (action) {
      guard(tileAction)(action.dataset.action, item);
      return;
    }
    if (event.target.closest(".select-toggle")) {
      selection.toggle(feed.items, index, event.shiftKey);
      return;
    }
    if (!event.target.closest(".tile-open") || state.view === "inputs") return;
    if (event.shiftKey || event.ctrlKey || event.metaKey || selection.size) {
      event.preventDefault();
      selection.toggle(feed.items, index, event.shiftKey);
      return;
    }
    lightbox.open(index);
  });
  el.addEventListener("keydown", (event) => {
    const tile = event.target.closest(".tile[data-index]");
    if (!tile || !event.target.classList.contains("tile-open")) return;
    const index = Number(tile.dataset.index);
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: grid.cols, ArrowUp: -grid.cols, Home: -index, End: feed.size - 1 - index };
    if (event.key in moves) {
      event.preventDefault();
      grid.focusIndex(Math.min(Math.max(0, index + moves[event.key]), feed.size - 1));
    } else if (event.key === "x" || event.key === "X") {
      selection.toggle(feed.items, index, event.shiftKey);
    }
  });
}

// --- start -----------------------------------------------------------------------------------

bindFilters();
bindBulk();
bindGrid();
history.replaceState(null, "", stateSearch(state) + location.hash);
apply(state, hashPosition(location.hash));
const pageRetention = quota.retentionDays;
quota.refresh().then(() => {
  // The trash badges count days from the retention the server reports.
  if (state.view === "trash" && quota.retentionDays !== pageRetention) grid.redraw();
});
