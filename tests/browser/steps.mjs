// Steps the page tests share: a server per test, first-run setup, logging in and out, adding a
// person, sending and stopping (the same steps as household.test.mjs, for the newer files).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { THINKING, freePort, makeHome, setupUrl, startServer, stopServer } from './harness.mjs';

export const OWNER = { household: 'The Rivera family', name: 'Maria', password: 'marigold-kitchen-42' };

/** Servers and homes to clean up after a file's tests. */
export function servers() {
  const started = [];
  const homes = [];
  return {
    async serve(name, extraArgs = []) {
      const home = makeHome();
      homes.push(home);
      const port = await freePort();
      const server = await startServer(home, port, name, extraArgs);
      started.push(server);
      return { home, port, server, url: `http://hearth.local:${port}/` };
    },
    async stopAll() {
      for (const s of started) await stopServer(s);
      for (const h of homes) fs.rmSync(h, { recursive: true, force: true });
    },
  };
}

export async function setUp(page, url) {
  await page.goto(setupUrl(url));
  await page.getByRole('heading', { name: 'Welcome to Hearth' }).waitFor();
  await page.getByLabel('What should we call your household?').fill(OWNER.household);
  await page.getByLabel('Your name').fill(OWNER.name);
  await page.getByLabel('Choose a password').fill(OWNER.password);
  await page.getByLabel('Type the password again').fill(OWNER.password);
  await page.getByRole('button', { name: 'Create my household' }).click();
  await page.locator('.brand', { hasText: OWNER.household }).waitFor();
}

export async function logIn(page, name, secret) {
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  await page.getByLabel('Your name').fill(name);
  await page.getByLabel('Password or PIN').fill(secret);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('.brand').waitFor();
}

export async function logOut(page) {
  await page.getByRole('button', { name: 'Settings' }).click();
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor();
}

export async function addPerson(page, person) {
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

/** A chat made through the API, as the page would (its CSRF token from /api/state). */
export async function makeChat(page, title) {
  return page.evaluate(async (t) => {
    const { csrf } = await (await fetch('/api/state')).json();
    const r = await fetch('/api/conversations', {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body: JSON.stringify({ title: t }),
    });
    return (await r.json()).id;
  }, title);
}

/** Sends `text` and waits until the reply has some words on screen. */
export async function sendAndWaitForWords(page, text) {
  const box = page.getByLabel('Your message');
  await box.fill(text);
  await box.press('Enter');
  await page.waitForFunction((thinking) => {
    const b = document.querySelector('.msg.assistant[data-status="streaming"] .body');
    return b && b.textContent !== thinking && b.textContent.length > 5;
  }, THINKING, { timeout: 180_000 });
}

export async function stopReply(page) {
  if (await page.getByRole('button', { name: 'Stop' }).isVisible()) await page.getByRole('button', { name: 'Stop' }).click();
  await page.locator('.msg.assistant').last().and(page.locator('[data-status="stopped"], [data-status="complete"]')).waitFor();
}

/** axe-core's violations on the page as it is now (axe is evaluated through the browser's
 * devtools protocol, which the page's Content-Security-Policy does not govern). */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    const file = path.join(process.env.HEARTH_BROWSER_NODE, 'node_modules', 'axe-core', 'axe.min.js');
    await page.evaluate(fs.readFileSync(file, 'utf8'));
  }
  // Let a passing notice and transitions settle, so colours are measured as people see them.
  await page.waitForFunction(() => getComputedStyle(document.getElementById('toast')).opacity === '0');
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
}

export async function assertNoAxeViolations(page, where) {
  const found = await axeViolations(page);
  assert.deepEqual(found, [], `axe-core on ${where}: ${JSON.stringify(found, null, 1)}`);
}
