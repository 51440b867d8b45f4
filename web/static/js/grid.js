// The windowed grid: only the rows near the viewport are in the DOM.
//
// Rows have a fixed height for a given column count (tiles are square boxes,
// date headers a fixed strip), so the layout of the loaded items is a list of
// row offsets and the rest is estimated from the server's total: the page's
// scroll height is right from the first page, and 100,000 images cost a few
// dozen DOM nodes.

import { h } from "./dom.js";
import { dayKey, dayLabel } from "./format.js";

const GAP = 8;
const HEADER = 44;
const OVERSCAN = 600; // px rendered above and below the viewport
const PREFETCH_ROWS = 6; // start the next page this many rows before the end

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
    this.rows = [];
    this.tileRows = []; // indexes into rows of the rows that hold tiles
    this.laidOut = 0; // items covered by this.rows
    this.rendered = new Map(); // row key -> element
    this.version = 0;
    this.cols = 1;
    this.tile = 0;
    this.width = 0;
    this.frame = 0;
    this.schedule = this.schedule.bind(this);
    window.addEventListener("scroll", this.schedule, { passive: true });
    new ResizeObserver(() => {
      if (this.el.clientWidth !== this.width) this.relayout();
    }).observe(this.el);
  }

  /** Show another listing (filters changed): start at the top. */
  setFeed(feed) {
    if (this.unsubscribe) this.unsubscribe();
    this.feed = feed;
    this.unsubscribe = feed.subscribe((_, change) => this.refresh(change));
    this.version += 1;
    this.clearRows();
    this.rows = [];
    this.tileRows = [];
    this.laidOut = 0;
    this.measure();
    this.schedule();
    if (!feed.items.length) feed.loadMore();
  }

  /** Follow a change of the feed: "append" extends the layout, "update" redraws, anything else rebuilds. */
  refresh(change = "rebuild") {
    if (change === "update" || change === "error") {
      this.redraw();
      return;
    }
    const last = this.rows[this.rows.length - 1];
    if (change === "append" && last && last.kind === "tiles") {
      // NOTE: the last row may be short; lay it out again with the new items.
      this.rows.pop();
      this.tileRows.pop();
      this.laidOut = last.start;
      this.extend();
    } else if (change === "append" && !last) {
      this.extend();
    } else {
      this.rows = [];
      this.tileRows = [];
      this.laidOut = 0;
      this.version += 1;
      this.extend();
    }
    this.schedule();
  }

  /** Redraw the rows in view (after an item changed in place). */
  redraw() {
    this.version += 1;
    this.schedule();
  }

  relayout() {
    const anchor = this.firstVisibleIndex();
    this.measure();
    this.rows = [];
    this.tileRows = [];
    this.laidOut = 0;
    this.version += 1;
    this.extend();
    this.clearRows();
    if (anchor > 0) window.scrollTo(0, this.top() + this.offsetOfIndex(anchor));
    this.schedule();
  }

  measure() {
    this.width = this.el.clientWidth;
    const cols = Math.max(2, Math.floor((this.width + GAP) / (this.minTile + GAP)));
    this.cols = cols;
    this.tile = Math.floor((this.width - GAP * (cols - 1)) / cols);
    this.rowHeight = this.tile + GAP;
  }

  /** Append rows for items not laid out yet. */
  extend() {
    const items = this.feed ? this.feed.items : [];
    let top = this.bottomOfRows();
    let i = this.laidOut;
    let prevDay = i > 0 && this.groups ? dayKey(items[i - 1].created_at) : null;
    while (i < items.length) {
      const day = this.groups ? dayKey(items[i].created_at) : null;
      if (this.groups && day !== prevDay) {
        this.rows.push({ kind: "header", day, top, height: HEADER });
        top += HEADER;
        prevDay = day;
      }
      let end = i + 1;
      while (end < items.length && end - i < this.cols && (!this.groups || dayKey(items[end].created_at) === day)) end += 1;
      this.tileRows.push(this.rows.length);
      this.rows.push({ kind: "tiles", start: i, end, top, height: this.rowHeight });
      top += this.rowHeight;
      i = end;
    }
    this.laidOut = items.length;
  }

  bottomOfRows() {
    const last = this.rows[this.rows.length - 1];
    return last ? last.top + last.height : 0;
  }

  /** Rows not loaded yet, estimated from the total. */
  estimatedRows() {
    if (!this.feed) return 0;
    const rest = this.feed.size - this.feed.items.length;
    return rest > 0 ? Math.ceil(rest / this.cols) : 0;
  }

  /**
   * Height of what is not loaded: at the loaded part's height per item (date
   * headers and short last rows included) once there is enough to go by.
   */
  estimatedHeight() {
    const rest = this.feed ? this.feed.size - this.feed.items.length : 0;
    if (rest <= 0) return 0;
    const byRows = this.estimatedRows() * this.rowHeight;
    if (!this.groups || this.laidOut < this.cols * 4) return byRows;
    return Math.max(byRows, Math.round((this.bottomOfRows() / this.laidOut) * rest));
  }

  totalHeight() {
    return this.bottomOfRows() + this.estimatedHeight();
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

  /** Vertical offset of an item's row inside the grid. */
  offsetOfIndex(index) {
    const rowIndex = this.rowOfIndex(index);
    if (rowIndex >= 0) return this.rows[rowIndex].top;
    const beyond = index - this.laidOut;
    return this.bottomOfRows() + Math.floor(beyond / this.cols) * this.rowHeight;
  }

  /** Index into rows of the row holding item ``index``, or -1 when it is not laid out. */
  rowOfIndex(index) {
    if (index >= this.laidOut) return -1;
    let lo = 0;
    let hi = this.tileRows.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.rows[this.tileRows[mid]].start <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.tileRows.length ? this.tileRows[lo] : -1;
  }

  firstVisibleIndex() {
    if (!this.rows.length) return 0;
    const y = window.scrollY - this.top();
    for (let r = this.rowAt(Math.max(0, y)); r < this.rows.length; r += 1) {
      if (this.rows[r].kind === "tiles") return this.rows[r].start;
    }
    return 0;
  }

  /** Scroll so that item ``index`` is in view (loading pages as needed) and focus it. */
  async focusIndex(index) {
    if (!this.feed) return;
    const item = await this.feed.ensure(index);
    if (!item) return;
    this.refreshIfStale();
    const y = this.top() + this.offsetOfIndex(index);
    const header = document.querySelector(".topbar")?.offsetHeight ?? 0;
    if (y < window.scrollY + header || y + this.rowHeight > window.scrollY + window.innerHeight) {
      window.scrollTo(0, Math.max(0, y - header - HEADER));
    }
    this.render();
    const tile = this.el.querySelector(`[data-index="${index}"] .tile-open`);
    if (tile) tile.focus({ preventScroll: true });
  }

  refreshIfStale() {
    if (this.laidOut !== this.feed.items.length) this.refresh(this.laidOut < this.feed.items.length ? "append" : "rebuild");
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

  /** Put the rows in view into the DOM, remove the rest, and ask for more items when near the end. */
  render() {
    if (!this.feed) return;
    if (this.el.clientWidth !== this.width) this.measure();
    const total = this.totalHeight();
    this.el.style.height = `${total}px`;
    const gridTop = this.top();
    const viewTop = window.scrollY - gridTop - OVERSCAN;
    const viewBottom = window.scrollY - gridTop + window.innerHeight + OVERSCAN;
    const wanted = new Map();
    const first = this.rowAt(Math.max(0, viewTop));
    for (let r = first; r < this.rows.length && this.rows[r].top < viewBottom; r += 1) {
      const row = this.rows[r];
      const key = row.kind === "header" ? `h${this.version}:${row.day}:${row.top}` : `t${this.version}:${row.start}:${row.end}:${row.top}`;
      wanted.set(key, row);
    }
    // Skeleton rows where the estimate says items will be.
    const loadedBottom = this.bottomOfRows();
    const estimated = this.estimatedRows();
    if (viewBottom > loadedBottom && estimated > 0) {
      const from = Math.max(0, Math.floor((viewTop - loadedBottom) / this.rowHeight));
      const to = Math.min(estimated, Math.ceil((viewBottom - loadedBottom) / this.rowHeight));
      for (let k = from; k < to; k += 1) {
        wanted.set(`s${this.version}:${k}:${this.cols}`, { kind: "skeleton", top: loadedBottom + k * this.rowHeight, height: this.rowHeight });
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
    this.maybeLoad(viewBottom, loadedBottom);
    this.onChange();
  }

  renderRow(row) {
    let el;
    if (row.kind === "header") {
      el = h("h2", { class: "day-header" }, dayLabel(row.day));
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

  maybeLoad(viewBottom, loadedBottom) {
    const feed = this.feed;
    if (!feed.more || feed.error || feed.pending) return;
    const gap = viewBottom - loadedBottom;
    // NOTE: the estimate of the unloaded part can be short; whoever reaches the
    // end of the page keeps loading until the listing really ends.
    const atEnd = window.scrollY + 2 * window.innerHeight >= document.documentElement.scrollHeight;
    if (gap > -PREFETCH_ROWS * this.rowHeight || atEnd) feed.loadMore(gap > 2 * window.innerHeight);
  }

  /** The tile elements in the DOM now. */
  tiles() {
    return this.el.querySelectorAll(".tile[data-index]");
  }
}
