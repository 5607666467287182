// The assistant that does things (issue 20), end to end in chromium against a real
// `hearth serve` (SmolLM2): "Save as note" on a reply forces the tool call by grammar (the page
// never waits for the small model to choose a tool), the page asks before the note is written,
// and the note is in the notes view word for word. Axe checks the approval and the notes view,
// on a laptop and on a phone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser, shot } from './harness.mjs';
import { assertNoAxeViolations, servers, setUp } from './steps.mjs';

let browser;
const pool = servers();

before(async () => { browser = await launchBrowser(); });
after(async () => {
  await browser?.close();
  await pool.stopAll();
});

async function replyEnded(page) {
  await page.locator('.msg.assistant').last().and(page.locator('.msg:not([data-status="streaming"])')).waitFor({ timeout: 120_000 });
}

test('Save as note: the page asks first, and the note is in Notes word for word', async () => {
  const { url } = await pool.serve('assistant', ['--reply-tokens', '16', '--temperature', '0']);
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    const box = page.getByLabel('Your message');
    await box.fill('Name three fruits.');
    await box.press('Enter');
    await replyEnded(page);
    const reply = page.locator('.msg.assistant').first();
    // The reply as written (the page shows it as Markdown).
    const text = await page.evaluate(async () => {
      const id = location.pathname.split('/').pop();
      const c = await (await fetch(`/api/conversations/${id}`)).json();
      return c.messages[1].content;
    });
    assert.ok(text.trim().length > 0, 'the first reply has words to save');

    await reply.getByRole('button', { name: 'Save as note' }).click();
    // The forced call waits for the person before anything is written.
    const waiting = page.locator('.tool-step.st-waiting');
    await waiting.waitFor({ timeout: 120_000 });
    await waiting.getByText('create_note').first().waitFor();
    await page.getByText('Waiting for your answer…').waitFor();
    await assertNoAxeViolations(page, 'a tool call waiting for approval');
    shot(page, 'assistant-approval');
    await waiting.getByRole('button', { name: 'Allow once' }).click();
    await page.locator('.tool-step.st-done').waitFor({ timeout: 120_000 });
    await replyEnded(page);
    // The step folds open to show what ran and what came back.
    const step = page.locator('.tool-step.st-done');
    await step.locator('summary').click();
    await step.getByText('Result').waitFor();

    await page.getByRole('button', { name: 'Notes' }).click();
    await page.getByRole('heading', { name: 'Notes', level: 1 }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/notes');
    const note = page.locator('.note-card');
    await note.first().waitFor();
    assert.equal(await note.count(), 1);
    // Word for word (innerText shows the text as the page lays it out: white space aside).
    const norm = (x) => x.replace(/\s+/g, ' ').trim();
    assert.equal(norm(await note.locator('.note-text').innerText()), norm(text));
    await assertNoAxeViolations(page, 'the notes view');

    // A reload keeps the address; a phone shows the same notes without sideways scrolling.
    await page.setViewportSize({ width: 360, height: 740 });
    await page.reload();
    await page.locator('.note-card').first().waitFor();
    const wide = await page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);
    assert.equal(wide, false, 'the notes view fits a phone');
    await assertNoAxeViolations(page, 'the notes view on a phone');
  } finally {
    await context.close();
  }
});
