// Hearth's household page: one ES module, no build step, no dependencies.
//
// Design:
// - Every piece of the page is built with createElement/textContent through `h()`. Nothing that
//   came from a person or from Hearth's replies is ever parsed as HTML, so a reply cannot inject
//   markup or script (the server's Content-Security-Policy also allows only this file to run).
// - The server is the source of truth. A reply is generated and saved on the server whether or
//   not this page is open; the page follows it through the conversation's event stream and, when
//   it comes back (reload, phone unlocked, server restarted), asks the server again.
// - State lives in `S`; views re-render their own part of the page from it.

const S = {
  state: null, // GET /api/state
  csrf: null,
  me: null,
  convs: [], // the list on the left
  query: '',
  conv: null, // the open conversation (GET /api/conversations/{id}), null for a new chat
  view: 'chat', // 'chat' | 'settings'
  es: null, // EventSource of the reply being followed
  following: null, // conversation id the event stream belongs to
  listOpen: false, // the conversation list on narrow screens
  failedDraft: null, // text of a message that could not be sent
};

// ---------------------------------------------------------------------------------------------
// DOM helpers

/** Builds an element. Children that are strings become text nodes (never HTML). */
function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'checked') { el.checked = v; el.defaultChecked = v; } // form.reset() keeps it
    else if (k === 'value' || k === 'disabled' || k === 'hidden') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid == null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

const app = () => document.getElementById('app');
let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

/** A labelled form field. `opts` go to the input. */
function field(label, opts = {}, hint) {
  const id = opts.id || nextId('f');
  const hintId = hint ? `${id}-hint` : null;
  const input = opts.tag === 'textarea'
    ? h('textarea', { ...opts, tag: null, id, 'aria-describedby': hintId })
    : h('input', { type: 'text', ...opts, tag: null, id, 'aria-describedby': hintId });
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null);
}

function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove('show'), 3000);
}

/** An inline error area for a form (announced when it changes). */
function errorBox() {
  return h('p', { class: 'error', role: 'alert', hidden: true });
}
function showError(box, err) {
  box.textContent = err ? (err.message || String(err)) : '';
  box.hidden = !err;
}

/** A modal question built on <dialog>. Resolves to the field values, or null when cancelled. */
function ask({ title, text, fields = [], ok = 'OK', danger = false }) {
  return new Promise((resolve) => {
    const inputs = fields.map((f) => field(f.label, { name: f.name, ...f.input }, f.hint));
    const form = h('form', { method: 'dialog' },
      h('h2', { text: title }),
      text ? h('p', { text }) : null,
      inputs,
      h('div', { class: 'row end' },
        h('button', { type: 'button', class: 'ghost', value: 'cancel', onclick: () => dlg.close('cancel') }, 'Cancel'),
        h('button', { type: 'submit', value: 'ok', class: danger ? 'danger' : 'primary' }, ok)));
    const dlg = h('dialog', { 'aria-label': title }, form);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!form.reportValidity()) return;
      dlg.close('ok');
    });
    dlg.addEventListener('close', () => {
      const values = {};
      for (const el of form.elements) if (el.name) values[el.name] = el.value;
      dlg.remove();
      resolve(dlg.returnValue === 'ok' ? values : null);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// ---------------------------------------------------------------------------------------------
// Talking to the server

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
  let r;
  try {
    r = await fetch(path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "Hearth can't be reached right now. Check that it is running and that you are on the home network.");
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) {
    const msg = (data && data.error && data.error.message) || `Something went wrong (error ${r.status}).`;
    if (r.status === 401 && S.me && path !== '/api/login' && path !== '/api/me/password') {
      sessionLost();
    }
    throw new ApiError(r.status, msg, r.headers.get('Retry-After'));
  }
  return data;
}

/** Reads a text/event-stream response body (for POSTs, which EventSource cannot make). */
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) {
        let parsed = null;
        try { parsed = JSON.parse(data.join('\n')); } catch { parsed = null; }
        onEvent(name, parsed);
      }
    }
  }
}

function sessionLost() {
  stopFollowing();
  S.me = null;
  S.conv = null;
  renderLogin('You have been logged out. Please log in again.');
}

// ---------------------------------------------------------------------------------------------
// Small formatting helpers

function when(v) {
  if (v == null || v === '') return '';
  const d = typeof v === 'number' ? new Date(v < 1e12 ? v * 1000 : v) : new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  const today = new Date();
  return d.toDateString() === today.toDateString()
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString([], { day: 'numeric', month: 'short', year: 'numeric' });
}

