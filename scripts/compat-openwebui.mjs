// The browser half of scripts/compat-openwebui: logs in to Open WebUI, picks the Hearth model and
// asks a question, and passes only if the answer arrived in pieces (streamed) and is not empty.
//
// Environment (scripts/compat-openwebui sets it): OPENWEBUI_URL, OPENWEBUI_API (openai or
// ollama, for the screenshots' names), OPENWEBUI_SHOTS, HEARTH_BROWSER_NODE, CHROMIUM.

import path from 'node:path';
import { createRequire } from 'node:module';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run this through scripts/compat-openwebui`);
  return v;
};
const url = env('OPENWEBUI_URL');
const api = env('OPENWEBUI_API');
const shots = env('OPENWEBUI_SHOTS');
const require = createRequire(path.join(env('HEARTH_BROWSER_NODE'), 'package.json'));
const { chromium } = require('playwright-core');
const MODEL = 'smollm2-135m';

const browser = await chromium.launch({ executablePath: env('CHROMIUM'), args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const shot = (name) => page.screenshot({ path: path.join(shots, `${api}-${name}.png`) });
// Nothing but Open WebUI itself may be fetched by the page: the run is meant to work offline.
const outside = [];
page.on('request', (r) => {
  const u = new URL(r.url());
  if (!['127.0.0.1', 'localhost'].includes(u.hostname) && !['data:', 'blob:'].includes(u.protocol)) {
    outside.push(r.url());
  }
});

let ok = false;
try {
  await page.goto(`${url}/auth`);
  await page.locator('input[type="email"]').fill('keeper@hearth.test');
  await page.locator('input[type="password"]').fill('compat-password');
  await shot('1-login');
  await page.getByRole('button', { name: /sign in/i }).click();
  await page.locator('#chat-input').waitFor({ timeout: 60_000 });
  // The first visit may open "what's new"; close it like a person would.
  const whatsNew = page.getByRole('button', { name: /okay, let's go/i });
  if (await whatsNew.isVisible().catch(() => false)) await whatsNew.click();

  // The model picker (its id names which picker; the first is the chat's own).
  const picker = page.locator('button[id^="model-selector-"][id$="-button"]').first();
  await picker.click();
  await page.getByPlaceholder(/search a model/i).fill(MODEL);
  await shot('2-models');
  await page.locator('[aria-label="model-item"], [role="option"], button').filter({ hasText: MODEL })
    .filter({ hasNot: page.locator('[id^="model-selector-"]') }).last().click();
  await shot('3-model');
  const picked = await picker.innerText();
  if (!picked.includes(MODEL)) throw new Error(`the model picker shows "${picked}", not ${MODEL}`);

  await page.locator('#chat-input').click();
  await page.keyboard.type('Write a long story about a dragon who loves apples.');
  await page.keyboard.press('Enter');

  // Watch the answer grow: a streamed answer shows several lengths before it is done. The first
  // token is slow: Open WebUI sends its 36 built-in tools with every chat (about 6,400 tokens of
  // prompt and a grammar over all of them), which took Hearth 100 s on a busy 2-core machine.
  const answer = page.locator('#response-content-container').last();
  await answer.waitFor({ timeout: 120_000 });
  const lengths = new Set();
  const deadline = Date.now() + 600_000;
  let text = '';
  while (Date.now() < deadline) {
    text = (await answer.innerText().catch(() => '')).trim();
    if (text) lengths.add(text.length);
    // Done when the stop button gives way to the send button again; after a few pieces have
    // arrived, stopping it is enough (the small model may go on for a thousand tokens).
    const stop = page.locator('button[aria-label="Stop"]');
    const busy = await stop.count();
    if (text && !busy) break;
    if (busy && lengths.size >= 5) {
      await stop.first().click();
      await page.waitForTimeout(1000);
      text = (await answer.innerText().catch(() => '')).trim();
      break;
    }
    await page.waitForTimeout(50);
  }
  await shot('4-answer');
  console.log(`${api}: answer of ${text.length} characters, seen at ${lengths.size} lengths while streaming`);
  console.log(`${api}: ${JSON.stringify(text.slice(0, 200))}`);
  if (!text) throw new Error('no answer appeared');
  if (lengths.size < 2) throw new Error('the answer appeared at once: not streamed');
  if (outside.length) throw new Error(`the page fetched from outside: ${outside.slice(0, 5).join(', ')}`);
  ok = true;
} catch (e) {
  console.error(`${api}: ${e.stack || e}`);
  const ids = await page.evaluate(() => [...document.querySelectorAll('button')]
    .map((b) => `${b.id || '-'} [${b.getAttribute('aria-label') || ''}] ${b.innerText.slice(0, 30)}`)).catch(() => []);
  console.error(`${api}: buttons on the page:\n  ${ids.join('\n  ')}`);
  await shot('failed').catch(() => {});
} finally {
  await browser.close();
}
process.exit(ok ? 0 : 1);
