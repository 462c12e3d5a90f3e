// The demo page: plain browser JavaScript modules, no build step. This tab signs in (a
// session: an access token and a refresh token), refreshes the access token at
// /oauth/token before it expires, lists the user's tokens and devices, and follows the
// user's events live; the stream ends when this tab's session ends.
import { $, claimsOf, request, setBadge } from './ui.js';
import { addEventRow, renderDevices, renderTokens, tickCountdowns } from './lists.js';
import { openEvents } from './stream.js';
import { simulateTheft, theftNote } from './theft.js';

const STORAGE_KEY = 'rtl-demo-session';
const RECONNECT_MS = 2000;
/** After a refused refresh, how long the stream gets to say why the session ended. */
const END_FALLBACK_MS = 1500;
const SESSION_END_TEXT = {
  logout: 'logged out', reuse: 'refresh token reused', invalid: 'refresh token refused', revoked: 'revoked', idle: 'idle timeout', absolute: 'lifetime over', limit: 'too many sessions',
};
const TOKEN_END_TEXT = { revoked: 'revoked', expired: 'expired', invalid: 'token not valid' };
const endText = (reason) => (session?.sid ? SESSION_END_TEXT : TOKEN_END_TEXT)[reason] ?? reason;

// This tab's session: { token, jti, sub, expiresAt, sid?, refreshToken?, clientId?, oldRefreshToken? }
let session = null;
let ended = null; // why this tab's session (or token) is over; null while it lives
let revokedHere = false; // this tab revoked its own token (no session to refresh it); the stream's `end` is on its way
let tokens = [];
let devices = [];
let stream = null; // EventSource on /events
let refreshing = null; // the refresh under way (one at a time)
const timers = { tick: null, reconnect: null, refresh: null, reload: null, end: null };
// Tabs holding the same session (a duplicated tab) share each rotation: a stale copy of
// the refresh token would otherwise come back later and look like theft.
const channel = 'BroadcastChannel' in window ? new BroadcastChannel('rtl-demo-rotations') : null;

/** A request with this tab's access token. On a 401, a session gets a new one with its refresh token and tries once more. */
async function call(method, path, json, retried = false) {
  const sent = session && !ended ? session : null;
  const answer = await request(method, path, { token: sent?.token, json });
  if (answer.res.status === 401 && sent && same(sent) && !ended) {
    if (session !== sent) return retried ? answer : call(method, path, json, true); // rotated meanwhile: the new token
    if (!sent.refreshToken) endSession('invalid');
    else if (!retried && await refreshSession()) return call(method, path, json, true);
  }
  return answer;
}

/** Still the session `owner` was (a rotation keeps it; a new sign-in does not). */
const same = (owner) => session !== null && (owner.sid ? session.sid === owner.sid : session === owner);

function save() {
  if (session) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(STORAGE_KEY);
}

// ---- this tab's session -----------------------------------------------------

function setSession(next) {
  if (next && session && next.sub !== session.sub) $('events').replaceChildren();
  stopTimers();
  session = next;
  ended = null;
  revokedHere = false;
  save();
  $('token-box').hidden = !session;
  theftNote('');
  setButtons();
  tokens = [];
  devices = [];
  renderLists();
  if (!session) {
    setBadge('stream-state', 'none', 'sign in');
    setBadge('session-state', 'none', 'none');
    return;
  }
  $('token-sub').textContent = session.sub;
  $('token-sid').textContent = session.sid ?? '—';
  showToken();
  timers.tick = setInterval(tick, 250);
  scheduleRefresh();
  openStream();
  loadLists();
}

/** A rotation (ours or another tab's): the same session, a new access token and refresh token. */
function adopt(next) {
  session = next;
  save();
  showToken();
  scheduleRefresh();
  scheduleReload();
}

function showToken() {
  $('token-jti').textContent = session.jti;
  $('token').value = session.token;
  tick();
}

/** This tab's session (or token) is over: say why, and stop everything that would keep using it. */
function endSession(reason) {
  if (!session || ended) return;
  ended = reason;
  stopTimers();
  tokens = [];
  devices = [];
  renderLists();
  setButtons();
  setBadge('session-state', 'closed', `session closed: ${endText(reason)}`, reason);
  setBadge('stream-state', 'closed', 'closed');
  tick();
}

