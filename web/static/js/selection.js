// Which items are selected: toggles, shift-click ranges, select all loaded.

export class Selection {
  constructor(onChange) {
    this.ids = new Set();
    this.anchor = -1;
    this.onChange = onChange;
  }

  get size() {
    return this.ids.size;
  }

  has(id) {
    return this.ids.has(id);
  }

  /** Toggle one item; with range=true select everything from the last toggled item to this one. */
  toggle(items, index, range = false) {
    const item = items[index];
    if (!item) return;
    if (range && this.anchor >= 0 && this.anchor < items.length) {
      const [lo, hi] = this.anchor < index ? [this.anchor, index] : [index, this.anchor];
      for (let i = lo; i <= hi; i += 1) if (items[i]) this.ids.add(items[i].id);
    } else if (this.ids.has(item.id)) {
      this.ids.delete(item.id);
    } else {
      this.ids.add(item.id);
    }
    this.anchor = index;
    this.onChange();
  }

  selectAll(items) {
    for (const item of items) if (item) this.ids.add(item.id);
    this.onChange();
  }

  clear() {
    if (this.ids.size === 0 && this.anchor < 0) return;
    this.ids.clear();
    this.anchor = -1;
    this.onChange();
  }

  /** Forget ids that left the listing. */
  drop(ids) {
    for (const id of ids) this.ids.delete(id);
    this.anchor = -1;
    this.onChange();
  }

  /** The selected ids in listing order (newest first). */
  ordered(items) {
    return items.filter((item) => item && this.ids.has(item.id)).map((item) => item.id);
  }
}
