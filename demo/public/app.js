// The demo page: plain browser JavaScript, no build step. Every value from the
// server is put in the page with textContent, never as HTML.
const $ = (id) => document.getElementById(id);
const STORAGE_KEY = 'rtl-demo-session';

let session = null; // { token, jti, sub, expiresAt }: this tab's user
let tokens = []; // GET /tokens: the user's live tokens
let sessionStream = null; // EventSource on /session
let refreshTimer = null;

function show(status, body) {
  $('response').textContent = `${status}\n${typeof body === 'string' ? body : JSON.stringify(body, null, 2)}`;
}

async function call(method, path, body) {
  const headers = {};
  if (session) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = text;
  try { data = JSON.parse(text); } catch { /* not JSON */ }
  const challenge = res.headers.get('WWW-Authenticate');
  show(`${method} ${path} → ${res.status} ${res.statusText}${challenge ? `\nWWW-Authenticate: ${challenge}` : ''}`, data);
  return { res, data };
}

// ---- this tab's session -----------------------------------------------------

function setSession(next) {
  session = next;
  if (session) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(STORAGE_KEY);
  for (const id of ['refresh', 'revoke-all']) $(id).disabled = !session;
  $('token-box').hidden = !session;
  openSessionStream();
  if (!session) {
    tokens = [];
    renderTokens();
    return;
  }
  $('token-sub').textContent = session.sub;
  $('token-jti').textContent = session.jti;
  $('token').value = session.token;
  refreshTokens();
}

function setSessionState(state, text) {
  const el = $('session-state');
  el.dataset.state = state;
  el.className = `state ${state === 'open' ? 'open' : state === 'closed' ? 'down' : ''}`;
  el.textContent = text;
}

/** The session-expiry callback made visible: the server closes this stream when the token dies. */
function openSessionStream() {
  sessionStream?.close();
  sessionStream = null;
  if (!session) {
    setSessionState('none', 'none');
    return;
  }
  setSessionState('connecting', 'connecting…');
  const stream = new EventSource(`/session?token=${encodeURIComponent(session.token)}`);
  sessionStream = stream;
  stream.addEventListener('open', () => { if (sessionStream === stream) setSessionState('open', 'session open'); });
  stream.addEventListener('end', (message) => {
    stream.close(); // the server ended it: do not let EventSource reconnect
    if (sessionStream !== stream) return;
    const { reason } = JSON.parse(message.data);
    setSessionState('closed', `session closed: ${reason}`);
    refreshTokens();
  });
  stream.addEventListener('error', () => {
    if (sessionStream !== stream || stream.readyState !== EventSource.CLOSED) return;
    // Refused (401): the token was already dead when the stream opened.
    setSessionState('closed', 'session closed: token not valid');
  });
}

async function refreshTokens() {
  if (!session) return;
  const { res, data } = await call('GET', '/tokens');
  tokens = res.ok ? data.tokens : [];
  renderTokens();
}

function renderTokens() {
  const body = $('tokens');
  body.replaceChildren();
  for (const t of tokens) {
    const row = document.createElement('tr');
    row.dataset.jti = t.jti;
    if (session && t.jti === session.jti) row.classList.add('mine');
    const jti = document.createElement('td');
    jti.className = 'jti';
    jti.textContent = t.jti + (session && t.jti === session.jti ? ' (this tab)' : '');
    const left = document.createElement('td');
    left.className = 'countdown';
    left.dataset.expiresAt = String(t.expiresAt);
    const action = document.createElement('td');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'revoke';
    button.textContent = 'revoke';
    button.addEventListener('click', async () => {
      button.disabled = true;
      await call('POST', `/tokens/${encodeURIComponent(t.jti)}/revoke`);
      refreshTokens();
    });
    action.append(button);
    row.append(jti, left, action);
    body.append(row);
  }
  $('tokens-empty').hidden = tokens.length > 0;
  $('tokens-empty').textContent = session ? 'No live tokens.' : 'Sign in to see your tokens.';
  tick();
}

function tick() {
  for (const cell of document.querySelectorAll('#tokens td.countdown')) {
    const left = Number(cell.dataset.expiresAt) - Date.now();
    cell.textContent = left > 0 ? `${Math.ceil(left / 1000)} s` : 'expired';
    cell.classList.toggle('dead', left <= 0);
  }
  if (session) {
    const left = session.expiresAt - Date.now();
    $('countdown').classList.toggle('dead', left <= 0);
    $('countdown').textContent = left > 0 ? `this tab's token expires in ${Math.ceil(left / 1000)} s` : "this tab's token has expired";
  }
}
setInterval(tick, 250);

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { username: String(form.get('username')).trim() };
  const ttl = String(form.get('ttl') ?? '').trim();
  if (ttl !== '') body.ttl = Number(ttl);
  const saved = session;
  session = null; // log in without presenting the old token
  const { res, data } = await call('POST', '/login', body);
  if (res.status === 201) setSession(data);
  else session = saved;
});

$('refresh').addEventListener('click', () => refreshTokens());
$('revoke-all').addEventListener('click', async () => {
  await call('POST', '/logout-all');
  refreshTokens();
});

// ---- live feed -------------------------------------------------------------

const MAX_ROWS = 200;
const stream = new EventSource('/events');
const state = $('stream-state');
stream.addEventListener('open', () => { state.textContent = 'live'; state.className = 'state open'; });
stream.addEventListener('error', () => { state.textContent = 'reconnecting…'; state.className = 'state down'; });

for (const type of ['issued', 'expired', 'revoked']) {
  stream.addEventListener(type, (message) => {
    const event = JSON.parse(message.data);
    const row = document.createElement('tr');
    row.className = event.type;
    row.dataset.jti = event.jti;
    row.dataset.type = event.type;
    if (tokens.some((t) => t.jti === event.jti) || (session && event.jti === session.jti)) row.classList.add('mine');
    const claims = event.claims ?? {};
    const summary = [claims.scope && `scope=${claims.scope}`, claims.client_id && `client_id=${claims.client_id}`].filter(Boolean).join(' ');
    const cells = [new Date(event.at).toLocaleTimeString(), event.type, event.reason ?? '', event.sub, event.jti, summary];
    cells.forEach((text, i) => {
      const td = document.createElement('td');
      td.textContent = text;
      td.className = ['time', 'type', 'reason', 'sub', 'jti', 'claims'][i];
      row.append(td);
    });
    $('events').prepend(row);
    while ($('events').rows.length > MAX_ROWS) $('events').lastElementChild.remove();
    // One of this user's tokens changed (maybe from another tab): refresh the list.
    if (session && event.sub === session.sub) refreshTokens();
  });
}

// ---- start: restore this tab's user ------------------------------------------

try {
  const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null');
  if (saved && typeof saved.token === 'string') {
    $('username').value = saved.sub;
    setSession(saved);
  } else {
    setSession(null);
  }
} catch {
  setSession(null);
}
