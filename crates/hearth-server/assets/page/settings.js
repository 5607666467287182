// Settings: the person's own account and chats, and the keeper's household settings.

import { adviceBlock, adviceFor, modelNote, planSentences } from './advice.js';
import { assistantSettings } from './assistant.js';
import { S, api, readEvents } from './api.js';
import { openConversation, stopFollowing } from './chat.js';
import { ask, bytes, copyButton, errorBox, field, h, nextId, showError, toast, when } from './dom.js';
import { childControls, mySettingsSection, roleChoice } from './family.js';
import { num, t } from './i18n.js';
import { logout } from './login.js';
import { loadList, renderList, setListOpen, setUrl } from './shell.js';
import { appearanceFieldset } from './theme.js';

function section(title, ...kids) {
  const id = nextId('s');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), kids);
}

const pinWords = () => t('settings.pin_words');

// The tabs, each with its own address (`/settings/{id}`); the keeper's only for the keeper.
const TABS = [
  { id: 'you', label: 'settings.tab_you' },
  { id: 'household', label: 'settings.tab_household', owner: true },
  { id: 'model', label: 'settings.tab_model', owner: true },
  { id: 'apps', label: 'settings.tab_apps', owner: true },
  { id: 'assistant', label: 'settings.tab_assistant', owner: true },
];

/** Opens Settings on `tab` (its first tab when none or one this person cannot see). */
export function openSettings(tab = null, { push = true } = {}) {
  stopFollowing();
  S.view = 'settings';
  S.conv = null;
  setListOpen(false);
  const owner = S.me.role === 'owner';
  const tabs = TABS.filter((x) => owner || !x.owner);
  const current = tabs.find((x) => x.id === tab) || tabs[0];
  // An address for a tab this person cannot see becomes plain `/settings`, their first tab.
  setUrl(tab === current.id ? `/settings/${current.id}` : '/settings', push);
  renderList();
  const main = document.getElementById('main');
  const nav = tabs.length > 1
    ? h('nav', { 'aria-label': t('settings.title') }, h('ul', { class: 'tabs' }, tabs.map((x) => h('li', {},
      h('a', {
        href: `/settings/${x.id}`, 'aria-current': x === current ? 'page' : null,
        onclick: (e) => { e.preventDefault(); if (x !== current) openSettings(x.id); },
      }, t(x.label))))))
    : null;
  const slot = h('div', { class: 'stack', 'data-tab': current.id });
  main.replaceChildren(h('div', { class: 'settings' },
    h('div', { class: 'row between' },
      h('h1', { id: 'settings-title', tabindex: '-1' }, t('settings.title')),
      h('button', { type: 'button', class: 'ghost', onclick: () => openConversation(null) }, t('settings.back'))),
    nav,
    slot));
  if (current.id === 'you') slot.replaceChildren(accountSection(), mySettingsSection(), appearanceSection(), conversationsSection());
  else loadOwnerSettings(slot);
  main.focus();
}

/** Technical words for the keeper, folded away behind "Details". */
function details(...kids) {
  return h('details', { class: 'tech' }, h('summary', {}, t('settings.details')), h('p', { class: 'muted' }, kids));
}

/** About how many words fit in `n` tokens (a token is about three quarters of a word). */
function words(n) {
  const w = Math.round((n * 0.75) / 100) * 100;
  return num(w || Math.round(n * 0.75));
}

function appearanceSection() {
  return section(t('settings.appearance'), appearanceFieldset(),
    h('p', { class: 'hint' }, t('settings.home_screen')));
}

