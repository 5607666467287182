// The assistant that does things: each tool call of a reply as a step in the chat (with the
// person's approval for tools that change something), "Save as note", the notes view,
// reminders shown at their time, and the keeper's tools per person and audit log.
//
// The server decides who may use which tool and checks every answer to a waiting call; the
// page only shows what it is told (tools the person cannot use have no button).

import { S, api } from './api.js';
import { ask, h, nextId, toast, when } from './dom.js';
import { t } from './i18n.js';

/** The tools this person may use, asked once after login (`S.tools`: their names). */
export async function loadTools() {
  try {
    const list = await api('GET', '/api/tools');
    S.tools = list.map((x) => x.name);
  } catch {
    S.tools = [];
  }
}

export const mayUse = (name) => Array.isArray(S.tools) && S.tools.includes(name);

/** The browser's time zone, for tools that read or write local times. */
export function timeZone() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || null; } catch { return null; }
}

function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

const OUTCOMES = {
  waiting: 'tools.outcome_waiting',
  running: 'tools.outcome_running',
  done: 'tools.outcome_done',
  failed: 'tools.outcome_failed',
  denied: 'tools.outcome_denied',
  timed_out: 'tools.outcome_timed_out',
  not_allowed: 'tools.outcome_not_allowed',
};

/** One tool call as a collapsible step; a waiting one is open, with its three answers. */
export function stepView(step, convId, { decided } = {}) {
  const outcome = step.outcome in OUTCOMES ? step.outcome : 'failed';
  const secs = step.ms == null ? '' : t('tools.took', { secs: (step.ms / 1000).toFixed(step.ms < 1000 ? 2 : 1) });
  const summary = h('summary', {},
    h('span', { class: 'tool-name' }, step.tool),
    ' · ',
    h('span', { class: `tool-outcome ${outcome}` }, t(OUTCOMES[outcome])),
    secs ? ` · ${secs}` : '');
  const kids = [summary,
    h('p', { class: 'tool-label' }, t('tools.arguments')),
    h('pre', { class: 'tool-data', dir: 'ltr' }, pretty(step.arguments))];
  if (step.result) {
    kids.push(h('p', { class: 'tool-label' }, t('tools.result')),
      h('pre', { class: 'tool-data', dir: 'auto' }, pretty(step.result)));
  }
  if (outcome === 'waiting') {
    kids.push(h('p', { class: 'tool-ask' }, t('tools.ask', { tool: step.tool })));
    const answer = async (decision) => {
      try {
        await api('POST', `/api/conversations/${convId}/steps/${step.id}`, { decision });
        if (decided) decided();
      } catch (e) { toast(e.message); }
    };
    kids.push(h('div', { class: 'row tool-answers' },
      h('button', { type: 'button', class: 'small primary', 'data-decision': 'once', onclick: () => answer('once') }, t('tools.approve_once')),
      h('button', { type: 'button', class: 'small ghost', 'data-decision': 'always', onclick: () => answer('always') }, t('tools.approve_always')),
      h('button', { type: 'button', class: 'small danger', 'data-decision': 'deny', onclick: () => answer('deny') }, t('tools.deny'))));
  }
  return h('details', { class: `tool-step st-${outcome}`, 'data-step': step.id, open: outcome === 'waiting' ? true : null }, ...kids);
}

/** The steps of message `m` in the open chat (none: nothing). */
export function stepsOf(m) {
  const all = (S.conv && S.conv.tool_steps) || [];
  return all.filter((s) => s.message_id === m.id);
}

/** Puts `step` (new or changed) into the open chat's steps. */
export function upsertStep(step) {
  if (!S.conv) return;
  const all = S.conv.tool_steps || (S.conv.tool_steps = []);
  const at = all.findIndex((s) => s.id === step.id);
  if (at >= 0) all[at] = step; else all.push(step);
}

// ---------------------------------------------------------------------------------------------
// Notes

/** The person's notes and lists (`/notes`). */
export async function renderNotes(main) {
  const list = h('div', { class: 'stack', id: 'notes-list' }, h('p', {}, t('settings.loading')));
  main.replaceChildren(h('section', { class: 'notes', 'aria-labelledby': 'notes-title' },
    h('h1', { id: 'notes-title', tabindex: '-1' }, t('notes.title')),
    h('p', { class: 'hint' }, t('notes.intro')),
    list));
  let notes;
  try { notes = await api('GET', '/api/notes'); } catch (e) { list.replaceChildren(h('p', { class: 'error' }, e.message)); return; }
  if (!notes.length) { list.replaceChildren(h('p', { class: 'empty' }, t('notes.empty'))); return; }
  list.replaceChildren(...notes.map((n) => {
    const id = nextId('note');
    return h('article', { class: 'card note-card', 'data-note': n.id, 'aria-labelledby': id },
      h('h2', { id, dir: 'auto' }, n.title),
      h('p', { class: 'muted' }, `${t(n.kind === 'list' ? 'notes.list' : 'notes.note')} · ${when(n.updated)}`),
      n.kind === 'list'
        ? h('ul', { dir: 'auto' }, n.content.split('\n').filter((l) => l.trim()).map((l) => h('li', {}, l)))
        : h('p', { class: 'note-text', dir: 'auto' }, n.content),
      h('div', { class: 'row' },
        h('button', {
          type: 'button', class: 'small ghost',
          onclick: async () => {
            const v = await ask({ title: t('notes.delete_title'), text: t('notes.delete_text', { title: n.title }), ok: t('notes.delete'), danger: true });
            if (!v) return;
            try { await api('DELETE', `/api/notes/${n.id}`); toast(t('notes.deleted')); renderNotes(main); } catch (e) { toast(e.message); }
          },
        }, t('notes.delete'))));
  }));
}

