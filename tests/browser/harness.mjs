// What the browser tests share: a real `hearth serve` in a temporary home, Debian's chromium
// driven by playwright-core, and small helpers for the page.
//
// Environment (scripts/browser-test sets all of it):
//   HEARTH_BIN            the hearth binary to serve
//   HEARTH_TEST_HOME      a Hearth home whose models/ (and models/index.json) hold smollm2-135m
//   HEARTH_BROWSER_NODE   the folder where playwright-core is installed (node_modules inside)
//   CHROMIUM              the chromium executable
//   HEARTH_SHOTS          where screenshots and server logs go
//   HEARTH_PAGE_DIR       (optional, when working on the page) serve app.js, app.css and
//                         page/*.js from this folder rather than from the binary

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run the browser tests through scripts/browser-test`);
  return v;
}

export const SHOTS = need('HEARTH_SHOTS');
fs.mkdirSync(SHOTS, { recursive: true });

// playwright-core lives outside the work tree's node_modules (in target/), so load it by path.
const require = createRequire(path.join(need('HEARTH_BROWSER_NODE'), 'package.json'));
export const { chromium } = require('playwright-core');

/** A fresh Hearth home whose models are links to the test home's (the index is copied, so
 * nothing the server writes can reach the shared test home). */
export function makeHome({ only = null } = {}) {
  const src = path.join(need('HEARTH_TEST_HOME'), 'models');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-browser-'));
  const models = path.join(home, 'models');
  fs.mkdirSync(models);
  const index = JSON.parse(fs.readFileSync(path.join(src, 'index.json'), 'utf8'));
  // With `only`, the home holds just those installed models (so a test can download another).
  if (only) index.models = index.models.filter((m) => only.includes(m.name));
  fs.writeFileSync(path.join(models, 'index.json'), JSON.stringify(index, null, 2));
  for (const m of index.models) {
    const file = path.basename(m.path);
    fs.symlinkSync(path.join(src, file), path.join(models, file));
  }
  return home;
}

/** Installs a second chat model in `home` under `name`: a copy of SmolLM2 whose
 * `general.name` differs by one byte (so its digest is its own and `hearth pull PATH` records
 * it under the file's name rather than as the catalog's smollm2-135m). Same weights, same
 * template: what matters to the tests is that it is another installed model to switch to. */
export function installTwin(home, name) {
  const src = path.join(need('HEARTH_TEST_HOME'), 'models');
  const index = JSON.parse(fs.readFileSync(path.join(src, 'index.json'), 'utf8'));
  const smol = index.models.find((m) => m.name === 'smollm2-135m');
  const bytes = fs.readFileSync(path.join(src, path.basename(smol.path)));
  const key = bytes.indexOf('general.name');
  if (key < 0) throw new Error('SmolLM2 has no general.name to tell the copy apart');
  // key bytes, then the value type (u32, 8 = string), the length (u64), the text.
  const text = key + 'general.name'.length + 4 + 8;
  bytes[text] = bytes[text] === 0x58 ? 0x59 : 0x58;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-twin-'));
  const file = path.join(dir, `${name}.gguf`);
  fs.writeFileSync(file, bytes);
  const r = spawnSync(need('HEARTH_BIN'), ['pull', file], { env: { ...process.env, HEARTH_HOME: home }, encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`hearth pull ${file} failed: ${r.stderr}`);
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts `hearth serve` on host:port (with `extraArgs`; `model` null leaves the choice to
 * Hearth) and waits until /health answers on 127.0.0.1. A listener beyond loopback gets --no-mdns and the API key such a listener needs.
 * The embedding model stays unloaded unless `embeddings` (the children's topic check needs it). */
export async function startServer(home, port, logName, extraArgs = [], host = '127.0.0.1', model = 'smollm2-135m', { embeddings = false } = {}) {
  const log = fs.openSync(path.join(SHOTS, `${logName}.log`), 'a');
  const child = spawn(need('HEARTH_BIN'), [
    'serve', '--listen', `${host}:${port}`, ...(model ? ['--model', model] : []), ...(embeddings ? [] : ['--no-embeddings']),
    ...(host === '127.0.0.1' ? [] : ['--no-mdns', '--api-key', 'browser-test-key']), ...extraArgs,
  ], { env: { ...process.env, HEARTH_HOME: home }, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (exited) throw new Error(`hearth serve exited (${JSON.stringify(exited)}) before answering; see ${logName}.log`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`hearth serve did not answer /health within 180 s; see ${logName}.log`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const code = /needs this code: (\d+)/.exec(fs.readFileSync(path.join(SHOTS, `${logName}.log`), 'utf8'))?.[1];
  if (code) setupCodes.set(String(port), code);
  return child;
}

/** First-run setup codes by port, as each server printed it in its terminal. */
const setupCodes = new Map();

/** The page's address with the setup link's fragment, as Hearth prints it for first-run
 * setup (the page fills the code in from it). */
export function setupUrl(url) {
  const code = setupCodes.get(String(new URL(url).port));
  return code ? `${url.split('#')[0]}#setup=${code}` : url;
}

export async function stopServer(child) {
  if (!child || child.exitCode != null || child.signalCode != null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

/** Debian's chromium, opening hearth.local as a phone on the home network would: the name
 * resolves to this machine, the origin is plain HTTP (not a secure context). Playwright gives
 * each launch a fresh temporary --user-data-dir and passes --headless itself. */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: need('CHROMIUM'),
    headless: true,
    args: [
      // hearth.local as mDNS would resolve it; evil.example as a DNS-rebinding attacker's name
      // would resolve once it points at this machine.
      '--host-resolver-rules=MAP hearth.local 127.0.0.1, MAP evil.example 127.0.0.1',
      '--no-proxy-server',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const dir = process.env.HEARTH_PAGE_DIR;
  if (dir) {
    // Working on the page: its scripts and styles come from this folder (the assets folder of a
    // work tree) instead of the binary, so an edit needs no rebuild. Never set in CI.
    const newContext = browser.newContext.bind(browser);
    browser.newContext = async (...args) => {
      const context = await newContext(...args);
      await context.route(/\/(app\.js|app\.css|page\/[\w-]+\.js)$/, (route) => {
        const file = path.join(dir, new URL(route.request().url()).pathname);
        const type = file.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8';
        if (!fs.existsSync(file)) return route.fulfill({ status: 404, body: 'no such file' });
        return route.fulfill({ status: 200, contentType: type, body: fs.readFileSync(file) });
      });
      return context;
    };
  }
  return browser;
}

export function shot(page, name) {
  return page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/** Records, from inside the page, every state the newest reply passes through (status and
 * text), so a test can tell that it arrived in pieces. */
export async function watchReplies(page) {
  await page.evaluate(() => {
    window.__replySeen = [];
    const box = document.getElementById('messages');
    const look = () => {
      const all = box.querySelectorAll('.msg.assistant');
      const last = all[all.length - 1];
      if (!last) return;
      const text = last.querySelector('.body').textContent;
      const seen = window.__replySeen;
      const prev = seen[seen.length - 1];
      const now = { status: last.dataset.status, text };
      if (!prev || prev.status !== now.status || prev.text !== now.text) seen.push(now);
    };
    new MutationObserver(look).observe(box, { childList: true, subtree: true, characterData: true, attributes: true });
  });
}

export function seenReplies(page) {
  return page.evaluate(() => window.__replySeen);
}

export const THINKING = 'Hearth is thinking…';
