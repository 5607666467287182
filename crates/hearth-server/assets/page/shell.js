// The app shell: header, conversation list, main area, and the page's addresses.
//
// Addresses: `/` is a new chat, `/c/{id}` a chat, `/settings/{tab}` a Settings tab. Opening a
// screen pushes its address, so the browser's Back and Forward move between Hearth's screens
// (and a reload or a bookmark opens the same one); the server serves the page at each of them.
// The fragment is left to the skip link and the setup link.

import { S, api } from './api.js';
import { openConversation, stopFollowing } from './chat.js';
import { app, h, toast, when } from './dom.js';
import { restingView } from './family.js';
import { t } from './i18n.js';
import { openSettings } from './settings.js';
import { loadTools, renderNotes, startReminders } from './assistant.js';

/** The screen the address bar names. (`#/c/12` and `#/settings` are older bookmarks.) */
export function currentRoute() {
  const legacy = /^#\/c\/(\d+)$/.exec(location.hash);
  if (legacy) return { view: 'chat', id: Number(legacy[1]) };
  if (location.hash === '#/settings') return { view: 'settings', tab: null };
  let m;
  if ((m = /^\/c\/(\d+)\/?$/.exec(location.pathname))) return { view: 'chat', id: Number(m[1]) };
  if ((m = /^\/settings(?:\/([a-z-]+))?\/?$/.exec(location.pathname))) return { view: 'settings', tab: m[1] || null };
  if (/^\/notes\/?$/.test(location.pathname)) return { view: 'notes' };
  return { view: 'chat', id: null };
}

/** Puts `path` in the address bar: a new history entry when `push`, else in place. */
export function setUrl(path, push) {
  const same = location.pathname === path && !location.hash;
  if (push && !same) history.pushState(null, '', path);
  else if (!same) history.replaceState(null, '', path);
  S.shownPath = path;
}

function showRoute(r, how) {
  if (r.view === 'settings') openSettings(r.tab, how);
  else if (r.view === 'notes') openNotes(how);
  else openConversation(r.id, how);
}

/** The person's notes and lists, at `/notes`. */
export function openNotes({ push = true } = {}) {
  stopFollowing();
  S.view = 'notes';
  S.conv = null;
  setListOpen(false);
  setUrl('/notes', push);
  renderList();
  const main = document.getElementById('main');
  renderNotes(main).then(() => document.getElementById('notes-title')?.focus());
}

// Back and Forward: show the screen of that entry, without adding one.
window.addEventListener('popstate', () => {
  if (!S.me || !document.getElementById('main')) return;
  if (location.pathname === S.shownPath) return; // only the fragment changed
  showRoute(currentRoute(), { push: false, focus: true });
});

export function enterApp() {
  // A child outside their hours sees only when they can come back (the server refuses the rest).
  if (S.me && S.me.resting) { app().className = ''; app().replaceChildren(restingView(S.me)); return; }
  const listBtn = h('button', {
    type: 'button', class: 'ghost only-narrow', id: 'list-toggle', 'aria-controls': 'side', 'aria-expanded': 'false',
    onclick: () => setListOpen(!S.listOpen),
  }, t('shell.chats'));
  const search = h('input', { type: 'search', id: 'search', placeholder: t('shell.search'), autocomplete: 'off', dir: 'auto' });
  let timer;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { S.query = search.value.trim(); loadList(); }, 250);
  });
  const shell = h('div', { class: 'shell' },
    h('header', { class: 'top' },
      listBtn,
      h('p', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), h('span', { class: 'name' }, S.state.household || 'Hearth')),
      h('div', { class: 'row tools' },
        h('button', { type: 'button', class: 'ghost only-narrow', id: 'new-chat-top', onclick: () => openConversation(null) }, t('chat.new')),
        h('button', { type: 'button', class: 'ghost', id: 'notes-btn', onclick: () => openNotes() }, t('notes.title')),
        h('button', { type: 'button', class: 'ghost', id: 'settings-btn', onclick: () => openSettings() }, t('settings.title')))),
    h('nav', { class: 'side', id: 'side', 'aria-label': t('shell.your_chats') },
      h('button', { type: 'button', class: 'primary wide', id: 'new-chat', onclick: () => openConversation(null) }, t('shell.new_chat')),
      h('div', { class: 'field' }, h('label', { for: 'search', class: 'sr-only' }, t('shell.search_label')), search),
      h('ul', { class: 'convs', id: 'convs' })),
    h('main', { id: 'main', class: 'main', tabindex: '-1' }),
    // Out of the grid's flow (fixed), so it never moves the chat; a landmark of its own.
    h('aside', { id: 'reminders', class: 'reminders', 'aria-label': t('reminders.title'), 'aria-live': 'polite' }));
  app().className = '';
  app().replaceChildren(shell);
  loadList();
  startReminders();
  const r = currentRoute();
  // The tools decide which actions the chat offers: known before a chat is drawn.
  loadTools().then(() => { if (S.view === 'chat' && S.conv) openConversation(S.conv.id, { push: false }); });
  // Old `#/...` bookmarks become the address of their screen.
  if (location.hash.startsWith('#/')) history.replaceState(null, '', '/');
  showRoute(r, { push: false });
}

