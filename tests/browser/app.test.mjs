// The page behaving like an app and speaking plainly (issue 18, items 5, 6 and 8): Back and
// Forward inside Hearth with an address per screen, dark mode, right-to-left text, the
// glitches a family saw, and no technical words on a member's screens.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser, setupUrl, shot } from './harness.mjs';
import {
  OWNER, addPerson, assertNoAxeViolations, logIn, logOut, makeChat, sendAndWaitForWords, servers, setUp, stopReply,
} from './steps.mjs';

let browser;
const run = servers();

before(async () => { browser = await launchBrowser(); });
after(async () => {
  await browser?.close();
  await run.stopAll();
});

const pathOf = (page) => new URL(page.url()).pathname;

test('Back and Forward stay inside Hearth: an address per chat and Settings tab, reload, skip link, focus', async () => {
  const { url } = await run.serve('history');
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    const apples = await makeChat(page, 'Apples');
    const boats = await makeChat(page, 'Boats');
    await page.reload();
    await page.locator('#convs .title', { hasText: 'Boats' }).waitFor();

    await page.locator('#convs button.conv', { hasText: 'Apples' }).click();
    await page.locator('#chat-title', { hasText: 'Apples' }).waitFor();
    assert.equal(pathOf(page), `/c/${apples}`);
    // Keyboard focus follows the chat that was opened.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'chat-title');

    await page.locator('#convs button.conv', { hasText: 'Boats' }).click();
    await page.locator('#chat-title', { hasText: 'Boats' }).waitFor();
    assert.equal(pathOf(page), `/c/${boats}`);

    await page.getByRole('button', { name: 'Settings' }).click();
    await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
    await page.getByRole('link', { name: 'Household' }).click();
    await page.getByRole('heading', { name: 'People' }).waitFor();
    assert.equal(pathOf(page), '/settings/household');

    // Back: the previous tab, the previous chats, in order, inside Hearth.
    await page.goBack();
    await page.locator('a[aria-current="page"]', { hasText: 'You' }).waitFor();
    assert.equal(pathOf(page), '/settings');
    await page.goBack();
    await page.locator('#chat-title', { hasText: 'Boats' }).waitFor();
    await page.goBack();
    await page.locator('#chat-title', { hasText: 'Apples' }).waitFor();
    assert.equal(pathOf(page), `/c/${apples}`);
    assert.equal(new URL(page.url()).host, new URL(url).host);
    await page.goForward();
    await page.locator('#chat-title', { hasText: 'Boats' }).waitFor();

    // A reload opens the same screen, also a Settings tab named in the address.
    await page.reload();
    await page.locator('#chat-title', { hasText: 'Boats' }).waitFor();
    await page.goto(new URL('/settings/apps', url).href);
    await page.getByRole('heading', { name: 'Keys for apps' }).waitFor();

    // The skip link moves focus to the conversation and a reload still opens that chat.
    await page.goto(new URL(`/c/${apples}`, url).href);
    await page.locator('#chat-title', { hasText: 'Apples' }).waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'composer-input');
    await page.reload();
    await page.locator('#chat-title', { hasText: 'Apples' }).waitFor();
  } finally {
    await context.close();
  }
});

const background = (page) => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
const LIGHT = 'rgb(250, 247, 242)';
const DARK = 'rgb(23, 19, 17)';

test('dark mode follows the device, and the switch in Settings overrides it on this device', async () => {
  const { url } = await run.serve('dark');
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    assert.equal(await background(page), DARK, 'a device in dark mode gets the dark page');
    await page.emulateMedia({ colorScheme: 'light' });
    assert.equal(await background(page), LIGHT, 'and follows the device when it changes');
    await page.emulateMedia({ colorScheme: 'dark' });

    await page.getByRole('button', { name: 'Settings' }).click();
    await page.getByLabel('Light', { exact: true }).check();
    assert.equal(await background(page), LIGHT);
    await page.reload();
    await page.getByRole('heading', { name: 'Appearance' }).waitFor();
    assert.equal(await background(page), LIGHT, 'the choice is kept on this device');
    assert.equal(await page.getByLabel('Light', { exact: true }).isChecked(), true);
    await page.getByLabel('Dark', { exact: true }).check();
    await page.emulateMedia({ colorScheme: 'light' });
    assert.equal(await background(page), DARK);
    await page.getByLabel('Like the rest of this device').check();
    assert.equal(await background(page), LIGHT);
  } finally {
    await context.close();
  }
});

