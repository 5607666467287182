// Branches, end to end in chromium against a real `hearth serve` (SmolLM2): editing an earlier
// message starts a new branch and keeps the old one ("2 of 2", back to "1 of 2" and its
// continuation), and another answer keeps the first ("2 of 2" on the reply). Short replies
// (8 tokens) keep it quick; the test never reads a reply's words.

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

/** Waits until the newest reply has ended, however it ended. */
async function replyEnded(page) {
  await page.locator('.msg.assistant').last().and(page.locator('.msg:not([data-status="streaming"])')).waitFor({ timeout: 120_000 });
}

async function send(page, text) {
  const box = page.getByLabel('Your message');
  await box.fill(text);
  await box.press('Enter');
  await page.locator('.msg.user .body', { hasText: text }).waitFor();
  await replyEnded(page);
}

test('edit an earlier message, go back to the first branch, and keep every answer', async () => {
  const { url } = await pool.serve('branches', ['--reply-tokens', '8', '--temperature', '0']);
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    await send(page, 'Name a fruit.');
    await send(page, 'Name a colour.');
    assert.equal(await page.locator('.msg').count(), 4);

    // The first message, not the last, is edited.
    const first = page.locator('.msg.user').first();
    await first.getByRole('button', { name: 'Edit', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Your message').fill('Name a vegetable.');
    await dialog.getByRole('button', { name: 'Send' }).click();
    await page.locator('.msg.user .body', { hasText: 'Name a vegetable.' }).waitFor();
    await replyEnded(page);
    assert.equal(await page.locator('.msg').count(), 2, 'the new branch holds the edit and its reply');
    const versions = page.locator('.msg.user').first().getByRole('group', { name: 'Versions of your message' });
    await versions.getByText('2 of 2').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Next version' }).isDisabled(), true);

    // Back to the first version with the keyboard: its whole continuation is there.
    await page.getByRole('button', { name: 'Previous version' }).focus();
    await page.keyboard.press('Enter');
    await page.locator('.msg.user').first().getByText('1 of 2').waitFor();
    assert.equal(await page.locator('.msg').count(), 4);
    await page.locator('.msg.user .body', { hasText: 'Name a colour.' }).waitFor();
    assert.equal(await page.locator('.msg.user .body', { hasText: 'Name a vegetable.' }).count(), 0);
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Next version',
      'focus stays on the versions, where the first button can no longer be used');

    // Another answer keeps the first one.
    await page.getByRole('button', { name: 'Try another answer' }).click();
    await replyEnded(page);
    assert.equal(await page.locator('.msg').count(), 4);
    const answers = page.locator('.msg.assistant').last().getByRole('group', { name: 'Answers' });
    await answers.getByText('2 of 2').waitFor();
    await answers.getByRole('button', { name: 'Previous answer' }).click();
    await page.locator('.msg.assistant').last().getByText('1 of 2').waitFor();
    await shot(page, 'branches');
    await assertNoAxeViolations(page, 'a chat with versions');
  } finally {
    await context.close();
  }
});
