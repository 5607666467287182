// Settings: the person's own account and chats, and the keeper's household settings.

import { adviceBlock, adviceFor, modelNote, planSentences } from './advice.js';
import { S, api, readEvents } from './api.js';
import { openConversation, stopFollowing } from './chat.js';
import { ask, bytes, copyButton, errorBox, field, h, nextId, showError, toast, when } from './dom.js';
import { childControls, mySettingsSection, roleChoice } from './family.js';
import { logout } from './login.js';
import { loadList, renderList, setListOpen, setUrl } from './shell.js';
import { appearanceFieldset } from './theme.js';

function section(title, ...kids) {
  const id = nextId('s');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), kids);
}

const PIN_WORDS = 'A PIN is 4 to 8 digits, numbers only.';

// The tabs, each with its own address (`/settings/{id}`); the keeper's only for the keeper.
const TABS = [
  { id: 'you', label: 'You' },
  { id: 'household', label: 'Household', owner: true },
  { id: 'model', label: 'AI model', owner: true },
  { id: 'apps', label: 'Apps', owner: true },
];

/** Opens Settings on `tab` (its first tab when none or one this person cannot see). */
export function openSettings(tab = null, { push = true } = {}) {
  stopFollowing();
  S.view = 'settings';
  S.conv = null;
  setListOpen(false);
  const owner = S.me.role === 'owner';
  const tabs = TABS.filter((t) => owner || !t.owner);
  const current = tabs.find((t) => t.id === tab) || tabs[0];
  // An address for a tab this person cannot see becomes plain `/settings`, their first tab.
  setUrl(tab === current.id ? `/settings/${current.id}` : '/settings', push);
  renderList();
  const main = document.getElementById('main');
  const nav = tabs.length > 1
    ? h('nav', { 'aria-label': 'Settings' }, h('ul', { class: 'tabs' }, tabs.map((t) => h('li', {},
      h('a', {
        href: `/settings/${t.id}`, 'aria-current': t === current ? 'page' : null,
        onclick: (e) => { e.preventDefault(); if (t !== current) openSettings(t.id); },
      }, t.label)))))
    : null;
  const slot = h('div', { class: 'stack', 'data-tab': current.id });
  main.replaceChildren(h('div', { class: 'settings' },
    h('div', { class: 'row between' },
      h('h1', { id: 'settings-title', tabindex: '-1' }, 'Settings'),
      h('button', { type: 'button', class: 'ghost', onclick: () => openConversation(null) }, 'Back to chat')),
    nav,
    slot));
  if (current.id === 'you') slot.replaceChildren(accountSection(), mySettingsSection(), appearanceSection(), conversationsSection());
  else loadOwnerSettings(slot);
  main.focus();
}

/** Technical words for the keeper, folded away behind "Details". */
function details(...kids) {
  return h('details', { class: 'tech' }, h('summary', {}, 'Details'), h('p', { class: 'muted' }, kids));
}

/** About how many words fit in `n` tokens (a token is about three quarters of a word). */
function words(n) {
  const w = Math.round((n * 0.75) / 100) * 100;
  return (w || Math.round(n * 0.75)).toLocaleString();
}

function appearanceSection() {
  return section('Appearance', appearanceFieldset(),
    h('p', { class: 'hint' }, 'On a phone or tablet, open the browser’s menu and choose “Add to Home screen”: Hearth then opens from its own icon, like an app.'));
}

