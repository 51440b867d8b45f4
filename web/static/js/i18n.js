// The message catalogue: every string the pages show goes through t() or tn().
//
// English is the source text and the key; KO holds the Korean translation of
// each key (a missing one falls back to English). Counted messages name their
// English singular and plural; Korean has one form. The locale is the one
// chosen with the switch (localStorage), else the browser's first language.

export const LOCALES = { en: "English", ko: "한국어" };
const STORE_KEY = "casvault.locale";
const CATALOGUES = {};

function pick() {
  let chosen = null;
  try {
    chosen = localStorage.getItem(STORE_KEY);
  } catch {
    // storage blocked: follow the browser
  }
  if (chosen && chosen in LOCALES) return chosen;
  for (const lang of navigator.languages || [navigator.language || "en"]) {
    const base = String(lang).toLowerCase().split("-")[0];
    if (base in LOCALES) return base;
  }
  return "en";
}

/** The page's locale: "en" or "ko". */
export const locale = pick();

// NOTE: only a Korean page loads the Korean catalogue (English is the source text).
if (locale === "ko") CATALOGUES.ko = (await import("./messages-ko.js")).KO;

/** Remember a locale for the next visits (the page reloads to show it). */
export function chooseLocale(next) {
  try {
    localStorage.setItem(STORE_KEY, next);
  } catch {
    // storage blocked: the choice lasts for this page only
  }
}

function fill(text, vars) {
  return vars ? text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m)) : text;
}

/** A message in the page's language, with {name} placeholders filled from vars. */
export function t(text, vars) {
  const catalogue = CATALOGUES[locale];
  return fill((catalogue && catalogue[text]) || text, vars);
}

const rules = new Intl.PluralRules("en");

/** A counted message: tn("{n} image", "{n} images", 3) is "3 images" (Korean: one form). */
export function tn(one, other, n, vars = {}) {
  const catalogue = CATALOGUES[locale];
  const text = (catalogue && catalogue[one]) || (rules.select(n) === "one" ? one : other);
  return fill(text, { ...vars, n: n.toLocaleString(locale) });
}

/**
 * Translate the page's own markup: elements with data-i18n get their text
 * translated, data-i18n-attrs="placeholder aria-label" names attributes to translate.
 */
export function translatePage(root = document) {
  document.documentElement.lang = locale;
  if (locale === "en") return;
  for (const el of root.querySelectorAll("[data-i18n]")) {
    const source = el.dataset.i18n || el.textContent.trim();
    el.dataset.i18n = source;
    el.textContent = t(source);
  }
  for (const el of root.querySelectorAll("[data-i18n-attrs]")) {
    for (const name of el.dataset.i18nAttrs.split(/\s+/)) {
      const value = el.getAttribute(name);
      if (value) el.setAttribute(name, t(value));
    }
  }
}
