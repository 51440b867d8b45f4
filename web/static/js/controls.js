// The page's own settings in the top bar: light/dark theme and language.

import { byId, h } from "./dom.js";
import { chooseLocale, locale, LOCALES, t } from "./i18n.js";

const THEME_KEY = "casvault.theme";
const FIT_KEY = "casvault.thumbs";
const THEMES = ["auto", "light", "dark"];

function readStored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function storedTheme() {
  try {
    const value = localStorage.getItem(THEME_KEY);
    return THEMES.includes(value) ? value : "auto";
  } catch {
    return "auto";
  }
}

/** The theme switch (auto, light, dark) and the language switch, put into #page-controls. */
export class PageControls {
  constructor() {
    const box = byId("page-controls");
    this.theme = storedTheme();
    this.themeButton = h("button", { type: "button", class: "btn btn-quiet btn-small", id: "theme-toggle", "data-testid": "theme-toggle", onclick: () => this.nextTheme() });
    const select = h("select", { id: "locale-select", "data-testid": "locale-select", "aria-label": t("Language") },
      ...Object.entries(LOCALES).map(([code, name]) => h("option", { value: code, selected: code === locale }, name)));
    select.addEventListener("change", () => {
      chooseLocale(select.value);
      location.reload();
    });
    box.replaceChildren(this.themeButton, select);
    this.applyTheme();
    if (document.getElementById("grid")) {
      // Thumbnails square-cropped (the default) or whole, keeping the image's shape.
      this.fit = readStored(FIT_KEY) === "whole";
      this.fitButton = h("button", { type: "button", class: "btn btn-quiet btn-small", "data-testid": "thumbs-toggle", "aria-pressed": "false", onclick: () => this.toggleFit() });
      box.prepend(this.fitButton);
      this.applyFit();
    }
    // NOTE: the skip link moves the focus itself: following "#main" would change the URL's hash (the gallery keeps its position there).
    for (const link of document.querySelectorAll(".skip-link")) {
      link.addEventListener("click", (event) => {
        const target = document.querySelector(link.getAttribute("href"));
        if (!target) return;
        event.preventDefault();
        target.focus();
      });
    }
  }

  toggleFit() {
    this.fit = !this.fit;
    try {
      localStorage.setItem(FIT_KEY, this.fit ? "whole" : "square");
    } catch {
      // storage blocked: the choice lasts for this page
    }
    this.applyFit();
  }

  applyFit() {
    document.body.classList.toggle("thumbs-whole", this.fit);
    this.fitButton.textContent = t("Whole thumbnails");
    this.fitButton.setAttribute("aria-pressed", String(this.fit));
  }

  nextTheme() {
    this.theme = THEMES[(THEMES.indexOf(this.theme) + 1) % THEMES.length];
    try {
      localStorage.setItem(THEME_KEY, this.theme);
    } catch {
      // storage blocked: the choice lasts for this page
    }
    this.applyTheme();
  }

  applyTheme() {
    const root = document.documentElement;
    if (this.theme === "auto") delete root.dataset.theme;
    else root.dataset.theme = this.theme;
    const names = { auto: t("Theme: automatic"), light: t("Theme: light"), dark: t("Theme: dark") };
    this.themeButton.textContent = names[this.theme];
  }
}
