// What the server says in words, in the page's language. The server speaks English (its API
// clients and its own tests read those words); where a refusal carries a code whose words are
// fixed, the page says the same thing from its catalog instead. Anything else the server says
// stays in its English words.

import { language, t } from './i18n.js';

/** "about 6 pages" (the server's `in_pages`) in the page's language; null for other words. */
function pages(said) {
  if (/^a few lines$/.test(said)) return t('pages.few_lines');
  if (/^about half a page$/.test(said)) return t('pages.half');
  const m = /^about (\d+) pages?$/.exec(said);
  return m ? t('pages.about', { count: Number(m[1]) }) : null;
}

/** The page's own words for the server's refusal (`code`, about field `param`, said as
 * `message`), or null to keep the server's. English keeps the server's words throughout. */
export function ownWords(code, param, message) {
  if (language() === 'en' || !code) return null;
  const text = message || '';
  switch (code) {
    case 'steered': return t('server.steered');
    case 'check_failed': return t('server.check_failed');
    case 'busy': return t('server.login_busy');
    case 'csrf': return t('server.csrf');
    case 'not_logged_in': return t('server.log_in');
    case 'changed': return t('server.changed');
    case 'outside_hours': {
      const m = /come back at (\d{1,2}:\d{2})/.exec(text);
      return m ? t('family.come_back', { time: m[1] }) : t('server.cannot_open');
    }
    case 'too_long': {
      if (param !== 'content') return t('server.no_room');
      const m = /it is (.+?), and Hearth can take (.+?) at most/.exec(text);
      const size = m && pages(m[1]);
      const most = m && pages(m[2]);
      return size && most ? t('server.too_long', { size, most }) : null;
    }
    default: return null;
  }
}
