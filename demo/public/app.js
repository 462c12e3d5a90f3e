// The demo page: plain browser JavaScript, no build step. Every value from the
// server is put in the page with textContent, never as HTML.
const $ = (id) => document.getElementById(id);
const STORAGE_KEY = 'rtl-demo-session';
const RECONNECT_MS = 2000;
const MAX_ROWS = 200;

let session = null; // { token, jti, sub, expiresAt }: this tab's user
let ended = null; // why this tab's token is dead: 'revoked' | 'expired' | 'invalid'; null while it lives
let revokedHere = false; // this tab revoked its own token; the stream's `end` is on its way
let tokens = []; // GET /tokens: the user's live tokens
let stream = null; // EventSource on /events
let tickTimer = null;
let reconnectTimer = null;

function show(status, body) {
  $('response').textContent = `${status}\n${typeof body === 'string' ? body : JSON.stringify(body, null, 2)}`;
}

/** A request with this tab's token; a 401 for it means the token is dead, and the page stops. */
async function call(method, path, body) {
  const sent = session && !ended ? session : null;
  const headers = {};
  if (sent) headers.Authorization = `Bearer ${sent.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = text;
  try { data = JSON.parse(text); } catch { /* not JSON */ }
  const challenge = res.headers.get('WWW-Authenticate');
  show(`${method} ${path} → ${res.status} ${res.statusText}${challenge ? `\nWWW-Authenticate: ${challenge}` : ''}`, data);
  if (res.status === 401 && sent && sent === session) endSession('invalid');
  return { res, data };
}

// ---- this tab's session -----------------------------------------------------

function setSession(next) {
  if (next && session && next.sub !== session.sub) $('events').replaceChildren();
  stopTimers();
  session = next;
  ended = null;
  revokedHere = false;
  if (session) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(STORAGE_KEY);
  $('token-box').hidden = !session;
  setButtons();
  if (!session) {
    tokens = [];
    renderTokens();
    setStreamState('none', 'sign in');
    setSessionState('none', 'none');
    return;
  }
  $('token-sub').textContent = session.sub;
  $('token-jti').textContent = session.jti;
  $('token').value = session.token;
  tickTimer = setInterval(tick, 250);
  openStream();
  refreshTokens();
}

/** This tab's token is dead: say why, and stop everything that would keep using it. */
function endSession(reason) {
  if (!session || ended) return;
  ended = reason;
  stopTimers();
  tokens = [];
  renderTokens();
  setButtons();
  const text = { revoked: 'revoked', expired: 'expired', invalid: 'token not valid' }[reason] ?? reason;
  setSessionState('closed', `session closed: ${text}`);
  setStreamState('closed', 'closed');
  tick();
}

function stopTimers() {
  clearInterval(tickTimer);
  tickTimer = null;
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  stream?.close();
  stream = null;
}

function setButtons() {
  for (const id of ['refresh', 'revoke-all']) $(id).disabled = !session || ended !== null;
}

function setSessionState(state, text) {
  const el = $('session-state');
  el.dataset.state = state;
  el.className = `state ${state === 'open' ? 'open' : state === 'closed' ? 'down' : ''}`;
  el.textContent = text;
}

function setStreamState(state, text) {
  const el = $('stream-state');
  el.dataset.state = state;
  el.className = `state ${state === 'open' ? 'open' : state === 'closed' || state === 'down' ? 'down' : ''}`;
  el.textContent = text;
}

// ---- the event stream ---------------------------------------------------------

/**
 * GET /events with a one-time ticket bought with the token (EventSource cannot send an
 * Authorization header, and a token in a URL would end up in logs). The server sends
 * this user's events and ends the stream with `end` when this tab's token dies: the
 * session-expiry callback made visible.
 */
async function openStream() {
  const owner = session;
  setSessionState('connecting', 'connecting…');
  setStreamState('connecting', 'connecting…');
  const { res, data } = await call('POST', '/session/ticket');
  if (session !== owner || ended) return;
  if (!res.ok) {
    reconnectLater(owner);
    return;
  }
  const source = new EventSource(`/events?ticket=${encodeURIComponent(data.ticket)}`);
  stream = source;
  source.addEventListener('session', () => {
    if (stream !== source) return;
    setSessionState('open', 'session open');
    setStreamState('open', 'live');
  });
  for (const type of ['issued', 'expired', 'revoked']) {
    source.addEventListener(type, (message) => {
      if (stream === source) onLifecycleEvent(JSON.parse(message.data));
    });
  }
  source.addEventListener('end', (message) => {
    if (stream !== source) return;
    endSession(JSON.parse(message.data).reason);
  });
  source.addEventListener('error', () => {
    if (stream !== source) return;
    // A ticket opens one stream only: never let EventSource retry with it.
    source.close();
    stream = null;
    reconnectLater(owner);
  });
}

function reconnectLater(owner) {
  if (session !== owner || ended) return;
  setStreamState('down', 'reconnecting…');
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(() => {
    reconnectTimer = null;
    if (session === owner && !ended) openStream();
  }, RECONNECT_MS);
}

function onLifecycleEvent(event) {
  const row = document.createElement('tr');
  row.className = event.type;
  row.dataset.jti = event.jti;
  row.dataset.type = event.type;
  if (session && event.jti === session.jti) row.classList.add('mine');
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
  // One of this user's tokens changed (maybe from another tab): refresh the list, unless
  // it is this tab's own token dying (`end` follows, and the token can list nothing).
  if (!(event.jti === session?.jti && event.type !== 'issued')) refreshTokens();
}

// ---- the token list -------------------------------------------------------------

async function refreshTokens() {
  if (!session || ended) return;
  const { res, data } = await call('GET', '/tokens');
  if (ended) return;
  tokens = res.ok ? data.tokens : [];
  renderTokens();
}

function renderTokens() {
  const body = $('tokens');
  body.replaceChildren();
  for (const t of tokens) {
    const mine = session && t.jti === session.jti;
    const row = document.createElement('tr');
    row.dataset.jti = t.jti;
    if (mine) row.classList.add('mine');
    const jti = document.createElement('td');
    jti.className = 'jti';
    jti.textContent = t.jti + (mine ? ' (this tab)' : '');
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
      const { res } = await call('POST', `/tokens/${encodeURIComponent(t.jti)}/revoke`);
      if (mine && res.ok) {
        // Dead now, whatever the stream says later: never show its countdown again.
        row.remove();
        revokedHere = true;
        tick();
        return;
      }
      refreshTokens();
    });
    action.append(button);
    row.append(jti, left, action);
    body.append(row);
  }
  $('tokens-empty').hidden = tokens.length > 0;
  $('tokens-empty').textContent = !session
    ? 'Sign in to see your tokens.'
    : ended ? 'This tab\'s token is gone: sign in again to see your tokens.' : 'No live tokens.';
  tick();
}

function tick() {
  for (const cell of document.querySelectorAll('#tokens td.countdown')) {
    const left = Number(cell.dataset.expiresAt) - Date.now();
    cell.textContent = left > 0 ? `${Math.ceil(left / 1000)} s` : 'expired';
    cell.classList.toggle('dead', left <= 0);
  }
  if (!session) return;
  const left = session.expiresAt - Date.now();
  let text;
  if (ended === 'revoked' || revokedHere) text = "this tab's token was revoked";
  else if (ended === 'expired' || left <= 0) text = "this tab's token has expired";
  else if (ended !== null) text = "this tab's token is no longer valid (revoked or expired)";
  $('countdown').textContent = text ?? `this tab's token expires in ${Math.ceil(left / 1000)} s`;
  $('countdown').classList.toggle('dead', text !== undefined);
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { username: String(form.get('username')).trim() };
  const ttl = String(form.get('ttl') ?? '').trim();
  if (ttl !== '') body.ttl = Number(ttl);
  const saved = session;
  session = null; // log in without presenting the old token
  const { res, data } = await call('POST', '/login', body);
  session = saved;
  if (res.status === 201) setSession(data);
});

$('refresh').addEventListener('click', () => refreshTokens());
$('revoke-all').addEventListener('click', async () => {
  await call('POST', '/logout-all');
  refreshTokens();
});

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