function bytes(n) {
  if (typeof n !== 'number') return '';
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function plural(n, one, many) { return `${n} ${n === 1 ? one : many}`; }

/** Copies text; the clipboard API exists only on HTTPS or localhost, so plain HTTP on the home
 * network falls back to selecting a hidden textarea and the older copy command. */
async function copyText(text) {
  if (window.isSecureContext && navigator.clipboard) {
    try { await navigator.clipboard.writeText(text); return true; } catch { /* fall back */ }
  }
  const ta = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
  ta.value = text;
  const back = document.activeElement;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch { ok = false; }
  ta.remove();
  if (back && back.focus) back.focus();
  return ok;
}

function copyButton(getText, label = 'Copy') {
  const b = h('button', { type: 'button', class: 'small ghost' }, label);
  b.addEventListener('click', async () => {
    const ok = await copyText(getText());
    b.textContent = ok ? 'Copied' : 'Copy failed';
    toast(ok ? 'Copied.' : 'This browser did not allow copying; select the text and copy it yourself.');
    setTimeout(() => { b.textContent = label; }, 2000);
  });
  return b;
}

// ---------------------------------------------------------------------------------------------
// Markdown, rendered into DOM nodes (never through innerHTML)

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function renderMarkdown(src) {
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
      // Replies sit under the page's h1/h2, so their headings start at h3.
      const level = Math.min(6, m[1].length + 2);
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
      parent.append(h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Table' }, table));
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
  const code = h('code', { text });
  return h('div', { class: 'code' },
    h('div', { class: 'code-bar' },
      h('span', { class: 'lang' }, lang || 'code'),
      copyButton(() => text, 'Copy code')),
    h('pre', { tabindex: '0', 'aria-label': lang ? `${lang} code` : 'Code' }, code));
}

// ---------------------------------------------------------------------------------------------
// Start-up, first run and login

async function boot() {
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

async function logout() {
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

// ---------------------------------------------------------------------------------------------
// The app shell: header, conversation list, main area

function enterApp() {
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

function setListOpen(open) {
  S.listOpen = open;
  document.body.classList.toggle('list-open', open);
  const b = document.getElementById('list-toggle');
  if (b) {
    b.setAttribute('aria-expanded', String(open));
    b.textContent = open ? 'Close chats' : 'Chats';
  }
  if (open) document.getElementById('new-chat')?.focus();
}

async function loadList() {
  try {
    const q = S.query ? `?q=${encodeURIComponent(S.query)}` : '';
    S.convs = await api('GET', `/api/conversations${q}`);
  } catch (e) {
    if (e.status !== 401) toast(e.message);
    return;
  }
  renderList();
}

function renderList() {
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

// ---------------------------------------------------------------------------------------------
// A conversation

async function openConversation(id) {
  stopFollowing();
  S.view = 'chat';
  setListOpen(false);
  if (id == null) {
    S.conv = null;
    history.replaceState(null, '', '/');
    renderChat();
    renderList();
    document.getElementById('composer-input')?.focus();
    return;
  }
  try {
    S.conv = await api('GET', `/api/conversations/${id}`);
  } catch (e) {
    if (e.status === 401) return;
    S.conv = null;
    history.replaceState(null, '', '/');
    renderChat();
    toast(e.status === 404 ? 'That chat no longer exists.' : e.message);
    return;
  }
  history.replaceState(null, '', `#/c/${id}`);
  renderChat();
  renderList();
  followIfRunning();
}

/** Asks the server for the open conversation again (after a reply ends, the page comes back
 * into view, or the event stream was lost). */
async function refreshConversation() {
  if (!S.conv || S.view !== 'chat') return;
  const id = S.conv.id;
  let conv;
  try { conv = await api('GET', `/api/conversations/${id}`); } catch { return; }
  if (!S.conv || S.conv.id !== id) return;
  S.conv = conv;
  renderMessages();
  followIfRunning();
}

function lastOf(role) {
  const ms = S.conv ? S.conv.messages : [];
  for (let i = ms.length - 1; i >= 0; i--) if (ms[i].role === role) return ms[i];
  return null;
}

function running() {
  const last = S.conv && S.conv.messages[S.conv.messages.length - 1];
  return last && last.role === 'assistant' && last.status === 'streaming' ? last : null;
}

function followIfRunning() {
  if (running()) follow(S.conv.id);
  else { stopFollowing(); setBusy(null); }
}

function renderChat() {
  const main = document.getElementById('main');
  if (!main) return;
  const input = h('textarea', {
    id: 'composer-input', rows: '1', placeholder: 'Message Hearth', enterkeyhint: 'send', autocomplete: 'off',
  });
  input.value = S.failedDraft ?? '';
  input.addEventListener('input', () => grow(input));
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); composer.requestSubmit(); }
  });
  const composer = h('form', { class: 'composer', id: 'composer' },
    h('label', { for: 'composer-input', class: 'sr-only' }, 'Your message'),
    input,
    h('button', { type: 'button', class: 'danger', id: 'stop', hidden: true, onclick: stop }, 'Stop'),
    h('button', { type: 'submit', class: 'primary', id: 'send' }, 'Send'));
  composer.addEventListener('submit', (e) => { e.preventDefault(); send(input.value); });
  main.replaceChildren(h('section', { class: 'chat', 'aria-labelledby': 'chat-title' },
    h('div', { class: 'chat-head', id: 'chat-head' }),
    h('div', { id: 'context-notice' }),
    h('div', {
      class: 'messages', id: 'messages', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages', tabindex: '0',
    }),
    h('p', { class: 'busy', id: 'busy', role: 'status', 'aria-live': 'polite' }),
    h('div', { id: 'send-error' }),
    composer));
  renderMessages();
  if (S.failedDraft != null) showSendError(S.failedDraftError);
}

function renderHead() {
  const head = document.getElementById('chat-head');
  if (!head) return;
  head.replaceChildren(
    h('h1', { id: 'chat-title' }, S.conv ? (S.conv.title || 'New chat') : 'New chat'),
    S.conv ? h('div', { class: 'row' },
      h('button', { type: 'button', class: 'small ghost', id: 'rename', onclick: rename }, 'Rename'),
      h('button', { type: 'button', class: 'small ghost', id: 'delete', onclick: removeConversation }, 'Delete')) : null);
}

function grow(ta) {
  ta.style.height = 'auto';
  ta.style.height = `${Math.min(ta.scrollHeight, 200)}px`;
}

const STATUS_NOTE = {
  interrupted: 'Interrupted: Hearth stopped before this reply was finished.',
  stopped: 'Stopped before the end.',
  failed: "This reply didn't work.",
};

function renderMessages() {
  const box = document.getElementById('messages');
  if (!box) return;
  const ms = S.conv ? S.conv.messages : [];
  const hidden = new Set((S.conv && S.conv.hidden_from_model) || []);
  renderHead();
  renderContextNotice();
  if (!ms.length) {
    const name = S.me ? S.me.name : '';
    box.replaceChildren(h('div', { class: 'welcome' },
      h('p', { class: 'big' }, `Hi ${name}! What would you like to talk about?`),
      h('p', {}, 'Ask a question, ask for help with homework or a letter, or just chat. Your chats are private to you.')));
    updateControls();
    return;
  }
  const lastUser = lastOf('user');
  const lastAssistant = lastOf('assistant');
  const busy = !!running();
  box.replaceChildren(...ms.map((m) => messageView(m, {
    hidden: hidden.has(m.id),
    editable: !busy && m === lastUser,
    regenerable: !busy && m === lastAssistant && m === ms[ms.length - 1],
  })));
  updateControls();
  box.scrollTop = box.scrollHeight;
}

function messageView(m, { hidden, editable, regenerable }) {
  const mine = m.role === 'user';
  const body = h('div', { class: 'body' });
  fillBody(body, m);
  const actions = h('div', { class: 'actions' });
  if (!mine && m.content) actions.append(copyButton(() => m.content));
  if (editable) actions.append(h('button', { type: 'button', class: 'small ghost', onclick: () => editLast(m) }, 'Edit'));
  if (regenerable && m.status === 'failed') {
    actions.append(h('button', { type: 'button', class: 'small primary', onclick: regenerate }, 'Retry'));
  } else if (regenerable) {
    actions.append(h('button', { type: 'button', class: 'small ghost', onclick: regenerate }, 'Try another answer'));
  }
  const note = STATUS_NOTE[m.status];
  return h('article', {
    class: `msg ${mine ? 'user' : 'assistant'} ${hidden ? 'unseen' : ''} st-${m.status}`,
    'data-id': m.id, 'data-status': m.status, 'aria-busy': m.status === 'streaming' ? 'true' : 'false',
    'aria-label': mine ? 'You said' : 'Hearth said',
  },
  h('p', { class: 'who', 'aria-hidden': 'true' }, mine ? (S.me ? S.me.name : 'You') : 'Hearth'),
  hidden ? h('p', { class: 'tag' }, 'Hearth no longer sees this message') : null,
  body,
  note ? h('p', { class: `note ${m.status}` }, note) : null,
  actions.childNodes.length ? actions : null);
}

function fillBody(body, m) {
  if (m.role === 'user') {
    body.replaceChildren(...m.content.split('\n').flatMap((l, k) => (k ? [h('br'), l] : [l])));
  } else if (!m.content && m.status === 'streaming') {
    body.replaceChildren(h('p', { class: 'thinking' }, 'Hearth is thinking…'));
  } else {
    body.replaceChildren(renderMarkdown(m.content));
  }
}

function renderContextNotice() {
  const slot = document.getElementById('context-notice');
  if (!slot) return;
  const ids = (S.conv && S.conv.hidden_from_model) || [];
  if (!ids.length) { slot.replaceChildren(); return; }
  const byId = new Map(S.conv.messages.map((m) => [m.id, m]));
  const items = ids.map((id) => byId.get(id)).filter(Boolean);
  const excerpt = (m) => {
    const t = m.content.replace(/\s+/g, ' ').trim();
    return `${m.role === 'user' ? 'You' : 'Hearth'}: “${t.length > 70 ? `${t.slice(0, 70)}…` : t}”`;
  };
  slot.replaceChildren(h('details', { class: 'notice context' },
    h('summary', {}, `This chat has grown too long for Hearth to keep all of it in mind. Hearth no longer sees ${ids.length === 1 ? 'the earliest message' : `the ${ids.length} earliest messages`}.`),
    h('p', {}, 'Those messages are still saved here, marked below, but Hearth will not remember them in its replies. Start a new chat for a fresh start.'),
    h('ul', {}, items.map((m) => h('li', {}, excerpt(m))))));
}

function updateControls() {
  const busy = !!running();
  const stopBtn = document.getElementById('stop');
  const sendBtn = document.getElementById('send');
  if (stopBtn) stopBtn.hidden = !busy;
  if (sendBtn) sendBtn.disabled = busy;
}

function setBusy(text) {
  const el = document.getElementById('busy');
  if (el && el.textContent !== (text || '')) el.textContent = text || '';
}

function showSendError(err) {
  const slot = document.getElementById('send-error');
  if (!slot) return;
  if (!err) { slot.replaceChildren(); return; }
  slot.replaceChildren(h('div', { class: 'error-row', role: 'alert' },
    h('p', {}, `Your message was not sent. ${err.message}`),
    h('button', { type: 'button', class: 'small primary', onclick: () => send(document.getElementById('composer-input').value) }, 'Retry')));
}

async function send(text) {
  text = text.trim();
  if (!text || running()) return;
  const input = document.getElementById('composer-input');
  const sendBtn = document.getElementById('send');
  if (sendBtn) sendBtn.disabled = true;
  try {
    if (!S.conv) {
      const c = await api('POST', '/api/conversations', {});
      S.conv = { id: c.id, title: c.title, messages: [], hidden_from_model: [] };
      history.replaceState(null, '', `#/c/${c.id}`);
    }
    const r = await api('POST', `/api/conversations/${S.conv.id}/messages`, { content: text });
    S.failedDraft = null;
    S.failedDraftError = null;
    if (input) { input.value = ''; grow(input); }
    showSendError(null);
    S.conv.messages.push(r.user, r.assistant);
    renderMessages();
    setBusy('Hearth is thinking…');
    follow(S.conv.id);
    loadList();
  } catch (e) {
    if (e.status === 401) return;
    S.failedDraft = text;
    S.failedDraftError = e;
    showSendError(e);
    updateControls();
  } finally {
    if (sendBtn) sendBtn.disabled = !!running();
  }
}

async function stop() {
  if (!S.conv) return;
  try { await api('POST', `/api/conversations/${S.conv.id}/stop`); } catch (e) { toast(e.message); }
}

async function regenerate() {
  if (!S.conv) return;
  try {
    const r = await api('POST', `/api/conversations/${S.conv.id}/regenerate`);
    const ms = S.conv.messages;
    if (ms.length && ms[ms.length - 1].role === 'assistant') ms.pop();
    ms.push(r.assistant);
    renderMessages();
    setBusy('Hearth is thinking…');
    follow(S.conv.id);
  } catch (e) { toast(e.message); }
}

async function editLast(m) {
  const v = await ask({
    title: 'Edit your message',
    text: 'Hearth will answer the changed message instead. Its earlier answer will be replaced.',
    fields: [{ name: 'content', label: 'Your message', input: { tag: 'textarea', value: m.content, required: true, rows: '5' } }],
    ok: 'Send',
  });
  if (!v || !v.content.trim()) return;
  try {
    const r = await api('POST', `/api/conversations/${S.conv.id}/edit`, { content: v.content.trim() });
    const ms = S.conv.messages;
    const at = ms.indexOf(m);
    ms.splice(at < 0 ? ms.length : at, ms.length, r.user, r.assistant);
    renderMessages();
    setBusy('Hearth is thinking…');
    follow(S.conv.id);
  } catch (e) { toast(e.message); }
}

async function rename() {
  if (!S.conv) return;
  const v = await ask({
    title: 'Rename this chat',
    fields: [{ name: 'title', label: 'Name', input: { value: S.conv.title || '', required: true, maxlength: '200' } }],
    ok: 'Rename',
  });
  if (!v) return;
  try {
    const c = await api('PATCH', `/api/conversations/${S.conv.id}`, { title: v.title.trim() });
    S.conv.title = c.title;
    renderHead();
    loadList();
  } catch (e) { toast(e.message); }
}

async function removeConversation() {
  if (!S.conv) return;
  const v = await ask({
    title: 'Delete this chat?',
    text: `“${S.conv.title || 'New chat'}” will be deleted for good.`,
    ok: 'Delete', danger: true,
  });
  if (!v) return;
  try {
    await api('DELETE', `/api/conversations/${S.conv.id}`);
    toast('Chat deleted.');
    await loadList();
    openConversation(null);
  } catch (e) { toast(e.message); }
}

// ---------------------------------------------------------------------------------------------
// Following a reply as it is written (server-sent events)

function stopFollowing() {
  if (S.es) S.es.close();
  S.es = null;
  S.following = null;
  clearTimeout(S.retryTimer);
}

function follow(id) {
  if (S.es && S.following === id && S.es.readyState !== EventSource.CLOSED) return;
  stopFollowing();
  const es = new EventSource(`/api/conversations/${id}/events`);
  S.es = es;
  S.following = id;
  const mine = () => S.es === es && S.conv && S.conv.id === id;
  const data = (e) => { try { return JSON.parse(e.data); } catch { return {}; } };
  const msg = (mid) => S.conv.messages.find((m) => m.id === mid);
  let pending = new Set();
  const paint = (m) => {
    pending.add(m);
    if (pending.size > 1) return;
    requestAnimationFrame(() => {
      const box = document.getElementById('messages');
      const stick = box && box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      for (const p of pending) {
        const body = document.querySelector(`.msg[data-id="${p.id}"] .body`);
        if (body) fillBody(body, p);
      }
      pending = new Set();
      if (box && stick) box.scrollTop = box.scrollHeight;
    });
  };
  es.addEventListener('snapshot', (e) => {
    if (!mine()) return;
    const d = data(e);
    const m = msg(d.message_id);
    if (m) {
      m.content = d.content || '';
      m.status = 'streaming';
      paint(m);
      setBusy(m.content ? 'Hearth is writing…' : 'Hearth is thinking…');
    } else refreshConversation();
  });
  es.addEventListener('queued', (e) => {
    if (!mine()) return;
    const n = data(e).ahead || 0;
    setBusy(n > 0
      ? `Hearth is busy with other people. ${n === 1 ? '1 person is' : `${n} people are`} ahead of you.`
      : 'Hearth is thinking…');
  });
  es.addEventListener('delta', (e) => {
    if (!mine()) return;
    const d = data(e);
    const m = msg(d.message_id);
    if (!m) { refreshConversation(); return; }
    m.content += d.text || '';
    setBusy('Hearth is writing…');
    paint(m);
  });
  es.addEventListener('context', (e) => {
    if (!mine()) return;
    S.conv.hidden_from_model = data(e).hidden_from_model || [];
    renderMessages();
  });
  es.addEventListener('done', () => {
    if (!mine()) return;
    stopFollowing();
    setBusy('');
    refreshConversation();
    loadList();
  });
  es.addEventListener('idle', () => {
    if (!mine()) return;
    stopFollowing();
    setBusy('');
    // Nothing runs: whatever the page believed, the saved conversation says how it ended.
    if (running()) refreshConversation();
  });
  es.addEventListener('error', (e) => {
    if (!mine()) return;
    if (e instanceof MessageEvent && e.data) {
      // The server's `error` event: the reply failed. Its `done` follows and brings the saved
      // state; until then the page already says so.
      setBusy("This reply didn't work.");
      return;
    }
    // The connection itself: the browser retries on its own unless the server refused.
    if (es.readyState === EventSource.CLOSED) {
      stopFollowing();
      S.retryTimer = setTimeout(refreshConversation, 2000);
    } else {
      setBusy('Lost touch with Hearth. Trying again…');
    }
  });
}

// A phone that was locked, or a tab that was in the background, may have lost its stream;
// the reply went on being written on the server, so ask for it again.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && S.me && S.view === 'chat' && S.conv) {
    stopFollowing();
    refreshConversation();
  }
});

