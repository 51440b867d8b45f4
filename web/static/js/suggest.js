// Suggestions with counts for the text filters (tag, workflow, model, LoRA,
// sampler), from GET /api/v1/images/facets: the values of the listing shown,
// narrowed by what is typed, most frequent first.

import { api, qs } from "./api.js";
import { byId, h } from "./dom.js";
import { TEXT_FILTERS } from "./state.js";

const DELAY = 150;
const LIMIT = 20;

export class Suggestions {
  constructor() {
    // null: not asked yet; false: the server has no facets endpoint (the page says so: no request that would 404)
    this.available = document.body.dataset.facets === "0" ? false : null;
    this.timer = 0;
    this.asked = new Map(); // field -> the last prefix asked
  }

  /** Ask for suggestions while a text filter of ``form`` has the focus; params() gives the listing's filters. */
  bind(form, params) {
    for (const field of TEXT_FILTERS) {
      const input = form.elements[field];
      const ask = () => {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.fetch(field, input.value.trim(), params()), DELAY);
      };
      input.addEventListener("focus", ask);
      input.addEventListener("input", ask);
    }
  }

  async fetch(field, prefix, params) {
    if (this.available === false || this.asked.get(field) === prefix) return;
    this.asked.set(field, prefix);
    const { [field]: _, cursor, page, size, ...filters } = params;
    try {
      const answer = await api(`/images/facets${qs({ ...filters, field, prefix, limit: LIMIT })}`);
      this.available = true;
      this.fill(field, answer.facets?.[field] || []);
    } catch (err) {
      // NOTE: a server without the facets endpoint (404) keeps the values seen in loaded pages.
      if (err.status === 404 || err.status === 405) this.available = false;
      this.asked.delete(field);
    }
  }

  fill(field, values) {
    const list = byId(`${field.replace("_id", "")}-options`);
    list.replaceChildren(...values.map(({ value, count }) => h("option", { value, label: `${value} (${count.toLocaleString()})` })));
  }
}
