// A conversation: its messages, the composer, and following a reply as it is written.

import { mayUse, stepView, stepsOf, timeZone, upsertStep } from './assistant.js';
import { versionControls } from './branches.js';
import { privacyNote, privacySentence } from './family.js';
import { continueReply, cutShortNote } from './lengths.js';
import { S, api } from './api.js';
import { chatTools, messageHead } from './chatx.js';
import { ask, copyButton, h, toast } from './dom.js';
import { t } from './i18n.js';
import { renderMarkdown } from './markdown.js';
import { loadList, renderList, setListOpen, setUrl, updateTopBar } from './shell.js';

/** A chat's name as the page shows it (a chat not yet named is a "New chat"). */
export function titleOf(c) {
  const title = c && typeof c.title === 'string' ? c.title.trim() : '';
  return title || t('chat.new');
}

/** Opens chat `id` (null: a new chat). `push`: a new entry in the browser's history (false
 * for Back and Forward, and for start-up); `focus`: move keyboard focus to the chat's heading,
 * as when it was picked from the list. */
export async function openConversation(id, { push = true, focus = false } = {}) {
  stopFollowing();
  S.view = 'chat';
  setListOpen(false);
  if (id == null) {
    S.conv = null;
    setUrl('/', push);
    renderChat();
    renderList();
    document.getElementById('composer-input')?.focus();
    return;
  }
  try {
    S.conv = await api('GET', `/api/conversations/${id}`);
  } catch (e) {
    if (e.status === 401) return;
    S.conv = null;
    setUrl('/', false);
    renderChat();
    toast(e.status === 404 ? t('chat.gone') : e.message);
    return;
  }
  setUrl(`/c/${id}`, push);
  renderChat();
  renderList();
  followIfRunning();
  if (focus) document.getElementById('chat-title')?.focus();
}

/** The last message the page shows of the open chat (0: none), sent with every request that
 * answers it, so a chat another window moved on is reloaded instead of answered blind. */
function lastSeen() {
  return S.conv?.messages?.at(-1)?.id ?? 0;
}

/** Asks the server for the open conversation again (after a reply ends, the page comes back
 * into view, or the event stream was lost). */
async function refreshConversation() {
  if (!S.conv || S.view !== 'chat') return;
  const id = S.conv.id;
  let conv;
  try { conv = await api('GET', `/api/conversations/${id}`); } catch { return; }
  if (!S.conv || S.conv.id !== id) return;
  S.conv = conv;
  renderMessages();
  followIfRunning();
}

function lastOf(role) {
  const ms = S.conv ? S.conv.messages : [];
  for (let i = ms.length - 1; i >= 0; i--) if (ms[i].role === role) return ms[i];
  return null;
}

function running() {
  const last = S.conv && S.conv.messages[S.conv.messages.length - 1];
  return last && last.role === 'assistant' && last.status === 'streaming' ? last : null;
}

function followIfRunning() {
  if (running()) follow(S.conv.id);
  else { stopFollowing(); setBusy(null); }
}

function renderChat() {
  const main = document.getElementById('main');
  if (!main) return;
  const input = h('textarea', {
    id: 'composer-input', rows: '1', dir: 'auto', placeholder: t('chat.placeholder'), enterkeyhint: 'send', autocomplete: 'off',
  });
  input.value = S.failedDraft ?? '';
  input.addEventListener('input', () => grow(input));
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); composer.requestSubmit(); }
  });
  const composer = h('form', { class: 'composer', id: 'composer' },
    h('label', { for: 'composer-input', class: 'sr-only' }, t('chat.your_message')),
    input,
    h('button', { type: 'button', class: 'danger', id: 'stop', hidden: true, onclick: stop }, t('chat.stop')),
    h('button', { type: 'submit', class: 'primary', id: 'send' }, t('chat.send')));
  composer.addEventListener('submit', (e) => { e.preventDefault(); send(input.value); });
  main.replaceChildren(h('section', { class: 'chat', 'aria-labelledby': 'chat-title' },
    h('div', { class: 'chat-head', id: 'chat-head' }),
    h('div', { id: 'context-notice' }),
    h('div', {
      class: 'messages', id: 'messages', role: 'log', 'aria-live': 'polite', 'aria-label': t('chat.messages'), tabindex: '0',
    }),
    h('p', { class: 'busy', id: 'busy', role: 'status', 'aria-live': 'polite' }),
    h('div', { id: 'send-error' }),
    composer,
    privacyNote(S.me)));
  renderMessages();
  if (S.failedDraft != null) showSendError(S.failedDraftError);
}

