// The windowed grid: only the rows near the viewport are in the DOM.
//
// The layout is a list of rows. Each loaded run of the feed becomes date
// headers and tile rows of fixed height (tiles are square boxes); each part
// not loaded is one gap whose height is estimated from the loaded part's
// height per item. So the page's scroll height is right from the first page
// and 100,000 images cost a few dozen DOM nodes. A jump (scroll bar, End, a
// link to a position) lands in a gap: that region is fetched by offset and
// laid out exactly, and the item at the top of the view stays where it was.

import { h } from "./dom.js";
import { dayKey, dayLabel } from "./format.js";
import { t } from "./i18n.js";
import { PAGE } from "./feed.js";

const GAP = 8;
// NOTE: narrower tiles on a phone: three columns at 390 px (two at 360 px).
const PHONE_WIDTH = 600;
const PHONE_TILE = 110;
const HEADER = 44;
const OVERSCAN = 600; // px rendered above and below the viewport
const PREFETCH_ROWS = 6; // fetch this many rows ahead of the view
// NOTE: a region reached by a jump is fetched once the view rests there this
// long, so dragging the scroll bar across 100,000 images costs no requests.
const SETTLE_MS = 90;

const days = new WeakMap();

/** The day key of an item, computed once per item (Intl formatting is the costly part of a layout). */
function dayOf(item) {
  let day = days.get(item);
  if (day === undefined) {
    day = dayKey(item.created_at);
    days.set(item, day);
  }
  return day;
}

export class VirtualGrid {
  /**
   * container: the grid element; renderTile(item, index) returns a tile element;
   * groups: show date headers; onChange(): after each render (selection bar, status).
   */
  constructor(container, { renderTile, renderSkeleton, groups = true, minTile = 170, onChange = () => {} }) {
    this.el = container;
    this.renderTile = renderTile;
    this.renderSkeleton = renderSkeleton;
    this.groups = groups;
    this.minTile = minTile;
    this.onChange = onChange;
    this.feed = null;
    this.unsubscribe = null;
    this.rows = []; // {kind: "header"|"tiles"|"gap", top, height, ...} in page order
    this.tileRows = []; // indexes into rows of the tile rows
    this.gapRows = []; // indexes into rows of the gaps
    this.height = 0;
    this.rendered = new Map(); // row key -> element
    this.version = 0;
    this.cols = 1;
    this.tile = 0;
    this.width = 0;
    this.frame = 0;
    this.lastScroll = 0;
    this.settleTimer = 0;
    this.active = 0; // the item whose tile holds the grid's one tab stop
    this.schedule = this.schedule.bind(this);
    window.addEventListener("scroll", () => {
      this.lastScroll = performance.now();
      this.schedule();
    }, { passive: true });
    new ResizeObserver(() => {
      if (this.el.clientWidth !== this.width) this.relayout();
    }).observe(this.el);
  }

  /** Show another listing: start at the top, or fetch position ``at`` first (a link to a position). */
  setFeed(feed, at = 0) {
    if (this.unsubscribe) this.unsubscribe();
    this.feed = feed;
    this.unsubscribe = feed.subscribe((_, change) => this.refresh(change));
    this.version += 1;
    this.clearRows();
    this.measure();
    feed.firstSize = this.firstPageSize();
    this.layout();
    this.schedule();
    if (!feed.runs.length && !feed.pending) feed.loadAt(at);
  }

  /** Follow a change of the feed: "update" redraws, anything else lays out again around the view. */
  refresh(change = "rebuild") {
    if (change === "update" || change === "error") {
      this.redraw();
      return;
    }
    const anchor = this.anchor();
    this.layout();
    if (change !== "load") this.version += 1;
    this.restore(anchor);
    this.schedule();
  }

  /** Redraw the rows in view (after an item changed in place). */
  redraw() {
    this.version += 1;
    this.schedule();
  }

  relayout() {
    const anchor = this.anchor();
    this.measure();
    this.layout();
    this.version += 1;
    this.clearRows();
    this.restore(anchor);
    this.schedule();
  }

  measure() {
    this.width = this.el.clientWidth;
    const min = this.width < PHONE_WIDTH ? PHONE_TILE : this.minTile;
    const cols = Math.max(2, Math.floor((this.width + GAP) / (min + GAP)));
    this.cols = cols;
    this.tile = Math.floor((this.width - GAP * (cols - 1)) / cols);
    this.rowHeight = this.tile + GAP;
  }

