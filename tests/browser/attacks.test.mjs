// Issue 12's browser attacks, in Debian's chromium against a real `hearth serve` that has not
// been set up yet: a page on another origin (another port of the same host, which SameSite
// counts as the same site) and a DNS-rebinding name (evil.example resolving to 127.0.0.1
// through --host-resolver-rules). Neither may set up the household or read the API.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';

import { freePort, launchBrowser, makeHome, setupUrl, startServer, stopServer } from './harness.mjs';

let browser;
let hearth;
let home;
let port;
let code;

before(async () => {
  browser = await launchBrowser();
  home = makeHome();
  port = await freePort();
  hearth = await startServer(home, port, 'attacks');
  code = new URL(setupUrl(`http://127.0.0.1:${port}/`)).hash.replace('#setup=', '');
  assert.match(code, /^\d{6}$/, 'hearth serve printed a setup code on loopback');
});
after(async () => {
  await browser?.close();
  await stopServer(hearth);
  fs.rmSync(home, { recursive: true, force: true });
});

const setupNeeded = async () => (await (await fetch(`http://127.0.0.1:${port}/api/state`)).json()).setup_needed;

/** The attacker's page: it tries, as a script on its own origin, to set up the household
 * (with the right code even: the origin alone must stop it) and to read `/v1/models`. */
function evilPage(target, setupCode) {
  return `<!doctype html><title>Free recipes</title><script>
    window.results = (async () => {
      const out = {};
      const body = JSON.stringify({ household: 'Owned', name: 'Mallory', password: 'mallory-password', setup_code: '${setupCode}' });
      try {
        await fetch('${target}/api/setup', { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body });
        out.setupNoCors = 'sent';
      } catch (e) { out.setupNoCors = 'blocked: ' + e; }
      try {
        const r = await fetch('${target}/v1/models');
        out.models = r.status + ' ' + (await r.text()).slice(0, 80);
      } catch (e) { out.models = 'unreadable'; }
      return out;
    })();
  </script>`;
}

test('a page on another port of this machine cannot set up Hearth or read its API', async () => {
  const evilPort = await freePort();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(evilPage(`http://127.0.0.1:${port}`, code));
  });
  await new Promise((r) => server.listen(evilPort, '127.0.0.1', r));
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${evilPort}/`);
    const results = await page.evaluate(() => window.results);
    assert.equal(results.models, 'unreadable', `the API answer reached the page: ${JSON.stringify(results)}`);
    assert.equal(await setupNeeded(), true, 'the foreign page became the owner');
  } finally {
    await context.close();
    server.close();
  }
});

test('a DNS-rebinding name gets 421, even for a script running on that name', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    // The attacker's name now resolves to this machine: the browser treats Hearth as the
    // attacker's own origin, so only the Host check stands in the way.
    const resp = await page.goto(`http://evil.example:${port}/`);
    assert.equal(resp.status(), 421);
    assert.match(await page.locator('body').innerText(), /--host-name evil\.example/);
    const results = await page.evaluate(async (setupCode) => {
      const models = await fetch('/v1/models');
      const setup = await fetch('/api/setup', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ household: 'Owned', name: 'Mallory', password: 'mallory-password', setup_code: setupCode }),
      });
      return { models: models.status, setup: setup.status };
    }, code);
    assert.deepEqual(results, { models: 421, setup: 421 });
    assert.equal(await setupNeeded(), true, 'the rebinding page became the owner');
  } finally {
    await context.close();
  }
});

test('the keeper, with the link Hearth printed, sets up as usual', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(setupUrl(`http://hearth.local:${port}/`));
    await page.getByRole('heading', { name: 'Welcome to Hearth' }).waitFor();
    assert.equal(await page.getByLabel('Setup code').inputValue(), code, 'the link fills the code in');
    await page.getByLabel('What should we call your household?').fill('The Rivera family');
    await page.getByLabel('Your name').fill('Maria');
    await page.getByLabel('Choose a password').fill('marigold-kitchen-42');
    await page.getByLabel('Type the password again').fill('marigold-kitchen-42');
    await page.getByRole('button', { name: 'Create my household' }).click();
    await page.locator('.brand', { hasText: 'The Rivera family' }).waitFor();
    assert.equal(new URL(page.url()).hash, '', 'the code leaves the address bar once used');
    assert.equal(await setupNeeded(), false);
  } finally {
    await context.close();
  }
});