function accountSection() {
  const err = errorBox();
  const pin = S.me.kind === 'pin';
  const word = pin ? 'PIN' : 'password';
  const form = h('form', { class: 'stack' },
    field(`Current ${word}`, { name: 'old', type: 'password', required: true, autocomplete: 'current-password', inputmode: pin ? 'numeric' : null }),
    field(`New ${word}`, pin
      ? { name: 'new', type: 'password', required: true, inputmode: 'numeric', pattern: '[0-9]{4,8}', 'data-mismatch': PIN_WORDS, autocomplete: 'new-password' }
      : { name: 'new', type: 'password', required: true, minlength: '8', autocomplete: 'new-password' },
    pin ? '4 to 8 digits.' : 'At least 8 characters.'),
    err,
    h('button', { type: 'submit', class: 'primary' }, `Change my ${word}`));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    try {
      await api('POST', '/api/me/password', { old: v.old, new: v.new });
      form.reset();
      showError(err, null);
      toast(`Your ${word} is changed.`);
    } catch (ex) {
      showError(err, ex.status === 401 ? new Error(`Your current ${word} is not right.`) : ex);
    }
  });
  return section(`You: ${S.me.name}`,
    h('div', { class: 'row between wrap' },
      h('p', {}, S.me.role === 'owner' ? 'You look after Hearth for this household.' : (S.me.role === 'child' ? 'You are one of the children of this household.' : 'Your chats here are yours alone.')),
      h('button', { type: 'button', class: 'ghost', id: 'logout', onclick: logout }, 'Log out')),
    h('details', {}, h('summary', {}, `Change my ${word}`), form));
}

function conversationsSection() {
  return section('Your chats',
    h('p', {}, 'Download all your chats to keep them, or delete them all from Hearth.'),
    h('div', { class: 'row wrap' },
      h('a', { class: 'button ghost', href: '/api/export?format=json', download: 'hearth-chats.json' }, 'Download (JSON)'),
      h('a', { class: 'button ghost', href: '/api/export?format=markdown', download: 'hearth-chats.md' }, 'Download (text)'),
      h('button', {
        type: 'button', class: 'danger',
        onclick: async () => {
          const v = await ask({ title: 'Delete all your chats?', text: 'Every chat you have had with Hearth will be deleted for good. This cannot be undone.', ok: 'Delete all', danger: true });
          if (!v) return;
          try { await api('DELETE', '/api/conversations'); toast('All your chats are deleted.'); loadList(); } catch (e) { toast(e.message); }
        },
      }, 'Delete all my chats')));
}

/** Fills a keeper's tab (`slot.dataset.tab`) from the household settings. */
async function loadOwnerSettings(slot) {
  const tab = slot.dataset.tab;
  slot.replaceChildren(h('p', {}, 'Loading the household settings…'));
  let s;
  try { s = await api('GET', '/api/settings'); } catch (e) { slot.replaceChildren(h('p', { class: 'error' }, e.message)); return; }
  if (tab === 'household') slot.replaceChildren(householdSection(s), peopleSection());
  else if (tab === 'model') slot.replaceChildren(lockSection(slot), modelSection(s, slot));
  else slot.replaceChildren(keysSection());
}

// hearth.lock: this Hearth would serve a model with another template or other defaults than
// the lock pins. Hearth keeps the locked ones until the keeper accepts the change here.
function lockSection(slot) {
  const box = h('div', { id: 'lock-pending' });
  (async () => {
    let r;
    try { r = await api('GET', '/api/lock'); } catch (e) { box.replaceChildren(h('p', { class: 'error' }, e.message)); return; }
    const pending = r.pending || [];
    if (!pending.length) return;
    const accept = async (model, btn) => {
      btn.disabled = true;
      btn.textContent = 'Accepting…';
      try {
        await api('POST', '/api/lock/accept', { model });
        toast(`${model} now uses what this Hearth serves.`);
      } catch (e) { toast(e.message); }
      loadOwnerSettings(slot);
    };
    const items = pending.map((p) => {
      if (p.error) return h('li', {}, h('div', {}, h('strong', {}, p.model), ' ', h('span', { class: 'error' }, p.error)));
      const btn = h('button', { type: 'button', class: 'small primary', onclick: () => accept(p.model, btn) }, 'Accept');
      return h('li', {},
        h('div', {}, h('strong', {}, p.model),
          h('ul', {}, ...p.changes.map((c) => h('li', {}, `${c.what}: using ${c.locked}; this Hearth would use ${c.now}`)))),
        btn);
    });
    box.replaceChildren(section('Changes waiting for you',
      h('p', {}, 'This version of Hearth would answer with a different chat template or different settings than the ones your household has been using. Until you accept, Hearth keeps using the old ones.'),
      h('ul', { class: 'rows' }, ...items)));
  })();
  return box;
}

