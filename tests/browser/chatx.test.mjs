// A chat's extras, end to end in chromium against a real `hearth serve` (SmolLM2): Download
// (text and data) and Print from the chat's header, each message's time on hover, keyboard focus
// or a tap, the model that wrote each reply, and code blocks in colour (with axe-core in light
// and dark). One server, short replies at temperature 0; nothing reads a reply's words.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { launchBrowser } from './harness.mjs';
import { OWNER, assertNoAxeViolations, logIn, servers, setUp } from './steps.mjs';

let browser;
const run = servers();
let url;
let page;
let context;

before(async () => {
  browser = await launchBrowser();
  ({ url } = await run.serve('chatx', ['--ctx', '1024', '--reply-tokens', '12', '--temperature', '0']));
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = await context.newPage();
  await setUp(page, url);
  // One short chat for every test: its title, a question and a finished reply.
  await page.getByLabel('Your message').fill('Name one colour.');
  await page.getByLabel('Your message').press('Enter');
  await page.locator('.msg.assistant:not([data-status="streaming"])').waitFor({ timeout: 180_000 });
});

after(async () => {
  await context?.close();
  await browser?.close();
  await run.stopAll();
});

/** Whether `loc` can be seen on screen (not clipped to a pixel for screen readers only). */
async function onScreen(loc) {
  const box = await loc.boundingBox();
  return !!box && box.width > 2 && box.height > 2;
}

test('each message says when it was written (hover, keyboard, tap) and each reply which model wrote it', async () => {
  const times = page.locator('.msg time[datetime]');
  assert.equal(await times.count(), 2);
  for (const t of await times.all()) {
    const at = Date.parse(await t.getAttribute('datetime'));
    assert.ok(Math.abs(Date.now() - at) < 30 * 60_000, `a time of now: ${await t.getAttribute('datetime')}`);
    // In the page for screen readers, in the reader's own words for a date.
    assert.match(await t.textContent(), /\d/);
  }
  const mine = page.locator('.msg.user').first();
  const mineTime = mine.locator('time');
  await page.mouse.move(5, 790);
  assert.equal(await onScreen(mineTime), false, 'the time waits to be asked for');
  await mine.hover();
  assert.equal(await onScreen(mineTime), true, 'hover shows the time');
  await page.mouse.move(5, 790);
  // The keyboard reaches it.
  await mineTime.focus();
  assert.equal(await onScreen(mineTime), true, 'focus shows the time');
  await page.locator('#composer-input').focus();
  assert.equal(await onScreen(mineTime), false);
  // On a phone, a tap shows it and another hides it.
  const phone = await browser.newContext({ viewport: { width: 390, height: 800 }, isMobile: true, hasTouch: true });
  try {
    const p = await phone.newPage();
    await p.goto(page.url());
    await logIn(p, OWNER.name, OWNER.password);
    const msg = p.locator('.msg.user').first();
    await msg.waitFor();
    assert.equal(await onScreen(msg.locator('time')), false);
    await msg.locator('.body').tap();
    assert.equal(await onScreen(msg.locator('time')), true, 'a tap shows the time');
    await msg.locator('.body').tap();
    assert.equal(await onScreen(msg.locator('time')), false, 'another tap hides it');
  } finally {
    await phone.close();
  }

  const reply = page.locator('.msg.assistant').first();
  // Shown quietly on the reply, and read out as who wrote it.
  assert.equal(await reply.locator('.model').textContent(), 'written by smollm2-135m');
  assert.equal(await onScreen(reply.locator('.model')), true);
  assert.equal(await page.locator('.msg.user .model').count(), 0, 'the person\'s messages name no model');
});

test('a chat downloads as text and as data, with who wrote each message and when', async () => {
  const title = (await page.locator('#chat-title').innerText()).trim();
  await page.getByText('Download', { exact: true }).click();
  const [text] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'As text (.md)' }).click()]);
  assert.match(text.suggestedFilename(), /^hearth-[a-z0-9-]+\.md$/);
  const md = fs.readFileSync(await text.path(), 'utf8');
  assert.ok(md.startsWith(`# ${title}\n`), md);
  assert.match(md, new RegExp(`\\n### ${OWNER.name} · \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d.*\\n\\nName one colour\\.\\n`));
  assert.match(md, /\n### Hearth \(smollm2-135m\) · \d{4}-\d\d-\d\d/);
  assert.equal(await page.locator('#download').evaluate((d) => d.open), false, 'the menu folds after a pick');

  // A click elsewhere folds the menu too.
  await page.getByText('Download', { exact: true }).click();
  await page.locator('#chat-title').click();
  assert.equal(await page.locator('#download').evaluate((d) => d.open), false, 'a click elsewhere folds the menu');
  await page.getByText('Download', { exact: true }).click();
  const [data] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'As data (.json)' }).click()]);
  const v = JSON.parse(fs.readFileSync(await data.path(), 'utf8'));
  assert.equal(v.format, 'hearth-conversation');
  assert.equal(v.conversation.title, title);
  assert.deepEqual(v.conversation.messages.map((m) => [m.role, m.model]), [['user', null], ['assistant', 'smollm2-135m']]);
});