/** A refresh was refused: the session is over. Give the stream a moment to say why (reuse, logout…). */
function sessionOver(reason) {
  if (ended || timers.end) return;
  setButtons(true);
  timers.end = setTimeout(() => {
    timers.end = null;
    endSession(reason);
  }, stream ? END_FALLBACK_MS : 0);
}

function stopTimers() {
  clearInterval(timers.tick);
  for (const name of ['reconnect', 'refresh', 'reload', 'end']) clearTimeout(timers[name]);
  Object.keys(timers).forEach((name) => { timers[name] = null; });
  stream?.close();
  stream = null;
}

function setButtons(dying = false) {
  const live = Boolean(session) && ended === null && !dying;
  for (const id of ['reload-tokens', 'revoke-all', 'call-me', 'logout']) $(id).disabled = !live;
  for (const id of ['refresh-now', 'simulate-theft']) $(id).disabled = !live || !session.refreshToken;
  $('logout-others').disabled = !live || !session.sid;
}

function tick() {
  tickCountdowns();
  if (!session) return;
  const left = session.expiresAt - Date.now();
  let text;
  if (ended && session.sid) text = `this tab's session has ended: ${endText(ended)}`;
  else if (ended === 'revoked' || revokedHere) text = "this tab's token was revoked";
  else if (ended === 'expired' || (left <= 0 && !session.refreshToken)) text = "this tab's token has expired";
  else if (ended !== null) text = "this tab's token is no longer valid (revoked or expired)";
  else if (left <= 0) text = "this tab's access token has expired: refreshing…";
  const refreshed = session.refreshToken ? ' (refreshed at /oauth/token before then)' : '';
  $('countdown').textContent = text ?? `this tab's access token expires in ${Math.ceil(left / 1000)} s${refreshed}`;
  $('countdown').classList.toggle('dead', text !== undefined);
}

// ---- refresh (RFC 6749 §6) --------------------------------------------------------

/** Refreshes shortly before the access token expires: a quarter of its lifetime ahead, 0.5 to 10 s. */
function scheduleRefresh() {
  clearTimeout(timers.refresh);
  timers.refresh = null;
  if (!session?.refreshToken || ended) return;
  const { exp, iat } = claimsOf(session.token);
  const lead = Math.min(10_000, Math.max(500, ((exp - iat) * 1000 || 0) / 4));
  refreshIn(session.expiresAt - lead - Date.now());
}

function refreshIn(ms) {
  clearTimeout(timers.refresh);
  timers.refresh = setTimeout(() => { timers.refresh = null; refreshSession(); }, Math.max(0, ms));
}

/** POST /oauth/token with this tab's refresh token; resolves true when this tab has a fresh pair. */
function refreshSession() {
  refreshing ??= rotate().finally(() => { refreshing = null; });
  return refreshing;
}

async function rotate() {
  const owner = session;
  if (!owner?.refreshToken || ended) return false;
  const form = { grant_type: 'refresh_token', refresh_token: owner.refreshToken, client_id: owner.clientId };
  const { res, data } = await request('POST', '/oauth/token', { form });
  if (!same(owner) || ended) return false;
  if (res.ok) {
    if (session.refreshToken !== owner.refreshToken) return true; // another tab's rotation came first
    const claims = claimsOf(data.access_token);
    const next = { ...owner, token: data.access_token, jti: claims.jti, expiresAt: claims.exp * 1000, refreshToken: data.refresh_token, oldRefreshToken: owner.refreshToken };
    adopt(next);
    channel?.postMessage({ type: 'rotated', session: next });
    return true;
  }
  if (res.status === 400) sessionOver('invalid'); // invalid_grant: the session is over
  else refreshIn(RECONNECT_MS); // Redis down, or the network: try again soon
  return false;
}

channel?.addEventListener('message', ({ data }) => {
  if (data?.type !== 'rotated' || !session || ended || data.session?.sid !== session.sid) return;
  if (data.session.refreshToken !== session.refreshToken) adopt({ ...data.session });
});

// ---- the event stream ---------------------------------------------------------

/**
 * GET /events with a one-time ticket bought with the access token (EventSource cannot
 * send an Authorization header, and a token in a URL would end up in logs). The server
 * sends this user's events and ends the stream with `end` when this tab's session ends
 * (or, for a token of no session, when that token dies).
 */
