// Helping the keeper pick a model (issue 18, item 4): Settings recommends, in words, the
// catalog models that can chat and run well here, says "continues text only" of a base model
// before it is downloaded, and shows no raw plan.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { freePort, launchBrowser, makeHome, shot, startServer, stopServer } from './harness.mjs';
import { assertNoAxeViolations, setUp } from './steps.mjs';

let browser;
let server;
let home;

before(async () => { browser = await launchBrowser(); });
after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

test('the AI model tab recommends in words, marks the base model before download, shows no raw plan', async () => {
  // Gemma 3 270M stays in the catalog only: the words about it come before any download.
  home = makeHome({ only: ['smollm2-135m'] });
  const port = await freePort();
  server = await startServer(home, port, 'advice');
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  try {
    await setUp(page, `http://hearth.local:${port}/`);
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'AI model' }).click();

    const advice = page.locator('#advice');
    const recommended = advice.locator('li', { hasText: 'smollm2-135m' });
    await recommended.waitFor({ timeout: 60_000 });
    const words = await recommended.innerText();
    // Its speed in words a second (or, where the planner has none, that it is not measured
    // yet: never 0), and the people it serves at once.
    assert.match(words, /Recommended: smollm2-135m/);
    assert.match(words, /(answers about [1-9][\d,]* words a second here|less than a word a second|speed not measured yet)/);
    assert.match(words, /for up to \d+ (people|person) at once/);
    assert.doesNotMatch(words, /about 0 words/);

    const gemma = page.locator('#catalog li', { hasText: 'gemma3-270m' });
    await gemma.getByText('Continues text only').waitFor();
    assert.equal(await advice.locator('li', { hasText: 'gemma3-270m' }).count(), 0, 'a base model is never recommended');

    // Sentences, not the planner's JSON; its figures only behind the keeper's Details toggle.
    const text = await page.locator('main').textContent();
    for (const raw of ['tok_s', 'kv_bytes', '{', '"']) assert.ok(!text.includes(raw), `no raw plan on the page (found ${raw})`);
    await page.getByText(/smollm2-135m needs about .* of memory/).waitFor();
    await shot(page, 'settings-model-advice');
    await assertNoAxeViolations(page, 'the AI model tab with its recommendation');
  } finally {
    await context.close();
  }
});
