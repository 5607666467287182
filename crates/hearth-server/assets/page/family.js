// Children and everyone's own settings: the keeper's choice of grown-up or child when adding
// someone, a child's limits (their prompt, hours, topics, whether the keeper reads their chats),
// the keeper reading a child's chats, each person's own instructions and language, and what a
// child sees: who can read their chats, and when Hearth is resting.
//
// The server enforces all of it; this only shows it and asks for it.

import { api, S } from './api.js';
import { errorBox, field, h, nextId, showError, toast, when } from './dom.js';
import { t, useLanguage } from './i18n.js';
import { enterApp } from './shell.js';

function card(title, ...kids) {
  const id = nextId('s');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), kids);
}

function check(label, checked, props = {}) {
  const id = nextId('c');
  return h('div', { class: 'choice' },
    h('input', { type: 'checkbox', id, checked: checked || null, ...props }),
    h('label', { for: id }, label));
}

function textArea(label, value, props = {}, hint) {
  const id = nextId('t');
  const hintId = hint ? `${id}-hint` : null;
  const ta = h('textarea', { id, rows: '4', 'aria-describedby': hintId, ...props });
  ta.value = value || '';
  return h('div', { class: 'field' }, h('label', { for: id }, label), ta, hint ? h('p', { class: 'hint', id: hintId }, hint) : null);
}

