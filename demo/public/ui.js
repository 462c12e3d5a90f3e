// Small helpers of the demo page: elements, the "last response" box, and requests.
// Every value from the server is put in the page with textContent, never as HTML.
export const $ = (id) => document.getElementById(id);

export function show(status, body) {
  $('response').textContent = `${status}\n${typeof body === 'string' ? body : JSON.stringify(body, null, 2)}`;
}

/** Sets a state badge: `data-state` (and `data-reason`, for a closed session), its colour and text. */
export function setBadge(id, state, text, reason) {
  const el = $(id);
  el.dataset.state = state;
  if (reason) el.dataset.reason = reason;
  else delete el.dataset.reason;
  el.className = `state ${state === 'open' ? 'open' : state === 'closed' || state === 'down' ? 'down' : ''}`;
  el.textContent = text;
}

export function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

export const clock = (ms) => new Date(ms).toLocaleTimeString();

export const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One request, shown in "Last response". `token`: sent as `Authorization: Bearer`;
 * `json`: a JSON body; `form`: an `application/x-www-form-urlencoded` one (the OAuth endpoints).
 */
export async function request(method, path, { token, json, form } = {}) {
  const headers = {};
  let body;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(Object.entries(form).filter(([, v]) => v !== undefined)).toString();
  }
  const res = await fetch(path, { method, headers, body });
  const text = await res.text();
  let data = text;
  try { data = JSON.parse(text); } catch { /* not JSON */ }
  const challenge = res.headers.get('WWW-Authenticate');
  show(`${method} ${path} → ${res.status} ${res.statusText}${challenge ? `\nWWW-Authenticate: ${challenge}` : ''}`, data);
  return { res, data };
}

/** The payload of a JWT, read (not verified: the server does that) to learn its jti, exp and sid. */
export function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}