function renderHead() {
  const head = document.getElementById('chat-head');
  if (!head) return;
  updateTopBar();
  // (replaceChildren would write a null as the text "null": a new chat has no buttons at all.)
  head.replaceChildren(...[
    h('h1', { id: 'chat-title', tabindex: '-1', dir: 'auto' }, titleOf(S.conv)),
    S.conv ? h('div', { class: 'row' },
      ...chatTools(S.conv),
      h('button', { type: 'button', class: 'small ghost', id: 'rename', onclick: rename }, t('chat.rename')),
      h('button', { type: 'button', class: 'small ghost', id: 'delete', onclick: removeConversation }, t('chat.delete'))) : null,
  ].filter(Boolean));
}

function grow(ta) {
  ta.style.height = 'auto';
  ta.style.height = `${Math.min(ta.scrollHeight, 200)}px`;
}

/** What the page says under a reply that did not end normally (none for the others). */
function statusNote(status) {
  if (status === 'cut_short') return cutShortNote();
  const key = {
    interrupted: 'chat.interrupted', stopped: 'chat.stopped', failed: 'chat.failed', out_of_room: 'chat.out_of_room',
  }[status];
  return key ? t(key) : null;
}

function renderMessages() {
  const box = document.getElementById('messages');
  if (!box) return;
  const ms = S.conv ? S.conv.messages : [];
  const hidden = new Set((S.conv && S.conv.hidden_from_model) || []);
  renderHead();
  renderContextNotice();
  if (!ms.length) {
    const name = S.me ? S.me.name : '';
    box.replaceChildren(h('div', { class: 'welcome' },
      h('p', { class: 'big' }, t('chat.hello', { name })),
      h('p', {}, t('chat.hello_more', { privacy: privacySentence(S.me) }))));
    updateControls();
    return;
  }
  const lastAssistant = lastOf('assistant');
  const busy = !!running();
  box.replaceChildren(...ms.map((m) => messageView(m, {
    hidden: hidden.has(m.id),
    busy,
    editable: !busy && m.role === 'user',
    regenerable: !busy && m === lastAssistant && m === ms[ms.length - 1],
  })));
  updateControls();
  box.scrollTop = box.scrollHeight;
}

function messageView(m, { hidden, busy, editable, regenerable }) {
  const mine = m.role === 'user';
  const body = h('div', { class: 'body', dir: 'auto' });
  fillBody(body, m);
  const actions = h('div', { class: 'actions' });
  const versions = versionControls(m, { busy, shown: showBranch });
  if (versions) actions.append(versions);
  if (!mine && m.content) actions.append(copyButton(() => m.content));
  if (!mine && m.content && !busy && m.status !== 'streaming' && mayUse('create_note')) {
    actions.append(h('button', { type: 'button', class: 'small ghost', 'data-action': 'save-note', onclick: () => saveAsNote(m) }, t('tools.save_as_note')));
  }
  if (editable) actions.append(h('button', { type: 'button', class: 'small ghost', onclick: () => editMessage(m) }, t('chat.edit')));
  if (regenerable && m.status === 'cut_short') {
    actions.append(h('button', { type: 'button', class: 'small primary', onclick: goOn }, t('chat.continue')));
  }
  if (regenerable && m.status === 'failed') {
    actions.append(h('button', { type: 'button', class: 'small primary', onclick: regenerate }, t('chat.retry')));
  } else if (regenerable) {
    actions.append(h('button', { type: 'button', class: 'small ghost', onclick: regenerate }, t('chat.another')));
  }
  const note = statusNote(m.status);
  return h('article', {
    class: `msg ${mine ? 'user' : 'assistant'} ${hidden ? 'unseen' : ''} st-${m.status}`,
    'data-id': m.id, 'data-status': m.status, 'aria-busy': m.status === 'streaming' ? 'true' : 'false',
    'aria-label': mine ? t('chat.you_said') : t('chat.hearth_said'),
  },
  messageHead(m, mine ? (S.me ? S.me.name : t('chat.you')) : 'Hearth'),
  hidden ? h('p', { class: 'tag' }, t('chat.unseen')) : null,
  mine ? null : stepsBox(m),
  body,
  note ? h('p', { class: `note ${m.status}` }, note) : null,
  actions.childNodes.length ? actions : null);
}