async function openStream() {
  const owner = session;
  setBadge('session-state', 'connecting', 'connecting…');
  setBadge('stream-state', 'connecting', 'connecting…');
  const { res, data } = await call('POST', '/session/ticket');
  if (!same(owner) || ended) return;
  if (!res.ok) {
    reconnectLater(owner);
    return;
  }
  stream = openEvents(data.ticket, {
    current: (source) => stream === source,
    open() {
      setBadge('session-state', 'open', 'session open');
      setBadge('stream-state', 'open', 'live');
    },
    event: onLifecycleEvent,
    end: (reason, detail) => endSession(reason === 'session_ended' ? detail : reason),
    error() {
      stream = null;
      reconnectLater(owner);
    },
  });
}

function reconnectLater(owner) {
  if (!same(owner) || ended) return;
  setBadge('stream-state', 'down', 'reconnecting…');
  clearTimeout(timers.reconnect);
  timers.reconnect = setTimeout(() => {
    timers.reconnect = null;
    if (same(owner) && !ended) openStream();
  }, RECONNECT_MS);
}

function onLifecycleEvent(event) {
  addEventRow(event, session);
  if (!session || ended) return;
  const sid = event.sid ?? event.claims?.sid;
  // This tab's own end is on its way (`end` follows): nothing to reload.
  if (session.sid ? sid === session.sid && (event.reason === 'session' || event.type === 'reuse_detected' || event.type === 'session_ended')
    : event.jti === session.jti && event.type !== 'issued') return;
  // This tab's access token died, not its session: get a new one.
  if (event.jti === session.jti && (event.type === 'expired' || event.type === 'revoked') && session.refreshToken) refreshSession();
  scheduleReload();
}

// ---- the lists ------------------------------------------------------------------

/** Many events come together (a rotation, a session's end): reload the lists once after them. */
function scheduleReload() {
  if (!session || ended || timers.reload) return;
  timers.reload = setTimeout(() => { timers.reload = null; loadLists(); }, 150);
}

function loadLists() {
  return Promise.all([loadTokens(), loadDevices()]);
}

async function loadTokens() {
  if (!session || ended) return;
  const { res, data } = await call('GET', '/tokens');
  if (ended) return;
  tokens = res.ok ? data.tokens : [];
  renderLists();
}

async function loadDevices() {
  if (!session?.sid || ended) return;
  const { res, data } = await call('GET', '/sessions');
  if (ended) return;
  devices = res.ok ? data.sessions : [];
  renderLists();
}

function renderLists() {
  renderTokens(tokens, { session, ended, onRevoke: revokeToken });
  renderDevices(devices, { session, ended });
  tick();
}

async function revokeToken(token, row) {
  const mine = token.jti === session?.jti;
  const { res } = await call('POST', `/tokens/${encodeURIComponent(token.jti)}/revoke`);
  if (mine && res.ok && !session.refreshToken) {
    // Dead now, whatever the stream says later: never show its countdown again.
    row.remove();
    revokedHere = true;
    tick();
    return;
  }
  if (mine && res.ok) await refreshSession(); // the session lives on: a new access token
  loadTokens();
}

// ---- the buttons ----------------------------------------------------------------

$('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { username: String(form.get('username')).trim() };
  const ttl = String(form.get('ttl') ?? '').trim();
  if (ttl !== '') body.ttl = Number(ttl);
  const label = String(form.get('label') ?? '').trim();
  if (label !== '') body.label = label;
  const { res, data } = await request('POST', '/login', { json: body });
  if (res.status !== 201) return;
  const { token, jti, sub, expiresAt, sid, refresh_token: refreshToken } = data;
  setSession({ token, jti, sub, expiresAt, sid, refreshToken, clientId: claimsOf(token).client_id });
});

$('reload-tokens').addEventListener('click', () => loadLists());
$('revoke-all').addEventListener('click', async () => {
  await call('POST', '/logout-all');
  loadLists();
});
$('call-me').addEventListener('click', () => call('GET', '/me'));
$('refresh-now').addEventListener('click', () => refreshSession());
$('logout').addEventListener('click', async () => {
  const { res } = await call('POST', '/logout');
  if (res.ok) sessionOver(session?.sid ? 'logout' : 'revoked');
});
$('logout-others').addEventListener('click', async () => {
  await call('POST', '/sessions/logout-others');
  loadLists();
});
$('simulate-theft').addEventListener('click', () => {
  if (!session?.refreshToken || ended) return;
  $('simulate-theft').disabled = true;
  simulateTheft({ session: () => session, same, refresh: refreshSession });
});

// ---- start: restore this tab's session ----------------------------------------

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
