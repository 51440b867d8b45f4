// The gallery page: views (gallery, trash, inputs), filters in the URL,
// the windowed grid, selection and bulk actions, the lightbox and the quota bar.

import { api, qs } from "./api.js";
import { connection } from "./connection.js";
import { byId, h } from "./dom.js";
import { bytes, dayKey } from "./format.js";
import { Feed } from "./feed.js";
import { VirtualGrid } from "./grid.js";
import { HelpOverlay } from "./help.js";
import { t, tn, translatePage } from "./i18n.js";
import { Lightbox } from "./lightbox.js";
import { LiveUpdates } from "./live.js";
import { confirmDialog, runToastAction, showError, toast } from "./notify.js";
import { PageControls } from "./controls.js";
import { QuotaBar } from "./quota.js";
import { Selection } from "./selection.js";
import { Suggestions } from "./suggest.js";
import { apiParams, FILTERS, filtered, parseState, stateSearch, TEXT_FILTERS } from "./state.js";
import { bindPreviews } from "./previews.js";
import { renderSkeleton, renderTile } from "./tiles.js";
import { Uploader } from "./uploads.js";

const ASPECTS = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "9:21", "21:9"];
const BULK_MAX = 500; // ids per bulk request (the API's limit)
const ZIP_MAX = 1000; // ids per archive (the API's limit)
const FILTER_MAX = 10000; // images one bulk request by filter may touch (the API's limit)
const SEARCH_DELAY = 350;
const POSITION_DELAY = 400; // ms after scrolling stops before the URL records the position

translatePage();
new PageControls();
let state = parseState(location.search);
let feed = new Feed("/images");
const quota = new QuotaBar();
const selection = new Selection(() => selectionChanged(), () => feed.size);
const help = new HelpOverlay();
const suggestions = new Suggestions();

/** Show the gallery filtered by one value (a metadata value or tag clicked in the viewer). */
function filterBy(key, value) {
  if (lightbox.isOpen) lightbox.close();
  navigate({ ...parseState(""), view: "gallery", [key]: value });
}
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
    trash: (item) => (state.view === "inputs" ? inputAction("delete", [item.id], { fromLightbox: true }) : trashItems([item.id], { fromLightbox: true })),
    restore: (item) => (state.view === "inputs" ? inputAction("restore", [item.id], { fromLightbox: true }) : restoreItems([item.id], { fromLightbox: true })),
    useAsInput: async (item) => {
      await api("/inputs/copy", { method: "POST", body: { image_id: item.id } });
      toast(t("Added to your input library"));
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
  help: () => help.open(),
  filterBy: (key, value) => filterBy(key, value),
});

const live = new LiveUpdates({
  feed: () => feed,
  active: () => state.view !== "inputs" && !state.deleted,
  atTop: () => window.scrollY < 40,
  onNew: (count) => showNewPill(count),
  onOverflow: () => {
    if (window.scrollY < 40) apply(state);
    else {
      staleTop = true;
      showNewPill(100);
    }
  },
});
let staleTop = false; // more new images arrived than a poll holds: going up fetches the listing afresh