/** The tool calls of reply `m`, each a collapsible step. */
function stepsBox(m) {
  const box = h('div', { class: 'tool-steps' });
  fillSteps(box, m.id);
  return box;
}

function fillSteps(box, mid) {
  const convId = S.conv.id;
  box.replaceChildren(...stepsOf({ id: mid }).map((s) => stepView(s, convId)));
}

/** "Save as note": the note holds the message word for word; the model names it (a call forced
 * by grammar, so the page never depends on the model choosing a tool), and the person approves
 * it before anything is written. */
async function saveAsNote(m) {
  if (!S.conv || running()) return;
  try {
    const r = await api('POST', `/api/conversations/${S.conv.id}/tool`, {
      tool: 'create_note', message_id: m.id, content: t('tools.save_note_request'), time_zone: timeZone(), last_seen: lastSeen(),
    });
    S.conv.messages.push(r.user, r.assistant);
    renderMessages();
    setBusy(t('chat.thinking'));
    follow(S.conv.id);
    loadList();
  } catch (e) {
    if (e.code === 'changed') await refreshConversation();
    toast(e.message);
  }
}

function fillBody(body, m) {
  if (m.role === 'user') {
    body.replaceChildren(...m.content.split('\n').flatMap((l, k) => (k ? [h('br'), l] : [l])));
  } else if (!m.content && m.status === 'streaming') {
    body.replaceChildren(h('p', { class: 'thinking' }, t('chat.thinking')));
  } else {
    body.replaceChildren(renderMarkdown(m.content));
  }
}

function renderContextNotice() {
  const slot = document.getElementById('context-notice');
  if (!slot) return;
  const ids = (S.conv && S.conv.hidden_from_model) || [];
  if (!ids.length) { slot.replaceChildren(); return; }
  const byId = new Map(S.conv.messages.map((m) => [m.id, m]));
  const items = ids.map((id) => byId.get(id)).filter(Boolean);
  const excerpt = (m) => {
    const text = m.content.replace(/\s+/g, ' ').trim();
    return t(m.role === 'user' ? 'chat.excerpt_you' : 'chat.excerpt_hearth', { text: text.length > 70 ? `${text.slice(0, 70)}…` : text });
  };
  slot.replaceChildren(h('details', { class: 'notice context' },
    h('summary', {}, t('chat.too_long', { count: ids.length })),
    h('p', {}, t('chat.too_long_more')),
    h('ul', {}, items.map((m) => h('li', {}, excerpt(m))))));
}

function updateControls() {
  const busy = !!running();
  const stopBtn = document.getElementById('stop');
  const sendBtn = document.getElementById('send');
  if (stopBtn) stopBtn.hidden = !busy;
  if (sendBtn) sendBtn.disabled = busy;
}

function setBusy(text) {
  const el = document.getElementById('busy');
  if (el && el.textContent !== (text || '')) el.textContent = text || '';
}

function showSendError(err) {
  const slot = document.getElementById('send-error');
  if (!slot) return;
  if (!err) { slot.replaceChildren(); return; }
  slot.replaceChildren(h('div', { class: 'error-row', role: 'alert' },
    h('p', {}, t('chat.not_sent', { why: err.message })),
    h('button', { type: 'button', class: 'small primary', onclick: () => send(document.getElementById('composer-input').value) }, t('chat.retry'))));
}

