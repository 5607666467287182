// The page's message catalogs (issue 18, item 9): English and French hold the same keys with
// the same placeholders and plural forms, every key the page asks for exists, none is left
// unused, and no English sentence is written straight into the page's code. Plain node: no
// browser, no server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ASSETS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'crates', 'hearth-server', 'assets');
const PAGE = path.join(ASSETS, 'page');

/** A catalog module's default export (loaded from its text: the assets folder is no node
 * package, so node would not take its .js files for ES modules by name). */
async function catalog(name) {
  const src = fs.readFileSync(path.join(PAGE, `messages-${name}.js`), 'utf8');
  return (await import(`data:text/javascript;base64,${Buffer.from(src).toString('base64')}`)).default;
}

const LANGS = ['en', 'fr'];
/** The page's code: app.js and every module but the catalogs. */
const CODE = [path.join(ASSETS, 'app.js'), ...fs.readdirSync(PAGE).filter((f) => f.endsWith('.js') && !f.startsWith('messages-')).map((f) => path.join(PAGE, f))]
  .map((file) => ({ file: path.relative(ASSETS, file), src: fs.readFileSync(file, 'utf8') }));

const forms = (m) => (typeof m === 'string' ? { text: m } : m);
const placeholders = (m) => [...new Set(Object.values(forms(m)).flatMap((s) => [...s.matchAll(/\{(\w+)\}/g)].map((x) => x[1])))].sort();

// The same in both languages by nature (a word both use, a unit-free format).
const SAME_IN_BOTH = new Set(['common.ok', 'chat.messages', 'md.code_tag', 'md.code', 'people.row', 'advice.parts']);

test('English and French have the same keys, placeholders and plural forms', async () => {
  const cats = Object.fromEntries(await Promise.all(LANGS.map(async (l) => [l, await catalog(l)])));
  const keys = Object.keys(cats.en).sort();
  assert.ok(keys.length > 100, `the English catalog holds only ${keys.length} messages`);
  assert.deepEqual(Object.keys(cats.fr).sort(), keys, 'the French catalog has other keys than the English one');
  for (const key of keys) {
    for (const l of LANGS) {
      const m = cats[l][key];
      assert.ok(typeof m === 'string' || (m && typeof m === 'object'), `${l} ${key} is neither text nor plural forms`);
      if (typeof m === 'object') {
        const wanted = new Intl.PluralRules(l).resolvedOptions().pluralCategories;
        for (const f of Object.keys(m)) assert.ok(wanted.includes(f), `${l} ${key}: ${f} is not a plural form of this language`);
        assert.ok(m.one && m.other, `${l} ${key} needs its "one" and "other" forms`);
        assert.ok(placeholders(m).includes('count'), `${l} ${key} has plural forms but no {count}`);
      }
      for (const s of Object.values(forms(m))) assert.ok(typeof s === 'string' && s.trim(), `${l} ${key} is empty`);
    }
    assert.equal(typeof cats.fr[key], typeof cats.en[key], `${key}: plural forms in one language only`);
    assert.deepEqual(placeholders(cats.fr[key]), placeholders(cats.en[key]), `${key}: the placeholders differ`);
    if (!SAME_IN_BOTH.has(key)) assert.notDeepEqual(cats.fr[key], cats.en[key], `${key} is not translated`);
  }
  // The French speaks to the family as "vous": a "tu" or "ton"/"ta"/"tes" is a slip.
  for (const key of keys) {
    for (const s of Object.values(forms(cats.fr[key]))) {
      assert.ok(!/(?<!\p{L})(?:(?:tu|toi|ton|ta|tes)(?!\p{L})|t[’'](?=\p{L}))/iu.test(s.replace(/\{\w+\}/g, '')), `fr ${key} says "tu": ${s}`);
    }
  }
});

test('every message the page asks for exists, and every message is used', async () => {
  const en = await catalog('en');
  const used = new Set();
  for (const { file, src } of CODE) {
    if (/[^\w.]t\(/.test(src) && !file.endsWith('i18n.js')) {
      assert.match(src, /^import \{[^}]*\bt\b[^}]*\} from '\.\/(page\/)?i18n\.js';$/m, `${file} calls t() without importing it`);
    }
    for (const m of src.matchAll(/\bt\(\s*'([^']+)'/g)) {
      assert.ok(m[1] in en, `${file} asks for the message "${m[1]}", which the catalog does not have`);
      used.add(m[1]);
    }
    // Keys handed around before t() is called (a notice, a table of keys) count as used.
    for (const m of src.matchAll(/'([a-z_]+\.[a-z_.]+)'/g)) if (m[1] in en) used.add(m[1]);
  }
  const unused = Object.keys(en).filter((k) => !used.has(k));
  assert.deepEqual(unused, [], 'messages that no module uses');
});

test('no English sentence is written straight into the page', () => {
  // Where words for people go: an element's text, a label or title given to a helper, a
  // notice, an attribute read aloud. A literal there starting with a capital is English prose.
  const spots = /(?:\}, |toast\(|label: |title: |text: |ok: |placeholder: |'aria-label': |new Error\()(['"`])([A-Z][a-z][^'"`]*)\1?/g;
  const found = [];
  for (const { file, src } of CODE) {
    for (const m of src.matchAll(spots)) if (m[2] !== 'Hearth' && !m[2].startsWith('Hearth\'s')) found.push(`${file}: ${m[0]}`);
  }
  assert.deepEqual(found, [], 'English written into the page instead of the catalog');
  const html = fs.readFileSync(path.join(ASSETS, 'index.html'), 'utf8');
  const shown = html.replace(/<noscript>[\s\S]*?<\/noscript>/g, '').replace(/<title>[^<]*<\/title>/, '').replace(/<[^>]*>/g, '').trim();
  assert.equal(shown, '', 'index.html shows words before the page knows the language');
});
