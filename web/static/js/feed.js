// One listing of the API, paged by cursor: the items loaded so far plus the total.

import { api, qs } from "./api.js";

const PAGE = 100;
const BIG_PAGE = 200; // the API's maximum page size

export class Feed {
  /** path: "/images" or "/inputs"; params: the API's filter parameters. */
  constructor(path, params = {}) {
    this.path = path;
    this.params = params;
    this.items = [];
    this.ids = new Map();
    this.total = null;
    this.cursor = null;
    this.done = false;
    this.error = null;
    this.pending = null;
    this.listeners = new Set();
  }

  /** Call fn() after every change of items or total; returns an unsubscribe function. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Tell the listeners: change is "append", "update", "rebuild" or "error". */
  changed(change) {
    for (const fn of this.listeners) fn(this, change);
  }

  /** Fetch the next page (one request at a time); far=true asks for the biggest page. */
  loadMore(far = false) {
    if (this.done || this.error) return Promise.resolve(this);
    if (this.pending) return this.pending;
    const params = { ...this.params, size: far ? BIG_PAGE : PAGE };
    if (this.cursor) params.cursor = this.cursor;
    let change = "append";
    this.pending = api(this.path + qs(params))
      .then((page) => {
        for (const item of page.items) {
          if (this.ids.has(item.id)) continue;
          this.ids.set(item.id, this.items.length);
          this.items.push(item);
        }
        this.total = page.total;
        this.cursor = page.next_cursor;
        this.done = !page.next_cursor || page.items.length === 0;
        if (this.done) this.total = this.items.length;
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

  /** Retry after an error. */
  retry() {
    this.error = null;
    return this.loadMore();
  }

  /** Load pages until item ``index`` exists or the listing ends; resolves to the item or null. */
  async ensure(index) {
    while (index >= this.items.length && !this.done && !this.error) {
      await this.loadMore(index - this.items.length > PAGE);
    }
    return this.items[index] ?? null;
  }

  /** Whether more items exist beyond those loaded. */
  get more() {
    return !this.done;
  }

  /** The count to lay out: the server's total, never less than what is loaded. */
  get size() {
    return Math.max(this.total ?? 0, this.items.length);
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
   * Put items back that joined this listing (restored, uploaded) in their
   * place, newest first; items older than the loaded end arrive with later pages.
   */
  insert(items) {
    const key = (item) => `${item.created_at}|${item.id}`;
    const tail = this.items[this.items.length - 1];
    let added = 0;
    for (const item of items) {
      if (this.ids.has(item.id)) continue;
      if (!this.done && tail && key(item) < key(tail)) {
        if (this.total !== null) this.total += 1;
        continue;
      }
      let i = this.items.findIndex((other) => key(other) < key(item));
      if (i < 0) i = this.items.length;
      this.items.splice(i, 0, item);
      added += 1;
    }
    if (this.total !== null) this.total += added;
    this.ids = new Map(this.items.map((item, i) => [item.id, i]));
    this.changed("rebuild");
  }

  /** Drop items that left this listing (trashed, restored, purged). */
  remove(ids) {
    const gone = new Set(ids);
    const before = this.items.length;
    this.items = this.items.filter((item) => !gone.has(item.id));
    const removed = before - this.items.length;
    if (removed === 0) return;
    this.ids = new Map(this.items.map((item, i) => [item.id, i]));
    if (this.total !== null) this.total = Math.max(this.items.length, this.total - removed);
    this.changed("rebuild");
  }
}