async function send(text) {
  text = text.trim();
  if (!text || running()) return;
  const input = document.getElementById('composer-input');
  const sendBtn = document.getElementById('send');
  if (sendBtn) sendBtn.disabled = true;
  try {
    let r;
    if (!S.conv) {
      // A new chat and its first message in one request: the server makes the chat only if
      // the message is sent, so a refused one leaves no empty chat behind.
      r = await api('POST', '/api/conversations', { content: text });
      const c = r.conversation;
      S.conv = { id: c.id, title: c.title, messages: [], hidden_from_model: [] };
      setUrl(`/c/${c.id}`, false);
    } else {
      r = await api('POST', `/api/conversations/${S.conv.id}/messages`, { content: text, last_seen: lastSeen() });
    }
    S.failedDraft = null;
    S.failedDraftError = null;
    if (input) { input.value = ''; grow(input); }
    showSendError(null);
    S.conv.messages.push(r.user, r.assistant);
    renderMessages();
    setBusy(t('chat.thinking'));
    follow(S.conv.id);
    loadList();
  } catch (e) {
    if (e.status === 401) return;
    if (e.code === 'changed') await refreshConversation();
    S.failedDraft = text;
    S.failedDraftError = e;
    showSendError(e);
    updateControls();
  } finally {
    if (sendBtn) sendBtn.disabled = !!running();
  }
}

async function goOn() {
  if (!S.conv) return;
  try {
    await continueReply(S.conv, () => {
      renderMessages();
      setBusy(t('chat.writing'));
      follow(S.conv.id);
    });
  } catch (e) {
    if (e.code === 'changed') await refreshConversation();
    toast(e.message);
  }
}

async function stop() {
  if (!S.conv) return;
  try { await api('POST', `/api/conversations/${S.conv.id}/stop`); } catch (e) { toast(e.message); }
}

/** Another version was chosen: the chat as the server now reads it. */
function showBranch(conv) {
  S.conv = conv;
  renderMessages();
  followIfRunning();
  loadList();
}

/** A reply started on a new branch (another answer, an edit): the chat is read again, for the
 * versions it now has, and the reply followed. */
async function followNewBranch(id, r) {
  try {
    const conv = await api('GET', `/api/conversations/${id}`);
    if (S.conv && S.conv.id === id) S.conv = conv;
  } catch {
    // Its events bring the reply anyway; until then the page shows what it was told.
    const ms = S.conv.messages;
    const at = r.user ? ms.findIndex((m) => m.id === r.user.parent_id) : ms.findIndex((m) => m.id === r.assistant.parent_id);
    ms.splice(at + 1, ms.length, ...[r.user, r.assistant].filter(Boolean));
  }
  renderMessages();
  setBusy(t('chat.thinking'));
  follow(id);
  loadList();
}

async function regenerate() {
  if (!S.conv) return;
  const id = S.conv.id;
  try {
    const r = await api('POST', `/api/conversations/${id}/regenerate`, { last_seen: lastSeen() });
    await followNewBranch(id, r);
  } catch (e) {
    if (e.code === 'changed') await refreshConversation();
    toast(e.message);
  }
}

async function editMessage(m) {
  const v = await ask({
    title: t('chat.edit_title'),
    text: t('chat.edit_text'),
    fields: [{ name: 'content', label: t('chat.your_message'), input: { tag: 'textarea', value: m.content, required: true, rows: '5', dir: 'auto' } }],
    ok: t('chat.send'),
  });
  if (!v || !v.content.trim() || !S.conv) return;
  const id = S.conv.id;
  try {
    const r = await api('POST', `/api/conversations/${id}/edit`, { content: v.content.trim(), message_id: m.id });
    await followNewBranch(id, r);
  } catch (e) { toast(e.message); }
}

async function rename() {
  if (!S.conv) return;
  const v = await ask({
    title: t('chat.rename_title'),
    fields: [{ name: 'title', label: t('chat.rename_label'), input: { value: S.conv.title || '', required: true, maxlength: '200' } }],
    ok: t('chat.rename'),
  });
  if (!v) return;
  try {
    const c = await api('PATCH', `/api/conversations/${S.conv.id}`, { title: v.title.trim() });
    S.conv.title = c.title;
    renderHead();
    loadList();
  } catch (e) { toast(e.message); }
}

async function removeConversation() {
  if (!S.conv) return;
  const v = await ask({
    title: t('chat.delete_title'),
    text: t('chat.delete_text', { title: titleOf(S.conv) }),
    ok: t('chat.delete'), danger: true,
  });
  if (!v) return;
  try {
    await api('DELETE', `/api/conversations/${S.conv.id}`);
    toast(t('chat.deleted'));
    await loadList();
    openConversation(null, { push: false });
  } catch (e) { toast(e.message); }
}

