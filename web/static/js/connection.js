// The connection to the server: one banner in view while it is lost, retries
// with backoff, and a "back" event so that every view refills by itself.

import { byId, h } from "./dom.js";
import { t } from "./i18n.js";

const FIRST_DELAY = 1000;
const MAX_DELAY = 30000;
const BACK_MS = 3000; // how long "Back online" stays up

/**
 * Tracks whether the server answers. lost() starts probing; the first answer
 * (a probe or any API call) calls every onBack listener once.
 */
export class Connection {
  constructor() {
    this.state = "online"; // online | offline | retrying | back
    this.delay = FIRST_DELAY;
    this.timer = 0;
    this.tick = 0;
    this.due = 0;
    this.listeners = new Set();
    this.banner = null;
    this.checking = false;
    window.addEventListener("offline", () => this.lost());
    window.addEventListener("online", () => this.probeNow());
  }

  /** Call fn() each time the server answers again after it was lost. */
  onBack(fn) {
    this.listeners.add(fn);
  }

  get down() {
    return this.state === "offline" || this.state === "retrying";
  }

  /** A request could not reach the server (network error, 502/504, a proxy's 503). */
  lost() {
    if (this.down) return;
    this.state = "offline";
    this.delay = FIRST_DELAY;
    this.schedule();
  }

  /**
   * A resource (an image) failed to load: ask the server once whether it is
   * there; only an unanswered request counts as a lost connection.
   */
  checkResource(url) {
    if (this.down || this.checking) return;
    this.checking = true;
    fetch(url, { method: "HEAD", credentials: "same-origin", cache: "no-store" })
      .then((resp) => {
        if ([502, 503, 504].includes(resp.status)) this.lost();
      })
      .catch(() => this.lost())
      .finally(() => {
        this.checking = false;
      });
  }

  /** A request got an answer from the application. */
  reached() {
    if (!this.down) return;
    clearTimeout(this.timer);
    clearInterval(this.tick);
    this.state = "back";
    this.delay = FIRST_DELAY;
    this.show();
    for (const fn of this.listeners) fn();
    this.timer = setTimeout(() => {
      if (this.state === "back") {
        this.state = "online";
        this.show();
      }
    }, BACK_MS);
  }

  schedule() {
    clearTimeout(this.timer);
    clearInterval(this.tick);
    this.due = Date.now() + this.delay;
    this.timer = setTimeout(() => this.probe(), this.delay);
    this.tick = setInterval(() => this.show(), 1000);
    this.show();
  }

  probeNow() {
    if (!this.down) return;
    this.delay = FIRST_DELAY;
    this.probe();
  }

  async probe() {
    clearTimeout(this.timer);
    clearInterval(this.tick);
    this.state = "retrying";
    this.show();
    let ok = false;
    try {
      const resp = await fetch("/api/v1/quota", { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" });
      ok = resp.ok && (resp.headers.get("content-type") || "").includes("json");
    } catch {
      ok = false;
    }
    if (ok) {
      this.reached();
      return;
    }
    this.state = "offline";
    this.delay = Math.min(MAX_DELAY, this.delay * 2);
    this.schedule();
  }

  /** Draw the banner for the current state. */
  show() {
    if (!this.banner) this.banner = this.build();
    const { box, text, button } = this.banner;
    box.hidden = this.state === "online";
    box.dataset.state = this.state;
    button.hidden = this.state !== "offline";
    let message = "";
    if (this.state === "offline") {
      const seconds = Math.max(1, Math.ceil((this.due - Date.now()) / 1000));
      message = navigator.onLine === false ? t("You are offline. Trying again in {s} s.", { s: seconds }) : t("The server cannot be reached. Trying again in {s} s.", { s: seconds });
    } else if (this.state === "retrying") {
      message = t("Reconnecting…");
    } else if (this.state === "back") {
      message = t("Back online.");
    }
    if (text.textContent !== message) text.textContent = message;
  }

  build() {
    const text = h("span", { class: "connection-text" });
    const button = h("button", { type: "button", class: "btn btn-small", onclick: () => this.probeNow() }, t("Retry now"));
    // A labelled section (a landmark) with a live region inside: everything on the page stays in landmarks.
    const box = h("section", { class: "connection", id: "connection", "aria-label": t("Connection"), "data-testid": "connection", hidden: true },
      h("span", { role: "status", "aria-live": "polite" }, text), button);
    document.body.append(box);
    return { box, text, button };
  }
}

/** The page's one connection tracker. */
export const connection = new Connection();