// Escape closes the chat list drawer on a phone and gives focus back to its button.
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && S.listOpen && !document.querySelector('dialog[open]')) {
    setListOpen(false);
    document.getElementById('list-toggle')?.focus();
  }
});

// ---------------------------------------------------------------------------------------------
// Settings

function section(title, ...kids) {
  const id = nextId('s');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), kids);
}

function openSettings() {
  stopFollowing();
  S.view = 'settings';
  S.conv = null;
  setListOpen(false);
  history.replaceState(null, '', '#/settings');
  renderList();
  const main = document.getElementById('main');
  const owner = S.me.role === 'owner';
  const ownerSlot = h('div', { class: 'stack' });
  main.replaceChildren(h('div', { class: 'settings' },
    h('div', { class: 'row between' },
      h('h1', {}, 'Settings'),
      h('button', { type: 'button', class: 'ghost', onclick: () => openConversation(null) }, 'Back to chat')),
    accountSection(),
    conversationsSection(),
    owner ? ownerSlot : null));
  main.focus();
  if (owner) loadOwnerSettings(ownerSlot);
}

function accountSection() {
  const err = errorBox();
  const pin = S.me.kind === 'pin';
  const word = pin ? 'PIN' : 'password';
  const form = h('form', { class: 'stack' },
    field(`Current ${word}`, { name: 'old', type: 'password', required: true, autocomplete: 'current-password' }),
    field(`New ${word}`, pin
      ? { name: 'new', type: 'password', required: true, inputmode: 'numeric', pattern: '[0-9]{4,8}', autocomplete: 'new-password' }
      : { name: 'new', type: 'password', required: true, minlength: '8', autocomplete: 'new-password' },
    pin ? '4 to 8 digits.' : 'At least 8 characters.'),
    err,
    h('button', { type: 'submit', class: 'primary' }, `Change my ${word}`));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    try {
      await api('POST', '/api/me/password', { old: v.old, new: v.new });
      form.reset();
      showError(err, null);
      toast(`Your ${word} is changed.`);
    } catch (ex) {
      showError(err, ex.status === 401 ? new Error(`Your current ${word} is not right.`) : ex);
    }
  });
  return section(`You: ${S.me.name}`,
    h('div', { class: 'row between wrap' },
      h('p', {}, S.me.role === 'owner' ? 'You look after this household.' : 'Member of this household.'),
      h('button', { type: 'button', class: 'ghost', id: 'logout', onclick: logout }, 'Log out')),
    h('details', {}, h('summary', {}, `Change my ${word}`), form));
}

