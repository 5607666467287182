// The app shell: header, conversation list, main area.

import { S, api } from './api.js';
import { openConversation } from './chat.js';
import { app, h, toast, when } from './dom.js';
import { restingView } from './family.js';
import { openSettings } from './settings.js';

export function enterApp() {
  // A child outside their hours sees only when they can come back (the server refuses the rest).
  if (S.me && S.me.resting) { app().className = ''; app().replaceChildren(restingView(S.me)); return; }
  const listBtn = h('button', {
    type: 'button', class: 'ghost only-narrow', id: 'list-toggle', 'aria-controls': 'side', 'aria-expanded': 'false',
    onclick: () => setListOpen(!S.listOpen),
  }, 'Chats');
  const search = h('input', { type: 'search', id: 'search', placeholder: 'Search chats', autocomplete: 'off' });
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
        h('button', { type: 'button', class: 'ghost only-narrow', id: 'new-chat-top', onclick: () => openConversation(null) }, 'New chat'),
        h('button', { type: 'button', class: 'ghost', id: 'settings-btn', onclick: () => openSettings() }, 'Settings'))),
    h('nav', { class: 'side', id: 'side', 'aria-label': 'Your chats' },
      h('button', { type: 'button', class: 'primary wide', id: 'new-chat', onclick: () => openConversation(null) }, '+ New chat'),
      h('div', { class: 'field' }, h('label', { for: 'search', class: 'sr-only' }, 'Search your chats'), search),
      h('ul', { class: 'convs', id: 'convs' })),
    h('main', { id: 'main', class: 'main', tabindex: '-1' }));
  app().className = '';
  app().replaceChildren(shell);
  loadList();
  const m = /^#\/c\/(\d+)$/.exec(location.hash);
  if (m) openConversation(Number(m[1]));
  else if (location.hash === '#/settings') openSettings();
  else openConversation(null);
}

export function setListOpen(open) {
  S.listOpen = open;
  document.body.classList.toggle('list-open', open);
  const b = document.getElementById('list-toggle');
  if (b) {
    b.setAttribute('aria-expanded', String(open));
    b.textContent = open ? 'Close chats' : 'Chats';
  }
  if (open) document.getElementById('new-chat')?.focus();
}

export async function loadList() {
  try {
    const q = S.query ? `?q=${encodeURIComponent(S.query)}` : '';
    S.convs = await api('GET', `/api/conversations${q}`);
  } catch (e) {
    if (e.status !== 401) toast(e.message);
    return;
  }
  renderList();
}

export function renderList() {
  const ul = document.getElementById('convs');
  if (!ul) return;
  const current = S.view === 'chat' && S.conv ? S.conv.id : null;
  if (!S.convs.length) {
    ul.replaceChildren(h('li', { class: 'empty' }, S.query ? 'No chats match your search.' : 'Your chats will appear here.'));
    return;
  }
  ul.replaceChildren(...S.convs.map((c) => h('li', {},
    h('button', {
      type: 'button', class: 'conv', 'aria-current': c.id === current ? 'page' : null, 'data-id': c.id,
      onclick: () => openConversation(c.id),
    },
    h('span', { class: 'title' }, c.title || 'New chat'),
    c.preview ? h('span', { class: 'preview' }, c.preview) : null,
    h('span', { class: 'when' }, when(c.updated))))));
}

// Escape closes the chat list drawer on a phone and gives focus back to its button.
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && S.listOpen && !document.querySelector('dialog[open]')) {
    setListOpen(false);
    document.getElementById('list-toggle')?.focus();
  }
});
