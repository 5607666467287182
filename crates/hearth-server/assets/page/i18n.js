// The page's words in the family's language: a message catalog per language (messages-en.js,
// messages-fr.js), chosen by the browser's languages unless the person chose one in Settings.
//
// A message is a string with `{name}` placeholders, or, where the words change with a number,
// an object of plural forms (Intl.PluralRules' categories: `one`, `other`, and French's `many`)
// picked by the `count` placeholder. Numbers put into a message are written the language's way.

import en from './messages-en.js';
import fr from './messages-fr.js';

const CATALOGS = { en, fr };

/** The languages the page speaks, as `me.language` names them. */
export const LANGUAGES = Object.keys(CATALOGS);

let lang = 'en';

/** The first of the browser's languages that the page speaks (English when none). */
export function browserLanguage() {
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  for (const l of wanted) {
    const base = String(l || '').toLowerCase().split('-')[0];
    if (CATALOGS[base]) return base;
  }
  return 'en';
}

/** Uses `setting` (a person's display language, or null to follow the browser) from now on,
 * and says so on <html lang>, which screen readers and hyphenation follow. */
export function useLanguage(setting) {
  lang = CATALOGS[setting] ? setting : browserLanguage();
  document.documentElement.lang = lang;
  // index.html carries no words of its own (they would show in English before the page
  // knows the language): its skip link and "opening" line are written here.
  const skip = document.querySelector('a.skip');
  if (skip) skip.textContent = t('app.skip');
  const opening = document.getElementById('opening');
  if (opening) opening.textContent = t('app.opening');
  return lang;
}

/** The language the page speaks now. */
export const language = () => lang;

const numbers = new Map();
/** `n` written the page language's way ("1,234.5" or "1 234,5"). */
export function num(n, opts = {}) {
  const k = `${lang}:${JSON.stringify(opts)}`;
  if (!numbers.has(k)) numbers.set(k, new Intl.NumberFormat(lang, opts));
  return numbers.get(k).format(n);
}

/** The message `key` in the page's language with `vars` filled in. A key missing from a
 * catalog falls back to English, then to the key itself (the catalog test keeps both full). */
export function t(key, vars = {}) {
  let m = CATALOGS[lang][key] ?? en[key];
  if (m == null) return key;
  if (typeof m === 'object') m = m[new Intl.PluralRules(lang).select(Number(vars.count) || 0)] ?? m.other;
  return m.replace(/\{(\w+)\}/g, (all, name) => {
    if (!(name in vars)) return all;
    const v = vars[name];
    return typeof v === 'number' ? num(v) : String(v ?? '');
  });
}