  /**
   * Rows for the whole listing: exact for the loaded runs (a date header at
   * each new day and at the start of each run), one estimated gap for each
   * part between them.
   */
  layout() {
    const feed = this.feed;
    const rows = [];
    const tileRows = [];
    const gapRows = [];
    const size = feed ? feed.size : 0;
    let loadedHeight = 0;
    let loadedCount = 0;
    let covered = 0;
    for (const [a, b] of feed ? feed.runs : []) {
      const end = Math.min(b, size);
      if (a >= end) continue;
      if (a > covered) {
        gapRows.push(rows.length);
        rows.push({ kind: "gap", start: covered, end: a, top: 0, height: 0 });
      }
      // Tops inside a run are relative to the run's first row until the second pass.
      let y = 0;
      let prevDay = null;
      let first = true;
      for (let i = a; i < end;) {
        const day = this.groups ? dayOf(feed.items[i]) : null;
        if (this.groups && day !== prevDay) {
          rows.push({ kind: "header", day, top: y, height: HEADER, first });
          first = false;
          y += HEADER;
          prevDay = day;
        }
        let j = i + 1;
        while (j < end && j - i < this.cols && (!this.groups || dayOf(feed.items[j]) === day)) j += 1;
        tileRows.push(rows.length);
        rows.push({ kind: "tiles", start: i, end: j, top: y, height: this.rowHeight, first });
        first = false;
        y += this.rowHeight;
        i = j;
      }
      loadedHeight += y;
      loadedCount += end - a;
      covered = end;
    }
    if (size > covered) {
      gapRows.push(rows.length);
      rows.push({ kind: "gap", start: covered, end: size, top: 0, height: 0 });
    }
    // Height per item of what is loaded (headers and short rows included) estimates the gaps.
    const perItem = loadedCount >= this.cols * 4 ? loadedHeight / loadedCount : this.rowHeight / this.cols;
    let offset = 0;
    let base = 0;
    for (const row of rows) {
      if (row.kind === "gap") {
        const n = row.end - row.start;
        row.top = offset;
        row.height = Math.max(Math.ceil(n / this.cols) * this.rowHeight, Math.round(perItem * n));
        offset += row.height;
        continue;
      }
      if (row.first) base = offset;
      row.top += base;
      offset = row.top + row.height;
    }
    this.rows = rows;
    this.tileRows = tileRows;
    this.gapRows = gapRows;
    this.height = offset;
  }

  totalHeight() {
    return this.height;
  }

  /** The grid's top in page coordinates. */
  top() {
    return this.el.getBoundingClientRect().top + window.scrollY;
  }