function accountSection() {
  const err = errorBox();
  const pin = S.me.kind === 'pin';
  const k = (ifPin, ifPassword) => t(pin ? ifPin : ifPassword);
  const form = h('form', { class: 'stack' },
    field(k('settings.current_pin', 'settings.current_password'), { name: 'old', type: 'password', required: true, autocomplete: 'current-password', inputmode: pin ? 'numeric' : null }),
    field(k('settings.new_pin', 'settings.new_password'), pin
      ? { name: 'new', type: 'password', required: true, inputmode: 'numeric', pattern: '[0-9]{4,8}', 'data-mismatch': pinWords(), autocomplete: 'new-password' }
      : { name: 'new', type: 'password', required: true, minlength: '8', autocomplete: 'new-password' },
    pin ? t('settings.pin_hint') : t('settings.password_hint')),
    err,
    h('button', { type: 'submit', class: 'primary' }, k('settings.change_pin', 'settings.change_password')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    try {
      await api('POST', '/api/me/password', { old: v.old, new: v.new });
      form.reset();
      showError(err, null);
      toast(k('settings.changed_pin', 'settings.changed_password'));
    } catch (ex) {
      showError(err, ex.status === 401 ? new Error(k('settings.not_right_pin', 'settings.not_right_password')) : ex);
    }
  });
  return section(t('settings.you', { name: S.me.name }),
    h('div', { class: 'row between wrap' },
      h('p', {}, t({ owner: 'settings.you_owner', child: 'settings.you_child' }[S.me.role] || 'settings.you_member')),
      h('button', { type: 'button', class: 'ghost', id: 'logout', onclick: logout }, t('settings.log_out'))),
    h('details', {}, h('summary', {}, k('settings.change_pin', 'settings.change_password')), form));
}

function conversationsSection() {
  return section(t('shell.your_chats'),
    h('p', {}, t('settings.chats_intro')),
    h('div', { class: 'row wrap' },
      h('a', { class: 'button ghost', href: '/api/export?format=json', download: 'hearth-chats.json' }, t('settings.download_json')),
      h('a', { class: 'button ghost', href: '/api/export?format=markdown', download: 'hearth-chats.md' }, t('settings.download_text')),
      h('button', {
        type: 'button', class: 'danger',
        onclick: async () => {
          const v = await ask({ title: t('settings.delete_all_title'), text: t('settings.delete_all_text'), ok: t('settings.delete_all_ok'), danger: true });
          if (!v) return;
          try { await api('DELETE', '/api/conversations'); toast(t('settings.deleted_all')); loadList(); } catch (e) { toast(e.message); }
        },
      }, t('settings.delete_all'))));
}

/** Fills a keeper's tab (`slot.dataset.tab`) from the household settings. */
async function loadOwnerSettings(slot) {
  const tab = slot.dataset.tab;
  slot.replaceChildren(h('p', {}, t('settings.loading')));
  let s;
  try { s = await api('GET', '/api/settings'); } catch (e) { slot.replaceChildren(h('p', { class: 'error' }, e.message)); return; }
  if (tab === 'household') slot.replaceChildren(householdSection(s), peopleSection());
  else if (tab === 'model') slot.replaceChildren(lockSection(slot), modelSection(s, slot));
  else if (tab === 'assistant') slot.replaceChildren(...assistantSettings(section));
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
      btn.textContent = t('lock.accepting');
      try {
        await api('POST', '/api/lock/accept', { model });
        toast(t('lock.accepted', { model }));
      } catch (e) { toast(e.message); }
      loadOwnerSettings(slot);
    };
    const items = pending.map((p) => {
      if (p.error) return h('li', {}, h('div', {}, h('strong', {}, p.model), ' ', h('span', { class: 'error' }, p.error)));
      const btn = h('button', { type: 'button', class: 'small primary', onclick: () => accept(p.model, btn) }, t('lock.accept'));
      return h('li', {},
        h('div', {}, h('strong', {}, p.model),
          h('ul', {}, ...p.changes.map((c) => h('li', {}, t('lock.change', { what: c.what, locked: c.locked, now: c.now }))))),
        btn);
    });
    box.replaceChildren(section(t('lock.title'),
      h('p', {}, t('lock.intro')),
      h('ul', { class: 'rows' }, ...items)));
  })();
  return box;
}

