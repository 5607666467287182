// Light and dark: the device's preference by default, or the person's choice on this device
// (kept in this browser, like the device's own setting). The styles read `data-theme` on <html>.

import { h, nextId } from './dom.js';
import { t } from './i18n.js';

const KEY = 'hearth-theme';

export function themeChoice() {
  try { return localStorage.getItem(KEY) || 'system'; } catch { return 'system'; }
}

export function applyTheme(choice = themeChoice()) {
  const root = document.documentElement;
  if (choice === 'light' || choice === 'dark') root.dataset.theme = choice;
  else delete root.dataset.theme;
}

function setTheme(choice) {
  try {
    if (choice === 'system') localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, choice);
  } catch { /* private browsing: the choice lasts until the page closes */ }
  applyTheme(choice);
}

/** The "Appearance" choice for Settings. */
export function appearanceFieldset() {
  const now = themeChoice();
  const radio = (value, label) => {
    const id = nextId('t');
    return h('span', { class: 'choice' },
      h('input', { type: 'radio', name: 'theme', id, value, checked: now === value, onchange: () => setTheme(value) }),
      h('label', { for: id }, label));
  };
  return h('fieldset', {},
    h('legend', {}, t('theme.legend')),
    radio('system', t('theme.system')),
    radio('light', t('theme.light')),
    radio('dark', t('theme.dark')));
}
