// One listing of the API: the items loaded so far, by position, plus the total.
//
// Items live at their position in the listing (newest first), so a visitor can
// jump anywhere: the region around a far position is fetched directly by
// offset (`page` and `size`), and what lies between is only fetched when it
// comes into view. Reading on from a loaded item uses the cursor the server
// gave with it, so continuous scrolling is cursor paging as before.

import { api, qs } from "./api.js";

export const PAGE = 100;

/** Sort key of an item in the listing: newest first means the greater key comes first. */
function key(item) {
  return `${item.created_at}|${item.id}`;
}

export class Feed {
  /** path: "/images" or "/inputs"; params: the API's filter parameters. */
  constructor(path, params = {}) {
    this.path = path;
    this.params = params;
    this.items = []; // sparse: items[i] is the item at position i, undefined where not loaded
    this.ids = new Map(); // id -> position
    this.runs = []; // loaded positions as sorted, disjoint [start, end) pairs
    this.after = new Map(); // id -> the cursor that continues the listing after that item
    this.total = null;
    this.done = false; // the listing's last item is loaded
    this.error = null;
    this.pending = null;
    this.lastPage = [];
    this.requests = 0;
    this.firstSize = 0; // size of the very first request (the tiles that fit the view), 0: a full page
    this.listeners = new Set();
  }

  /** Call fn(feed, change) after every change of items or total; returns an unsubscribe function. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Tell the listeners: change is "load", "update", "rebuild" or "error". */
  changed(change) {
    for (const fn of this.listeners) fn(this, change);
  }

  /** Whether the item at position ``index`` is loaded. */
  has(index) {
    return this.items[index] !== undefined;
  }

  /**
   * How position ``index`` would be fetched: by the cursor of the item just
   * before it when that one is loaded, else by the offset page holding it.
   */
  requestFor(index) {
    // NOTE: the first request asks only for what the first view shows; the
    // read-ahead continues by cursor, and jumps still use whole-page offsets.
    if (index === 0 && this.firstSize && !this.runs.length) return { start: 0, params: { page: 1, size: this.firstSize }, jump: true };
    const prev = index > 0 ? this.items[index - 1] : undefined;
    const cursor = prev ? this.after.get(prev.id) : undefined;
    if (cursor) return { start: index, params: { cursor, size: PAGE }, jump: false };
    const page = Math.floor(index / PAGE) + 1;
    return { start: (page - 1) * PAGE, params: { page, size: PAGE }, jump: true };
  }

  /** Fetch the page that holds position ``index`` (one request at a time). */
  loadAt(index) {
    if (this.error) return Promise.resolve(this);
    if (this.pending) return this.pending;
    const request = this.requestFor(Math.max(0, index));
    let change = "load";
    this.requests += 1;
    this.pending = api(this.path + qs({ ...this.params, ...request.params }))
      .then((page) => {
        change = this.place(request, page);
        return this;
      })
      .catch((err) => {
        this.error = err;
        change = "error";
        return this;
      })
      .finally(() => {
        this.pending = null;
        this.changed(change);
      });
    return this.pending;
  }

  /** Fetch the next page after what is loaded from the top. */
  loadMore() {
    const first = this.runs[0];
    return this.loadAt(first && first[0] === 0 ? first[1] : 0);
  }

  /** Put a page's items at their positions; returns the change to announce. */
  place({ start, jump }, page) {
    const items = page.items;
    let change = "load";
    // NOTE: positions are only right while nothing else changed the listing; an
    // item already loaded at another position means another tab added or
    // removed images: what was loaded is dropped and this page starts afresh.
    const stale = items.some((item, k) => {
      const at = this.ids.get(item.id);
      const old = this.items[start + k];
      return (at !== undefined && at !== start + k) || (old !== undefined && old.id !== item.id);
    });
    if (stale || page.total < this.items.length) {
      this.reset();
      change = "rebuild";
    }
    items.forEach((item, k) => {
      this.items[start + k] = item;
      this.ids.set(item.id, start + k);
    });
    this.total = page.total;
    if (items.length) {
      this.addRun(start, start + items.length);
      if (page.next_cursor) this.after.set(items[items.length - 1].id, page.next_cursor);
    }
    if (!page.next_cursor && (items.length || !jump || start === 0)) {
      // The listing ends here: the total is where it ends.
      this.done = true;
      this.total = start + items.length;
    }
    if (this.items.length > this.total) {
      const total = this.total;
      this.remap((i) => (i < total ? i : -1));
    }
    this.lastPage = items;
    return change;
  }

  reset() {
    this.items = [];
    this.ids = new Map();
    this.runs = [];
    this.after = new Map();
    this.done = false;
  }