const hhmm = (minutes) => `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
const minutesOf = (text) => {
  const m = /^(\d{1,2}):(\d{2})/.exec(text || '');
  return m ? Number(m[1]) * 60 + Number(m[2]) : null;
};

// ---- adding someone ----

/** The "Who is this?" choice for the form that adds a person (`formOf()` gives the form). A
 * child usually logs in with a PIN, so choosing a child also chooses the PIN (the keeper can
 * still pick a password). */
export function roleChoice(formOf) {
  const radio = (value, label, checked) => {
    const id = nextId('r');
    return h('span', { class: 'choice' },
      h('input', {
        type: 'radio', name: 'role', id, value, checked: checked || null,
        onchange: () => {
          if (value !== 'child') return;
          const pin = formOf().querySelector('input[name="kind"][value="pin"]');
          if (pin && !pin.checked) { pin.checked = true; pin.dispatchEvent(new Event('change')); }
        },
      }),
      h('label', { for: id }, label));
  };
  return h('fieldset', {}, h('legend', {}, t('family.who')),
    radio('member', t('family.grown_up'), true), radio('child', t('family.child'), false),
    h('p', { class: 'hint' }, t('family.child_hint')));
}

// ---- a child's row in People ----

/** What the keeper can do for a child in the People list: their limits, and their chats when
 * the keeper may read them. `reload` redraws the list after a change. */
export function childControls(p, reload) {
  const limits = p.limits || {};
  const details = h('details', { class: 'limits-box' }, h('summary', {}, t('family.limits_of', { name: p.name })));
  details.addEventListener('toggle', () => {
    if (details.open && !details.querySelector('form')) details.append(limitsForm(p, limits, reload));
  }, { once: false });
  const read = limits.keeper_sees
    ? h('button', { type: 'button', class: 'small ghost', onclick: () => showChildChats(p) }, t('family.read_chats', { name: p.name }))
    : null;
  return h('div', { class: 'stack child-controls' }, details, read);
}

function limitsForm(p, limits, reload) {
  const err = errorBox();
  const prompt = textArea(t('family.prompt', { name: p.name }), limits.prompt, { name: 'prompt', rows: '6' },
    t('family.prompt_hint'));
  const useDefault = h('button', {
    type: 'button', class: 'small ghost',
    onclick: () => { prompt.querySelector('textarea').value = limits.default_prompt || ''; },
  }, t('family.use_default'));
  const hours = limits.hours;
  const from = field(t('family.from'), { name: 'from', type: 'time', value: hours ? hhmm(hours.from) : '08:00' });
  const until = field(t('family.until'), { name: 'until', type: 'time', value: hours ? hhmm(hours.to) : '19:30' });
  const times = h('div', { class: 'row wrap', hidden: !hours }, from, until);
  const someHours = check(t('family.some_hours'), !!hours, {
    name: 'some_hours', onchange: (e) => { times.hidden = !e.target.checked; },
  });
  const topicsNote = limits.topic_check
    ? limits.topics_note
    : t('family.no_topic_check', { note: limits.topics_note });
  const topics = textArea(t('family.topics'), (limits.topics || []).join('\n'), { name: 'topics' },
    t('family.topics_hint', { note: topicsNote }));
  const sees = check(t('family.let_me_read', { name: p.name }), !!limits.keeper_sees, { name: 'keeper_sees' });
  const wishes = textArea(t('family.wishes', { name: p.name }), limits.child_instructions || '',
    { name: 'child_instructions' },
    t('family.wishes_hint', { name: p.name }));
  const form = h('form', { class: 'stack limits' },
    prompt, h('div', { class: 'row' }, useDefault),
    h('fieldset', {}, h('legend', {}, t('family.hours')), someHours, times,
      h('p', { class: 'hint' }, t('family.hours_hint', { name: p.name }))),
    topics,
    wishes,
    sees,
    h('p', { class: 'hint' }, t('family.page_says', { name: p.name })),
    err,
    h('button', { type: 'submit', class: 'primary' }, t('family.save_limits', { name: p.name })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const el = (name) => form.querySelector(`[name="${name}"]`);
    const on = el('some_hours').checked;
    const body = {
      prompt: el('prompt').value,
      hours: on ? {
        from: minutesOf(el('from').value) ?? 0,
        to: minutesOf(el('until').value) ?? 0,
        // Hours are in the keeper's time: the zone their browser names, so the hours follow
        // the clocks when they change for summer, and the offset now for an older server.
        utc_offset: -new Date().getTimezoneOffset(),
        time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone || null,
      } : null,
      topics: el('topics').value.split('\n').map((line) => line.trim()).filter(Boolean),
      keeper_sees: el('keeper_sees').checked,
      child_instructions: el('child_instructions').value,
    };
    try {
      await api('PUT', `/api/people/${p.id}/limits`, body);
      showError(err, null);
      toast(t('common.saved'));
      reload();
    } catch (ex) { showError(err, ex); }
  });
  return form;
}

/** The keeper reads a child's chats, read-only, in a dialog. */
async function showChildChats(p) {
  let list;
  try { list = await api('GET', `/api/people/${p.id}/conversations`); } catch (e) { toast(e.message); return; }
  const titleId = nextId('d');
  const body = h('div', { class: 'stack' });
  const dlg = h('dialog', { class: 'child-chats', 'aria-labelledby': titleId },
    h('h2', { id: titleId }, t('family.chats_of', { name: p.name })),
    h('p', { class: 'hint' }, t('family.page_says_you_can', { name: p.name })),
    body,
    h('div', { class: 'row' }, h('button', { type: 'button', class: 'primary', onclick: () => dlg.close() }, t('common.close'))));
  dlg.addEventListener('close', () => dlg.remove());
  if (!list.length) body.append(h('p', {}, t('family.no_chats', { name: p.name })));
  const said = (m) => h('p', { class: `said ${m.role}`, dir: 'auto' },
    h('strong', {}, t('family.said_by', { name: m.role === 'user' ? p.name : 'Hearth' })), m.content);
  for (const c of list) {
    let full;
    try { full = await api('GET', `/api/people/${p.id}/conversations/${c.id}`); } catch { continue; }
    body.append(h('section', { class: 'card' },
      h('h3', {}, c.title || t('chat.new')),
      h('p', { class: 'hint' }, when(c.updated)),
      h('a', {
        class: 'button small ghost', download: '',
        href: `/api/people/${p.id}/conversations/${c.id}/export?format=markdown&offset=${-new Date().getTimezoneOffset()}`,
      }, t('family.download_chat', { title: c.title || t('chat.new') })),
      ...full.messages.map(said),
      // What the child edited away or asked again is out of their view, not gone: the keeper
      // can read it too.
      ...(full.other_versions?.length
        ? [h('details', {},
          h('summary', {}, t('family.other_versions', { count: full.other_versions.length })),
          ...full.other_versions.map(said))]
        : [])));
  }
  document.body.append(dlg);
  dlg.showModal();
}

// ---- everyone's own settings ----

// Each language named in its own words, as language menus do.
const LANGUAGE_NAMES = [['en', 'English'], ['fr', 'Français']];

/** "Your settings": instructions Hearth keeps in mind for you, and the page's language. */
export function mySettingsSection() {
  const err = errorBox();
  const hint = S.me?.role === 'child'
    ? t('family.instructions_hint_child')
    : t('family.instructions_hint');
  const instructions = textArea(t('family.instructions'), '', { name: 'instructions' }, hint);
  const langId = nextId('l');
  const lang = h('select', { id: langId, name: 'language' },
    h('option', { value: '' }, t('family.lang_browser')),
    ...LANGUAGE_NAMES.map(([v, label]) => h('option', { value: v, lang: v }, label)));
  const form = h('form', { class: 'stack', id: 'my-settings' },
    instructions,
    h('div', { class: 'field' }, h('label', { for: langId }, t('family.language')), lang),
    err,
    h('button', { type: 'submit', class: 'primary' }, t('family.save_mine')));
  api('GET', '/api/me/settings').then((s) => {
    form.querySelector('[name="instructions"]').value = s.instructions || '';
    lang.value = s.language || '';
  }).catch((e) => showError(err, e));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const s = await api('PUT', '/api/me/settings', {
        instructions: form.querySelector('[name="instructions"]').value,
        language: lang.value || null,
      });
      const before = S.me ? S.me.language : null;
      if (S.me) S.me.language = s.language;
      showError(err, null);
      // Another language: the whole page is drawn again in it, on the same screen.
      if ((before || null) !== (s.language || null)) {
        useLanguage(s.language);
        enterApp();
        document.getElementById('settings-title')?.focus();
      }
      toast(t('common.saved'));
    } catch (ex) { showError(err, ex); }
  });
  return card(t('family.your_settings'), form);
}

// ---- what a child sees ----

/** In plain words, who can read this person's chats: for a child, what the keeper chose;
 * grown-ups' chats nobody else can read. */
export function privacySentence(me) {
  if (me && me.role === 'child' && me.keeper_sees) return t('family.privacy_seen');
  if (me && me.role === 'child') return t('family.privacy_child');
  return t('family.privacy');
}

/** For a child, always in view under the message box: whether their chats can be read. */
export function privacyNote(me) {
  if (!me || me.role !== 'child') return null;
  return h('p', { id: 'privacy-note', class: 'hint privacy' }, privacySentence(me));
}

/** The whole page for a child outside their hours: when they can come back. */
export function restingView(me) {
  const back = me.resting ? me.resting.back_at : '';
  const logOut = async () => {
    try { await api('POST', '/api/logout'); } catch { /* logged out either way */ }
    location.reload();
  };
  return h('main', { id: 'main', class: 'resting', tabindex: '-1' },
    h('div', { class: 'card stack' },
      h('h1', {}, t('family.resting')),
      h('p', {}, back ? t('family.come_back', { time: back }) : me.resting.message),
      h('button', { type: 'button', class: 'ghost', onclick: logOut }, t('settings.log_out'))));
}
