// The admin page: token sign-in (sessionStorage), users with usage, images
// across users with filters, delete/restore, purge of expired trash.

import { api, ApiError, qs } from "./api.js";
import { byId, h } from "./dom.js";
import { bytes, dateTime, shorten } from "./format.js";
import { t, tn, translatePage } from "./i18n.js";
import { PageControls } from "./controls.js";
import { confirmDialog, showError, toast } from "./notify.js";

const TOKEN_KEY = "casvault.adminToken";
const PAGE_SIZE = 50;

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let cursors = [null]; // cursor of each page seen; the last is the current page
let nextCursor = null;
const blobUrls = [];

function call(path, options = {}) {
  return api(path, { ...options, token }).catch((err) => {
    if (err instanceof ApiError && err.status === 401) signOut(t("The token was refused."));
    throw err;
  });
}

function signOut(message = "") {
  token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  byId("admin-app").hidden = true;
  byId("admin-session").hidden = true;
  byId("admin-login").hidden = false;
  byId("admin-login-error").textContent = message;
  byId("admin-token").focus();
}

async function signIn(candidate) {
  token = candidate;
  try {
    await loadUsers();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) showError(err, t("Could not load users"));
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  byId("admin-login").hidden = true;
  byId("admin-app").hidden = false;
  byId("admin-session").hidden = false;
  await loadImages(true);
}

async function loadUsers() {
  const answer = await call("/admin/users");
  const body = byId("users-body");
  const select = byId("admin-user");
  const chosen = select.value;
  body.replaceChildren();
  select.replaceChildren(h("option", { value: "" }, t("All users")));
  for (const row of answer.users) {
    const pick = h("button", { type: "button", class: "link-button", title: t("Show this user's images"), onclick: () => showUser(row.user_id) }, row.user_id);
    body.append(
      h("tr", { "data-testid": "admin-user-row", "data-user": row.user_id },
        h("td", { class: "mono" }, pick),
        h("td", { class: "num" }, (row.count ?? 0).toLocaleString()),
        h("td", { class: "num" }, bytes(row.bytes ?? 0)),
        h("td", { class: "num" }, `${(row.trash_count ?? 0).toLocaleString()} · ${bytes(row.trash_bytes ?? 0)}`),
        h("td", {}, row.last_activity ? dateTime(row.last_activity) : "—"),
      ),
    );
    select.append(h("option", { value: row.user_id }, row.user_id));
  }
  select.value = chosen;
  const total = answer.users.reduce((sum, row) => sum + (row.bytes || 0) + (row.trash_bytes || 0), 0);
  byId("users-summary").textContent = `${tn("{n} user", "{n} users", answer.count ?? answer.users.length)} · ${bytes(total)}`;
}

function showUser(userId) {
  byId("admin-user").value = userId;
  loadImages(true).catch((err) => showError(err));
  byId("images-title").scrollIntoView({ behavior: "smooth" });
}

function filters() {
  const form = byId("admin-filters");
  return {
    user_id: form.elements.user_id.value,
    kind: form.elements.kind.value,
    include: form.elements.include.value,
    from_date: form.elements.from_date.value,
    to_date: form.elements.to_date.value,
  };
}

async function loadImages(reset = false) {
  if (reset) cursors = [null];
  const cursor = cursors[cursors.length - 1];
  const params = { ...filters(), size: PAGE_SIZE };
  if (cursor) params.cursor = cursor;
  const answer = await call(`/admin/images${qs(params)}`);
  nextCursor = answer.next_cursor;
  for (const url of blobUrls.splice(0)) URL.revokeObjectURL(url);
  const body = byId("images-body");
  body.replaceChildren(...answer.items.map(imageRow));
  if (!answer.items.length) body.append(h("tr", {}, h("td", { colspan: "6", class: "muted" }, t("No images."))));
  const page = cursors.length;
  byId("page-label").textContent = t("Page {page} of {pages}", { page, pages: Math.max(1, Math.ceil(answer.total / PAGE_SIZE)) });
  byId("images-summary").textContent = tn("{n} item", "{n} items", answer.total);
  byId("page-prev").disabled = page === 1;
  byId("page-next").disabled = !nextCursor;
}

function imageRow(item) {
  const img = h("img", { alt: shorten(item.prompt || item.original_filename || "image", 120), width: "56", height: "56", loading: "lazy" });
  if (item.thumb_url && item.thumb_url.startsWith("/outputs/")) img.src = item.thumb_url;
  else if (item.thumb_url) authorizedImage(img, item.thumb_url);
  const trashed = item.status === "trash";
  const action = trashed
    ? h("button", { type: "button", class: "btn btn-small", onclick: () => act(item, "restore") }, t("Restore"))
    : h("button", { type: "button", class: "btn btn-small btn-danger", onclick: () => act(item, "delete") }, t("Delete"));
  return h("tr", { "data-testid": "admin-image-row", "data-id": item.id },
    h("td", {}, img),
    h("td", { class: "mono" }, item.owner),
    h("td", { class: "admin-prompt" }, shorten(item.prompt || item.original_filename || "", 160)),
    h("td", {}, dateTime(item.created_at)),
    h("td", {}, trashed ? t("trash since {date}", { date: dateTime(item.trashed_at) }) : t("active")),
    h("td", {}, action),
  );
}

/** Trashed files need the bearer token, which an <img> cannot send: fetch and show a blob URL. */
function authorizedImage(img, url) {
  fetch(url, { headers: { Authorization: `Bearer ${token}` } })
    .then((resp) => (resp.ok ? resp.blob() : null))
    .then((blob) => {
      if (!blob) return;
      const objectUrl = URL.createObjectURL(blob);
      blobUrls.push(objectUrl);
      img.src = objectUrl;
    })
    .catch(() => {});
}

async function act(item, verb) {
  try {
    await call(`/admin/images/${item.id}/${verb}`, { method: "POST" });
    toast(verb === "delete" ? t("Moved to the trash") : t("Restored"));
    await Promise.all([loadImages(), loadUsers()]);
  } catch (err) {
    showError(err);
  }
}

async function purge() {
  const yes = await confirmDialog({
    title: t("Purge expired trash?"),
    text: t("Every user's items trashed longer ago than the retention period are deleted for good."),
    ok: t("Purge"),
    danger: true,
  });
  if (!yes) return;
  try {
    const answer = await call("/admin/purge-trash", { method: "POST" });
    toast(t("Purged {items} ({size}) trashed over {days} ago", { items: tn("{n} item", "{n} items", answer.count), size: bytes(answer.bytes_freed), days: tn("{n} day", "{n} days", answer.older_than_days) }));
    await Promise.all([loadImages(true), loadUsers()]);
  } catch (err) {
    showError(err);
  }
}

byId("admin-login").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = byId("admin-token").value.trim();
  if (value) signIn(value);
});
byId("admin-logout").addEventListener("click", () => signOut());
byId("admin-filters").addEventListener("change", () => loadImages(true).catch((err) => showError(err)));
byId("admin-filters").addEventListener("submit", (event) => event.preventDefault());
byId("page-next").addEventListener("click", () => {
  if (!nextCursor) return;
  cursors.push(nextCursor);
  loadImages().catch((err) => showError(err));
});
byId("page-prev").addEventListener("click", () => {
  if (cursors.length < 2) return;
  cursors.pop();
  loadImages().catch((err) => showError(err));
});
byId("admin-purge").addEventListener("click", purge);

translatePage();
new PageControls();
if (token) signIn(token);
else signOut();