function householdSection(s) {
  const err = errorBox();
  const form = h('form', { class: 'row wrap end-items' },
    field(t('settings.household_name'), { name: 'household', value: s.household || '', required: true }),
    h('button', { type: 'submit', class: 'primary' }, t('common.save')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = new FormData(form).get('household').trim();
    try {
      await api('PUT', '/api/settings', { household: name });
      S.state.household = name;
      document.querySelector('.brand').lastChild.textContent = name;
      showError(err, null);
      toast(t('common.saved'));
    } catch (ex) { showError(err, ex); }
  });
  return section(t('settings.tab_household'), form, err);
}

function peopleSection() {
  const listEl = h('ul', { class: 'rows', id: 'people' });
  const load = async () => {
    let people;
    try { people = await api('GET', '/api/people'); } catch (e) { listEl.replaceChildren(h('li', { class: 'error' }, e.message)); return; }
    listEl.replaceChildren(...people.map((p) => h('li', {},
      h('div', {}, h('strong', {}, p.name), ' ',
        h('span', { class: 'muted' }, t('people.row', {
          role: t({ owner: 'people.owner', child: 'people.child' }[p.role] || 'people.member'),
          how: t(p.kind === 'pin' ? 'people.with_pin' : 'people.with_password'),
        }))),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'small ghost', onclick: () => resetPerson(p) }, t('people.reset')),
        p.id !== S.me.id ? h('button', { type: 'button', class: 'small danger', onclick: () => removePerson(p) }, t('people.remove')) : null),
      p.role === 'child' ? childControls(p, load) : null)));
  };
  const resetPerson = async (p) => {
    const pin = p.kind === 'pin';
    const v = await ask({
      title: t(pin ? 'people.reset_title_pin' : 'people.reset_title_password', { name: p.name }),
      fields: [{ name: 'secret', label: t(pin ? 'people.reset_label_pin' : 'people.reset_label_password'), input: pin ? { type: 'text', inputmode: 'numeric', pattern: '[0-9]{4,8}', 'data-mismatch': pinWords(), required: true, autocomplete: 'off' } : { type: 'text', minlength: '8', required: true, autocomplete: 'off' } }],
      ok: t('people.reset_ok'),
    });
    if (!v) return;
    try {
      await api('POST', `/api/people/${p.id}/reset`, pin ? { pin: v.secret } : { password: v.secret });
      toast(t(pin ? 'people.reset_done_pin' : 'people.reset_done_password', { name: p.name }));
    } catch (e) { toast(e.message); }
  };
  const removePerson = async (p) => {
    const v = await ask({ title: t('people.remove_title', { name: p.name }), text: t('people.remove_text', { name: p.name }), ok: t('people.remove'), danger: true });
    if (!v) return;
    try { await api('DELETE', `/api/people/${p.id}`); toast(t('people.removed', { name: p.name })); load(); } catch (e) { toast(e.message); }
  };
  const err = errorBox();
  const secretHint = h('p', { class: 'hint', id: 'add-secret-hint' }, t('settings.password_hint'));
  const secret = h('input', { type: 'text', id: 'add-secret', name: 'secret', required: true, autocomplete: 'off', minlength: '8', 'aria-describedby': 'add-secret-hint' });
  const secretLabel = h('label', { for: 'add-secret' }, t('people.password'));
  const setKind = (kind) => {
    const pin = kind === 'pin';
    secretLabel.textContent = pin ? t('people.pin') : t('people.password');
    secretHint.textContent = pin ? t('people.pin_hint') : t('settings.password_hint');
    if (pin) { secret.setAttribute('pattern', '[0-9]{4,8}'); secret.setAttribute('inputmode', 'numeric'); secret.dataset.mismatch = pinWords(); secret.removeAttribute('minlength'); } else { secret.removeAttribute('pattern'); secret.removeAttribute('inputmode'); secret.setAttribute('minlength', '8'); }
  };
  const radio = (value, label, checked) => {
    const id = nextId('k');
    return h('span', { class: 'choice' },
      h('input', { type: 'radio', name: 'kind', id, value, checked, onchange: () => setKind(value) }),
      h('label', { for: id }, label));
  };
  const form = h('form', { class: 'stack', id: 'add-person' },
    h('h3', {}, t('people.add_title')),
    field(t('people.name'), { name: 'name', id: 'add-name', required: true, autocomplete: 'off' }),
    roleChoice(() => form),
    h('fieldset', {}, h('legend', {}, t('people.how')),
      radio('password', t('people.how_password'), true), radio('pin', t('people.how_pin'), false)),
    h('div', { class: 'field' }, secretLabel, secret, secretHint),
    err,
    h('button', { type: 'submit', class: 'primary' }, t('people.add')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    const body = { name: v.name.trim(), role: v.role || 'member' };
    body[v.kind === 'pin' ? 'pin' : 'password'] = v.secret;
    try {
      await api('POST', '/api/people', body);
      toast(t('people.added', { name: body.name }));
      form.reset();
      setKind('password');
      showError(err, null);
      load();
    } catch (ex) { showError(err, ex); }
  });
  load();
  return section(t('people.title'), h('p', {}, t('people.intro')), listEl, form);
}

