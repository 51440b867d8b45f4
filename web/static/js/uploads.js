// Uploads to the input library: drag and drop or the file picker, with progress per file.

import { upload } from "./api.js";
import { byId, h } from "./dom.js";
import { bytes } from "./format.js";
import { t } from "./i18n.js";

const ACCEPTED = ["image/png", "image/jpeg", "image/webp"];
const PARALLEL = 2;

export class Uploader {
  /** onUploaded(item) runs after each file the server stored; path() names the upload endpoint. */
  constructor({ onUploaded, isActive, path }) {
    this.onUploaded = onUploaded;
    this.isActive = isActive;
    this.path = path;
    this.list = byId("uploads");
    this.zone = byId("dropzone");
    this.queue = [];
    this.running = 0;
    byId("upload-input").addEventListener("change", (event) => {
      this.add([...event.target.files]);
      event.target.value = "";
    });
    // NOTE: the whole window takes drops while the inputs view is shown, so a
    // file dropped a little beside the zone is not opened by the browser.
    window.addEventListener("dragover", (event) => {
      if (!this.isActive() || !event.dataTransfer?.types.includes("Files")) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      this.zone.classList.add("dragging");
    });
    window.addEventListener("dragleave", (event) => {
      if (event.relatedTarget === null) this.zone.classList.remove("dragging");
    });
    window.addEventListener("drop", (event) => {
      if (!this.isActive() || !event.dataTransfer?.files.length) return;
      event.preventDefault();
      this.zone.classList.remove("dragging");
      this.add([...event.dataTransfer.files]);
    });
  }

  /** Queue files; anything that is not a PNG, JPEG or WebP is refused here already. */
  add(files) {
    for (const file of files) {
      const progress = h("progress", { max: "1", value: "0", "aria-label": t("Uploading {name}", { name: file.name }) });
      const status = h("span", { class: "upload-status" }, t("waiting"));
      const row = h("li", { class: "upload" }, h("span", { class: "upload-name" }, file.name), h("span", { class: "upload-size" }, bytes(file.size)), progress, status);
      this.list.prepend(row);
      if (!ACCEPTED.includes(file.type)) {
        this.fail({ row, status }, t("not a PNG, JPEG or WebP image"), false);
        continue;
      }
      this.queue.push({ file, row, progress, status, path: this.path() });
    }
    this.pump();
  }

  pump() {
    while (this.running < PARALLEL && this.queue.length) {
      const job = this.queue.shift();
      this.running += 1;
      job.status.textContent = t("uploading");
      upload(job.path, job.file, (fraction) => {
        job.progress.value = fraction;
        job.status.textContent = fraction < 1 ? `${Math.round(fraction * 100)}%` : t("saving");
      })
        .then((item) => {
          job.progress.value = 1;
          job.status.textContent = t("done");
          job.row.classList.add("upload-done");
          setTimeout(() => job.row.remove(), 4000);
          if (job.path === this.path()) this.onUploaded(item);
        })
        // NOTE: a refusal (4xx) would be refused again; anything else (the server gone, a 5xx) can be retried.
        .catch((err) => this.fail(job, err.message, !(err.status >= 400 && err.status < 500)))
        .finally(() => {
          this.running -= 1;
          this.pump();
        });
    }
  }

  /** Mark a file failed; ``retry`` adds a Retry button that queues it again. */
  fail(job, message, retry) {
    const { row, status } = job;
    row.classList.add("upload-failed");
    status.textContent = message;
    const buttons = [];
    if (retry) {
      buttons.push(h("button", {
        type: "button",
        class: "btn btn-small upload-retry",
        onclick: () => {
          row.classList.remove("upload-failed");
          for (const b of buttons) b.remove();
          job.progress.value = 0;
          status.textContent = t("waiting");
          this.queue.push(job);
          this.pump();
        },
      }, t("Retry")));
    }
    buttons.push(h("button", { type: "button", class: "btn btn-icon btn-small", "aria-label": t("Dismiss"), onclick: () => row.remove() }, "×"));
    row.append(...buttons);
  }
}
