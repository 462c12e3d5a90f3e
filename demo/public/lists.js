// The demo page's tables: the live event feed, the user's live tokens, and their
// sessions shown as devices. Rendering only; app.js owns the state.
import { $, cell, clock } from './ui.js';

const MAX_ROWS = 200;

/** Prepends a lifecycle event (token or session event) to the feed. */
export function addEventRow(event, session) {
  const row = document.createElement('tr');
  row.className = event.type;
  row.dataset.jti = event.jti;
  row.dataset.type = event.type;
  const claims = event.claims ?? {};
  const sid = event.sid ?? claims.sid;
  if (sid) row.dataset.sid = sid;
  if (session && ((event.jti && event.jti === session.jti) || (sid && sid === session.sid))) row.classList.add('mine');
  const summary = [sid && `sid=${sid}`, claims.scope && `scope=${claims.scope}`, claims.client_id && `client_id=${claims.client_id}`].filter(Boolean).join(' ');
  const cells = [clock(event.at), event.type, event.reason ?? '', event.sub, event.jti, summary];
  ['time', 'type', 'reason', 'sub', 'jti', 'claims'].forEach((name, i) => row.append(cell(cells[i], name)));
  const feed = $('events');
  feed.prepend(row);
  while (feed.rows.length > MAX_ROWS) feed.lastElementChild.remove();
}

/** The user's live tokens, each with a countdown and a revoke button (`onRevoke(token, row)`). */
export function renderTokens(tokens, { session, ended, onRevoke }) {
  const body = $('tokens');
  body.replaceChildren();
  for (const t of tokens) {
    const mine = session && t.jti === session.jti;
    const row = document.createElement('tr');
    row.dataset.jti = t.jti;
    if (mine) row.classList.add('mine');
    const left = cell('', 'countdown');
    left.dataset.expiresAt = String(t.expiresAt);
    const action = document.createElement('td');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'revoke';
    button.textContent = 'revoke';
    button.addEventListener('click', () => {
      button.disabled = true;
      onRevoke(t, row);
    });
    action.append(button);
    row.append(cell(t.jti + (mine ? ' (this tab)' : ''), 'jti'), left, action);
    body.append(row);
  }
  $('tokens-empty').hidden = tokens.length > 0;
  $('tokens-empty').textContent = !session
    ? 'Sign in to see your tokens.'
    : ended ? 'This tab\'s session is over: sign in again to see your tokens.' : 'No live tokens.';
  tickCountdowns();
}

export function tickCountdowns() {
  for (const td of document.querySelectorAll('#tokens td.countdown')) {
    const left = Number(td.dataset.expiresAt) - Date.now();
    td.textContent = left > 0 ? `${Math.ceil(left / 1000)} s` : 'expired';
    td.classList.toggle('dead', left <= 0);
  }
}

/** A user agent short enough for a table cell (the whole of it is in the title). */
function shortAgent(agent) {
  if (!agent) return '';
  const browser = /(Firefox|Edg|OPR|HeadlessChrome|Chromium|Chrome|Safari)\/[\d.]+/.exec(agent);
  return browser ? browser[0] : agent.slice(0, 40);
}

/** The user's sessions (GET /sessions) as devices; `current` is this tab's. */
export function renderDevices(devices, { session, ended }) {
  const body = $('devices');
  body.replaceChildren();
  for (const d of devices) {
    const row = document.createElement('tr');
    row.dataset.sid = d.sid;
    if (d.current) row.classList.add('mine');
    const device = d.device ?? {};
    const name = cell(`${device.label ?? 'unnamed device'}${d.current ? ' (this device)' : ''}`, 'device');
    const detail = document.createElement('small');
    detail.textContent = [shortAgent(device.userAgent), device.ip].filter(Boolean).join(' · ');
    detail.title = device.userAgent ?? '';
    name.append(document.createElement('br'), detail);
    row.append(name, cell(clock(d.createdAt), 'time'), cell(clock(d.lastUsed), 'time'), cell(String(d.generation), 'generation'));
    body.append(row);
  }
  $('devices-empty').hidden = devices.length > 0;
  $('devices-empty').textContent = !session
    ? 'Sign in to see your devices.'
    : ended ? 'This tab\'s session is over.' : session.sid ? 'No live sessions.' : 'This tab\'s token belongs to no session.';
}
