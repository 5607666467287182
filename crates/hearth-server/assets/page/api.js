// Talking to the server: the page's state, JSON requests with the CSRF token, and event
// streams read from a POST's body.

import { t } from './i18n.js';
import { ownWords } from './server-words.js';

export const S = {
  state: null, // GET /api/state
  csrf: null,
  me: null,
  convs: [], // the list on the left
  query: '',
  conv: null, // the open conversation (GET /api/conversations/{id}), null for a new chat
  view: 'chat', // 'chat' | 'settings'
  es: null, // EventSource of the reply being followed
  following: null, // conversation id the event stream belongs to
  listOpen: false, // the conversation list on narrow screens
  failedDraft: null, // text of a message that could not be sent
};

let lost = () => {};
/** What the page does when the server says the session is gone (the login module sets it). */
export function onSessionLost(fn) { lost = fn; }

class ApiError extends Error {
  constructor(status, message, retryAfter, code) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
    this.code = code || null;
  }
}

/** "about 15 minutes" for a wait in seconds. */
export function aboutWait(secs) {
  const s = parseInt(secs, 10);
  if (!(s > 0)) return t('wait.little');
  return t('wait.minutes', { count: Math.max(1, Math.ceil(s / 60)) });
}

/** What the server said, as a sentence for the family: its own message where it is already
 * written for people, plain words where it is technical (a parser's complaint, a storage
 * failure, a status code). */
function plainError(status, message, retryAfter, code, param) {
  if (status === 429) return t('error.too_many', { wait: aboutWait(retryAfter) });
  const own = ownWords(code, param, message);
  if (own) return own;
  if (status === 413) return t('error.too_long');
  if (status === 503) return t('error.busy');
  if (status >= 500) return t('error.inside');
  if (status === 404 && !message) return t('error.gone');
  if (!message || /[`{}<>]|\bline \d|\bcolumn \d|\bjson\b|\bserde\b|\bexpected\b|\bfield\b|\bparse|\bUTF-8|\bheader\b/i.test(message)) {
    return t('error.not_understood');
  }
  const text = message.trim();
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?…]$/.test(text) ? '' : '.');
}

export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
  let r;
  try {
    r = await fetch(path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, t('error.unreachable'));
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) {
    const err = (data && data.error) || {};
    if (r.status === 401 && S.me && path !== '/api/login' && path !== '/api/me/password') {
      lost();
    }
    const retryAfter = r.headers.get('Retry-After');
    throw new ApiError(r.status, plainError(r.status, err.message, retryAfter, err.code, err.param), retryAfter, err.code);
  }
  return data;
}

/** Reads a text/event-stream response body (for POSTs, which EventSource cannot make). */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) {
        let parsed = null;
        try { parsed = JSON.parse(data.join('\n')); } catch { parsed = null; }
        onEvent(name, parsed);
      }
    }
  }
}
