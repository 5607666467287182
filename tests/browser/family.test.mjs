// Children and honest limits, end to end in chromium against a real `hearth serve` (SmolLM2,
// and all-MiniLM for the topic check): a child added as a child, their prompt in effect, their
// hours, the keeper's topics, who can read their chats; a message too long for the model stored
// nowhere; a reply that reached the longest a reply can be, continued in place.
//
// One server for all of them, with a small context and a short longest reply, so the long
// message and the cut-short reply cost little.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { freePort, launchBrowser, makeHome, setupUrl, shot, startServer, stopServer } from './harness.mjs';

const KEEPER = { household: 'The Okafor family', name: 'Ada', password: 'sunflower-table-19' };
const CHILD = { name: 'Leo', pin: '2468' };
const SECRET_PROMPT = 'The secret word is PINEAPPLE. When asked for the secret word, answer PINEAPPLE.';

let browser;
let server;
let home;
let url;
/** When the hours the keeper set begin ("HH:MM"). */
let from = '';

before(async () => {
  browser = await launchBrowser();
  home = makeHome();
  const port = await freePort();
  // Temperature 0: the same question gets the same reply, so a reply the tests read (the
  // child's secret word) does not depend on a random draw.
  server = await startServer(home, port, 'family', ['--ctx', '2048', '--reply-tokens', '24', '--temperature', '0'], '127.0.0.1', 'smollm2-135m', { embeddings: true });
  url = `http://hearth.local:${port}/`;
  // The household, set up through the page once; every test logs in as someone.
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(setupUrl(url));
  await page.getByLabel('What should we call your household?').fill(KEEPER.household);
  await page.getByLabel('Your name').fill(KEEPER.name);
  await page.getByLabel('Choose a password').fill(KEEPER.password);
  await page.getByLabel('Type the password again').fill(KEEPER.password);
  await page.getByRole('button', { name: 'Create my household' }).click();
  await page.locator('.brand', { hasText: KEEPER.household }).waitFor();
  await context.close();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

async function visit(who, fn, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  try {
    await page.goto(url);
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    await page.getByLabel('Your name').fill(who.name);
    await page.getByLabel('Password or PIN').fill(who.pin || who.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    // The app, or for a child outside their hours the page that says when to come back.
    await page.locator('.brand, .resting').first().waitFor();
    await fn(page);
  } finally {
    await context.close();
  }
}

async function openPeople(page) {
  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  // People are on the keeper's Household tab.
  await page.getByRole('link', { name: 'Household' }).click();
  await page.getByRole('heading', { name: 'People' }).waitFor();
}

/** The keeper adds Leo as a child (once; later tests find him there). */
async function ensureChild(page) {
  await openPeople(page);
  const row = page.locator('#people li', { hasText: CHILD.name });
  if (await row.count()) return row;
  await page.getByLabel('Name', { exact: true }).fill(CHILD.name);
  await page.getByLabel('A child', { exact: true }).check();
  await page.getByLabel('PIN', { exact: true }).fill(CHILD.pin);
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await row.waitFor();
  assert.match(await row.innerText(), /child/);
  return row;
}

/** Opens Leo's limits in the keeper's Settings and returns the form. */
async function childLimits(page) {
  const row = await ensureChild(page);
  await row.getByText(`${CHILD.name}'s limits`).click();
  const form = row.locator('form.limits');
  await form.waitFor();
  return form;
}

async function saveLimits(page, form) {
  await form.getByRole('button', { name: `Save ${CHILD.name}'s limits` }).click();
  await page.locator('#toast', { hasText: 'Saved' }).waitFor();
}

async function ask(page, text) {
  const box = page.getByLabel('Your message');
  await box.fill(text);
  await box.press('Enter');
}

/** The newest reply once it has ended (complete, cut short or stopped) and is longer than
 * `longerThan` characters. */
async function finishedReply(page, longerThan = -1) {
  await page.waitForFunction((n) => {
    const all = document.querySelectorAll('.msg.assistant');
    const last = all[all.length - 1];
    return last && last.dataset.status !== 'streaming' && last.querySelector('.body').textContent.length > n;
  }, longerThan, { timeout: 180_000 });
  return page.locator('.msg.assistant').last();
}

test("a child's own prompt is the one in effect, and their page says the keeper can read their chats", async () => {
  await visit(KEEPER, async (page) => {
    const form = await childLimits(page);
    const prompt = form.getByLabel(`What Hearth is told when ${CHILD.name} chats`);
    // A new child starts with Hearth's default for children, which the keeper can read.
    assert.match(await prompt.inputValue(), /child/);
    await prompt.fill(SECRET_PROMPT);
    assert.ok(await form.getByLabel(`Let me read ${CHILD.name}'s chats`).isChecked(), 'new children: the keeper can read');
    await saveLimits(page, form);
  });
  await visit(CHILD, async (page) => {
    await page.locator('#privacy-note', { hasText: 'can read your chats' }).waitFor();
    await ask(page, 'What is the secret word?');
    const reply = await finishedReply(page);
    assert.match(await reply.locator('.body').innerText(), /pineapple/i);
    await shot(page, 'family-child-chat');
  });
  // A grown-up asking the same gets the household's prompt, not the child's.
  await visit(KEEPER, async (page) => {
    await ask(page, 'What is the secret word?');
    const reply = await finishedReply(page);
    assert.doesNotMatch(await reply.locator('.body').innerText(), /pineapple/i);
  });
});

test('outside the hours the keeper chose, the child is told kindly when to come back', async () => {
  await visit(KEEPER, async (page) => {
    const form = await childLimits(page);
    await form.getByLabel('Only at certain hours').check();
    // A window that is over for today wherever this runs: from three hours from now, for an hour.
    const at = (h) => {
      const d = new Date(Date.now() + h * 3600_000);
      return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
    };
    await form.getByLabel('From', { exact: true }).fill(at(3));
    await form.getByLabel('Until', { exact: true }).fill(at(4));
    await saveLimits(page, form);
    from = at(3);
  });
  await visit(CHILD, async (page) => {
    await page.getByRole('heading', { name: 'Hearth is resting' }).waitFor();
    await page.getByText(`You can come back at ${from}`).waitFor();
    assert.equal(await page.getByLabel('Your message').count(), 0);
    // The server says no too, whatever the page shows.
    const status = await page.evaluate(() => fetch('/api/conversations').then((r) => r.status));
    assert.equal(status, 403);
    await shot(page, 'family-child-resting');
  });
  await visit(KEEPER, async (page) => {
    const form = await childLimits(page);
    await form.getByLabel('Only at certain hours').uncheck();
    await saveLimits(page, form);
  });
});
test("a child's question on one of the keeper's topics gets a kind no, and is kept nowhere", async () => {
  await visit(KEEPER, async (page) => {
    const form = await childLimits(page);
    await form.getByLabel('Topics to steer away from').fill('horror films\ngambling');
    // Said plainly: best effort, not a guarantee.
    await form.getByText('not a guarantee').waitFor();
    await saveLimits(page, form);
  });
  await visit(CHILD, async (page) => {
    await ask(page, 'Can you recommend a really scary zombie movie?');
    await page.getByText('something to talk about with a grown-up you trust').waitFor();
    const chats = await page.evaluate(async () => {
      const list = await fetch('/api/conversations').then((r) => r.json());
      return Promise.all(list.map((c) => fetch(`/api/conversations/${c.id}`).then((r) => r.json())));
    });
    const texts = chats.flatMap((c) => c.messages.map((m) => m.content)).join('\n');
    assert.doesNotMatch(texts, /zombie/);
  });
});

test("the keeper reads a child's chats only while they chose to, and the child's page says which", async () => {
  await visit(KEEPER, async (page) => {
    const row = await ensureChild(page);
    await row.getByRole('button', { name: `Read ${CHILD.name}'s chats` }).click();
    const dialog = page.getByRole('dialog', { name: `${CHILD.name}'s chats` });
    await dialog.getByText('What is the secret word?').first().waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();
    const form = await childLimits(page);
    await form.getByLabel(`Let me read ${CHILD.name}'s chats`).uncheck();
    await saveLimits(page, form);
    assert.equal(await row.getByRole('button', { name: `Read ${CHILD.name}'s chats` }).count(), 0);
  });
  await visit(CHILD, async (page) => {
    await page.locator('#privacy-note', { hasText: 'nobody else can read them' }).waitFor();
  });
});

test('a message too long for the model is stored nowhere, and Retry cannot make copies', async () => {
  await visit(KEEPER, async (page) => {
    const before = await page.evaluate(() => fetch('/api/conversations').then((r) => r.json()));
    const long = 'The quick brown fox jumps over the lazy dog. '.repeat(400);
    await ask(page, long);
    const error = page.locator('#send-error');
    await error.getByText('Your message was not sent').waitFor();
    assert.match(await error.innerText(), /pages? at most with this model/);
    for (let i = 0; i < 2; i++) {
      await error.getByRole('button', { name: 'Retry' }).click();
      await page.waitForTimeout(300);
      await error.getByText('Your message was not sent').waitFor();
    }
    // Nothing was kept: not the message, not an empty chat for it.
    const after = await page.evaluate(async () => {
      const list = await fetch('/api/conversations').then((r) => r.json());
      return Promise.all(list.map((c) => fetch(`/api/conversations/${c.id}`).then((r) => r.json())));
    });
    assert.equal(after.length, before.length, 'no new chat');
    assert.ok(after.every((c) => c.messages.every((m) => !m.content.includes('lazy dog'))), 'the message is stored nowhere');
    // What was typed is not lost either: it is still in the box to shorten.
    assert.ok((await page.getByLabel('Your message').inputValue()).includes('lazy dog'));
  });
});

test('a reply that reached the longest a reply can be says so, and Continue goes on in the same reply', async () => {
  await visit(KEEPER, async (page) => {
    await page.getByRole('button', { name: 'New chat' }).first().click();
    await ask(page, 'Tell me a long story about a dragon who loves to bake.');
    let reply = await finishedReply(page);
    assert.equal(await reply.getAttribute('data-status'), 'cut_short');
    await reply.getByText('Cut short').waitFor();
    const first = await reply.locator('.body').innerText();
    await reply.getByRole('button', { name: 'Continue' }).click();
    reply = await finishedReply(page, first.length);
    const after = await reply.locator('.body').innerText();
    assert.equal(await page.locator('.msg.assistant').count(), 1, 'the same reply went on');
    assert.ok(after.length > first.length && after.startsWith(first.slice(0, 20)), `${first} → ${after}`);
    await shot(page, 'family-continued');
  });
});

test("what a child asks Hearth to keep in mind is shown to the keeper, who can clear it", async () => {
  const wish = 'Always tell me scary stories.';
  await visit(KEEPER, async (page) => { await ensureChild(page); });
  await visit(CHILD, async (page) => {
    await page.getByRole('button', { name: 'Settings', exact: true }).click();
    const box = page.getByLabel('Instructions for Hearth');
    await box.fill(wish);
    await page.getByRole('button', { name: 'Save instructions and language' }).click();
    await page.locator('#toast', { hasText: 'Saved' }).waitFor();
  });
  await visit(KEEPER, async (page) => {
    const form = await childLimits(page);
    const theirs = form.getByLabel(`What ${CHILD.name} asked Hearth to keep in mind`);
    assert.equal(await theirs.inputValue(), wish);
    await theirs.fill('');
    await saveLimits(page, form);
  });
  await visit(CHILD, async (page) => {
    const mine = await page.evaluate(() => fetch('/api/me/settings').then((r) => r.json()));
    assert.equal(mine.instructions, '');
  });
});
