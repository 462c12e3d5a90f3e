// "Simulate theft": someone copied this tab's refresh token, and this tab has since
// refreshed. The copy is replayed at /oauth/token: within the grace window the server
// takes it for a client's retry (the same pair again); after it, the replay is reuse,
// and the server ends the session: every tab holding it sees `reuse_detected` live.
import { $, delay, request } from './ui.js';

const RETRY_MS = 400;
/** Enough for the longest grace window the store allows (10 s). */
const TRIES = 40;

export function theftNote(text, state) {
  $('theft').textContent = text;
  if (state) $('theft').dataset.state = state;
  else delete $('theft').dataset.state;
}

/**
 * @param tab what the page knows: `session()` (this tab's session now), `same(owner)`
 *   (still that session), `refresh()` (rotate its refresh token; resolves true when done).
 */
export async function simulateTheft(tab) {
  const owner = tab.session();
  let stolen = owner.oldRefreshToken;
  if (!stolen) {
    theftNote('The thief copies this tab\'s refresh token; this tab then refreshes (rotation)…', 'rotating');
    stolen = owner.refreshToken;
    if (!(await tab.refresh())) return;
  }
  theftNote('The thief replays the old refresh token at /oauth/token…', 'replaying');
  let answer;
  for (let i = 0; i < TRIES && tab.same(owner); i++) {
    answer = await request('POST', '/oauth/token', { form: { grant_type: 'refresh_token', refresh_token: stolen, client_id: owner.clientId } });
    if (!answer.res.ok) break;
    theftNote('Still within the grace window: the server answers the replay as a retry (the same pair). Trying again…', 'replaying');
    await delay(RETRY_MS);
  }
  if (answer?.res.status !== 400) {
    theftNote(`The replay was not refused as reuse (${answer ? answer.res.status : 'not sent'}).`, 'failed');
    return;
  }
  // The protected call with the last access token this tab had: refused now.
  const probe = await request('GET', '/me', { token: tab.same(owner) ? tab.session().token : owner.token });
  theftNote(`Replay refused: ${answer.res.status} ${answer.data.error ?? ''}. The server ended the session (reuse_detected); `
    + `GET /me with this tab's access token → ${probe.res.status}.`, 'done');
}