  /** Index of the first row whose bottom is below y. */
  rowAt(y) {
    let lo = 0;
    let hi = this.rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const row = this.rows[mid];
      if (row.top + row.height <= y) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The item at height y of the grid (estimated inside a gap); last=true gives the last one of that row. */
  indexAt(y, last = false) {
    const size = this.feed ? this.feed.size : 0;
    if (!size) return -1;
    let r = this.rowAt(Math.max(0, y));
    while (r < this.rows.length && this.rows[r].kind === "header") r += 1;
    if (r >= this.rows.length) return size - 1;
    const row = this.rows[r];
    if (row.kind === "tiles") return last ? row.end - 1 : row.start;
    const n = row.end - row.start;
    const at = row.start + Math.floor(((y - row.top) / row.height) * n) + (last ? this.cols - 1 : 0);
    return Math.min(row.end - 1, Math.max(row.start, at));
  }

  /** Vertical offset of an item's row inside the grid (estimated inside a gap). */
  offsetOfIndex(index) {
    const rowIndex = this.rowOfIndex(index);
    if (rowIndex >= 0) return this.rows[rowIndex].top;
    for (const g of this.gapRows) {
      const gap = this.rows[g];
      if (gap.start <= index && index < gap.end) {
        const rowsIn = Math.floor(((index - gap.start) / (gap.end - gap.start)) * (gap.height / this.rowHeight));
        return gap.top + rowsIn * this.rowHeight;
      }
    }
    return this.height;
  }

  /** Index into rows of the row holding item ``index``, or -1 when it is not loaded. */
  rowOfIndex(index) {
    if (!this.feed || !this.feed.has(index) || !this.tileRows.length) return -1;
    let lo = 0;
    let hi = this.tileRows.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.rows[this.tileRows[mid]].start <= index) lo = mid;
      else hi = mid - 1;
    }
    const row = this.rows[this.tileRows[lo]];
    return row.start <= index && index < row.end ? this.tileRows[lo] : -1;
  }

  /** What to keep in place through a new layout: the item at the top of the view, or the page's bottom. */
  anchor() {
    if (!this.rows.length) return null;
    const y = window.scrollY - this.top();
    if (y <= 0) return null;
    const doc = document.documentElement;
    if (window.scrollY + window.innerHeight >= doc.scrollHeight - 2) return { bottom: true };
    // NOTE: a loaded row in view is the anchor where there is one: a gap's
    // positions are estimates, and they move when the gap is fetched.
    for (let r = this.rowAt(y); r < this.rows.length && this.rows[r].top < y + window.innerHeight; r += 1) {
      const row = this.rows[r];
      if (row.kind === "tiles") return { index: row.start, offset: row.top - y };
    }
    const index = this.indexAt(y);
    return index < 0 ? null : { index, offset: this.offsetOfIndex(index) - y };
  }

  restore(anchor) {
    this.el.style.height = `${this.height}px`;
    if (!anchor) return;
    if (anchor.bottom) window.scrollTo(0, document.documentElement.scrollHeight);
    else window.scrollTo(0, this.top() + this.offsetOfIndex(anchor.index) - anchor.offset);
  }

  /** Scroll so that item ``index`` is at the top of the view (its region fetched directly) without focusing it. */
  async scrollToIndex(index) {
    if (!this.feed) return;
    const item = await this.feed.ensure(index);
    if (!item) return;
    const header = document.querySelector(".topbar")?.offsetHeight ?? 0;
    window.scrollTo(0, Math.max(0, this.top() + this.offsetOfIndex(index) - header - HEADER));
    this.render();
  }

  /** Scroll so that item ``index`` is in view (fetching its region as needed) and focus it. */
  async focusIndex(index) {
    if (!this.feed) return;
    const item = await this.feed.ensure(index);
    if (!item) return;
    const y = this.top() + this.offsetOfIndex(index);
    const header = document.querySelector(".topbar")?.offsetHeight ?? 0;
    if (y < window.scrollY + header || y + this.rowHeight > window.scrollY + window.innerHeight) {
      window.scrollTo(0, Math.max(0, y - header - HEADER));
    }
    this.render();
    this.setActive(index);
    const tile = this.el.querySelector(`[data-index="${index}"] .tile-open`);
    if (tile) tile.focus({ preventScroll: true });
  }

  /** The first item at the top of the view (0 at the top of the page). */
  firstVisibleIndex() {
    const header = document.querySelector(".topbar")?.offsetHeight ?? 0;
    const y = window.scrollY + header - this.top();
    return y <= 0 ? 0 : Math.max(0, this.indexAt(y));
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  clearRows() {
    for (const el of this.rendered.values()) el.remove();
    this.rendered.clear();
  }

  /** Put the rows in view into the DOM, remove the rest, and fetch what the view lacks. */
  render() {
    if (!this.feed) return;
    if (this.el.clientWidth !== this.width) {
      this.relayout();
      return;
    }
    this.el.style.height = `${this.height}px`;
    const gridTop = this.top();
    const viewTop = window.scrollY - gridTop - OVERSCAN;
    const viewBottom = window.scrollY - gridTop + window.innerHeight + OVERSCAN;
    const wanted = new Map();
    for (let r = this.rowAt(Math.max(0, viewTop)); r < this.rows.length && this.rows[r].top < viewBottom; r += 1) {
      const row = this.rows[r];
      if (row.kind === "header") wanted.set(`h${this.version}:${row.day}:${row.top}`, row);
      else if (row.kind === "tiles") wanted.set(`t${this.version}:${row.start}:${row.end}:${row.top}`, row);
      else {
        // Skeleton rows where the gap's items will be.
        const fit = Math.floor(row.height / this.rowHeight);
        const from = Math.max(0, Math.floor((viewTop - row.top) / this.rowHeight));
        const to = Math.min(fit, Math.ceil((viewBottom - row.top) / this.rowHeight));
        for (let k = from; k < to; k += 1) {
          wanted.set(`s${this.version}:${row.start}:${row.top}:${k}:${this.cols}`, { kind: "skeleton", top: row.top + k * this.rowHeight, height: this.rowHeight });
        }
      }
    }
    for (const [key, el] of this.rendered) {
      if (!wanted.has(key)) {
        el.remove();
        this.rendered.delete(key);
      }
    }
    for (const [key, row] of wanted) {
      if (this.rendered.has(key)) continue;
      const el = this.renderRow(row);
      this.rendered.set(key, el);
      this.el.append(el);
    }
    this.syncTabStop();
    this.maybeLoad(gridTop);
    this.onChange();
  }

  /** How many tiles the first view holds (whole rows, one more row for the date headers), at most a page. */
  firstPageSize() {
    const rows = Math.ceil(window.innerHeight / (this.rowHeight || 1)) + 1;
    return Math.min(PAGE, Math.max(this.cols * 2, this.cols * rows));
  }

  /** The item whose tile takes the grid's tab stop (the last one focused). */
  setActive(index) {
    if (this.active === index) return;
    this.active = index;
    this.syncTabStop();
  }

  /**
   * One tab stop in the grid (a roving tabindex): the active tile when it is
   * in the DOM, else the first tile in view; arrow keys move between tiles.
   */
  syncTabStop() {
    const opens = this.el.querySelectorAll(".tile[data-index] .tile-open");
    if (!opens.length) return;
    const first = this.firstVisibleIndex();
    let stop = null;
    let best = Infinity;
    for (const el of opens) {
      const index = Number(el.parentElement.dataset.index);
      if (index === this.active) {
        stop = el;
        break;
      }
      const rank = index >= first ? index - first : 1e9 - index;
      if (rank < best) {
        best = rank;
        stop = el;
      }
    }
    for (const el of opens) {
      const want = el === stop ? 0 : -1;
      if (el.tabIndex !== want) el.tabIndex = want;
    }
  }

  renderRow(row) {
    let el;
    if (row.kind === "header") {
      // NOTE: out of the tab order (rows are not in page order in the DOM); the "d" key selects a focused tile's day.
      el = h("div", { class: "day-row" }, h("h2", { class: "day-header" }, dayLabel(row.day)),
        h("button", { type: "button", class: "btn btn-small btn-quiet day-select", tabindex: "-1", "data-day": row.day }, t("Select day")));
    } else {
      el = h("div", { class: "grid-row" });
      el.style.gridTemplateColumns = `repeat(${this.cols}, ${this.tile}px)`;
      el.style.columnGap = `${GAP}px`;
      if (row.kind === "skeleton") {
        for (let c = 0; c < this.cols; c += 1) el.append(this.renderSkeleton());
      } else {
        const items = this.feed.items;
        for (let i = row.start; i < row.end; i += 1) {
          const tile = this.renderTile(items[i], i);
          tile.dataset.index = String(i);
          el.append(tile);
        }
      }
    }
    el.style.transform = `translateY(${row.top}px)`;
    el.style.height = `${row.kind === "header" ? row.height : this.tile}px`;
    return el;
  }

  /**
   * Fetch what the view shows as skeletons, else what lies a few rows beyond
   * it either way: reading on from a loaded item by its cursor, a far region
   * by offset once the view rests there.
   */
  maybeLoad(gridTop) {
    const feed = this.feed;
    if (feed.pending || feed.error) return;
    if (feed.total === null) {
      feed.loadAt(0);
      return;
    }
    const size = feed.size;
    if (!size) return;
    const y = window.scrollY - gridTop;
    const first = Math.max(0, this.indexAt(y));
    const last = Math.max(first, this.indexAt(y + window.innerHeight, true));
    const reach = PREFETCH_ROWS * this.cols;
    let target = -1;
    for (let i = first; i <= last && target < 0; i += 1) if (!feed.has(i)) target = i;
    for (let i = last + 1; i < Math.min(size, last + reach) && target < 0; i += 1) if (!feed.has(i)) target = i;
    for (let i = first - 1; i >= Math.max(0, first - reach) && target < 0; i -= 1) if (!feed.has(i)) target = i;
    if (target < 0) return;
    const wait = this.lastScroll + SETTLE_MS - performance.now();
    if (feed.requestFor(target).jump && wait > 0) {
      clearTimeout(this.settleTimer);
      this.settleTimer = setTimeout(this.schedule, wait + 5);
      return;
    }
    feed.loadAt(target);
  }

  /** The tile elements in the DOM now. */
  tiles() {
    return this.el.querySelectorAll(".tile[data-index]");
  }
}
