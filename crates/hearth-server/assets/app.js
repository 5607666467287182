// Hearth's household page: ES modules (under /page/), no build step, no dependencies. This entry
// module starts the page; the modules it imports hold the rest.
//
// Design:
// - Every piece of the page is built with createElement/textContent through `h()` (dom.js).
//   Nothing that came from a person or from Hearth's replies is ever parsed as HTML, so a reply
//   cannot inject markup or script (the server's Content-Security-Policy also allows only the
//   page's own modules to run).
// - The server is the source of truth. A reply is generated and saved on the server whether or
//   not this page is open; the page follows it through the conversation's event stream and, when
//   it comes back (reload, phone unlocked, server restarted), asks the server again.
// - State lives in `S` (api.js); views re-render their own part of the page from it.
//
// Modules: api.js (state, requests), dom.js (elements, dialogs, formatting), markdown.js
// (replies as DOM), login.js (start-up, setup, login), shell.js (header and chat list),
// chat.js (a conversation), settings.js, theme.js (light and dark), i18n.js (the page's words
// in English or French, from messages-en.js and messages-fr.js).

import { onSessionLost } from './page/api.js';
import { boot, sessionLost } from './page/login.js';
import { applyTheme } from './page/theme.js';
import { useLanguage } from './page/i18n.js';

// The browser's language until the server says whether the person chose another.
useLanguage(null);
applyTheme();
onSessionLost(sessionLost);
boot();

// For the browser tests, which check the renderer on hostile input inside the real page.
export { renderMarkdown } from './page/markdown.js';