function modelSection(s, slot) {
  const model = s.model || {};
  const useModel = async (name, btn) => {
    // Loading a model takes a few seconds (longer for a large one); replies being written
    // finish on the model that began them.
    for (const b of document.querySelectorAll('#installed button')) b.disabled = true;
    btn.textContent = t('model.loading');
    try {
      await api('POST', '/api/models/use', { name });
      toast(t('model.now_uses', { name }));
    } catch (e) { toast(e.message); }
    loadOwnerSettings(slot);
  };
  const installed = (s.installed || []).map((m) => {
    if (m.name === model.id) {
      return h('li', {},
        h('div', {}, h('strong', {}, m.name), ' ', h('span', { class: 'muted' }, bytes(m.size))),
        h('span', { class: 'pill' }, t('model.in_use_pill')));
    }
    if (m.chat === false) {
      return h('li', {},
        h('div', {}, h('strong', {}, m.name), ' ', h('span', { class: 'muted' }, bytes(m.size)),
          h('p', { class: 'muted' }, t('model.text_only'))));
    }
    const note = modelNote(adviceFor(s.advice, m.name));
    // The visible word is part of the name a screen reader gives (WCAG's label in name).
    const btn = h('button', { type: 'button', class: 'small ghost' }, t('model.use'), h('span', { class: 'sr-only' }, ` ${m.name}`));
    btn.addEventListener('click', () => useModel(m.name, btn));
    return h('li', {},
      h('div', {}, h('strong', {}, m.name), ' ', h('span', { class: 'muted' }, bytes(m.size)), note),
      btn);
  });
  const catalog = (s.catalog || []).filter((c) => !c.installed).map((c) => {
    const bar = h('progress', { max: '1', hidden: true, 'aria-label': t('model.downloading', { name: c.name }) });
    const label = h('span', { class: 'muted', 'aria-live': 'polite' });
    const btn = h('button', { type: 'button', class: 'small ghost' }, t('model.download'));
    btn.addEventListener('click', () => pull(c.name, btn, bar, label, slot));
    return h('li', {},
      h('div', {}, h('strong', {}, c.name), ' ', h('span', { class: 'muted' }, bytes(c.size)),
        c.description ? h('p', { class: 'muted' }, c.description) : null,
        modelNote(adviceFor(s.advice, c.name) || (c.chat === false ? { chat: false } : null)), bar, label),
      btn);
  });
  return section(t('settings.tab_model'),
    h('p', {}, t('model.in_use'), h('strong', {}, model.id || t('model.none_in_use')), model.ctx ? t('model.keeps', { words: words(model.ctx) }) : ''),
    model.ctx ? details(t('model.context', { count: model.ctx })) : null,
    h('h3', {}, t('model.recommended')),
    adviceBlock(s.advice),
    h('h3', {}, t('model.here')),
    h('ul', { class: 'rows', id: 'installed' }, installed.length ? installed : h('li', {}, t('model.none'))),
    catalog.length ? [h('h3', {}, t('model.more')), h('ul', { class: 'rows', id: 'catalog' }, catalog)] : null,
    h('h3', {}, t('model.needs')),
    planSentences(s.plan, model, adviceFor(s.advice, model.id), details));
}