function householdSection(s) {
  const err = errorBox();
  const form = h('form', { class: 'row wrap end-items' },
    field('Household name', { name: 'household', value: s.household || '', required: true }),
    h('button', { type: 'submit', class: 'primary' }, 'Save'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = new FormData(form).get('household').trim();
    try {
      await api('PUT', '/api/settings', { household: name });
      S.state.household = name;
      document.querySelector('.brand').lastChild.textContent = name;
      showError(err, null);
      toast('Saved.');
    } catch (ex) { showError(err, ex); }
  });
  return section('Household', form, err);
}

function peopleSection() {
  const listEl = h('ul', { class: 'rows', id: 'people' });
  const load = async () => {
    let people;
    try { people = await api('GET', '/api/people'); } catch (e) { listEl.replaceChildren(h('li', { class: 'error' }, e.message)); return; }
    listEl.replaceChildren(...people.map((p) => h('li', {},
      h('div', {}, h('strong', {}, p.name), ' ',
        h('span', { class: 'muted' }, `${{ owner: 'looks after Hearth', child: 'a child' }[p.role] || 'can chat'} · logs in with a ${p.kind === 'pin' ? 'PIN' : 'password'}`)),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'small ghost', onclick: () => resetPerson(p) }, 'Reset'),
        p.id !== S.me.id ? h('button', { type: 'button', class: 'small danger', onclick: () => removePerson(p) }, 'Remove') : null),
      p.role === 'child' ? childControls(p, load) : null)));
  };
  const resetPerson = async (p) => {
    const pin = p.kind === 'pin';
    const v = await ask({
      title: `New ${pin ? 'PIN' : 'password'} for ${p.name}`,
      fields: [{ name: 'secret', label: pin ? 'New PIN (4 to 8 digits)' : 'New password (at least 8 characters)', input: pin ? { type: 'text', inputmode: 'numeric', pattern: '[0-9]{4,8}', 'data-mismatch': PIN_WORDS, required: true, autocomplete: 'off' } : { type: 'text', minlength: '8', required: true, autocomplete: 'off' } }],
      ok: 'Set it',
    });
    if (!v) return;
    try {
      await api('POST', `/api/people/${p.id}/reset`, pin ? { pin: v.secret } : { password: v.secret });
      toast(`${p.name} can log in with the new ${pin ? 'PIN' : 'password'}.`);
    } catch (e) { toast(e.message); }
  };
  const removePerson = async (p) => {
    const v = await ask({ title: `Remove ${p.name}?`, text: `${p.name} will no longer be able to log in, and their chats will be deleted.`, ok: 'Remove', danger: true });
    if (!v) return;
    try { await api('DELETE', `/api/people/${p.id}`); toast(`${p.name} is removed.`); load(); } catch (e) { toast(e.message); }
  };
  const err = errorBox();
  const secretHint = h('p', { class: 'hint', id: 'add-secret-hint' }, 'At least 8 characters.');
  const secret = h('input', { type: 'text', id: 'add-secret', name: 'secret', required: true, autocomplete: 'off', minlength: '8', 'aria-describedby': 'add-secret-hint' });
  const secretLabel = h('label', { for: 'add-secret' }, 'Password');
  const setKind = (kind) => {
    const pin = kind === 'pin';
    secretLabel.textContent = pin ? 'PIN' : 'Password';
    secretHint.textContent = pin ? '4 to 8 digits: easy for children to remember.' : 'At least 8 characters.';
    if (pin) { secret.setAttribute('pattern', '[0-9]{4,8}'); secret.setAttribute('inputmode', 'numeric'); secret.dataset.mismatch = PIN_WORDS; secret.removeAttribute('minlength'); } else { secret.removeAttribute('pattern'); secret.removeAttribute('inputmode'); secret.setAttribute('minlength', '8'); }
  };
  const radio = (value, label, checked) => {
    const id = nextId('k');
    return h('span', { class: 'choice' },
      h('input', { type: 'radio', name: 'kind', id, value, checked, onchange: () => setKind(value) }),
      h('label', { for: id }, label));
  };
  const form = h('form', { class: 'stack', id: 'add-person' },
    h('h3', {}, 'Add someone'),
    field('Name', { name: 'name', id: 'add-name', required: true, autocomplete: 'off' }),
    roleChoice(() => form),
    h('fieldset', {}, h('legend', {}, 'How will they log in?'),
      radio('password', 'With a password', true), radio('pin', 'With a PIN (for children)', false)),
    h('div', { class: 'field' }, secretLabel, secret, secretHint),
    err,
    h('button', { type: 'submit', class: 'primary' }, 'Add'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    const body = { name: v.name.trim(), role: v.role || 'member' };
    body[v.kind === 'pin' ? 'pin' : 'password'] = v.secret;
    try {
      await api('POST', '/api/people', body);
      toast(`${body.name} is added. They can log in now.`);
      form.reset();
      setKind('password');
      showError(err, null);
      load();
    } catch (ex) { showError(err, ex); }
  });
  load();
  return section('People', h('p', {}, 'Everyone logs in as themselves. Grown-ups\' chats are theirs alone; for each child, you choose whether you can read theirs.'), listEl, form);
}