// When the server answers again, every view fetches what it lacks.
connection.onBack(() => {
  feed.retry();
  quota.refresh();
  lightbox.retry();
  live.poll();
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
  setText(byId("summary"), "");
  setText(byId("grid-status"), "");
  staleTop = false;
  hideNewPill();
  feed = new Feed(state.view === "inputs" ? `/${state.lib}` : "/images", apiParams(state));
  feed.subscribe((_, change) => {
    if (change === "load" || change === "rebuild") remember(feed.lastPage);
  });
  window.scrollTo(0, 0);
  grid.setFeed(feed, at);
  if (at > 0) grid.scrollToIndex(at);
  const titles = { gallery: t("Your images"), trash: t("Trash"), inputs: state.lib === "controls" ? t("Control images") : t("Input library") };
  byId("view-title").textContent = titles[state.view];
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
  for (const key of ["q", ...TEXT_FILTERS, "from_date", "to_date"]) form.elements[key].value = state[key];
  form.elements.favorite.checked = state.favorite === "1";
  if (state.aspect_ratio) seenAspects.add(state.aspect_ratio);
  fillAspects();
  form.elements.aspect_ratio.value = state.aspect_ratio;
  byId("clear-filters").hidden = !filtered(state);
  const active = FILTERS.filter((k) => k !== "q" && state[k]).length;
  byId("filters-toggle").textContent = active ? t("Filters ({n})", { n: active }) : t("Filters");
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
  fillAspects();
  // NOTE: where the server has the facets endpoint, its suggestions (with counts) fill these lists instead.
  if (suggestions.available !== false) return;
  byId("tag-options").replaceChildren(...[...seenTags].sort().map((t) => h("option", { value: t })));
  byId("workflow-options").replaceChildren(...[...seenWorkflows].sort().map((w) => h("option", { value: w })));
}

function formState() {
  const form = byId("filters");
  const next = { ...state };
  for (const key of FILTERS) if (key !== "favorite") next[key] = form.elements[key].value.trim();
  next.favorite = form.elements.favorite.checked ? "1" : "";
  return next;
}

function sameFilters(a, b) {
  return FILTERS.every((k) => a[k] === b[k]);
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
  for (const name of FILTERS.filter((k) => k !== "q")) {
    form.elements[name].addEventListener("change", commitFilters);
  }
  byId("filters-toggle").addEventListener("click", (event) => {
    const open = form.classList.toggle("open");
    event.currentTarget.setAttribute("aria-expanded", String(open));
  });
  byId("clear-filters").addEventListener("click", () => navigate({ ...state, ...Object.fromEntries(FILTERS.map((k) => [k, ""])) }));
  suggestions.bind(form, () => apiParams(state));
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
  if (feed.error && feed.error.code === "network_error") {
    // NOTE: the connection banner says it and retries; the grid keeps its placeholders until then.
    setText(status, t("Waiting for the server…"));
  } else if (feed.error) {
    if (!status.querySelector("button")) status.replaceChildren(t("Could not load: {message}", { message: feed.error.message }), " ", h("button", { type: "button", class: "btn btn-small", onclick: () => feed.retry() }, t("Retry")));
  } else if (feed.total === 0) {
    setText(status, emptyText());
  } else if (feed.pending && !feed.items.length) {
    setText(status, t("Loading…"));
  } else if (feed.done && feed.items.length > 0) {
    setText(status, state.view === "inputs" ? "" : t("That is everything."));
  } else {
    setText(status, "");
  }
  if (feed.total === null) return;
  setText(summary, summaryText(feed.size));
  byId("empty-trash").disabled = state.view === "trash" && feed.size === 0 && !filtered(state);
  setText(byId("trash-note"), tn("Trashed images are deleted for good {n} day after they were trashed.", "Trashed images are deleted for good {n} days after they were trashed.", quota.retentionDays));
}

/** "12 images", "3 images in the trash", "1 image matches", "2 inputs": the count of the view shown. */
function summaryText(n) {
  if (state.view === "inputs") {
    if (state.lib === "controls") return tn("{n} control image", "{n} control images", n);
    return tn("{n} input", "{n} inputs", n);
  }
  if (state.view === "trash") return tn("{n} image in the trash", "{n} images in the trash", n);
  if (filtered(state)) return tn("{n} image matches", "{n} images match", n);
  return tn("{n} image", "{n} images", n);
}

function emptyText() {
  if (state.view === "trash") return filtered(state) ? t("Nothing in the trash matches.") : t("The trash is empty.");
  if (state.view === "inputs") {
    if (state.lib === "controls") return state.deleted ? t("No deleted control images.") : t("No control images yet: drop images above to add some.");
    return state.deleted ? t("No deleted inputs.") : t("No inputs yet: drop images above to add some.");
  }
  return filtered(state) ? t("No images match these filters.") : t("No images yet.");
}

// --- new images ------------------------------------------------------------------------------

function showNewPill(count) {
  const pill = byId("new-pill");
  pill.textContent = tn("{n} new image", "{n} new images", count);
  pill.hidden = false;
}

function hideNewPill() {
  live.unseen = 0;
  byId("new-pill").hidden = true;
}

// --- selection and bulk actions ------------------------------------------------------------

/** What the selection covers, in the words of the items it holds. */
function countText(n) {
  if (state.view === "inputs") return state.lib === "controls" ? tn("{n} control image", "{n} control images", n) : tn("{n} input", "{n} inputs", n);
  return tn("{n} image", "{n} images", n);
}

function selectionChanged() {
  const count = selection.size;
  document.body.classList.toggle("selecting", count > 0);
  const bar = byId("selection-bar");
  bar.hidden = count === 0;
  byId("selection-count").textContent = t("{what} selected", { what: countText(count) });
  const all = byId("select-all");
  all.textContent = t("Select all {n}", { n: feed.size.toLocaleString() });
  all.hidden = selection.all !== null || count >= feed.size;
  const trash = state.view === "trash" || (state.view === "inputs" && state.deleted);
  const inputs = state.view === "inputs";
  byId("bulk-delete").hidden = trash;
  byId("bulk-tag").hidden = trash || inputs;
  byId("bulk-download").hidden = trash || inputs;
  byId("bulk-restore").hidden = !trash;
  byId("bulk-purge").hidden = !trash || inputs;
  byId("bulk-compare").hidden = count !== 2 || inputs;
  const zip = byId("bulk-download");
  zip.disabled = count > ZIP_MAX;
  zip.title = count > ZIP_MAX ? t("At most {n} images per ZIP", { n: ZIP_MAX.toLocaleString() }) : "";
  for (const tile of grid.tiles()) {
    const on = selection.has(tile.dataset.id);
    tile.classList.toggle("selected", on);
    tile.querySelector(".select-toggle")?.setAttribute("aria-pressed", String(on));
  }
}

/** The collection path of the view shown: images, inputs or controls. */
function collection() {
  return state.view === "inputs" ? state.lib : "images";
}

/**
 * POST /<collection>/bulk: by filter when the whole listing is selected, else
 * by ids in chunks; resolves to {ok: [items or ids], failed: [{id, error}]}.
 */
async function bulk(action, ids, extra = {}) {
  const ok = [];
  const failed = [];
  const collect = (answer) => {
    for (const result of answer.results) {
      if (result.ok) ok.push(result.item || { id: result.id });
      else failed.push(result);
    }
  };
  if (state.view === "inputs") {
    // NOTE: inputs and controls have no bulk endpoint: one request per id, a few at a time.
    const queue = [...ids];
    const worker = async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        try {
          ok.push(await api(`/${collection()}/${id}/${action}`, { method: "POST" }));
        } catch (err) {
          failed.push({ id, error: err });
        }
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  } else if (ids === null) {
    const filter = { ...feed.params };
    collect(await api(`/${collection()}/bulk`, { method: "POST", body: { action, filter, except: [...selection.except], ...extra } }));
  } else {
    for (let i = 0; i < ids.length; i += BULK_MAX) {
      collect(await api(`/${collection()}/bulk`, { method: "POST", body: { action, ids: ids.slice(i, i + BULK_MAX), ...extra } }));
    }
  }
  if (failed.length) toast(t("{what} failed: {message}", { what: countText(failed.length), message: failed[0].error.message }), { error: true });
  return { ok, failed };
}

/** The ids a bulk action takes: null for "the whole filtered listing" (sent as its filter). */
function selectedIds() {
  return selection.all ? null : selection.ordered(feed.items);
}

/** After a bulk action removed items: focus the tile that took the first one's place (when focus was in the grid or bar). */
function keepFocus(firstIndex) {
  const active = document.activeElement;
  const inPage = !active || active === document.body || byId("grid").contains(active) || byId("selection-bar").contains(active);
  if (!inPage || firstIndex < 0 || !feed.size) return;
  grid.focusIndex(Math.min(firstIndex, feed.size - 1));
}

/**
 * Items left the listing after an action on ``asked`` (null: the whole
 * listing by filter, which is fetched afresh); focus goes to the tile that took
 * the first one's place.
 */
function removed(asked, gone, first) {
  if (asked === null) {
    const wasInGrid = byId("grid").contains(document.activeElement) || byId("selection-bar").contains(document.activeElement);
    apply(state);
    if (wasInGrid) feed.ensure(0).then(() => keepFocus(0));
    return;
  }
  feed.remove(gone);
  selection.drop(gone);
  keepFocus(first);
}

function firstIndexOf(ids) {
  if (ids === null) return 0;
  const at = ids.map((id) => feed.indexOf(id)).filter((i) => i >= 0);
  return at.length ? Math.min(...at) : -1;
}

/** Tell the other tabs of this visitor what left or joined a listing. */
const channel = "BroadcastChannel" in window ? new BroadcastChannel("casvault") : null;

function broadcast(kind, items) {
  if (channel && items.length) channel.postMessage({ kind, items });
}

async function trashItems(ids, { fromLightbox = false } = {}) {
  const first = firstIndexOf(ids);
  const { ok } = ids && ids.length === 1 && fromLightbox ? { ok: [await api(`/images/${ids[0]}/delete`, { method: "POST" })] } : await bulk("delete", ids);
  const gone = ok.map((item) => item.id);
  removed(ids, gone, first);
  broadcast("trashed", ok);
  if (fromLightbox) lightbox.afterRemoval();
  quota.refresh();
  if (gone.length) {
    toast(t("Moved {what} to the trash", { what: countText(gone.length) }), {
      action: { label: t("Undo"), run: () => undoTrash(gone) },
    });
  }
}

async function undoTrash(ids) {
  try {
    const { ok } = await bulk("restore", ids);
    if (state.view === "gallery") feed.insert(ok.filter((item) => item.created_at && matchesView(item)));
    broadcast("restored", ok);
    quota.refresh();
    toast(t("Restored {what}", { what: countText(ok.length) }));
  } catch (err) {
    showError(err, t("Could not undo"));
  }
}

/** Whether a restored item belongs in the filtered gallery view now shown (else it would vanish on reload). */
function matchesView(item) {
  if (state.tag && !(item.tags || []).includes(state.tag)) return false;
  if (state.aspect_ratio && item.aspect_ratio !== state.aspect_ratio) return false;
  if (state.workflow_id && item.workflow_id !== state.workflow_id) return false;
  if (state.favorite && !item.favorite) return false;
  for (const key of ["model", "lora", "sampler"]) if (state[key]) return false;
  if (state.q) {
    const text = (item.prompt || "").toLowerCase();
    if (!state.q.toLowerCase().split(/\s+/).every((w) => text.includes(w))) return false;
  }
  return true;
}

async function restoreItems(ids, { fromLightbox = false } = {}) {
  const first = firstIndexOf(ids);
  const { ok } = ids && ids.length === 1 && fromLightbox ? { ok: [await api(`/images/${ids[0]}/restore`, { method: "POST" })] } : await bulk("restore", ids);
  const back = ok.map((item) => item.id);
  removed(ids, back, first);
  broadcast("restored", ok);
  if (fromLightbox) lightbox.afterRemoval();
  quota.refresh();
  if (back.length) toast(t("Restored {what}", { what: countText(back.length) }));
}

async function purgeItems(ids) {
  const n = ids ? ids.length : selection.size;
  const yes = await confirmDialog({
    title: t("Delete {what} forever?", { what: countText(n) }),
    text: t("They are removed from the trash for good. This cannot be undone."),
    ok: t("Delete forever"),
    danger: true,
  });
  if (!yes) return;
  const first = firstIndexOf(ids);
  const { ok } = ids && ids.length === 1 ? { ok: [{ id: ids[0], ...(await api(`/images/${ids[0]}/purge`, { method: "POST" })) }] } : await bulk("purge", ids);
  const gone = ok.map((item) => item.id);
  removed(ids, gone, first);
  quota.refresh();
  if (gone.length) toast(t("Deleted {what} for good", { what: countText(gone.length) }));
}

async function tagSelection() {
  const ids = selectedIds();
  const text = await confirmDialog({
    title: t("Tag {what}", { what: countText(selection.size) }),
    ok: t("Add tags"),
    input: { label: t("Tags, separated by commas"), placeholder: "portrait, favorite-style" },
  });
  if (text === null) return;
  const tags = [...new Set(text.split(",").map((x) => x.trim()).filter(Boolean))];
  if (!tags.length) return;
  const { ok } = await bulk("tag", ids, { tags });
  feed.updateMany(ok);
  remember(ok);
  toast(t("Tagged {what} with {tags}", { what: countText(ok.length), tags: tags.join(", ") }));
}

/** Every id of the listing shown (the whole filtered result), following cursors; at most ``max``. */
async function listingIds(max) {
  const ids = [];
  let cursor = "";
  do {
    const page = await api(`${feed.path}${qs({ ...feed.params, size: 200, cursor })}`);
    ids.push(...page.items.map((item) => item.id));
    cursor = page.next_cursor || "";
  } while (cursor && ids.length <= max);
  return ids.filter((id) => !selection.except.has(id)).slice(0, max);
}

let zipToast = null;

/**
 * Download the selection as one ZIP: a plain form post into a hidden frame,
 * so the browser saves the streamed answer itself (nothing buffered in the page).
 */
// NOTE: the ids go in the body because a link holds about 100 of them (gunicorn
// refuses request lines over 4094 bytes); the browser sends the form's
// same-origin Origin header, which is the server's CSRF check.
async function downloadZip() {
  const ids = selection.all ? await listingIds(ZIP_MAX) : selection.ordered(feed.items);
  if (!ids.length || ids.length > ZIP_MAX) return;
  const form = byId("zip-form");
  form.elements.ids.value = ids.join(",");
  form.submit();
  const message = t("Preparing a ZIP of {what}…", { what: countText(ids.length) });
  zipToast = toast(message);
  const mine = zipToast;
  // NOTE: a saved download never loads the frame, an error does: no error within
  // a few seconds means the browser has taken the archive over.
  setTimeout(() => {
    if (zipToast === mine) mine.update(t("The ZIP of {what} is downloading.", { what: countText(ids.length) }));
  }, 4000);
}

/** A download answers as an attachment and never loads the frame; an error page does. */
function zipFailed() {
  const frame = byId("zip-frame");
  let message = t("The ZIP could not be made");
  try {
    const body = JSON.parse(frame.contentDocument?.body?.textContent || "null");
    if (body && body.error) message = `${message}: ${body.error.message}`;
  } catch {
    // not a JSON error (a proxy's page): keep the general message
  }
  if (frame.contentDocument?.URL === "about:blank") return;
  if (zipToast) zipToast.update(message, { error: true });
  else toast(message, { error: true });
  zipToast = null;
}

function guard(fn) {
  return (...args) => fn(...args).catch((err) => showError(err));
}

/** Select the whole filtered listing (the server acts on it by filter). */
function selectAll() {
  if (!feed.size) return;
  if (feed.size > FILTER_MAX) {
    toast(t("At most {n} images at once: narrow the filters", { n: FILTER_MAX.toLocaleString() }), { error: true });
    return;
  }
  selection.selectAll();
}

/** Select the loaded images of one day. */
function selectDay(day) {
  selection.add(feed.loaded().filter((item) => dayKey(item.created_at) === day).map((item) => item.id));
}

function compareSelection() {
  const ids = selection.all ? [] : selection.ordered(feed.items);
  if (ids.length === 2) lightbox.compare(feed.get(ids[0]), feed.get(ids[1]));
}

function typing(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement;
}

function bindBulk() {
  byId("select-all").addEventListener("click", selectAll);
  byId("select-none").addEventListener("click", () => selection.clear());
  byId("bulk-delete").addEventListener("click", guard(() => (state.view === "inputs" ? inputAction("delete", selectedIds()) : trashItems(selectedIds()))));
  byId("bulk-restore").addEventListener("click", guard(() => (state.view === "inputs" ? inputAction("restore", selectedIds()) : restoreItems(selectedIds()))));
  byId("bulk-purge").addEventListener("click", guard(() => purgeItems(selectedIds())));
  byId("bulk-tag").addEventListener("click", guard(tagSelection));
  byId("bulk-download").addEventListener("click", guard(downloadZip));
  byId("bulk-compare").addEventListener("click", compareSelection);
  byId("zip-frame").addEventListener("load", zipFailed);
  byId("empty-trash").addEventListener("click", guard(emptyTrash));
  byId("new-pill").addEventListener("click", () => {
    hideNewPill();
    if (staleTop) {
      staleTop = false;
      apply(state);
      return;
    }
    window.scrollTo(0, 0);
    grid.focusIndex(0);
  });
  window.addEventListener("scroll", () => {
    if (window.scrollY < 40) hideNewPill();
  }, { passive: true });
  document.addEventListener("keydown", (event) => {
    if (document.querySelector("dialog[open]") || typing(event.target)) return;
    if (event.key === "Escape" && selection.size) selection.clear();
    else if ((event.ctrlKey || event.metaKey) && (event.key === "a" || event.key === "A")) {
      event.preventDefault();
      selectAll();
    } else if ((event.ctrlKey || event.metaKey) && (event.key === "z" || event.key === "Z")) {
      if (runToastAction()) event.preventDefault();
    } else if (event.key === "?") {
      event.preventDefault();
      help.open();
    }
  });
  if (channel) {
    channel.addEventListener("message", ({ data }) => {
      if (!data || !Array.isArray(data.items)) return;
      const ids = data.items.map((item) => item.id);
      const gallery = state.view === "gallery";
      if ((data.kind === "trashed" && gallery) || (data.kind === "restored" && state.view === "trash")) {
        feed.remove(ids);
        selection.drop(ids);
      } else if (data.kind === "trashed" && state.view === "trash" && !filtered(state)) {
        feed.insert(data.items);
      } else if (data.kind === "restored" && gallery) {
        feed.insert(data.items.filter((item) => item.created_at && matchesView(item)));
      }
      quota.refresh();
    });
  }
}

async function emptyTrash() {
  const usage = (await quota.refresh())?.usage;
  const count = usage ? usage.trash_count : feed.size;
  const items = tn("{n} item", "{n} items", count);
  const yes = await confirmDialog({
    title: t("Empty the trash?"),
    text: usage
      ? t("{items} ({size}) will be deleted for good, inputs included. This cannot be undone.", { items, size: bytes(usage.trash_bytes) })
      : t("{items} will be deleted for good, inputs included. This cannot be undone.", { items }),
    ok: t("Empty trash"),
    danger: true,
  });
  if (!yes) return;
  const answer = await api("/images/purge-trash", { method: "POST" });
  toast(t("Deleted {items} for good, {size} freed", { items: tn("{n} item", "{n} items", answer.count), size: bytes(answer.bytes_freed) }));
  quota.refresh();
  apply(state);
}

// --- tiles ---------------------------------------------------------------------------------

/** Delete or restore inputs (or control images): by ids, or the whole listing when ids is null. */
async function inputAction(verb, ids, { fromLightbox = false } = {}) {
  const lib = state.lib;
  const first = firstIndexOf(ids);
  const { ok } = await bulk(verb, ids === null ? await listingIds(FILTER_MAX) : ids);
  const done = ok.map((item) => item.id);
  removed(ids, done, first);
  if (fromLightbox) lightbox.afterRemoval();
  quota.refresh();
  if (!done.length) return;
  if (verb === "delete") {
    toast(t("Deleted {what}", { what: countText(done.length) }), {
      action: {
        label: t("Undo"),
        run: () => bulk("restore", done).then(({ ok: back }) => {
          if (state.view === "inputs" && state.lib === lib && !state.deleted) feed.insert(back.filter((item) => item.created_at));
          quota.refresh();
        }).catch((err) => showError(err, t("Could not undo"))),
      },
    });
  } else {
    toast(t("Restored {what}", { what: countText(done.length) }));
  }
}

async function tileAction(action, item) {
  if (action === "restore") await restoreItems([item.id]);
  else if (action === "purge") await purgeItems([item.id]);
  else if (action === "delete-input") await inputAction("delete", [item.id]);
  else if (action === "restore-input") await inputAction("restore", [item.id]);
}

/** The action of the Delete key (and "r") on a focused tile: the selection when the tile is in it, else the tile. */
function keyAction(key, item) {
  const ids = selection.size && selection.has(item.id) ? selectedIds() : [item.id];
  const trash = state.view === "trash";
  if (state.view === "inputs") {
    if (state.deleted) return inputAction("restore", ids);
    return key === "r" ? Promise.resolve() : inputAction("delete", ids);
  }
  if (key === "r") return trash ? restoreItems(ids) : Promise.resolve();
  return trash ? purgeItems(ids) : trashItems(ids);
}

// --- drag-select ------------------------------------------------------------------------

const DRAG_START_PX = 8;

/**
 * A mouse drag across tiles draws a band and selects every tile it touches
 * (added to what was selected; the click that ends the drag opens nothing).
 */
function bindDragSelect(el) {
  let drag = null;
  el.addEventListener("pointerdown", (event) => {
    if (event.pointerType !== "mouse" || event.button !== 0 || event.target.closest(".select-toggle, [data-action], .day-select")) return;
    drag = { x: event.pageX, y: event.pageY, band: null, before: null };
  });
  window.addEventListener("pointermove", (event) => {
    if (!drag) return;
    if (!drag.band) {
      if (Math.hypot(event.pageX - drag.x, event.pageY - drag.y) < DRAG_START_PX) return;
      drag.band = h("div", { class: "select-band", "aria-hidden": "true" });
      document.body.append(drag.band);
      document.body.classList.add("band-selecting");
      drag.before = new Set(selection.all ? [] : selection.ids);
    }
    const left = Math.min(drag.x, event.pageX);
    const top = Math.min(drag.y, event.pageY);
    const width = Math.abs(event.pageX - drag.x);
    const height = Math.abs(event.pageY - drag.y);
    Object.assign(drag.band.style, { left: `${left}px`, top: `${top}px`, width: `${width}px`, height: `${height}px` });
    const hit = [];
    for (const tile of grid.tiles()) {
      const r = tile.getBoundingClientRect();
      const x = r.left + window.scrollX;
      const y = r.top + window.scrollY;
      if (x < left + width && x + r.width > left && y < top + height && y + r.height > top) hit.push(tile.dataset.id);
    }
    selection.replace([...drag.before, ...hit]);
  });
  window.addEventListener("pointerup", () => {
    if (!drag) return;
    if (drag.band) {
      drag.band.remove();
      document.body.classList.remove("band-selecting");
      // The click that ends a drag selects nothing more and opens nothing.
      window.addEventListener("click", (event) => {
        event.stopPropagation();
        event.preventDefault();
      }, { capture: true, once: true });
    }
    drag = null;
  });
}

// NOTE: a long press on a touch screen selects instead of opening (the
// following click is swallowed); 500 ms is the platforms' own long-press time.
const LONG_PRESS_MS = 500;

function bindGrid() {
  const el = byId("grid");
  bindDragSelect(el);
  // A thumbnail that failed may mean the server is gone (the feed itself may be fully loaded).
  el.addEventListener("error", (event) => {
    if (event.target instanceof HTMLImageElement) connection.checkResource(event.target.src);
  }, true);
  let pressed = null;
  el.addEventListener("pointerdown", (event) => {
    if (event.pointerType !== "touch") return;
    const tile = event.target.closest(".tile[data-index]");
    if (!tile) return;
    const start = { x: event.clientX, y: event.clientY };
    const timer = setTimeout(() => {
      pressed = { tile, done: true };
      selection.toggle(feed.items, Number(tile.dataset.index));
      if (navigator.vibrate) navigator.vibrate(20);
    }, LONG_PRESS_MS);
    pressed = { tile, timer, start, done: false };
  });
  const cancelPress = (event) => {
    if (!pressed || pressed.done) return;
    if (event.type === "pointermove" && Math.hypot(event.clientX - pressed.start.x, event.clientY - pressed.start.y) < 10) return;
    clearTimeout(pressed.timer);
    pressed = null;
  };
  el.addEventListener("pointermove", cancelPress);
  el.addEventListener("pointerup", cancelPress);
  el.addEventListener("pointercancel", cancelPress);
  el.addEventListener("contextmenu", (event) => {
    if (pressed) event.preventDefault();
  });
  el.addEventListener("click", (event) => {
    const daySelect = event.target.closest(".day-select");
    if (daySelect) {
      selectDay(daySelect.dataset.day);
      return;
    }
    const tile = event.target.closest(".tile[data-index]");
    if (!tile) return;
    if (pressed && pressed.done) {
      // the click that ends a long press
      pressed = null;
      event.preventDefault();
      return;
    }
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
    if (!event.target.closest(".tile-open")) return;
    event.preventDefault();
    if (event.shiftKey || event.ctrlKey || event.metaKey || selection.size) {
      selection.toggle(feed.items, index, event.shiftKey);
      return;
    }
    lightbox.open(index);
  });
  el.addEventListener("keydown", (event) => {
    const tile = event.target.closest(".tile[data-index]");
    if (!tile || !event.target.classList.contains("tile-open")) return;
    const index = Number(tile.dataset.index);
    const item = feed.items[index];
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: grid.cols, ArrowUp: -grid.cols, Home: -index, End: feed.size - 1 - index, PageDown: grid.cols * 3, PageUp: -grid.cols * 3 };
    if (event.key in moves && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      const to = Math.min(Math.max(0, index + moves[event.key]), feed.size - 1);
      if (event.shiftKey && event.key.startsWith("Arrow")) selection.extend(feed.items, index, to);
      grid.focusIndex(to);
    } else if (event.key === "x" || event.key === "X") {
      event.preventDefault();
      selection.toggle(feed.items, index, event.shiftKey);
    } else if (event.key === "d" && item) {
      selectDay(dayKey(item.created_at));
    } else if ((event.key === "Delete" || event.key === "r") && item) {
      event.preventDefault();
      guard(keyAction)(event.key, item);
    }
  });
  el.addEventListener("focusin", (event) => {
    const tile = event.target.closest(".tile[data-index]");
    if (tile) grid.setActive(Number(tile.dataset.index));
  });
  bindPreviews(el);
}

// --- start -----------------------------------------------------------------------------------

bindFilters();
bindBulk();
bindGrid();
history.replaceState(null, "", stateSearch(state) + location.hash);
apply(state, hashPosition(location.hash));
live.start();
const pageRetention = quota.retentionDays;
quota.refresh().then(() => {
  // The trash badges count days from the retention the server reports.
  if (state.view === "trash" && quota.retentionDays !== pageRetention) grid.redraw();
});
