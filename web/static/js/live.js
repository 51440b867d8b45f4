// Live updates: new images appear at the top without a reload.
//
// The first page of the listing is polled with ``since=`` (the newest
// created_at the page knows): the server answers only what is newer. New items
// go in at the top; when the visitor is scrolled down the grid keeps its place
// and a "N new" pill offers to go up.

import { api, qs } from "./api.js";
import { connection } from "./connection.js";

const POLL_MS = 10000;
const SIZE = 100;

export class LiveUpdates {
  /** feed(): the Feed shown; active(): whether it is a listing that grows at the top; onNew(count) when scrolled down. */
  constructor({ feed, active, atTop, onNew, onOverflow }) {
    this.onOverflow = onOverflow;
    this.feed = feed;
    this.active = active;
    this.atTop = atTop;
    this.onNew = onNew;
    this.timer = 0;
    this.unseen = 0;
    this.running = false;
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.poll();
    });
  }

  start() {
    clearInterval(this.timer);
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  /** Ask for what is newer than the newest loaded item; put it at the top. */
  async poll() {
    const feed = this.feed();
    if (this.running || !this.active() || document.visibilityState === "hidden" || connection.down) return;
    if (feed.total === null || feed.pending || !feed.has(0)) return;
    this.running = true;
    try {
      const since = feed.items[0].created_at;
      const page = await api(`${feed.path}${qs({ ...feed.params, since, size: SIZE })}`);
      if (feed !== this.feed()) return;
      if (page.items.length >= SIZE) {
        // More arrived than one answer holds: the listing is fetched afresh instead.
        this.onOverflow();
        return;
      }
      const fresh = page.items.filter((item) => feed.indexOf(item.id) < 0);
      if (!fresh.length) return;
      const top = this.atTop();
      feed.insert(fresh);
      if (top) this.unseen = 0;
      else {
        this.unseen += fresh.length;
        this.onNew(this.unseen);
      }
    } catch {
      // the connection banner reports a lost server; the next poll tries again
    } finally {
      this.running = false;
    }
  }
}