// ---------------------------------------------------------------------------------------------
// Reminders: asked for every half minute; one that is due shows until dismissed.

let reminderTimer = null;

export function startReminders() {
  clearTimeout(reminderTimer);
  const tick = async () => {
    if (!S.me) return;
    try {
      const r = await api('GET', '/api/reminders');
      showDue(r.reminders.filter((x) => x.due <= r.now));
    } catch { /* the next tick tries again */ }
    reminderTimer = setTimeout(tick, 30000);
  };
  tick();
}

function showDue(due) {
  const box = document.getElementById('reminders');
  if (!box) return;
  box.replaceChildren(...due.map((r) => h('div', { class: 'reminder', 'data-reminder': r.id },
    h('p', { dir: 'auto' }, h('strong', {}, t('reminders.title')), ' ', r.text),
    h('button', {
      type: 'button', class: 'small ghost',
      onclick: async () => {
        try { await api('POST', `/api/reminders/${r.id}/dismiss`); } catch (e) { toast(e.message); return; }
        box.querySelector(`[data-reminder="${r.id}"]`)?.remove();
      },
    }, t('reminders.dismiss')))));
}

// ---------------------------------------------------------------------------------------------
// The keeper: tools per person, and the audit log.

export function assistantSettings(sectionOf) {
  const people = h('div', { class: 'stack' }, h('p', {}, t('settings.loading')));
  const audit = h('div', { class: 'stack' }, h('p', {}, t('settings.loading')));
  (async () => {
    let list;
    try { list = await api('GET', '/api/people'); } catch (e) { people.replaceChildren(h('p', { class: 'error' }, e.message)); return; }
    const blocks = await Promise.all(list.map(async (p) => {
      let r;
      try { r = await api('GET', `/api/people/${p.id}/tools`); } catch (e) { return h('p', { class: 'error' }, e.message); }
      const legend = h('legend', {}, p.name);
      const boxes = r.tools.map((x) => {
        const id = nextId('tool');
        return h('div', { class: 'check' },
          h('input', { type: 'checkbox', id, name: x.name, checked: x.enabled ? true : null }),
          h('label', { for: id }, x.name, h('span', { class: 'muted' }, ` — ${x.read_only ? t('tools.reads') : t('tools.changes')}`)));
      });
      const form = h('form', { class: 'stack', 'data-person': p.id }, h('fieldset', {}, legend,
        p.role === 'child' && r.default ? h('p', { class: 'hint' }, t('tools.child_default')) : null, ...boxes),
      h('button', { type: 'submit', class: 'small primary' }, t('tools.save')));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const tools = [...form.querySelectorAll('input[type=checkbox]')].filter((c) => c.checked).map((c) => c.name);
        try { await api('PUT', `/api/people/${p.id}/tools`, { tools }); toast(t('tools.saved', { name: p.name })); } catch (err) { toast(err.message); }
        if (p.id === S.me.id) loadTools();
      });
      return form;
    }));
    people.replaceChildren(...blocks);
  })();
  (async () => {
    let log;
    try { log = await api('GET', '/api/audit'); } catch (e) { audit.replaceChildren(h('p', { class: 'error' }, e.message)); return; }
    if (!log.length) { audit.replaceChildren(h('p', { class: 'empty' }, t('tools.audit_empty'))); return; }
    audit.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'audit' },
      h('caption', { class: 'sr-only' }, t('tools.audit')),
      h('thead', {}, h('tr', {}, ['tools.when', 'tools.who', 'tools.tool', 'tools.arguments', 'tools.outcome'].map((k) => h('th', { scope: 'col' }, t(k))))),
      h('tbody', {}, log.map((a) => h('tr', {},
        h('td', {}, when(a.at)), h('td', { dir: 'auto' }, a.person), h('td', {}, a.tool),
        h('td', {}, h('code', { dir: 'ltr' }, a.arguments)), h('td', {}, a.outcome)))))));
  })();
  return [sectionOf(t('tools.people'), h('p', { class: 'hint' }, t('tools.people_hint')), people),
    sectionOf(t('tools.audit'), h('p', { class: 'hint' }, t('tools.audit_hint')), audit)];
}