function conversationsSection() {
  return section('Your chats',
    h('p', {}, 'Download all your chats to keep them, or delete them all from Hearth.'),
    h('div', { class: 'row wrap' },
      h('a', { class: 'button ghost', href: '/api/export?format=json', download: 'hearth-chats.json' }, 'Download (JSON)'),
      h('a', { class: 'button ghost', href: '/api/export?format=markdown', download: 'hearth-chats.md' }, 'Download (text)'),
      h('button', {
        type: 'button', class: 'danger',
        onclick: async () => {
          const v = await ask({ title: 'Delete all your chats?', text: 'Every chat you have had with Hearth will be deleted for good. This cannot be undone.', ok: 'Delete all', danger: true });
          if (!v) return;
          try { await api('DELETE', '/api/conversations'); toast('All your chats are deleted.'); loadList(); } catch (e) { toast(e.message); }
        },
      }, 'Delete all my chats')));
}

async function loadOwnerSettings(slot) {
  slot.replaceChildren(h('p', {}, 'Loading the household settings…'));
  let s;
  try { s = await api('GET', '/api/settings'); } catch (e) { slot.replaceChildren(h('p', { class: 'error' }, e.message)); return; }
  slot.replaceChildren(
    lockSection(slot),
    householdSection(s),
    peopleSection(),
    modelSection(s, slot),
    keysSection());
}

