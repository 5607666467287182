// Start-up, first run (setup) and login.

import { S, api } from './api.js';
import { stopFollowing } from './chat.js';
import { app, errorBox, field, h, plural, showError } from './dom.js';
import { enterApp } from './shell.js';

export async function boot() {
  try {
    S.state = await api('GET', '/api/state');
  } catch (e) {
    app().replaceChildren(h('main', { class: 'card narrow', id: 'main' },
      h('h1', {}, 'Hearth'), h('p', { class: 'error', role: 'alert' }, e.message),
      h('button', { type: 'button', class: 'primary', onclick: () => location.reload() }, 'Try again')));
    return;
  }
  S.csrf = S.state.csrf;
  S.me = S.state.me;
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
    field('What should we call your household?', { name: 'household', required: true, autocomplete: 'off', placeholder: 'The Garcia family' }),
    field('Your name', { name: 'name', required: true, autocomplete: 'username' }),
    field('Choose a password', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: '8' },
      'At least 8 characters. You will use it to log in and to look after Hearth.'),
    field('Type the password again', { name: 'confirm', type: 'password', required: true, autocomplete: 'new-password' }),
    S.state.setup_code_required
      ? field('Setup code', { name: 'setup_code', required: true, autocomplete: 'one-time-code', inputmode: 'numeric', value: setupCodeFromLink() },
        'Hearth printed this code in the window where it was started (the link it printed fills it in). It proves you are the one setting it up.')
      : null,
    err,
    h('button', { type: 'submit', class: 'primary' }, 'Create my household'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    if (v.password !== v.confirm) { showError(err, new Error('The two passwords are not the same.')); return; }
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
      enterApp();
    } catch (ex) {
      showError(err, ex);
      btn.disabled = false;
    }
  });
  app().replaceChildren(h('main', { class: 'card narrow', id: 'main' },
    h('h1', { id: 'setup-title' }, 'Welcome to Hearth'),
    h('p', {}, 'Hearth is an assistant that lives on this computer, so what your family says to it stays at home. First, name your household and create your own account. You will be able to add everyone else afterwards.'),
    form));
  form.querySelector('input').focus();
}

function renderLogin(notice) {
  // A notice meant for whoever was logged in does not stay for the next person.
  document.getElementById('toast').classList.remove('show');
  const err = errorBox();
  const form = h('form', { class: 'stack', 'aria-labelledby': 'login-title' },
    field('Your name', { name: 'name', required: true, autocomplete: 'username', autocapitalize: 'words' }),
    field('Password or PIN', { name: 'secret', type: 'password', required: true, autocomplete: 'current-password' }),
    err,
    h('button', { type: 'submit', class: 'primary' }, 'Log in'));
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
      enterApp();
    } catch (ex) {
      if (ex.status === 429) {
        const wait = parseInt(ex.retryAfter, 10);
        showError(err, new Error(`Too many tries. Please wait${wait ? ` ${plural(wait, 'second', 'seconds')}` : ' a little'} and try again.`));
      } else if (ex.status === 401) {
        showError(err, new Error("That name and password or PIN don't match. Please try again."));
      } else showError(err, ex);
      btn.disabled = false;
    }
  });
  const household = S.state && S.state.household;
  app().replaceChildren(h('main', { class: 'card narrow', id: 'main' },
    h('h1', { id: 'login-title' }, household ? `${household} · Hearth` : 'Hearth'),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    h('p', {}, 'Log in to talk with Hearth. Your conversations are yours alone.'),
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
  renderLogin('You are logged out.');
}

export function sessionLost() {
  stopFollowing();
  S.me = null;
  S.conv = null;
  renderLogin('You have been logged out. Please log in again.');
}