export function setListOpen(open) {
  S.listOpen = open;
  document.body.classList.toggle('list-open', open);
  const b = document.getElementById('list-toggle');
  if (b) {
    b.setAttribute('aria-expanded', String(open));
    b.textContent = open ? t('shell.close_chats') : t('shell.chats');
  }
  updateTopBar();
  if (open) document.getElementById('new-chat')?.focus();
}

/** The phone's header offers "New chat" only where it is not already in sight: not on a new
 * chat (its heading says so) and not with the list open (which has its own button). */
export function updateTopBar() {
  const b = document.getElementById('new-chat-top');
  if (b) b.hidden = S.listOpen || (S.view === 'chat' && !S.conv);
}

let listTimer = null;

export async function loadList() {
  try {
    const q = S.query ? `?q=${encodeURIComponent(S.query)}` : '';
    S.convs = await api('GET', `/api/conversations${q}`);
  } catch (e) {
    if (e.status !== 401) toast(e.message);
    return;
  }
  renderList();
  // A reply being written in another chat than the open one (another tab, a reply left
  // running): look again until it ends, so the list does not keep saying it is writing.
  clearTimeout(listTimer);
  if (S.convs.some((c) => c.running && c.id !== S.following)) listTimer = setTimeout(() => { if (S.me) loadList(); }, 3000);
}

export function renderList() {
  const ul = document.getElementById('convs');
  if (!ul) return;
  const current = S.view === 'chat' && S.conv ? S.conv.id : null;
  if (!S.convs.length) {
    ul.replaceChildren(h('li', { class: 'empty' }, S.query ? t('shell.no_match') : t('shell.empty')));
    return;
  }
  ul.replaceChildren(...S.convs.map((c) => h('li', {},
    h('button', {
      type: 'button', class: 'conv', 'aria-current': c.id === current ? 'page' : null, 'data-id': c.id,
      onclick: () => openConversation(c.id, { focus: true }),
    },
    h('span', { class: 'title', dir: 'auto' }, c.title || t('chat.new')),
    c.running
      ? h('span', { class: 'writing' }, t('shell.writing'))
      : (c.preview ? h('span', { class: 'preview', dir: 'auto' }, c.preview) : null),
    h('span', { class: 'when' }, when(c.updated))))));
}

// Escape closes the chat list drawer on a phone and gives focus back to its button.
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && S.listOpen && !document.querySelector('dialog[open]')) {
    setListOpen(false);
    document.getElementById('list-toggle')?.focus();
  }
});

// The skip link moves focus to the conversation without touching the address, so a reload
// after using it opens the same chat.
document.addEventListener('click', (e) => {
  const skip = e.target.closest && e.target.closest('a.skip');
  if (!skip) return;
  e.preventDefault();
  const target = document.getElementById('composer-input') || document.getElementById('main');
  if (target) target.focus();
});
