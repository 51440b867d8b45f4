// Which items are selected: toggles, shift ranges, a day, or the whole
// filtered listing ("all", acted on by the server through the listing's filter).

export class Selection {
  /** onChange() after every change; total() is the size of the listing shown. */
  constructor(onChange, total = () => 0) {
    this.ids = new Set();
    this.all = null; // {} while the whole listing is selected
    this.except = new Set(); // ids left out of "all"
    this.anchor = -1;
    this.onChange = onChange;
    this.total = total;
  }

  get size() {
    return this.all ? Math.max(0, this.total() - this.except.size) : this.ids.size;
  }

  has(id) {
    return this.all ? !this.except.has(id) : this.ids.has(id);
  }

  set(id, on) {
    if (this.all) {
      if (on) this.except.delete(id);
      else this.except.add(id);
    } else if (on) this.ids.add(id);
    else this.ids.delete(id);
  }

  /** Toggle one item; with range=true select everything from the last toggled item to this one. */
  toggle(items, index, range = false) {
    const item = items[index];
    if (!item) return;
    if (range && this.anchor >= 0 && this.anchor < items.length) {
      const [lo, hi] = this.anchor < index ? [this.anchor, index] : [index, this.anchor];
      for (let i = lo; i <= hi; i += 1) if (items[i]) this.set(items[i].id, true);
    } else {
      this.set(item.id, !this.has(item.id));
    }
    this.anchor = index;
    if (!this.size) this.clear();
    this.onChange();
  }

  /** Shift+arrow: select from ``from`` to ``to`` (both included). */
  extend(items, from, to) {
    const [lo, hi] = from < to ? [from, to] : [to, from];
    for (let i = lo; i <= hi; i += 1) if (items[i]) this.set(items[i].id, true);
    this.anchor = to;
    this.onChange();
  }

  /** Select these ids besides what is selected. */
  add(ids) {
    for (const id of ids) this.set(id, true);
    this.onChange();
  }

  /** Select exactly these ids (a drag band over what was selected before). */
  replace(ids) {
    if (this.all) return;
    this.ids = new Set(ids);
    this.onChange();
  }

  /** Select the whole listing, loaded or not. */
  selectAll() {
    this.all = {};
    this.ids.clear();
    this.except.clear();
    this.onChange();
  }

  clear() {
    if (this.ids.size === 0 && this.anchor < 0 && !this.all) return;
    this.ids.clear();
    this.except.clear();
    this.all = null;
    this.anchor = -1;
    this.onChange();
  }

  /** Forget ids that left the listing. */
  drop(ids) {
    for (const id of ids) {
      this.ids.delete(id);
      this.except.delete(id);
    }
    this.anchor = -1;
    if (this.all && this.size === 0) this.all = null;
    this.onChange();
  }

  /** The selected loaded ids in listing order (newest first). */
  ordered(items) {
    return items.filter((item) => item && this.has(item.id)).map((item) => item.id);
  }
}