function modelSection(s, slot) {
  const model = s.model || {};
  const useModel = async (name, btn) => {
    // Loading a model takes a few seconds (longer for a large one); replies being written
    // finish on the model that began them.
    for (const b of document.querySelectorAll('#installed button')) b.disabled = true;
    btn.textContent = 'Loading…';
    try {
      await api('POST', '/api/models/use', { name });
      toast(`Hearth now uses ${name}.`);
    } catch (e) { toast(e.message); }
    loadOwnerSettings(slot);
  };
  const installed = (s.installed || []).map((m) => {
    if (m.name === model.id) {
      return h('li', {},
        h('div', {}, h('strong', {}, m.name), ' ', h('span', { class: 'muted' }, bytes(m.size))),
        h('span', { class: 'pill' }, 'In use'));
    }
    if (m.chat === false) {
      return h('li', {},
        h('div', {}, h('strong', {}, m.name), ' ', h('span', { class: 'muted' }, bytes(m.size)),
          h('p', { class: 'muted' }, 'Continues text only: it cannot chat, so this page cannot use it.')));
    }
    const note = modelNote(adviceFor(s.advice, m.name));
    // The visible word is part of the name a screen reader gives (WCAG's label in name).
    const btn = h('button', { type: 'button', class: 'small ghost' }, 'Use', h('span', { class: 'sr-only' }, ` ${m.name}`));
    btn.addEventListener('click', () => useModel(m.name, btn));
    return h('li', {},
      h('div', {}, h('strong', {}, m.name), ' ', h('span', { class: 'muted' }, bytes(m.size)), note),
      btn);
  });
  const catalog = (s.catalog || []).filter((c) => !c.installed).map((c) => {
    const bar = h('progress', { max: '1', hidden: true, 'aria-label': `Downloading ${c.name}` });
    const label = h('span', { class: 'muted', 'aria-live': 'polite' });
    const btn = h('button', { type: 'button', class: 'small ghost' }, 'Download');
    btn.addEventListener('click', () => pull(c.name, btn, bar, label, slot));
    return h('li', {},
      h('div', {}, h('strong', {}, c.name), ' ', h('span', { class: 'muted' }, bytes(c.size)),
        c.description ? h('p', { class: 'muted' }, c.description) : null,
        modelNote(adviceFor(s.advice, c.name) || (c.chat === false ? { chat: false } : null)), bar, label),
      btn);
  });
  return section('AI model',
    h('p', {}, 'In use: ', h('strong', {}, model.id || 'none'), model.ctx ? `. It keeps roughly the last ${words(model.ctx)} words of a chat in mind.` : ''),
    model.ctx ? details(`Context: ${model.ctx.toLocaleString()} tokens.`) : null,
    h('h3', {}, 'Recommended for this machine'),
    adviceBlock(s.advice),
    h('h3', {}, 'On this machine'),
    h('ul', { class: 'rows', id: 'installed' }, installed.length ? installed : h('li', {}, 'None.')),
    catalog.length ? [h('h3', {}, 'More you can download'), h('ul', { class: 'rows', id: 'catalog' }, catalog)] : null,
    h('h3', {}, 'What the model in use needs'),
    planSentences(s.plan, model, adviceFor(s.advice, model.id), details));
}