test('printing shows just the conversation, black on white, with code wrapped', async () => {
  await putCodeReply('python', `print("${'a very long line of code '.repeat(12)}")`);
  try {
    await printed();
  } finally {
    await page.emulateMedia({ media: 'screen', colorScheme: 'light' });
  }
});

async function printed() {
  for (const colorScheme of ['light', 'dark']) {
    await page.emulateMedia({ media: 'print', colorScheme });
    for (const gone of ['.top', '.side', '.composer', '.chat-head .row', '.msg .actions']) {
      assert.equal(await page.locator(gone).first().isVisible(), false, `${gone} is not printed (${colorScheme})`);
    }
    assert.equal(await page.locator('.msg').first().isVisible(), true);
    assert.equal(await page.locator('#chat-title').isVisible(), true);
    const look = await page.evaluate(() => {
      const css = (sel, p) => getComputedStyle(document.querySelector(sel))[p];
      return {
        text: css('.msg .body', 'color'),
        page: css('body', 'backgroundColor'),
        msg: css('.msg.assistant', 'backgroundColor'),
        wrap: css('.code pre code', 'whiteSpace'),
        kw: css('.code .tok-kw', 'color'),
        codeFits: document.querySelector('.code pre').scrollWidth <= document.querySelector('.code pre').clientWidth + 1,
      };
    });
    assert.deepEqual(look, {
      text: 'rgb(0, 0, 0)', page: 'rgb(255, 255, 255)', msg: 'rgb(255, 255, 255)', wrap: 'pre-wrap', kw: 'rgb(0, 0, 0)', codeFits: true,
    }, colorScheme);
    // The time of each message is printed too.
    assert.equal(await onScreen(page.locator('.msg.user time')), true);
  }
}

/** Adds a reply to the page built by the page's own Markdown module, as a reply with `code` in
 * a fence would show (the model's words are not ours to choose). */
async function putCodeReply(lang, code) {
  await page.evaluate(async ({ lang, code }) => {
    document.getElementById('extra-reply')?.remove();
    const { renderMarkdown } = await import('/page/markdown.js');
    const art = document.createElement('article');
    art.className = 'msg assistant st-complete';
    art.id = 'extra-reply';
    const body = document.createElement('div');
    body.className = 'body';
    body.append(renderMarkdown(`Here:\n\n\`\`\`${lang}\n${code}\n\`\`\``));
    art.append(body);
    document.getElementById('messages').prepend(art);
  }, { lang, code });
}

test('code blocks are coloured by language, hostile text stays text, and axe finds nothing in light or dark', async () => {
  const hostile = 'x = "<img src=x onerror=alert(1)>"  # <b>not bold</b>\nif x: return 0x1F';
  await putCodeReply('python', `def f():\n    ${hostile}`);
  const code = page.locator('#extra-reply pre code');
  assert.equal(await code.textContent(), `def f():\n    ${hostile}`, 'the code reads exactly as written');
  const tokens = await code.locator('span').evaluateAll((spans) => spans.map((s) => [s.className, s.textContent]));
  assert.deepEqual(tokens, [
    ['tok-kw', 'def'], ['tok-str', '"<img src=x onerror=alert(1)>"'], ['tok-com', '# <b>not bold</b>'],
    ['tok-kw', 'if'], ['tok-kw', 'return'], ['tok-num', '0x1F'],
  ]);
  assert.equal(await page.locator('#extra-reply img, #extra-reply b').count(), 0, 'no element came from the text');
  // Other languages colour their own way; one not known here stays plain.
  const kinds = async (lang, src) => {
    await putCodeReply(lang, src);
    return code.locator('span').evaluateAll((spans) => spans.map((s) => `${s.className}:${s.textContent}`));
  };
  assert.deepEqual(await kinds('sql', "SELECT name FROM t WHERE a = 'x' -- why"), ['tok-kw:SELECT', 'tok-kw:FROM', 'tok-kw:WHERE', "tok-str:'x'", 'tok-com:-- why']);
  assert.deepEqual(await kinds('rust', 'let s: &str = "hi"; // note'), ['tok-kw:let', 'tok-str:"hi"', 'tok-com:// note']);
  assert.deepEqual(await kinds('brainfuck', '+[->+<]'), []);
  await putCodeReply('js', 'const a = "s"; // c\nlet n = 42; /* block */');
  for (const colorScheme of ['light', 'dark']) {
    await page.emulateMedia({ media: 'screen', colorScheme });
    // The times and model as they show on hover, in the contrast check too.
    await page.locator('.msg.user').first().evaluate((m) => m.classList.add('show-time'));
    await assertNoAxeViolations(page, `a chat with coloured code, times and the model (${colorScheme})`);
    const seen = await code.locator('span').evaluateAll((spans) => new Set(spans.map((s) => getComputedStyle(s).color)).size);
    assert.ok(seen >= 4, `four colours in ${colorScheme}: ${seen}`);
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await page.evaluate(() => document.getElementById('extra-reply')?.remove());
});
