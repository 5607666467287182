// What a chat offers beyond its messages: Download and Print in its header, and on each message
// when it was written (shown on hover, keyboard focus or a tap) and, on a reply, the model that
// wrote it.

import { h } from './dom.js';
import { language, t } from './i18n.js';

/** The reader's time zone, in minutes east of UTC, for a download's times. */
function offsetMinutes() {
  return -new Date().getTimezoneOffset();
}

/** Download (as text or as data) and Print, for the chat header. */
export function chatTools(conv) {
  const base = `/api/conversations/${conv.id}/export?offset=${offsetMinutes()}`;
  const menu = h('details', { class: 'menu', id: 'download' },
    h('summary', { class: 'button small ghost' }, t('chatx.download')),
    h('div', { class: 'menu-items' },
      h('a', { class: 'button small ghost', href: `${base}&format=markdown`, download: '', id: 'download-text' }, t('chatx.as_text')),
      h('a', { class: 'button small ghost', href: `${base}&format=json`, download: '', id: 'download-data' }, t('chatx.as_data'))));
  // Picking a file, or Escape, folds the menu again.
  menu.addEventListener('click', (e) => { if (e.target.closest('a')) menu.open = false; });
  menu.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && menu.open) { menu.open = false; menu.querySelector('summary').focus(); }
  });
  return [
    menu,
    h('button', { type: 'button', class: 'small ghost', id: 'print', onclick: () => window.print() }, t('chatx.print')),
  ];
}

/** A model's name as the page shows it: without the file's number format (`-q4_k_m`, `.f16`),
 * which says nothing to a family. */
export function modelName(id) {
  return String(id).replace(/[-_.](?:i?q\d\w*|f16|f32|bf16|fp16)$/i, '');
}

/** Unix seconds as a date and time in the reader's own locale. */
function localTime(secs) {
  const d = new Date(secs * 1000);
  return {
    iso: d.toISOString(),
    text: d.toLocaleString(language(), { dateStyle: 'medium', timeStyle: 'short' }),
  };
}

/** A message's head: who wrote it (its heading), when, and for a reply the model. The time is
 * a `<time>` that stays in the page for screen readers; on screen it shows on hover, when it
 * or anything in the message has keyboard focus (it can take focus itself), or after a tap. */
export function messageHead(m, who) {
  const parts = [h('h2', { class: 'who' }, who)];
  if (typeof m.created === 'number') {
    const at = localTime(m.created);
    parts.push(h('time', { class: 'when', datetime: at.iso, tabindex: '0' }, at.text));
  }
  if (m.role === 'assistant' && m.model) {
    parts.push(h('span', { class: 'model' }, h('span', { class: 'sr-only' }, t('chatx.written_by')), modelName(m.model)));
  }
  return h('div', { class: 'msg-head' }, parts);
}

// A tap (or click) on a message shows or hides its time; not when it lands on a control, or
// ends a selection of text.
document.addEventListener('click', (e) => {
  // A click anywhere else folds an open Download menu, as menus do.
  for (const d of document.querySelectorAll('details.menu[open]')) if (!d.contains(e.target)) d.open = false;
  const msg = e.target.closest && e.target.closest('.msg');
  if (!msg) return;
  const control = e.target.closest('button, a, summary, input, textarea, pre, .scroll');
  if (control && msg.contains(control)) return;
  const sel = window.getSelection && window.getSelection();
  if (sel && !sel.isCollapsed) return;
  msg.classList.toggle('show-time');
});
