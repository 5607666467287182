// Markdown from a reply, rendered into DOM nodes (never through innerHTML).

import { copyButton, h } from './dom.js';
import { highlight } from './highlight.js';
import { t } from './i18n.js';

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

// The level of the last heading written: a reply sits under its message's h2, and each of its
// headings is at most one level below the one before, whatever the reply's `#`s say (a reply
// that starts at `###` must not jump from h2 to h5 for screen readers).
let lastLevel = 2;

export function renderMarkdown(src) {
  lastLevel = 2;
  const frag = document.createDocumentFragment();
  blocks(src.replace(/\r\n?/g, '\n').split('\n'), frag);
  return frag;
}

function startsBlock(line, next) {
  return FENCE.test(line) || HEADING.test(line) || QUOTE.test(line) || ITEM.test(line)
    || RULE.test(line) || (line.includes('|') && next != null && TABLE_SEP.test(next) && next.includes('-'));
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '|') { cur += '|'; i++; } else if (s[i] === '|') { cells.push(cur.trim()); cur = ''; } else cur += s[i];
  }
  cells.push(cur.trim());
  return cells;
}

function blocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) { i++; continue; }
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i++;
      // An unclosed fence (a reply still being written) runs to the end.
      while (i < lines.length && !(lines[i].trim().startsWith(fence[0].repeat(fence.length)) && lines[i].trim().replace(/[`~]/g, '') === '')) {
        body.push(lines[i]);
        i++;
      }
      i++;
      parent.append(codeBlock(body.join('\n'), m[2]));
      continue;
    }
    if ((m = HEADING.exec(line))) {
      // Replies sit under the page's h1 and the message's h2, so their headings start at h3.
      const level = Math.min(6, m[1].length + 2, lastLevel + 1);
      lastLevel = level;
      parent.append(inline(m[2], h(`h${level}`, { class: 'md-h' })));
      i++;
      continue;
    }
    if (RULE.test(line)) { parent.append(h('hr')); i++; continue; }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) { inner.push(m[1]); i++; }
      const bq = h('blockquote');
      blocks(inner, bq);
      parent.append(bq);
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      const head = splitRow(line);
      const aligns = splitRow(lines[i + 1]).map((c) => (c.endsWith(':') ? (c.startsWith(':') ? 'center' : 'right') : ''));
      i += 2;
      const rows = [];
      while (i < lines.length && lines[i].includes('|') && lines[i].trim()) { rows.push(splitRow(lines[i])); i++; }
      const cell = (tag, text, col) => inline(text, h(tag, { class: aligns[col] ? `a-${aligns[col]}` : null, scope: tag === 'th' ? 'col' : null }));
      const table = h('table', {},
        h('thead', {}, h('tr', {}, head.map((c, k) => cell('th', c, k)))),
        h('tbody', {}, rows.map((r) => h('tr', {}, head.map((_, k) => cell('td', r[k] || '', k))))));
      parent.append(h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': t('md.table') }, table));
      continue;
    }
    if ((m = ITEM.exec(line))) { i = list(lines, i, parent); continue; }
    // A paragraph: lines up to a blank line or the start of another block. Single line breaks
    // are kept, because replies use them for addresses, poems and short steps.
    const para = [];
    while (i < lines.length && lines[i].trim() && (para.length === 0 || !startsBlock(lines[i], lines[i + 1]))) {
      para.push(lines[i]);
      i++;
    }
    const p = h('p');
    para.forEach((l, k) => { if (k) p.append(h('br')); inline(l.trim(), p); });
    parent.append(p);
  }
}

/** Renders the list starting at lines[i]; returns the index after it. */
function list(lines, i, parent) {
  const first = ITEM.exec(lines[i]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const el = h(ordered ? 'ol' : 'ul');
  if (ordered && parseInt(first[2], 10) !== 1) el.setAttribute('start', String(parseInt(first[2], 10)));
  let loose = false;
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const body = [m[3]];
    const contentIndent = m[1].length + m[2].length + 1;
    i++;
    // The item goes on while lines are indented past its marker (or blank lines between such).
    while (i < lines.length) {
      const l = lines[i];
      if (!l.trim()) {
        const next = lines[i + 1];
        if (next != null && next.trim() && (next.length - next.trimStart().length) > indent) { body.push(''); i++; loose = true; continue; }
        break;
      }
      const lead = l.length - l.trimStart().length;
      if (lead > indent) { body.push(l.slice(Math.min(lead, contentIndent))); i++; continue; }
      if (ITEM.test(l) || startsBlock(l, lines[i + 1])) break;
      body.push(l.trim()); // a lazy continuation line
      i++;
    }
    const li = h('li');
    if (body.length === 1 || (!loose && !body.slice(1).some((b) => !b.trim() || startsBlock(b)))) {
      inline(body.join(' '), li);
    } else {
      const rest = body.slice(1);
      const firstEnd = rest.findIndex((b) => !b.trim() || startsBlock(b));
      const lead = firstEnd < 0 ? body : body.slice(0, firstEnd + 1);
      inline(lead.join(' '), li);
      if (firstEnd >= 0) blocks(rest.slice(firstEnd), li);
    }
    el.append(li);
    if (i < lines.length && !lines[i].trim()) {
      // A blank line followed by another item of this list keeps the list going.
      const next = ITEM.exec(lines[i + 1] || '');
      if (next && next[1].length === indent) { i++; continue; }
    }
  }
  parent.append(el);
  return i;
}

const INLINE = new RegExp([
  /\\([\\`*_{}[\]()#+\-.!|~<>])/.source, // 1: escaped punctuation
  /(`+)([^`]|[^`][\s\S]*?[^`])\2(?!`)/.source, // 2,3: code span
  /\[([^\]\n]+)\]\(\s*<?([^\s)>]+)>?(?:\s+"[^"]*")?\s*\)/.source, // 4,5: link
  /(https?:\/\/[^\s<>"']*[^\s<>"'.,:;!?)\]])/.source, // 6: bare address
  /\*\*(?=\S)([\s\S]*?\S)\*\*/.source, // 7: bold
  /(?<![\w])__(?=\S)([\s\S]*?\S)__(?![\w])/.source, // 8: bold
  /\*(?=[^\s*])([\s\S]*?[^\s*])\*/.source, // 9: italic
  /(?<![\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\w])/.source, // 10: italic
  /~~(?=\S)([\s\S]*?\S)~~/.source, // 11: struck out
  /<(https?:\/\/[^\s<>]+)>/.source, // 12: address in angle brackets
].join('|'), 'g');

function safeHref(url) {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

function linkTo(url, kids) {
  const href = safeHref(url);
  if (!href) return h('span', {}, kids);
  return h('a', { href, target: '_blank', rel: 'noopener noreferrer' }, kids);
}

/** Appends the inline Markdown of `text` to `parent` and returns `parent`. */
function inline(text, parent) {
  const re = new RegExp(INLINE.source, 'g');
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    if (m[1] != null) parent.append(m[1]);
    else if (m[3] != null) parent.append(h('code', { text: m[3].length > 2 && m[3].startsWith(' ') && m[3].endsWith(' ') ? m[3].slice(1, -1) : m[3] }));
    else if (m[4] != null) parent.append(linkTo(m[5], inline(m[4], document.createDocumentFragment())));
    else if (m[6] != null) parent.append(linkTo(m[6], [m[6]]));
    else if (m[7] != null || m[8] != null) parent.append(inline(m[7] ?? m[8], h('strong')));
    else if (m[9] != null || m[10] != null) parent.append(inline(m[9] ?? m[10], h('em')));
    else if (m[11] != null) parent.append(inline(m[11], h('s')));
    else if (m[12] != null) parent.append(linkTo(m[12], [m[12]]));
    last = re.lastIndex;
  }
  if (last < text.length) parent.append(text.slice(last));
  return parent;
}

function codeBlock(text, lang) {
  // Coloured where the language is one Hearth knows: text nodes and spans, still never HTML.
  const code = h('code', {}, highlight(text, lang) || text);
  return h('div', { class: 'code' },
    h('div', { class: 'code-bar' },
      h('span', { class: 'lang' }, lang || t('md.code_tag')),
      copyButton(() => text, t('md.copy_code'))),
    h('pre', { tabindex: '0', 'aria-label': lang ? t('md.code_in', { lang }) : t('md.code') }, code));
}