test('right-to-left: Arabic in the message box and in the chat reads right to left', async () => {
  const { url } = await run.serve('rtl');
  const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const page = await context.newPage();
  const direction = (sel) => page.evaluate((s) => getComputedStyle(document.querySelector(s)).direction, sel);
  try {
    await setUp(page, url);
    const arabic = 'مرحبا، كيف حالك اليوم؟';
    await page.getByLabel('Your message').fill(arabic);
    assert.equal(await direction('#composer-input'), 'rtl', 'the message box follows the text');
    await page.getByLabel('Your message').press('Enter');
    await page.locator('.msg.user .body', { hasText: 'مرحبا' }).waitFor();
    assert.equal(await direction('.msg.user .body'), 'rtl');
    await stopReply(page);
    await page.locator('#chat-title', { hasText: 'مرحبا' }).waitFor();
    assert.equal(await direction('#chat-title'), 'rtl');
    await page.getByLabel('Your message').fill('Hello in English');
    assert.equal(await direction('#composer-input'), 'ltr');
    await shot(page, 'rtl');
  } finally {
    await context.close();
  }
});

// SmolLM2 writes for a while when asked for this.
const STORY = 'Write a long story, at least twenty paragraphs, about a dragon who learns to bake bread.';

test('glitches: no "null", a stopped first reply names the chat, one "New chat" on a phone, a reply being written shows in the list, whole words in tables', async () => {
  const { url } = await run.serve('glitches');
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  // What the eye sees: the element itself is on top at its own centre.
  const visibleNewChat = () => page.evaluate(() => [...document.querySelectorAll('button, h1')]
    .filter((e) => {
      if (!/New chat/.test(e.textContent)) return false;
      const r = e.getBoundingClientRect();
      if (!r.width || !r.height) return false;
      const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      return !!at && (at === e || e.contains(at));
    }).length);
  const noNull = async (where) => {
    const text = await page.evaluate(() => document.body.innerText);
    assert.ok(!/\b(null|undefined|NaN)\b/.test(text), `${where}: ${text}`);
  };
  try {
    await setUp(page, url);
    await noNull('a new chat');
    assert.equal(await visibleNewChat(), 1, 'a new chat says "New chat" once');
    await page.getByRole('button', { name: 'Chats' }).click();
    assert.equal(await visibleNewChat(), 1, 'the open list has its own New chat button only');
    await page.getByRole('button', { name: 'Close chats' }).click();

    await sendAndWaitForWords(page, STORY);
    await noNull('a chat being written');
    // Reopened while the reply is written: the list says so.
    await page.reload();
    await page.getByRole('button', { name: 'Chats' }).click();
    await page.locator('#convs .conv .writing', { hasText: 'Hearth is writing a reply' }).waitFor();
    await page.getByRole('button', { name: 'Close chats' }).click();
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.locator('.msg.assistant[data-status="stopped"]').waitFor();
    // The stopped first reply still gave the chat a name.
    await page.locator('#chat-title', { hasText: 'Write a long story' }).waitFor();
    await page.getByRole('button', { name: 'Chats' }).click();
    await page.locator('#convs .title', { hasText: 'Write a long story' }).waitFor();
    assert.equal(await page.locator('#convs .conv .writing').count(), 0);
    await page.getByRole('button', { name: 'Close chats' }).click();
    await noNull('a stopped chat');
    assert.equal(await visibleNewChat(), 1, 'an open chat on a phone: the header button only');

    // A table in a reply keeps its words whole; a wide one scrolls instead.
    const lines = await page.evaluate(async () => {
      const { renderMarkdown } = await import('/app.js');
      const box = document.createElement('div');
      box.className = 'body';
      box.style.width = '120px';
      box.append(renderMarkdown('| Amount | Price |\n|---|---:|\n| 0.40 | 12.50 |'));
      document.querySelector('.messages').append(box);
      const count = (el) => { const r = document.createRange(); r.selectNodeContents(el); return new Set([...r.getClientRects()].map((x) => Math.round(x.top))).size; };
      const out = [...box.querySelectorAll('th, td')].map(count);
      box.remove();
      return out;
    });
    assert.deepEqual(lines, [1, 1, 1, 1], 'every cell on one line');

    // The PIN field offers the number pad; the browser's "requested format" is our own words.
    await logOut(page);
    await page.getByLabel('I use a PIN').check();
    assert.equal(await page.getByLabel('Password or PIN').getAttribute('inputmode'), 'numeric');
    await page.reload();
    assert.equal(await page.getByLabel('Password or PIN').getAttribute('inputmode'), 'numeric', 'remembered on this device');
    await logIn(page, OWNER.name, OWNER.password);
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.getByRole('link', { name: 'Household' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Leo');
    await page.getByLabel('With a PIN (for children)').check();
    await page.getByLabel('PIN', { exact: true }).fill('12a');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    assert.equal(await page.getByLabel('PIN', { exact: true }).evaluate((e) => e.validationMessage), 'A PIN is 4 to 8 digits, numbers only.');
  } finally {
    await context.close();
  }
});

// Words a member should never meet: engine and API jargon, and the household's own roles.
const FORBIDDEN = [/token/i, /--ctx/, /Q4_K_M/i, /\/v1\b/, /\bkeeper\b/i, /\bmember\b/i, /\bnull\b/, /\bundefined\b/, /\bseconds\b/];

async function wordsOnScreen(page) {
  return page.evaluate(() => {
    const parts = [document.body.innerText, document.title];
    for (const e of document.querySelectorAll('*')) {
      for (const a of ['aria-label', 'placeholder', 'title', 'alt']) if (e.getAttribute(a)) parts.push(e.getAttribute(a));
    }
    return parts.join('\n');
  });
}

function assertPlain(text, where) {
  for (const w of FORBIDDEN) assert.ok(!w.test(text), `${where} shows ${w}: ${text.match(w)?.[0]} in ${text.slice(0, 400)}`);
}

test('no jargon on a member\'s screens, and a lockout said in minutes with a warning before it', async () => {
  const { url } = await run.serve('words', ['--ctx', '512']);
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  try {
    await setUp(page, url);
    await addPerson(page, { name: 'Sam', password: 'blue-bicycle-77' });
    await logOut(page);
    assertPlain(await wordsOnScreen(page), 'the login screen');

    // Wrong tries: a warning before the last one, then a wait said in minutes.
    const errors = [];
    for (let i = 0; i < 6; i++) {
      await page.getByLabel('Your name').fill('Nobody');
      await page.getByLabel('Password or PIN').fill(`wrong-guess-${i}`);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('alert').filter({ hasText: /./ }).waitFor();
      await page.waitForFunction(() => !document.querySelector('form button[type=submit]').disabled);
      errors.push(await page.getByRole('alert').filter({ hasText: /./ }).innerText());
      assertPlain(await wordsOnScreen(page), `after wrong try ${i + 1}`);
    }
    assert.match(errors[3], /one more wrong try/i, `the warning before the last try: ${errors}`);
    assert.match(errors[4], /about 15 minutes/);
    assert.match(errors[5], /about 15 minutes/);

    await logIn(page, 'Sam', 'blue-bicycle-77');
    assertPlain(await wordsOnScreen(page), 'a new chat');
    await sendAndWaitForWords(page, 'Say hello to the family.');
    await stopReply(page);
    assertPlain(await wordsOnScreen(page), 'a chat');
    await page.getByRole('button', { name: 'Chats' }).click();
    assertPlain(await wordsOnScreen(page), 'the chat list');
    await page.getByRole('button', { name: 'Close chats' }).click();
    await page.getByRole('button', { name: 'Rename' }).click();
    assertPlain(await wordsOnScreen(page), 'the rename dialog');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('button', { name: 'Settings' }).click();
    await page.getByRole('heading', { name: 'Appearance' }).waitFor();
    await page.locator('summary', { hasText: 'Change my password' }).click();
    assertPlain(await wordsOnScreen(page), 'Settings');
    // A server error in plain words: a wrong current password.
    await page.getByLabel('Current password').fill('not-my-password');
    await page.getByLabel('New password').fill('a-new-secret-123');
    await page.getByRole('button', { name: 'Change my password' }).click();
    await page.getByRole('alert').filter({ hasText: /./ }).waitFor();
    assertPlain(await wordsOnScreen(page), 'a refused password change');
    await page.goto(new URL('/settings/model', url).href);
    await page.getByRole('heading', { name: 'Appearance' }).waitFor();
    assert.equal(pathOf(page), '/settings', 'a keeper\'s tab is not a member\'s');
    assertPlain(await wordsOnScreen(page), 'a keeper\'s address');
  } finally {
    await context.close();
  }
});

/** A reply's Markdown headings as the page renders them, in a message of the open chat (the
 * model's own replies rarely have headings; the renderer is the same). */
async function addHeadingsReply(page) {
  await page.evaluate(async () => {
    const { renderMarkdown } = await import('/app.js');
    const body = document.querySelector('.msg.assistant .body');
    body.append(renderMarkdown('## Steps\n\nFirst this.\n\n#### A detail\n\n- one\n\n# Big again'));
  });
}

test('axe-core finds nothing on the main screens: a laptop in light, a phone in dark', async () => {
  const { url } = await run.serve('axe');
  const laptop = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
  const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, colorScheme: 'dark' });
  try {
    const page = await laptop.newPage();
    await page.goto(setupUrl(url));
    await page.getByRole('heading', { name: 'Welcome to Hearth' }).waitFor();
    await assertNoAxeViolations(page, 'first-run setup');
    await setUp(page, url);
    await assertNoAxeViolations(page, 'a new chat');
    await sendAndWaitForWords(page, 'Give me three tips for a picnic.');
    await stopReply(page);
    await addHeadingsReply(page);
    await assertNoAxeViolations(page, 'a chat with a reply and its headings');
    for (const tab of ['You', 'Household', 'AI model', 'Apps']) {
      if (tab === 'You') await page.getByRole('button', { name: 'Settings' }).click();
      else await page.getByRole('link', { name: tab, exact: true }).click();
      await page.locator('.tabs a[aria-current="page"]', { hasText: tab }).waitFor();
      await page.locator('.settings h2').first().waitFor();
      await assertNoAxeViolations(page, `Settings, ${tab}`);
    }

    const small = await phone.newPage();
    await small.goto(url);
    await small.getByRole('button', { name: 'Log in' }).waitFor();
    await assertNoAxeViolations(small, 'the login screen on a phone in dark');
    await logIn(small, OWNER.name, OWNER.password);
    await small.locator('#convs button.conv').first().waitFor({ state: 'attached' });
    await small.getByRole('button', { name: 'Chats' }).click();
    await assertNoAxeViolations(small, 'the open chat list on a phone in dark');
    await small.locator('#convs button.conv').first().click();
    await small.locator('.msg.assistant').first().waitFor();
    await addHeadingsReply(small);
    await assertNoAxeViolations(small, 'a chat on a phone in dark');
  } finally {
    await laptop.close();
    await phone.close();
  }
});
