// The keeper's model advice in Settings, in words: which catalog models can chat and run well
// on this machine (the planner's arithmetic, from the server), what a base model cannot do
// before it is downloaded, and what the model in use needs. Figures a keeper may want stay
// behind a "Details" toggle; the planner's own field names never reach the page.

import { bytes, h } from './dom.js';
import { num, t } from './i18n.js';

/** "answers about 12 words a second here", or that the speed is not known: never 0. */
export function speedWords(m) {
  const w = m && m.words_per_second;
  if (typeof w !== 'number' || !(w > 0)) return t('advice.speed_unknown');
  if (w < 1) return t('advice.speed_slow');
  return t('advice.speed', { count: Math.round(w) });
}

/** "for up to 4 people at once", or nothing before the download tells. */
function peopleWords(n) {
  if (typeof n !== 'number' || n < 1) return '';
  return t('advice.people', { count: n });
}

/** What the speeds rest on, in a sentence. */
function basisWords(advice) {
  if (advice.speed === 'calibrated') return advice.calibrated_on ? t('advice.measured_on', { date: advice.calibrated_on }) : t('advice.measured');
  if (advice.speed === 'estimated') return t('advice.estimated');
  if (advice.speed === 'measuring') return t('advice.measuring');
  return t('advice.not_measured');
}

/** The recommendation: the models that can chat and run well here, best first, in words. */
export function adviceBlock(advice) {
  if (!advice || !Array.isArray(advice.models)) {
    return h('p', { class: 'muted' }, t('advice.unknown'));
  }
  const picks = advice.models.filter((m) => m.recommended);
  const items = picks.map((m) => {
    const parts = [speedWords(m), peopleWords(m.people_at_once)].filter(Boolean).join(', ');
    return h('li', {},
      h('div', {},
        h('strong', {}, t('advice.recommended_name', { name: m.name })), t('advice.parts', { parts }),
        m.in_use ? h('span', { class: 'muted' }, t('advice.in_use')) : null,
        !m.installed ? h('span', { class: 'muted' }, t('advice.not_downloaded')) : null));
  });
  return [
    picks.length
      ? h('ul', { class: 'rows', id: 'advice' }, items)
      : h('p', { id: 'advice' }, t('advice.none')),
    h('p', { class: 'muted' }, basisWords(advice)),
  ];
}

/** The advice for one model by name, if the server gave any. */
export function adviceFor(advice, name) {
  return advice && Array.isArray(advice.models) ? advice.models.find((m) => m.name === name) : undefined;
}

/** A line under a model in the lists: it cannot chat, does not fit, or is recommended. */
export function modelNote(m) {
  if (!m) return null;
  if (m.chat === false) return h('p', { class: 'muted' }, t('advice.text_only'));
  if (m.fits === false) return h('p', { class: 'muted' }, t('advice.too_big'));
  if (m.recommended && !m.in_use) return h('p', { class: 'muted' }, t('advice.recommended_speed', { speed: speedWords(m) }));
  return null;
}

/** The model in use and what it needs here, in sentences; figures behind Details. */
export function planSentences(plan, model, inUse, details) {
  if (!plan) return h('p', { class: 'muted' }, t('advice.no_plan'));
  const name = model.id || t('advice.model_in_use');
  const chats = t('advice.chats', { count: plan.users });
  const main = t(plan.fits ? 'advice.needs_fits' : 'advice.needs_too_much', {
    name, size: bytes(plan.total_bytes), chats, free: bytes(plan.usable_bytes),
  });
  const known = inUse && typeof inUse.words_per_second === 'number' && inUse.words_per_second > 0;
  const speed = !inUse ? '' : (known ? t('advice.it_speed', { speed: speedWords(inUse) }) : t('advice.its_speed_unknown'));
  const tps = inUse && typeof inUse.tokens_per_second === 'number' && inUse.tokens_per_second > 0
    ? t('advice.tps', { rate: num(inUse.tokens_per_second, { maximumFractionDigits: 1, minimumFractionDigits: 1 }) })
    : '';
  return [
    h('p', {}, main + speed),
    details(
      t('advice.details', {
        weights: bytes(plan.weights_bytes), ctx: num(plan.ctx), kv: bytes(plan.kv_bytes_per_user),
        work: bytes(plan.compute_bytes), hearth: bytes((plan.runtime_bytes || 0) + (plan.header_bytes || 0)),
        count: plan.max_users_at_ctx,
      }) + tps + (plan.machine ? t('advice.machine', { machine: plan.machine }) : '')),
  ];
}