async function pull(name, btn, bar, label, slot) {
  btn.disabled = true;
  bar.hidden = false;
  bar.removeAttribute('value');
  label.textContent = t('model.starting');
  let failed = null;
  try {
    const r = await fetch('/api/models/pull', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': S.csrf || '' },
      body: JSON.stringify({ name }),
    });
    if (!r.ok) {
      let msg = t('model.failed_status', { status: r.status });
      try { msg = (await r.json()).error.message; } catch { /* keep the generic words */ }
      throw new Error(msg);
    }
    let finished = false;
    await readEvents(r, (ev, d) => {
      if (ev === 'progress' && d) {
        if (d.total) { bar.max = d.total; bar.value = d.done; label.textContent = t('model.progress', { done: bytes(d.done), total: bytes(d.total) }); } else label.textContent = `${bytes(d.done)}`;
      } else if (ev === 'done') finished = true;
      else if (ev === 'error') failed = new Error((d && d.message) || t('model.failed'));
    });
    if (!failed && !finished) failed = new Error(t('model.stopped'));
  } catch (e) { failed = e; }
  if (failed) {
    label.textContent = failed.message;
    bar.hidden = true;
    btn.disabled = false;
    btn.textContent = t('common.try_again');
    return;
  }
  toast(t('model.downloaded', { name }));
  loadOwnerSettings(slot);
}

function keysSection() {
  const listEl = h('ul', { class: 'rows', id: 'keys' });
  const shown = h('div', { 'aria-live': 'polite' });
  const load = async () => {
    let keys;
    try { keys = await api('GET', '/api/keys'); } catch (e) { listEl.replaceChildren(h('li', { class: 'error' }, e.message)); return; }
    if (!keys.length) { listEl.replaceChildren(h('li', { class: 'muted' }, t('keys.none'))); return; }
    listEl.replaceChildren(...keys.map((k) => h('li', {},
      h('div', {}, h('strong', {}, k.name), ' ',
        h('span', { class: 'muted' }, t('keys.row', { made: when(k.created), used: k.last_used ? t('keys.last_used', { when: when(k.last_used) }) : t('keys.never_used') }))),
      h('button', {
        type: 'button', class: 'small danger',
        onclick: async () => {
          const v = await ask({ title: t('keys.revoke_title', { name: k.name }), text: t('keys.revoke_text'), ok: t('keys.revoke'), danger: true });
          if (!v) return;
          try { await api('DELETE', `/api/keys/${k.id}`); toast(t('keys.revoked')); load(); } catch (e) { toast(e.message); }
        },
      }, t('keys.revoke')))));
  };
  const err = errorBox();
  const form = h('form', { class: 'row wrap end-items' },
    field(t('keys.app_name'), { name: 'name', required: true, autocomplete: 'off', placeholder: t('keys.app_example') }),
    h('button', { type: 'submit', class: 'primary' }, t('keys.create')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = new FormData(form).get('name').trim();
    try {
      const k = await api('POST', '/api/keys', { name });
      form.reset();
      showError(err, null);
      shown.replaceChildren(h('div', { class: 'notice' },
        h('p', {}, t('keys.shown', { name: k.name })),
        h('div', { class: 'row wrap' }, h('code', { class: 'key', id: 'new-key' }, k.key), copyButton(() => k.key, t('keys.copy')))));
      load();
    } catch (ex) { showError(err, ex); }
  });
  load();
  return section(t('keys.title'),
    h('p', {}, t('keys.intro')),
    details(h('span', {}, t('keys.api', { address: `${location.origin}/v1` }))),
    form, err, shown, listEl);
}
