// The JSON API client: same-origin fetch with the CSRF marker header.

import { connection } from "./connection.js";
import { t } from "./i18n.js";

export const API = "/api/v1";

/** An API failure: the server's {error: {code, message}} or a network error. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorOf(resp) {
  try {
    const body = await resp.json();
    if (body && body.error) return new ApiError(resp.status, body.error.code, body.error.message);
  } catch {
    // not JSON: fall through to the status line
  }
  return new ApiError(resp.status, "http_error", `${resp.status} ${resp.statusText}`);
}

/** Whether an answer came from something in front of the application (a proxy's 502/503/504 page), not from it. */
function unreachable(resp) {
  const json = (resp.headers.get("content-type") || "").includes("json");
  return [502, 503, 504].includes(resp.status) && !json;
}

/** Call the API; resolves to the parsed JSON (or null for 204), rejects with ApiError. */
export async function api(path, { method = "GET", body, token, signal } = {}) {
  const headers = { "X-Requested-With": "XMLHttpRequest", Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    connection.lost();
    throw new ApiError(0, "network_error", t("The server could not be reached"));
  }
  if (unreachable(resp)) {
    connection.lost();
    throw new ApiError(resp.status, "network_error", t("The server could not be reached"));
  }
  connection.reached();
  if (!resp.ok) throw await errorOf(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

/** A query string from an object, leaving out empty values. */
export function qs(params) {
  const out = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined && value !== false) out.set(key, String(value));
  }
  const text = out.toString();
  return text ? `?${text}` : "";
}

/**
 * Upload one file as multipart "file" with XMLHttpRequest (fetch has no upload
 * progress); onProgress gets a fraction 0..1.
 */
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", API + path);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(body);
      } else if (body && body.error) {
        reject(new ApiError(xhr.status, body.error.code, body.error.message));
      } else {
        reject(new ApiError(xhr.status, "http_error", t("upload failed ({status})", { status: xhr.status })));
      }
    });
    xhr.addEventListener("error", () => {
      connection.lost();
      reject(new ApiError(0, "network_error", t("The upload was interrupted")));
    });
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}