async function pull(name, btn, bar, label, slot) {
  btn.disabled = true;
  bar.hidden = false;
  bar.removeAttribute('value');
  label.textContent = 'Starting…';
  let failed = null;
  try {
    const r = await fetch('/api/models/pull', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': S.csrf || '' },
      body: JSON.stringify({ name }),
    });
    if (!r.ok) {
      let msg = `Download failed (error ${r.status}).`;
      try { msg = (await r.json()).error.message; } catch { /* keep the generic words */ }
      throw new Error(msg);
    }
    let finished = false;
    await readEvents(r, (ev, d) => {
      if (ev === 'progress' && d) {
        if (d.total) { bar.max = d.total; bar.value = d.done; label.textContent = `${bytes(d.done)} of ${bytes(d.total)}`; } else label.textContent = `${bytes(d.done)}`;
      } else if (ev === 'done') finished = true;
      else if (ev === 'error') failed = new Error((d && d.message) || 'Download failed.');
    });
    if (!failed && !finished) failed = new Error('The download stopped before the end.');
  } catch (e) { failed = e; }
  if (failed) {
    label.textContent = failed.message;
    bar.hidden = true;
    btn.disabled = false;
    btn.textContent = 'Try again';
    return;
  }
  toast(`${name} is downloaded.`);
  loadOwnerSettings(slot);
}

function keysSection() {
  const listEl = h('ul', { class: 'rows', id: 'keys' });
  const shown = h('div', { 'aria-live': 'polite' });
  const load = async () => {
    let keys;
    try { keys = await api('GET', '/api/keys'); } catch (e) { listEl.replaceChildren(h('li', { class: 'error' }, e.message)); return; }
    if (!keys.length) { listEl.replaceChildren(h('li', { class: 'muted' }, 'No keys yet.')); return; }
    listEl.replaceChildren(...keys.map((k) => h('li', {},
      h('div', {}, h('strong', {}, k.name), ' ',
        h('span', { class: 'muted' }, `made ${when(k.created)} · ${k.last_used ? `last used ${when(k.last_used)}` : 'never used'}`)),
      h('button', {
        type: 'button', class: 'small danger',
        onclick: async () => {
          const v = await ask({ title: `Revoke “${k.name}”?`, text: 'Apps using this key will stop working.', ok: 'Revoke', danger: true });
          if (!v) return;
          try { await api('DELETE', `/api/keys/${k.id}`); toast('Key revoked.'); load(); } catch (e) { toast(e.message); }
        },
      }, 'Revoke'))));
  };
  const err = errorBox();
  const form = h('form', { class: 'row wrap end-items' },
    field('Name of the app', { name: 'name', required: true, autocomplete: 'off', placeholder: 'Kitchen tablet' }),
    h('button', { type: 'submit', class: 'primary' }, 'Create key'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = new FormData(form).get('name').trim();
    try {
      const k = await api('POST', '/api/keys', { name });
      form.reset();
      showError(err, null);
      shown.replaceChildren(h('div', { class: 'notice' },
        h('p', {}, `The key for “${k.name}”. Copy it now: Hearth keeps only a fingerprint and cannot show it again.`),
        h('div', { class: 'row wrap' }, h('code', { class: 'key', id: 'new-key' }, k.key), copyButton(() => k.key, 'Copy key'))));
      load();
    } catch (ex) { showError(err, ex); }
  });
  load();
  return section('Keys for apps',
    h('p', {}, 'Apps on your computers and phones (writing tools, scripts, home automation) can use Hearth too. Each one needs a key of its own, made here.'),
    details(h('span', {}, 'They speak the OpenAI API, at ', h('code', {}, `${location.origin}/v1`), '.')),
    form, err, shown, listEl);
}
