// The keeper's model advice in Settings, in words: which catalog models can chat and run well
// on this machine (the planner's arithmetic, from the server), what a base model cannot do
// before it is downloaded, and what the model in use needs. Figures a keeper may want stay
// behind a "Details" toggle; the planner's own field names never reach the page.

import { bytes, h } from './dom.js';

/** "answers about 12 words a second here", or that the speed is not known: never 0. */
export function speedWords(m) {
  const w = m && m.words_per_second;
  if (typeof w !== 'number' || !(w > 0)) return 'speed not measured yet';
  if (w < 1) return 'answers less than a word a second here';
  return `answers about ${Math.round(w).toLocaleString()} words a second here`;
}

/** "for up to 4 people at once", or nothing before the download tells. */
function peopleWords(n) {
  if (typeof n !== 'number' || n < 1) return '';
  return `for up to ${n} ${n === 1 ? 'person' : 'people'} at once`;
}

/** What the speeds rest on, in a sentence. */
function basisWords(advice) {
  if (advice.speed === 'calibrated') return `Speeds were measured on this machine${advice.calibrated_on ? ` on ${advice.calibrated_on}` : ''}.`;
  if (advice.speed === 'estimated') return 'Speeds are estimates from how fast this machine reads its memory; the words a second are for each person when everyone is chatting at once.';
  if (advice.speed === 'measuring') return 'Hearth is measuring how fast this machine reads its memory: open this tab again in a minute to see how fast each model answers here.';
  return 'Hearth could not measure this machine, so it cannot say how fast the models answer here.';
}

/** The recommendation: the models that can chat and run well here, best first, in words. */
export function adviceBlock(advice) {
  if (!advice || !Array.isArray(advice.models)) {
    return h('p', { class: 'muted' }, 'Hearth cannot tell yet which models suit this machine.');
  }
  const picks = advice.models.filter((m) => m.recommended);
  const items = picks.map((m) => {
    const parts = [speedWords(m), peopleWords(m.people_at_once)].filter(Boolean).join(', ');
    return h('li', {},
      h('div', {},
        h('strong', {}, `Recommended: ${m.name}`), ` — ${parts}.`,
        m.in_use ? h('span', { class: 'muted' }, ' This is the one in use.') : null,
        !m.installed ? h('span', { class: 'muted' }, ' Not downloaded yet: you can download it below.') : null));
  });
  return [
    picks.length
      ? h('ul', { class: 'rows', id: 'advice' }, items)
      : h('p', { id: 'advice' }, 'None of the models Hearth knows can both chat and run well on this machine.'),
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
  if (m.chat === false) return h('p', { class: 'muted' }, 'Continues text only: it cannot chat, so this page could not use it. Apps can use it to continue a text.');
  if (m.fits === false) return h('p', { class: 'muted' }, 'Needs more memory than this machine has free, so Hearth could not run it here.');
  if (m.recommended && !m.in_use) return h('p', { class: 'muted' }, `Recommended: ${speedWords(m)}.`);
  return null;
}

/** The model in use and what it needs here, in sentences; figures behind Details. */
export function planSentences(plan, model, inUse, details) {
  if (!plan) return h('p', { class: 'muted' }, 'Hearth cannot tell yet how much of this machine the model needs.');
  const name = model.id || 'The model in use';
  const chats = `${plan.users} ${plan.users === 1 ? 'chat' : 'chats'} at once`;
  const main = plan.fits
    ? `${name} needs about ${bytes(plan.total_bytes)} of memory for ${chats}, and this machine has ${bytes(plan.usable_bytes)} free for it.`
    : `${name} needs about ${bytes(plan.total_bytes)} of memory for ${chats}, more than the ${bytes(plan.usable_bytes)} this machine has free.`;
  const known = inUse && typeof inUse.words_per_second === 'number' && inUse.words_per_second > 0;
  const speed = !inUse ? '' : (known ? ` It ${speedWords(inUse)}.` : ' Its speed is not measured yet.');
  const tps = inUse && typeof inUse.tokens_per_second === 'number' && inUse.tokens_per_second > 0
    ? ` Writing speed: about ${inUse.tokens_per_second.toFixed(1)} tokens a second for each chat.`
    : '';
  return [
    h('p', {}, main + speed),
    details(
      `The model's weights take ${bytes(plan.weights_bytes)}; each chat keeps up to ${plan.ctx.toLocaleString()} tokens in mind, which takes ${bytes(plan.kv_bytes_per_user)}. `
      + `Working memory: ${bytes(plan.compute_bytes)}. Hearth itself: ${bytes((plan.runtime_bytes || 0) + (plan.header_bytes || 0))}. `
      + `At most ${plan.max_users_at_ctx.toLocaleString()} chats of that length fit at once.${tps}`
      + `${plan.machine ? ` Machine: ${plan.machine}.` : ''}`),
  ];
}
