// The demo page: plain browser JavaScript, no build step. Every value from the
// server is put in the page with textContent, never as HTML.
const $ = (id) => document.getElementById(id);

let session = null; // { token, jti, sub, expiresAt }
let countdownTimer = null;

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
  show(`${res.status} ${res.statusText}${challenge ? `\nWWW-Authenticate: ${challenge}` : ''}`, data);
  return { res, data };
}

function setSession(next) {
  session = next;
  clearInterval(countdownTimer);
  for (const id of ['me', 'tokens', 'logout', 'logout-all']) $(id).disabled = !session;
  $('token-box').hidden = !session;
  if (!session) return;
  $('token-sub').textContent = session.sub;
  $('token-jti').textContent = session.jti;
  $('token').value = session.token;
  tick();
  countdownTimer = setInterval(tick, 250);
}

function tick() {
  const left = session.expiresAt - Date.now();
  const el = $('countdown');
  el.classList.toggle('dead', left <= 0);
  el.textContent = left > 0 ? `expires in ${Math.ceil(left / 1000)} s` : 'expired';
  if (left <= 0) clearInterval(countdownTimer);
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
  setSession(res.status === 201 ? data : saved);
});

$('me').addEventListener('click', () => call('GET', '/me'));
$('tokens').addEventListener('click', () => call('GET', '/tokens'));
$('logout').addEventListener('click', async () => {
  const { res } = await call('POST', '/logout');
  if (res.ok) setSession(null);
});
$('logout-all').addEventListener('click', async () => {
  const { res } = await call('POST', '/logout-all');
  if (res.ok) setSession(null);
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
    if (session && event.jti === session.jti) row.classList.add('mine');
    const cells = [new Date(event.at).toLocaleTimeString(), event.type, event.reason ?? '', event.sub, event.jti];
    cells.forEach((text, i) => {
      const td = document.createElement('td');
      td.textContent = text;
      td.className = ['time', 'type', 'reason', 'sub', 'jti'][i];
      row.append(td);
    });
    $('events').prepend(row);
    while ($('events').rows.length > MAX_ROWS) $('events').lastElementChild.remove();
    if (session && event.jti === session.jti && event.type === 'revoked') {
      clearInterval(countdownTimer);
      $('countdown').classList.add('dead');
      $('countdown').textContent = `revoked (${event.reason})`;
    }
  });
}