// hearth.lock: this Hearth would serve a model with another template or other defaults than
// the lock pins. Hearth keeps the locked ones until the keeper accepts the change here.
function lockSection(slot) {
  const box = h('div', { id: 'lock-pending' });
  (async () => {
    let r;
    try { r = await api('GET', '/api/lock'); } catch (e) { box.replaceChildren(h('p', { class: 'error' }, e.message)); return; }
    const pending = r.pending || [];
    if (!pending.length) return;
    const accept = async (model, btn) => {
      btn.disabled = true;
      btn.textContent = 'Accepting…';
      try {
        await api('POST', '/api/lock/accept', { model });
        toast(`${model} now uses what this Hearth serves.`);
      } catch (e) { toast(e.message); }
      loadOwnerSettings(slot);
    };
    const items = pending.map((p) => {
      if (p.error) return h('li', {}, h('div', {}, h('strong', {}, p.model), ' ', h('span', { class: 'error' }, p.error)));
      const btn = h('button', { type: 'button', class: 'small primary', onclick: () => accept(p.model, btn) }, 'Accept');
      return h('li', {},
        h('div', {}, h('strong', {}, p.model),
          h('ul', {}, ...p.changes.map((c) => h('li', {}, `${c.what}: using ${c.locked}; this Hearth would use ${c.now}`)))),
        btn);
    });
    box.replaceChildren(section('Changes waiting for you',
      h('p', {}, 'This version of Hearth would answer with a different chat template or different settings than the ones your household has been using. Until you accept, Hearth keeps using the old ones.'),
      h('ul', { class: 'rows' }, ...items)));
  })();
  return box;
}

