// The REST client: every request carries the token of the token field (kept in
// sessionStorage, so it lasts as long as the tab) as `Authorization: Bearer`. Errors become
// ApiError with the problem+json `detail` the server wrote.

const TOKEN_KEY = 'gpulut.token';
const ROLE_KEY = 'gpulut.role';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  sessionStorage.removeItem(ROLE_KEY);
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, detail, code) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

export async function api(path, { method = 'GET', body, text = false } = {}) {
  const headers = { Accept: text ? '*/*' : 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, { method, headers, body: payload, cache: 'no-cache' });
  } catch (e) {
    throw new ApiError(0, `the server did not answer (${e.message})`, 'network');
  }
  if (!r.ok) {
    let detail = `${r.status} ${r.statusText}`;
    let code = 'http';
    if ((r.headers.get('content-type') || '').includes('json')) {
      try {
        const p = await r.json();
        if (p.detail) detail = p.detail;
        if (p.code) code = p.code;
      } catch {
        // keep the status line
      }
    }
    throw new ApiError(r.status, detail, code);
  }
  if (r.status === 204) return null;
  return text ? r.text() : r.json();
}

// The caller's role (`admin`, `user` or `agent`) as `GET /v1/whoami` tells it: asked once per
// token, remembered for the tab.
export async function role() {
  const known = sessionStorage.getItem(ROLE_KEY);
  if (known) return known;
  const me = await api('/v1/whoami');
  sessionStorage.setItem(ROLE_KEY, me.role);
  return me.role;
}

// Whether the token is an admin's: decides which controls the pages offer.
export async function isAdmin() {
  return (await role()) === 'admin';
}

export const enc = encodeURIComponent;
