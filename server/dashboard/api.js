// The REST client: every request carries the token of the token field (kept in
// sessionStorage, so it lasts as long as the tab) as `Authorization: Bearer`. Errors become
// ApiError with the problem+json `detail` the server wrote.

const TOKEN_KEY = 'gpulut.token';
const ROLE_KEY = 'gpulut.admin';

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

// Whether the token is an admin's: asked once per token (the admin-only list of enrollment
// tokens answers 200), remembered for the tab.
export async function isAdmin() {
  const known = sessionStorage.getItem(ROLE_KEY);
  if (known !== null) return known === '1';
  let admin = false;
  try {
    await api('/v1/enrollment-tokens');
    admin = true;
  } catch (e) {
    if (e.status !== 403) throw e;
  }
  sessionStorage.setItem(ROLE_KEY, admin ? '1' : '0');
  return admin;
}

export const enc = encodeURIComponent;