  addRun(start, end) {
    const runs = [];
    let s = start;
    let e = end;
    for (const [a, b] of this.runs) {
      if (b < s || a > e) runs.push([a, b]);
      else {
        s = Math.min(s, a);
        e = Math.max(e, b);
      }
    }
    runs.push([s, e]);
    runs.sort((x, y) => x[0] - y[0]);
    this.runs = runs;
  }

  /** Retry after an error: whoever shows the feed loads what is in view again. */
  retry() {
    this.error = null;
    this.changed("update");
  }

  /** Load until item ``index`` exists or the listing ends; resolves to the item or null. */
  async ensure(index) {
    // NOTE: bounded: a listing that changes under every request cannot loop forever.
    for (let tries = 0; tries < 20 && !this.has(index) && !this.error; tries += 1) {
      if (this.total !== null && index >= this.size) break;
      await this.loadAt(index);
    }
    return this.items[index] ?? null;
  }

  /** Whether items exist beyond the loaded end. */
  get more() {
    return !this.done;
  }

  /** The count to lay out: the server's total, never less than what is loaded. */
  get size() {
    return Math.max(this.total ?? 0, this.items.length);
  }

  /** How many items are loaded. */
  get loadedCount() {
    return this.runs.reduce((n, [a, b]) => n + b - a, 0);
  }

  /** The loaded items in listing order (holes skipped). */
  loaded() {
    const out = [];
    for (const [a, b] of this.runs) for (let i = a; i < b; i += 1) out.push(this.items[i]);
    return out;
  }

  indexOf(id) {
    return this.ids.get(id) ?? -1;
  }

  get(id) {
    const i = this.indexOf(id);
    return i < 0 ? null : this.items[i];
  }

  /** Replace one loaded item by its new version (after a PATCH). */
  update(item) {
    const i = this.indexOf(item.id);
    if (i < 0) return;
    this.items[i] = item;
    this.changed("update");
  }

  /** Replace several loaded items at once (after a bulk action). */
  updateMany(items) {
    let hit = false;
    for (const item of items) {
      const i = this.indexOf(item.id);
      if (i >= 0) {
        this.items[i] = item;
        hit = true;
      }
    }
    if (hit) this.changed("update");
  }

  /**
   * Move every loaded item to position move(i) (or drop it where move gives -1)
   * and rebuild the runs: the loaded positions after a removal or an insertion.
   */
  remap(move) {
    const items = [];
    const ids = new Map();
    const runs = [];
    for (const [a, b] of this.runs) {
      for (let i = a; i < b; i += 1) {
        const to = move(i);
        if (to < 0) continue;
        items[to] = this.items[i];
        ids.set(this.items[i].id, to);
        const last = runs[runs.length - 1];
        if (last && last[1] === to) last[1] = to + 1;
        else runs.push([to, to + 1]);
      }
    }
    this.items = items;
    this.ids = ids;
    this.runs = runs;
  }

  /**
   * Put items back that joined this listing (restored, uploaded) in their
   * place, newest first; one that falls in a part not loaded yet only makes
   * that part one longer (it arrives when that part is fetched).
   */
  insert(items) {
    let added = 0;
    for (const item of items) {
      if (this.ids.has(item.id)) continue;
      const k = key(item);
      let at = -1; // the first loaded position whose item is older
      for (const [a, b] of this.runs) {
        for (let i = a; i < b && at < 0; i += 1) if (key(this.items[i]) < k) at = i;
        if (at >= 0) break;
      }
      if (at < 0) at = this.done ? this.size : -1;
      if (this.total !== null) this.total += 1;
      if (at < 0) continue; // older than everything loaded, with more to come
      const place = at === 0 || this.has(at - 1);
      this.remap((i) => (i >= at ? i + 1 : i));
      if (place) {
        this.items[at] = item;
        this.ids.set(item.id, at);
        this.addRun(at, at + 1);
        added += 1;
      }
    }
    this.changed("rebuild");
    return added;
  }

  /** Drop items that left this listing (trashed, restored, purged). */
  remove(ids) {
    const gone = ids.map((id) => this.ids.get(id)).filter((i) => i !== undefined).sort((a, b) => a - b);
    if (!gone.length) return;
    const dropped = new Set(gone);
    // The cursor after a removed item also continues after the item before it.
    for (const i of gone) {
      const cursor = this.after.get(this.items[i].id);
      let j = i - 1;
      while (dropped.has(j)) j -= 1;
      if (cursor && this.has(j)) this.after.set(this.items[j].id, cursor);
    }
    let g = 0;
    this.remap((i) => {
      while (g < gone.length && gone[g] < i) g += 1;
      return dropped.has(i) ? -1 : i - g;
    });
    if (this.total !== null) this.total = Math.max(this.items.length, this.total - gone.length);
    this.changed("rebuild");
  }
}