function householdSection(s) {
  const err = errorBox();
  const form = h('form', { class: 'row wrap end-items' },
    field('Household name', { name: 'household', value: s.household || '', required: true }),
    h('button', { type: 'submit', class: 'primary' }, 'Save'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = new FormData(form).get('household').trim();
    try {
      await api('PUT', '/api/settings', { household: name });
      S.state.household = name;
      document.querySelector('.brand').lastChild.textContent = name;
      showError(err, null);
      toast('Saved.');
    } catch (ex) { showError(err, ex); }
  });
  return section('Household', form, err);
}

function peopleSection() {
  const listEl = h('ul', { class: 'rows', id: 'people' });
  const load = async () => {
    let people;
    try { people = await api('GET', '/api/people'); } catch (e) { listEl.replaceChildren(h('li', { class: 'error' }, e.message)); return; }
    listEl.replaceChildren(...people.map((p) => h('li', {},
      h('div', {}, h('strong', {}, p.name), ' ',
        h('span', { class: 'muted' }, `${p.role === 'owner' ? 'keeper' : 'member'} · ${p.kind === 'pin' ? 'PIN' : 'password'}`)),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'small ghost', onclick: () => resetPerson(p) }, 'Reset'),
        p.id !== S.me.id ? h('button', { type: 'button', class: 'small danger', onclick: () => removePerson(p) }, 'Remove') : null))));
  };
  const resetPerson = async (p) => {
    const pin = p.kind === 'pin';
    const v = await ask({
      title: `New ${pin ? 'PIN' : 'password'} for ${p.name}`,
      fields: [{ name: 'secret', label: pin ? 'New PIN (4 to 8 digits)' : 'New password (at least 8 characters)', input: pin ? { type: 'text', inputmode: 'numeric', pattern: '[0-9]{4,8}', required: true, autocomplete: 'off' } : { type: 'text', minlength: '8', required: true, autocomplete: 'off' } }],
      ok: 'Set it',
    });
    if (!v) return;
    try {
      await api('POST', `/api/people/${p.id}/reset`, pin ? { pin: v.secret } : { password: v.secret });
      toast(`${p.name} can log in with the new ${pin ? 'PIN' : 'password'}.`);
    } catch (e) { toast(e.message); }
  };
  const removePerson = async (p) => {
    const v = await ask({ title: `Remove ${p.name}?`, text: `${p.name} will no longer be able to log in, and their chats will be deleted.`, ok: 'Remove', danger: true });
    if (!v) return;
    try { await api('DELETE', `/api/people/${p.id}`); toast(`${p.name} is removed.`); load(); } catch (e) { toast(e.message); }
  };
  const err = errorBox();
  const secretHint = h('p', { class: 'hint', id: 'add-secret-hint' }, 'At least 8 characters.');
  const secret = h('input', { type: 'text', id: 'add-secret', name: 'secret', required: true, autocomplete: 'off', minlength: '8', 'aria-describedby': 'add-secret-hint' });
  const secretLabel = h('label', { for: 'add-secret' }, 'Password');
  const setKind = (kind) => {
    const pin = kind === 'pin';
    secretLabel.textContent = pin ? 'PIN' : 'Password';
    secretHint.textContent = pin ? '4 to 8 digits: easy for children to remember.' : 'At least 8 characters.';
    if (pin) { secret.setAttribute('pattern', '[0-9]{4,8}'); secret.setAttribute('inputmode', 'numeric'); secret.removeAttribute('minlength'); } else { secret.removeAttribute('pattern'); secret.removeAttribute('inputmode'); secret.setAttribute('minlength', '8'); }
  };
  const radio = (value, label, checked) => {
    const id = nextId('k');
    return h('span', { class: 'choice' },
      h('input', { type: 'radio', name: 'kind', id, value, checked, onchange: () => setKind(value) }),
      h('label', { for: id }, label));
  };
  const form = h('form', { class: 'stack', id: 'add-person' },
    h('h3', {}, 'Add someone'),
    field('Name', { name: 'name', id: 'add-name', required: true, autocomplete: 'off' }),
    h('fieldset', {}, h('legend', {}, 'How will they log in?'),
      radio('password', 'With a password', true), radio('pin', 'With a PIN (for children)', false)),
    h('div', { class: 'field' }, secretLabel, secret, secretHint),
    err,
    h('button', { type: 'submit', class: 'primary' }, 'Add'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    const body = { name: v.name.trim() };
    body[v.kind === 'pin' ? 'pin' : 'password'] = v.secret;
    try {
      await api('POST', '/api/people', body);
      toast(`${body.name} is added. They can log in now.`);
      form.reset();
      setKind('password');
      showError(err, null);
      load();
    } catch (ex) { showError(err, ex); }
  });
  load();
  return section('People', h('p', {}, 'Everyone logs in as themselves and sees only their own chats.'), listEl, form);
}

