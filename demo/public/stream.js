// The page's EventSource on GET /events: a user's token and session events, then `end`
// when this tab's session (or, for a token of no session, that token) is over.
const EVENT_TYPES = ['issued', 'expired', 'revoked', 'session_started', 'refreshed', 'session_ended', 'reuse_detected'];

/**
 * Opens `/events?ticket=…` and calls `on.open()`, `on.event(event)`, `on.end(reason,
 * detail)`, `on.error()`, as long as `on.current(source)` says this stream is still the
 * tab's. A ticket opens one stream only: on an error the source is closed, never retried.
 */
export function openEvents(ticket, on) {
  const source = new EventSource(`/events?ticket=${encodeURIComponent(ticket)}`);
  const listen = (type, handler) => source.addEventListener(type, (message) => {
    if (on.current(source)) handler(message);
  });
  listen('session', () => on.open());
  for (const type of EVENT_TYPES) listen(type, (message) => on.event(JSON.parse(message.data)));
  listen('end', (message) => {
    const { reason, detail } = JSON.parse(message.data);
    on.end(reason, detail);
  });
  listen('error', () => {
    source.close();
    on.error();
  });
  return source;
}
