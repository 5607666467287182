// Start-up, first run (setup) and login.

import { S, aboutWait, api } from './api.js';
import { stopFollowing } from './chat.js';
import { app, errorBox, field, h, showError } from './dom.js';
import { t, useLanguage } from './i18n.js';
import { enterApp } from './shell.js';

export async function boot() {
  try {
    S.state = await api('GET', '/api/state');
  } catch (e) {
    app().replaceChildren(h('main', { class: 'card narrow', id: 'main' },
      h('h1', {}, 'Hearth'), h('p', { class: 'error', role: 'alert' }, e.message),
      h('button', { type: 'button', class: 'primary', onclick: () => location.reload() }, t('common.try_again'))));
    return;
  }
  S.csrf = S.state.csrf;
  S.me = S.state.me;
  useLanguage(S.me && S.me.language);
  if (S.state.setup_needed) renderSetup();
  else if (!S.me) renderLogin();
  else enterApp();
}

/** The setup code from the link Hearth prints (`#setup=123456`): in the fragment, so it never
 * reaches a server log or another site's Referer. */
function setupCodeFromLink() {
  const m = /(?:^#|&)setup=(\d{6})(?:&|$)/.exec(location.hash);
  return m ? m[1] : '';
}

function renderSetup() {
  const err = errorBox();
  const form = h('form', { class: 'stack', 'aria-labelledby': 'setup-title' },
    field(t('setup.household'), { name: 'household', required: true, autocomplete: 'off', placeholder: t('setup.household_example') }),
    field(t('login.name'), { name: 'name', required: true, autocomplete: 'username' }),
    field(t('setup.password'), { name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: '8' },
      t('setup.password_hint')),
    field(t('setup.confirm'), { name: 'confirm', type: 'password', required: true, autocomplete: 'new-password' }),
    S.state.setup_code_required
      ? field(t('setup.code'), { name: 'setup_code', required: true, autocomplete: 'one-time-code', inputmode: 'numeric', value: setupCodeFromLink() },
        t('setup.code_hint'))
      : null,
    err,
    h('button', { type: 'submit', class: 'primary' }, t('setup.create')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    if (v.password !== v.confirm) { showError(err, new Error(t('setup.mismatch'))); return; }
    const body = { household: v.household.trim(), name: v.name.trim(), password: v.password };
    if (v.setup_code != null) body.setup_code = v.setup_code.trim();
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      const r = await api('POST', '/api/setup', body);
      if (location.hash) history.replaceState(null, '', location.pathname + location.search);
      S.me = r.me;
      S.csrf = r.csrf;
      S.state = await api('GET', '/api/state');
      S.csrf = S.state.csrf || S.csrf;
      useLanguage(S.me && S.me.language);
      enterApp();
    } catch (ex) {
      showError(err, ex);
      btn.disabled = false;
    }
  });
  app().replaceChildren(h('main', { class: 'card narrow', id: 'main' },
    h('h1', { id: 'setup-title' }, t('setup.title')),
    h('p', {}, t('setup.intro')),
    form));
  form.querySelector('input').focus();
}

/** Whether this device's login shows a number pad (a child's tablet with a PIN); remembered
 * here, since the page cannot know who will log in before they do. */
function pinPad(set) {
  if (set === undefined) {
    try { return localStorage.getItem('hearth-login-pin') === '1'; } catch { return false; }
  }
  try { if (set) localStorage.setItem('hearth-login-pin', '1'); else localStorage.removeItem('hearth-login-pin'); } catch { /* not kept */ }
  const input = document.getElementById('login-secret');
  if (input) {
    if (set) input.setAttribute('inputmode', 'numeric'); else input.removeAttribute('inputmode');
  }
  return set;
}

/** The login screen; `notice` is the key of a message to show above it. */
function renderLogin(notice) {
  // A notice meant for whoever was logged in does not stay for the next person.
  document.getElementById('toast').classList.remove('show');
  // The next person to log in gets the browser's language until the server says theirs.
  useLanguage(null);
  const err = errorBox();
  const form = h('form', { class: 'stack', 'aria-labelledby': 'login-title' },
    field(t('login.name'), { name: 'name', required: true, autocomplete: 'username', autocapitalize: 'words' }),
    field(t('login.secret'), { name: 'secret', id: 'login-secret', type: 'password', required: true, autocomplete: 'current-password', inputmode: pinPad() ? 'numeric' : null }),
    h('div', { class: 'choice' },
      h('input', { type: 'checkbox', id: 'login-pin', checked: pinPad(), onchange: (e) => pinPad(e.target.checked) }),
      h('label', { for: 'login-pin' }, t('login.pin_pad'))),
    err,
    h('button', { type: 'submit', class: 'primary' }, t('login.submit')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      const r = await api('POST', '/api/login', { name: v.name.trim(), secret: v.secret });
      S.me = r.me;
      S.csrf = r.csrf;
      S.state = await api('GET', '/api/state');
      S.csrf = S.state.csrf || S.csrf;
      useLanguage(S.me && S.me.language);
      enterApp();
    } catch (ex) {
      if (ex.status === 429) {
        showError(err, new Error(t('login.locked', { wait: aboutWait(ex.retryAfter) })));
      } else if (ex.status === 401 && ex.code === 'last_try') {
        showError(err, new Error(t('login.last_try', { wait: aboutWait(900) })));
      } else if (ex.status === 401 && ex.code === 'locked_now') {
        showError(err, new Error(t('login.locked_now', { wait: aboutWait(900) })));
      } else if (ex.status === 401) {
        showError(err, new Error(t('login.wrong')));
      } else showError(err, ex);
      btn.disabled = false;
    }
  });
  const household = S.state && S.state.household;
  app().replaceChildren(h('main', { class: 'card narrow', id: 'main' },
    h('h1', { id: 'login-title' }, household ? `${household} · Hearth` : 'Hearth'),
    notice ? h('p', { class: 'notice', role: 'status' }, t(notice)) : null,
    h('p', {}, t('login.intro')),
    form));
  form.querySelector('input').focus();
}

export async function logout() {
  try { await api('POST', '/api/logout'); } catch { /* the session is gone either way */ }
  stopFollowing();
  S.me = null;
  S.conv = null;
  S.convs = [];
  S.csrf = null;
  history.replaceState(null, '', '/');
  try { S.state = await api('GET', '/api/state'); } catch { /* keep the old state */ }
  renderLogin('login.logged_out');
}

export function sessionLost() {
  stopFollowing();
  S.me = null;
  S.conv = null;
  renderLogin('login.session_lost');
}
