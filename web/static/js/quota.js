// The quota bar: usage against the limit, and a link to the trash when emptying it would free space.

import { api } from "./api.js";
import { byId } from "./dom.js";
import { bytes } from "./format.js";
import { t, tn } from "./i18n.js";

export class QuotaBar {
  constructor() {
    this.text = byId("quota-text");
    this.meter = byId("quota-meter");
    this.fill = byId("quota-fill");
    this.trashLink = byId("quota-trash");
    this.data = null;
    this.timer = 0;
  }

  /** Days a trashed image is kept (from the last answer). */
  get retentionDays() {
    return this.data?.retention_days ?? Number(document.body.dataset.retentionDays || 30);
  }

  /** Fetch /quota again, coalescing bursts of calls. */
  refresh() {
    clearTimeout(this.timer);
    return new Promise((resolve) => {
      this.timer = setTimeout(() => {
        api("/quota")
          .then((data) => {
            this.data = data;
            this.show(data);
          })
          .catch((err) => console.warn("quota", err))
          .finally(() => resolve(this.data));
      }, 150);
    });
  }

  show(data) {
    const usage = data.usage || {};
    const limits = data.limits || {};
    const used = (usage.bytes || 0) + (usage.trash_bytes || 0);
    const parts = [];
    if (limits.max_bytes) parts.push(t("{used} of {limit}", { used: bytes(used), limit: bytes(limits.max_bytes) }));
    else parts.push(t("{used} used", { used: bytes(used) }));
    // NOTE: usage counts every kind (generated, inputs, controls), so it says "items".
    if (limits.max_count) parts.push(t("{count} of {limit} items", { count: (usage.count || 0).toLocaleString(), limit: limits.max_count.toLocaleString() }));
    else parts.push(tn("{n} item", "{n} items", usage.count || 0));
    this.text.textContent = parts.join(" · ");
    const percent = typeof data.percent === "number" ? Math.min(100, Math.max(0, data.percent)) : null;
    this.meter.hidden = percent === null || (!limits.max_bytes && !limits.max_count);
    if (percent !== null) {
      this.fill.style.width = `${percent}%`;
      this.meter.setAttribute("aria-valuenow", String(Math.round(percent)));
      this.meter.setAttribute("aria-valuetext", t("{percent}% used", { percent: Math.round(percent) }));
      this.meter.classList.toggle("quota-high", percent >= 90);
    }
    const free = data.purge_would_free || {};
    const trashCount = free.count ?? usage.trash_count ?? 0;
    const trashBytes = free.bytes ?? usage.trash_bytes ?? 0;
    this.trashLink.hidden = !(trashCount > 0);
    this.trashLink.textContent = trashCount > 0 ? t("Trash holds {what}: emptying it frees {size}", { what: tn("{n} image", "{n} images", trashCount), size: bytes(trashBytes) }) : "";
    // The trash tab shows its own count.
    const badge = document.getElementById("trash-count");
    if (badge) {
      badge.textContent = trashCount > 0 ? trashCount.toLocaleString() : "";
      badge.hidden = !(trashCount > 0);
    }
  }
}
