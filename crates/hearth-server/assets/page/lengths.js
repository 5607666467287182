// Long messages and long replies, honestly: a reply that reached the longest a reply can be is
// "cut short" and goes on in the same message with Continue; a message the server refused is
// kept nowhere (a new chat is made with its first message, by the server, only once it is sent).

import { api } from './api.js';
import { t } from './i18n.js';

/** What the page says under a reply that was cut short. */
export const cutShortNote = () => t('chat.cut_short');

/** Asks the server to go on with conversation `conv`'s cut-short reply, in place; `then`
 * follows it (the reply's event stream starts with its text so far). */
export async function continueReply(conv, then) {
  const r = await api('POST', `/api/conversations/${conv.id}/continue`, { last_seen: conv.messages.at(-1)?.id ?? 0 });
  const i = conv.messages.findIndex((m) => m.id === r.assistant.id);
  if (i >= 0) conv.messages[i] = r.assistant;
  then();
}
