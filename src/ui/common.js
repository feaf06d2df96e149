// Shared by the pages under /ui: the API key (asked for once, kept for the tab's session), calls
// to the JSON API with it, and a Server-Sent Events reader that can send it. Plain ES module, no
// build step, no third-party code.

const KEY_ITEM = 'market-order-saga.api-key';

/** The key typed into the prompt, for this tab's session; null when none was given. */
export function currentKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

/** An answer other than 2xx, with the problem document (RFC 9457) when the API sent one. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function withKey(init = {}) {
  const headers = new Headers(init.headers);
  const key = currentKey();
  if (key) headers.set('Authorization', `Bearer ${key}`);
  return { ...init, headers };
}

/**
 * Calls the API with the key and returns the parsed JSON body; throws ApiError for any answer
 * that is not 2xx (its problem document attached).
 */
export async function api(path, init = {}) {
  const response = await fetch(path, withKey(init));
  const type = response.headers.get('content-type') ?? '';
  const body = type.includes('json') ? await response.json() : undefined;
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/**
 * Who the key is ({ authenticated, user_id, admin, keys_required }); null when keys are configured
 * and no valid key is held (the page then asks for one). /whoami answers that without a 401.
 */
export async function whoami() {
  const who = await api('/whoami');
  return who.authenticated ? who : null;
}

/**
 * Shows the key prompt in `container` and resolves once a key that the API accepts was entered.
 * `reason` says why it is asked for (none held, or the one held was refused).
 */
export function askForKey(container, reason) {
  return new Promise((resolve) => {
    const form = document.createElement('form');
    form.className = 'key-prompt';
    form.innerHTML = `
      <h2>API key</h2>
      <p class="reason"></p>
      <label for="api-key">Key</label>
      <input id="api-key" name="key" type="password" autocomplete="off" required
             aria-describedby="api-key-error" />
      <span class="field-error" id="api-key-error" role="alert"></span>
      <button type="submit">Use this key</button>
      <p class="hint">Kept for this tab only (sessionStorage). An operator creates keys with
        <code>market-order-saga keys create</code>.</p>`;
    form.querySelector('.reason').textContent = reason;
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = form.querySelector('#api-key');
      setKey(input.value.trim());
      const who = await whoami().catch(() => null);
      if (!who) {
        setKey(null);
        form.querySelector('#api-key-error').textContent = 'The API does not accept this key';
        input.focus();
        return;
      }
      form.remove();
      resolve(who);
    });
    container.replaceChildren(form);
    form.querySelector('#api-key').focus();
  });
}

/**
 * Reads a Server-Sent Events stream with fetch() (so the Authorization header is sent, which
 * EventSource cannot do) and reconnects after a dropped connection, sending Last-Event-ID so the
 * server sends what was missed. `onMessage(event, data)` gets each message; `onState(state)` gets
 * 'open', 'reconnecting' or 'closed'. Returns { close() }.
 */
export function openStream(path, { onMessage, onState = () => {}, retryMs = 1000 }) {
  let lastEventId;
  let closed = false;
  let controller;

  async function readOnce() {
    controller = new AbortController();
    const init = withKey({ signal: controller.signal, headers: { Accept: 'text/event-stream' } });
    if (lastEventId !== undefined) init.headers.set('Last-Event-ID', lastEventId);
    const response = await fetch(path, init);
    if (!response.ok || !response.body) {
      const type = response.headers.get('content-type') ?? '';
      throw new ApiError(response.status, type.includes('json') ? await response.json() : undefined);
    }
    onState('open');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer[end] === '\r' ? 4 : 2));
        let event = 'message';
        const data = [];
        let id;
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith(':')) continue; // a comment: keep-alive
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = text;
          else if (field === 'data') data.push(text);
          else if (field === 'id') id = text;
        }
        if (id !== undefined) lastEventId = id;
        if (data.length > 0) onMessage(event, JSON.parse(data.join('\n')));
      }
    }
  }

  (async () => {
    let wait = retryMs;
    while (!closed) {
      try {
        await readOnce();
        wait = retryMs;
      } catch (error) {
        if (closed) break;
        // A refused key will not be accepted on retry: say so and stop.
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          onState('closed', error);
          return;
        }
      }
      if (closed) break;
      onState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 10_000);
    }
    onState('closed');
  })();

  return {
    close() {
      closed = true;
      controller?.abort();
    },
  };
}

/** Text content helper: an element of `tag` with `className` and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

/** "3 s", "4 min", "2 h", "5 d": how long ago `iso` was, from `now` (ms). */
export function age(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} d`;
}