// ---------------------------------------------------------------------------------------------
// Following a reply as it is written (server-sent events)

export function stopFollowing() {
  if (S.es) S.es.close();
  S.es = null;
  S.following = null;
  clearTimeout(S.retryTimer);
}

function follow(id) {
  if (S.es && S.following === id && S.es.readyState !== EventSource.CLOSED) return;
  stopFollowing();
  const es = new EventSource(`/api/conversations/${id}/events`);
  S.es = es;
  S.following = id;
  const mine = () => S.es === es && S.conv && S.conv.id === id;
  const data = (e) => { try { return JSON.parse(e.data); } catch { return {}; } };
  const msg = (mid) => S.conv.messages.find((m) => m.id === mid);
  let pending = new Set();
  const paint = (m) => {
    pending.add(m);
    if (pending.size > 1) return;
    requestAnimationFrame(() => {
      const box = document.getElementById('messages');
      const stick = box && box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      for (const p of pending) {
        const body = document.querySelector(`.msg[data-id="${p.id}"] .body`);
        if (body) fillBody(body, p);
      }
      pending = new Set();
      if (box && stick) box.scrollTop = box.scrollHeight;
    });
  };
  es.addEventListener('snapshot', (e) => {
    if (!mine()) return;
    const d = data(e);
    const m = msg(d.message_id);
    if (m) {
      m.content = d.content || '';
      m.status = 'streaming';
      paint(m);
      setBusy(m.content ? t('chat.writing') : t('chat.thinking'));
    } else refreshConversation();
  });
  es.addEventListener('queued', (e) => {
    if (!mine()) return;
    const n = data(e).ahead || 0;
    setBusy(n > 0 ? t('chat.queued', { count: n }) : t('chat.thinking'));
  });
  es.addEventListener('delta', (e) => {
    if (!mine()) return;
    const d = data(e);
    const m = msg(d.message_id);
    if (!m) { refreshConversation(); return; }
    m.content += d.text || '';
    setBusy(t('chat.writing'));
    paint(m);
  });
  es.addEventListener('step', (e) => {
    if (!mine()) return;
    const step = data(e);
    upsertStep(step);
    const box = document.querySelector(`.msg[data-id="${step.message_id}"] .tool-steps`);
    if (box) fillSteps(box, step.message_id); else refreshConversation();
    if (step.outcome === 'waiting') {
      setBusy(t('tools.waiting'));
      box?.querySelector(`[data-step="${step.id}"] button`)?.focus();
    } else if (step.outcome === 'running') setBusy(t('tools.running', { tool: step.tool }));
    else setBusy(t('chat.thinking'));
  });
  es.addEventListener('context', (e) => {
    if (!mine()) return;
    S.conv.hidden_from_model = data(e).hidden_from_model || [];
    renderMessages();
  });
  es.addEventListener('done', () => {
    if (!mine()) return;
    stopFollowing();
    setBusy('');
    refreshConversation();
    loadList();
  });
  es.addEventListener('idle', () => {
    if (!mine()) return;
    stopFollowing();
    setBusy('');
    // Nothing runs: whatever the page believed, the saved conversation says how it ended.
    if (running()) refreshConversation();
  });
  es.addEventListener('error', (e) => {
    if (!mine()) return;
    if (e instanceof MessageEvent && e.data) {
      // The server's `error` event: the reply failed. Its `done` follows and brings the saved
      // state; until then the page already says so.
      setBusy(t('chat.failed'));
      return;
    }
    // The connection itself: the browser retries on its own unless the server refused.
    if (es.readyState === EventSource.CLOSED) {
      stopFollowing();
      S.retryTimer = setTimeout(refreshConversation, 2000);
    } else {
      setBusy(t('chat.lost_touch'));
    }
  });
}

// A phone that was locked, or a tab that was in the background, may have lost its stream;
// the reply went on being written on the server, so ask for it again.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && S.me && S.view === 'chat' && S.conv) {
    stopFollowing();
    refreshConversation();
  }
});
