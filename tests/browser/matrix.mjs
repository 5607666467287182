// The full accessibility matrix (issue 18): every screen of the household page, on a laptop
// and on a phone, in light and in dark, checked by axe-core (zero violations), with a
// screenshot of each. Too long for CI, which checks the main screens (app.test.mjs); run it
// with scripts/browser-test-full, which also refreshes docs/screenshots/ when asked.

import { test, before, after } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';

import { SHOTS, freePort, installTwin, launchBrowser, makeHome, setupUrl, startServer, stopServer } from './harness.mjs';
import {
  OWNER, addPerson, assertNoAxeViolations, logIn, logOut, sendAndWaitForWords, setUp, stopReply,
} from './steps.mjs';

const DOCS = process.env.HEARTH_DOC_SHOTS; // a folder: the main screens' screenshots go there too
const DEVICES = {
  laptop: { viewport: { width: 1280, height: 800 } },
  phone: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
};
const MEMBER = { name: 'Sam', password: 'blue-bicycle-77' };

let browser;
const servers = [];
const homes = [];
before(async () => { browser = await launchBrowser(); });
after(async () => {
  await browser?.close();
  for (const s of servers) await stopServer(s);
  for (const h of homes) fs.rmSync(h, { recursive: true, force: true });
});

for (const [device, options] of Object.entries(DEVICES)) {
  for (const scheme of ['light', 'dark']) {
    test(`every screen on a ${device} in ${scheme}: axe-core finds nothing`, async () => {
      const home = makeHome({ only: ['smollm2-135m'] });
      homes.push(home);
      installTwin(home, 'smollm2-twin');
      const port = await freePort();
      servers.push(await startServer(home, port, `matrix-${device}-${scheme}`));
      const url = `http://hearth.local:${port}/`;
      const context = await browser.newContext({ ...options, colorScheme: scheme });
      const page = await context.newPage();
      const dir = path.join(SHOTS, 'matrix');
      fs.mkdirSync(dir, { recursive: true });
      const check = async (screen, { doc = false } = {}) => {
        await assertNoAxeViolations(page, `${screen} (${device}, ${scheme})`);
        const file = path.join(dir, `${device}-${scheme}-${screen}.png`);
        await page.screenshot({ path: file });
        if (doc && DOCS) fs.copyFileSync(file, path.join(DOCS, `${device}-${scheme}-${screen}.png`));
      };
      try {
        await page.goto(setupUrl(url));
        await page.getByRole('heading', { name: 'Welcome to Hearth' }).waitFor();
        await check('setup');
        await setUp(page, url);
        await check('new-chat');
        await sendAndWaitForWords(page, 'Give me three tips for a picnic, as a short list.');
        await page.locator('.msg.assistant').last().and(page.locator(':not([data-status="streaming"])')).waitFor({ timeout: 60_000 }).catch(() => {});
        await stopReply(page);
        await check('chat', { doc: true });
        if (device === 'phone') {
          await page.getByRole('button', { name: 'Chats' }).click();
          await check('chat-list');
          await page.getByRole('button', { name: 'Close chats' }).click();
        }
        await page.getByRole('button', { name: 'Rename' }).click();
        await check('rename-dialog');
        await page.getByRole('button', { name: 'Cancel' }).click();
        await page.getByRole('button', { name: 'Delete', exact: true }).click();
        await check('delete-dialog');
        await page.getByRole('button', { name: 'Cancel' }).click();

        await page.getByRole('button', { name: 'Settings' }).click();
        await page.getByRole('heading', { name: 'Appearance' }).waitFor();
        await check('settings-you', { doc: true });
        await addPerson(page, MEMBER);
        await check('settings-household');
        await page.getByRole('link', { name: 'AI model', exact: true }).click();
        await page.locator('#installed li', { hasText: 'smollm2-twin' }).waitFor();
        await check('settings-model');
        await page.getByRole('link', { name: 'Apps', exact: true }).click();
        await page.getByLabel('Name of the app').fill('Kitchen tablet');
        await page.getByRole('button', { name: 'Create key' }).click();
        await page.locator('#new-key').waitFor();
        await check('settings-apps');

        await logOut(page);
        await check('login', { doc: true });
        await page.getByLabel('Your name').fill(MEMBER.name);
        await page.getByLabel('Password or PIN').fill('not-the-password');
        await page.getByRole('button', { name: 'Log in' }).click();
        await page.getByRole('alert').filter({ hasText: /./ }).waitFor();
        await check('login-wrong');
        await logIn(page, MEMBER.name, MEMBER.password);
        await check('member-new-chat');
        await page.getByRole('button', { name: 'Settings' }).click();
        await page.getByRole('heading', { name: 'Appearance' }).waitFor();
        await check('member-settings');
      } finally {
        await context.close();
      }
    });
  }
}
