// Versions of a message: editing one of the person's messages, or trying another answer, keeps
// what was there as another branch, and "‹ 2 of 3 ›" moves between the versions. The server
// keeps which branch is in view; below a version it shows the newest continuation written there.

import { S, api } from './api.js';
import { h, toast } from './dom.js';
import { t } from './i18n.js';

/** Every version of message `m` in the open chat, oldest first; null when it has only one. */
function versionsOf(m) {
  const all = (S.conv && S.conv.versions) || [];
  const v = all.find((x) => x.message === m.id);
  return v && v.ids.length > 1 ? v.ids : null;
}

/** The "‹ 2 of 3 ›" controls for message `m`, or null when it has one version. `busy`: a reply
 * is being written, and the branch in view cannot change under it. `shown(conv)` gets the chat
 * as the server reads it after a switch. */
export function versionControls(m, { busy, shown }) {
  const ids = versionsOf(m);
  if (!ids) return null;
  const at = ids.indexOf(m.id);
  const go = (to, side) => async () => {
    if (!S.conv || to == null) return;
    const convId = S.conv.id;
    let conv;
    try {
      conv = await api('POST', `/api/conversations/${convId}/branch`, { message_id: to });
    } catch (e) {
      if (e.status !== 401) toast(e.message);
      return;
    }
    if (!S.conv || S.conv.id !== convId) return;
    shown(conv);
    // Keyboard focus stays on the controls: the same side, or the other once this side has
    // no more versions.
    const group = document.querySelector(`.msg[data-id="${to}"] .versions`);
    const buttons = group ? [...group.querySelectorAll('button')] : [];
    const next = buttons.find((b) => b.dataset.side === side && !b.disabled) || buttons.find((b) => !b.disabled);
    next?.focus();
  };
  const button = (side, label, glyph, to) => h('button', {
    type: 'button', class: 'small ghost', 'data-side': side, 'aria-label': label, disabled: busy || to == null, onclick: go(to, side),
  }, glyph);
  const mine = m.role === 'user';
  return h('div', { class: 'versions', role: 'group', 'aria-label': mine ? t('branches.versions') : t('branches.answers') },
    button('prev', mine ? t('branches.prev_version') : t('branches.prev_answer'), '‹', at > 0 ? ids[at - 1] : null),
    h('span', { class: 'count' }, t('branches.count', { at: at + 1, count: ids.length })),
    button('next', mine ? t('branches.next_version') : t('branches.next_answer'), '›', at < ids.length - 1 ? ids[at + 1] : null));
}
