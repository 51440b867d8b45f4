// Formatting of sizes and dates for display (counts: tn() in i18n.js).

import { locale } from "./i18n.js";

const tz = document.body.dataset.partitionTz || "UTC";

const dayFormat = new Intl.DateTimeFormat(locale, { timeZone: tz, weekday: "short", year: "numeric", month: "long", day: "numeric" });
const keyFormat = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" });
const timeFormat = new Intl.DateTimeFormat(locale, { timeZone: tz, dateStyle: "medium", timeStyle: "short" });

/** The YYYY-MM-DD day of a timestamp in the store's partition time zone. */
// NOTE: days are those of the partition zone (the server's date filters and
// folders use it), so a group header and a from/to filter always agree.
export function dayKey(iso) {
  return keyFormat.format(new Date(iso));
}

/** A day key as a header ("Sat, 28 November 2026"). */
export function dayLabel(key) {
  const [y, m, d] = key.split("-").map(Number);
  return dayFormat.format(new Date(Date.UTC(y, m - 1, d, 12)));
}

/** A timestamp as date and time. */
export function dateTime(iso) {
  return iso ? timeFormat.format(new Date(iso)) : "";
}

/** Bytes as a short human size. */
export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** Whole days left before a trashed item is purged. */
export function daysLeft(trashedAt, retentionDays) {
  if (!trashedAt) return retentionDays;
  const elapsed = (Date.now() - new Date(trashedAt).getTime()) / 86400000;
  return Math.max(0, Math.ceil(retentionDays - elapsed));
}

/** A prompt cut to a length, for alt text and captions. */
export function shorten(text, max = 140) {
  if (!text) return "";
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A play time in milliseconds as m:ss (h:mm:ss past an hour). */
export function clock(ms) {
  if (ms === null || ms === undefined) return "";
  const total = Math.max(0, Math.round(ms / 1000));
  const [hh, mm, ss] = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60];
  const pad = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
}