function modelSection(s, slot) {
  const model = s.model || {};
  const useModel = async (name, btn) => {
    // Loading a model takes a few seconds (longer for a large one); replies being written
    // finish on the model that began them.
    for (const b of document.querySelectorAll('#installed button')) b.disabled = true;
    btn.textContent = 'Loading…';
    try {
      await api('POST', '/api/models/use', { name });
      toast(`Hearth now uses ${name}.`);
    } catch (e) { toast(e.message); }
    loadOwnerSettings(slot);
  };
  const installed = (s.installed || []).map((m) => {
    if (m.name === model.id) {
      return h('li', {},
        h('div', {}, h('strong', {}, m.name), ' ', h('span', { class: 'muted' }, bytes(m.size))),
        h('span', { class: 'pill' }, 'In use'));
    }
    if (m.chat === false) {
      return h('li', {},
        h('div', {}, h('strong', {}, m.name), ' ', h('span', { class: 'muted' }, bytes(m.size)),
          h('p', { class: 'muted' }, 'Continues text only: it cannot chat, so this page cannot use it.')));
    }
    const btn = h('button', { type: 'button', class: 'small ghost', 'aria-label': `Use ${m.name}` }, 'Use this one');
    btn.addEventListener('click', () => useModel(m.name, btn));
    return h('li', {},
      h('div', {}, h('strong', {}, m.name), ' ', h('span', { class: 'muted' }, bytes(m.size))),
      btn);
  });
  const catalog = (s.catalog || []).filter((c) => !c.installed).map((c) => {
    const bar = h('progress', { max: '1', hidden: true, 'aria-label': `Downloading ${c.name}` });
    const label = h('span', { class: 'muted', 'aria-live': 'polite' });
    const btn = h('button', { type: 'button', class: 'small ghost' }, 'Download');
    btn.addEventListener('click', () => pull(c.name, btn, bar, label, slot));
    return h('li', {},
      h('div', {}, h('strong', {}, c.name), ' ', h('span', { class: 'muted' }, bytes(c.size)),
        c.description ? h('p', { class: 'muted' }, c.description) : null, bar, label),
      btn);
  });
  return section('AI model',
    h('p', {}, 'In use: ', h('strong', {}, model.id || 'none'), model.ctx ? ` (remembers about ${model.ctx.toLocaleString()} tokens of a chat)` : ''),
    h('h3', {}, 'On this machine'),
    h('ul', { class: 'rows', id: 'installed' }, installed.length ? installed : h('li', {}, 'None.')),
    catalog.length ? [h('h3', {}, 'More you can download'), h('ul', { class: 'rows', id: 'catalog' }, catalog)] : null,
    h('h3', {}, 'What this machine can run'),
    s.plan
      ? h('details', {}, h('summary', {}, 'Show the plan'), h('pre', { class: 'plan', tabindex: '0' }, JSON.stringify(s.plan, null, 2)))
      : h('p', { class: 'muted' }, 'No plan is available for this machine yet.'));
}

