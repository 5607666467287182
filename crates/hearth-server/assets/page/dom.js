// Building the page: elements from `h()` (text only, never HTML), form fields, dialogs, notices,
// and small formatting helpers.

import { language, t } from './i18n.js';

/** Builds an element. Children that are strings become text nodes (never HTML). */
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'checked') { el.checked = v; el.defaultChecked = v; } // form.reset() keeps it
    else if (k === 'value' || k === 'disabled' || k === 'hidden') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

export const app = () => document.getElementById('app');
let uid = 0;
export const nextId = (p) => `${p}-${++uid}`;

/** A labelled form field. `opts` go to the input. */
export function field(label, opts = {}, hint) {
  const id = opts.id || nextId('f');
  const hintId = hint ? `${id}-hint` : null;
  const input = opts.tag === 'textarea'
    ? h('textarea', { ...opts, tag: null, id, 'aria-describedby': hintId })
    : h('input', { type: 'text', ...opts, tag: null, id, 'aria-describedby': hintId });
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null);
}

export function toast(text) {
  const box = document.getElementById('toast');
  box.textContent = text;
  box.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove('show'), 3000);
}

/** An inline error area for a form (announced when it changes). */
export function errorBox() {
  return h('p', { class: 'error', role: 'alert', hidden: true });
}
export function showError(box, err) {
  box.textContent = err ? (err.message || String(err)) : '';
  box.hidden = !err;
}

/** A modal question built on <dialog>. Resolves to the field values, or null when cancelled. */
export function ask({ title, text, fields = [], ok = t('common.ok'), danger = false }) {
  return new Promise((resolve) => {
    const inputs = fields.map((f) => field(f.label, { name: f.name, ...f.input }, f.hint));
    const form = h('form', { method: 'dialog' },
      h('h2', { text: title }),
      text ? h('p', { text }) : null,
      inputs,
      h('div', { class: 'row end' },
        h('button', { type: 'button', class: 'ghost', value: 'cancel', onclick: () => dlg.close('cancel') }, t('common.cancel')),
        h('button', { type: 'submit', value: 'ok', class: danger ? 'danger' : 'primary' }, ok)));
    const dlg = h('dialog', { 'aria-label': title }, form);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!form.reportValidity()) return;
      dlg.close('ok');
    });
    dlg.addEventListener('close', () => {
      const values = {};
      for (const el of form.elements) if (el.name) values[el.name] = el.value;
      dlg.remove();
      resolve(dlg.returnValue === 'ok' ? values : null);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// ---------------------------------------------------------------------------------------------
// Small formatting helpers

export function when(v) {
  if (v == null || v === '') return '';
  const d = typeof v === 'number' ? new Date(v < 1e12 ? v * 1000 : v) : new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  const today = new Date();
  return d.toDateString() === today.toDateString()
    ? d.toLocaleTimeString(language(), { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString(language(), { day: 'numeric', month: 'short', year: 'numeric' });
}

/** A size in the language's units ("1.2 GB", "1,2 Go"). */
export function bytes(n) {
  if (typeof n !== 'number') return '';
  const units = ['bytes.b', 'bytes.kb', 'bytes.mb', 'bytes.gb', 'bytes.tb'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  const size = n >= 100 || i === 0 ? Math.round(n) : Math.round(n * 10) / 10;
  return t(units[i], { count: size });
}

/** Copies text; the clipboard API exists only on HTTPS or localhost, so plain HTTP on the home
 * network falls back to selecting a hidden textarea and the older copy command. */
async function copyText(text) {
  if (window.isSecureContext && navigator.clipboard) {
    try { await navigator.clipboard.writeText(text); return true; } catch { /* fall back */ }
  }
  const ta = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
  ta.value = text;
  const back = document.activeElement;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  ta.remove();
  if (back && back.focus) back.focus();
  return ok;
}

export function copyButton(getText, label = t('copy.copy')) {
  const b = h('button', { type: 'button', class: 'small ghost' }, label);
  b.addEventListener('click', async () => {
    const ok = await copyText(getText());
    b.textContent = ok ? t('copy.copied') : t('copy.failed');
    toast(ok ? t('copy.copied_toast') : t('copy.refused'));
    setTimeout(() => { b.textContent = label; }, 2000);
  });
  return b;
}

// The browser's own complaints ("Please match the requested format", "Please lengthen this
// text to 8 characters or more") become Hearth's words: a field's `data-mismatch` says what
// its pattern wants. Cleared as soon as the person types again.
document.addEventListener('invalid', (e) => {
  const el = e.target;
  if (!el.validity) return;
  let msg = '';
  if (el.validity.patternMismatch) msg = el.dataset.mismatch || t('form.mismatch');
  else if (el.validity.tooShort) msg = t('form.too_short', { count: el.minLength });
  else if (el.validity.valueMissing) msg = t('form.missing');
  if (msg && el.validationMessage !== msg) el.setCustomValidity(msg);
}, true);
document.addEventListener('input', (e) => {
  if (e.target.setCustomValidity) e.target.setCustomValidity('');
}, true);
