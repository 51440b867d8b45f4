// The page's state lives in the URL query: view plus the API's filter parameters.

export const FILTERS = ["q", "aspect_ratio", "tag", "workflow_id", "model", "lora", "sampler", "from_date", "to_date", "favorite"];
/** The filters typed as text in the form (with suggestions from the facets endpoint). */
export const TEXT_FILTERS = ["tag", "workflow_id", "model", "lora", "sampler"];
export const VIEWS = ["gallery", "trash", "inputs"];
export const LIBRARIES = ["inputs", "controls"];

/** The state in a query string (unknown or malformed values are dropped). */
export function parseState(search) {
  const params = new URLSearchParams(search);
  const view = params.get("view");
  const state = {
    view: VIEWS.includes(view) ? view : "gallery",
    lib: LIBRARIES.includes(params.get("lib")) ? params.get("lib") : "inputs",
    deleted: params.get("deleted") === "1",
  };
  for (const key of FILTERS) state[key] = (params.get(key) || "").trim();
  if (!/^\d{4}-\d{2}-\d{2}$/.test(state.from_date)) state.from_date = "";
  if (!/^\d{4}-\d{2}-\d{2}$/.test(state.to_date)) state.to_date = "";
  state.favorite = state.favorite === "1" ? "1" : "";
  return state;
}

/** The query string of a state (empty values left out; "?" alone becomes the bare path). */
export function stateSearch(state) {
  const params = new URLSearchParams();
  if (state.view !== "gallery") params.set("view", state.view);
  if (state.view === "inputs" && state.lib !== "inputs") params.set("lib", state.lib);
  if (state.view === "inputs" && state.deleted) params.set("deleted", "1");
  if (state.view !== "inputs") {
    for (const key of FILTERS) if (state[key]) params.set(key, state[key]);
  }
  const text = params.toString();
  return text ? `?${text}` : location.pathname;
}

/** The API parameters of a state. */
export function apiParams(state) {
  if (state.view === "inputs") return { include: state.deleted ? "trash" : "active" };
  const params = { include: state.view === "trash" ? "trash" : "active" };
  for (const key of FILTERS) if (state[key]) params[key] = state[key];
  return params;
}

/** True when any filter narrows the listing. */
export function filtered(state) {
  return state.view !== "inputs" && FILTERS.some((key) => state[key]);
}