async function pull(name, btn, bar, label, slot) {
  btn.disabled = true;
  bar.hidden = false;
  bar.removeAttribute('value');
  label.textContent = 'Starting…';
  let failed = null;
  try {
    const r = await fetch('/api/models/pull', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': S.csrf || '' },
      body: JSON.stringify({ name }),
    });
    if (!r.ok) {
      let msg = `Download failed (error ${r.status}).`;
      try { msg = (await r.json()).error.message; } catch { /* keep the generic words */ }
      throw new Error(msg);
    }
    let finished = false;
    await readEvents(r, (ev, d) => {
      if (ev === 'progress' && d) {
        if (d.total) { bar.max = d.total; bar.value = d.done; label.textContent = `${bytes(d.done)} of ${bytes(d.total)}`; } else label.textContent = `${bytes(d.done)}`;
      } else if (ev === 'done') finished = true;
      else if (ev === 'error') failed = new Error((d && d.message) || 'Download failed.');
    });
    if (!failed && !finished) failed = new Error('The download stopped before the end.');
  } catch (e) { failed = e; }
  if (failed) {
    label.textContent = failed.message;
    bar.hidden = true;
    btn.disabled = false;
    btn.textContent = 'Try again';
    return;
  }
  toast(`${name} is downloaded.`);
  loadOwnerSettings(slot);
}

function keysSection() {
  const listEl = h('ul', { class: 'rows', id: 'keys' });
  const shown = h('div', { 'aria-live': 'polite' });
  const load = async () => {
    let keys;
    try { keys = await api('GET', '/api/keys'); } catch (e) { listEl.replaceChildren(h('li', { class: 'error' }, e.message)); return; }
    if (!keys.length) { listEl.replaceChildren(h('li', { class: 'muted' }, 'No keys yet.')); return; }
    listEl.replaceChildren(...keys.map((k) => h('li', {},
      h('div', {}, h('strong', {}, k.name), ' ',
        h('span', { class: 'muted' }, `made ${when(k.created)} · ${k.last_used ? `last used ${when(k.last_used)}` : 'never used'}`)),
      h('button', {
        type: 'button', class: 'small danger',
        onclick: async () => {
          const v = await ask({ title: `Revoke “${k.name}”?`, text: 'Apps using this key will stop working.', ok: 'Revoke', danger: true });
          if (!v) return;
          try { await api('DELETE', `/api/keys/${k.id}`); toast('Key revoked.'); load(); } catch (e) { toast(e.message); }
        },
      }, 'Revoke'))));
  };
  const err = errorBox();
  const form = h('form', { class: 'row wrap end-items' },
    field('Name of the app', { name: 'name', required: true, autocomplete: 'off', placeholder: 'Kitchen tablet' }),
    h('button', { type: 'submit', class: 'primary' }, 'Create key'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = new FormData(form).get('name').trim();
    try {
      const k = await api('POST', '/api/keys', { name });
      form.reset();
      showError(err, null);
      shown.replaceChildren(h('div', { class: 'notice' },
        h('p', {}, `The key for “${k.name}”. Copy it now: Hearth keeps only a fingerprint and cannot show it again.`),
        h('div', { class: 'row wrap' }, h('code', { class: 'key', id: 'new-key' }, k.key), copyButton(() => k.key, 'Copy key'))));
      load();
    } catch (ex) { showError(err, ex); }
  });
  load();
  return section('Keys for apps',
    h('p', {}, 'Apps that speak the OpenAI API (editors, scripts, home automation) use a key to talk to Hearth at ',
      h('code', {}, `${location.origin}/v1`), '.'),
    form, err, shown, listEl);
}

boot();

// For the browser tests, which check the renderer on hostile input inside the real page.
export { renderMarkdown };
