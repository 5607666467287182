// The page in the family's language (issue 18, item 9): a French browser gets the page in
// French, `<html lang>` included, with no jargon and nothing for axe-core to report; a
// person's own "Language of this page" setting overrides the browser's, on every device they
// log in from, and the next person at that device gets the browser's language again.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser, setupUrl, shot } from './harness.mjs';
import { assertNoAxeViolations, servers } from './steps.mjs';

let browser;
const run = servers();

before(async () => { browser = await launchBrowser(); });
after(async () => {
  await browser?.close();
  await run.stopAll();
});

const KEEPER = { household: 'Famille Dupont', name: 'Claire', password: 'lavande-cuisine-42' };
const GRAND = { name: 'Jeanne', password: 'tarte-aux-pommes-7' };

// The member screens' jargon (as app.test.mjs scans in English), and its French forms.
const FORBIDDEN = [
  /token/i, /jeton/i, /--ctx/, /Q4_K_M/i, /\/v1\b/, /\bkeeper\b/i, /\bmember\b/i, /\bmembre\b/i,
  /\bnull\b/, /\bundefined\b/, /\bNaN\b/, /\bseconds\b/i, /\bsecondes\b/i,
];
// English words that would give away a message left out of the French catalog (on screens
// that show no reply from the model, whose own words may be English).
const ENGLISH = /\b(the|your|you|and|with|chats?|log in|log out|settings|new|password|search|download)\b/i;

async function wordsOnScreen(page) {
  return page.evaluate(() => {
    const parts = [document.body.innerText, document.title];
    for (const e of document.querySelectorAll('*')) {
      for (const a of ['aria-label', 'placeholder', 'title', 'alt']) if (e.getAttribute(a)) parts.push(e.getAttribute(a));
    }
    return parts.join('\n');
  });
}

/** No jargon; and with `french`, no English either. */
async function assertWords(page, where, { french = true } = {}) {
  const text = await wordsOnScreen(page);
  for (const w of FORBIDDEN) assert.ok(!w.test(text), `${where} shows ${w}: ${text.match(w)?.[0]} in ${text.slice(0, 400)}`);
  if (french) assert.ok(!ENGLISH.test(text), `${where} shows English: "${text.match(ENGLISH)?.[0]}" in ${text.slice(0, 600)}`);
}

const htmlLang = (page) => page.evaluate(() => document.documentElement.lang);

test('a French browser gets the page in French; a person\'s own language setting overrides it', async () => {
  const { url } = await run.serve('language');
  const context = await browser.newContext({ locale: 'fr-FR', viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  try {
    // First run, in French.
    await page.goto(setupUrl(url));
    await page.getByRole('heading', { name: 'Bienvenue dans Hearth' }).waitFor();
    assert.equal(await htmlLang(page), 'fr');
    await assertWords(page, 'first-run setup');
    await assertNoAxeViolations(page, 'first-run setup in French');
    await page.getByLabel('Comment s’appelle votre foyer ?').fill(KEEPER.household);
    await page.getByLabel('Votre prénom').fill(KEEPER.name);
    await page.getByLabel('Choisissez un mot de passe').fill(KEEPER.password);
    await page.getByLabel('Retapez le mot de passe').fill(KEEPER.password);
    await page.getByRole('button', { name: 'Créer mon foyer' }).click();
    await page.locator('.brand', { hasText: KEEPER.household }).waitFor();

    // A new chat.
    await page.getByRole('heading', { name: 'Nouvelle discussion' }).waitFor();
    assert.equal(await page.getByLabel('Votre message').getAttribute('placeholder'), 'Écrire à Hearth');
    await page.getByRole('button', { name: 'Envoyer' }).waitFor();
    await assertWords(page, 'a new chat');
    await assertNoAxeViolations(page, 'a new chat in French');

    // Settings: the keeper's tabs, sizes in French units.
    await page.getByRole('button', { name: 'Réglages' }).click();
    await page.getByRole('heading', { name: 'Apparence' }).waitFor();
    await page.getByLabel('Comme le reste de cet appareil').waitFor();
    await assertWords(page, 'Settings, You');
    await assertNoAxeViolations(page, 'Settings, You, in French');
    await page.getByRole('link', { name: 'Modèle d’IA', exact: true }).click();
    await page.locator('#installed li').first().waitFor();
    assert.match(await page.locator('#installed').innerText(), /\d Mo\b/, 'sizes in French units');
    await assertNoAxeViolations(page, 'Settings, AI model, in French');

    // Adding a grown-up, in French.
    await page.getByRole('link', { name: 'Foyer', exact: true }).click();
    await page.getByRole('heading', { name: 'Personnes' }).waitFor();
    await page.getByLabel('Prénom', { exact: true }).fill(GRAND.name);
    await page.getByLabel('Mot de passe', { exact: true }).fill(GRAND.password);
    await page.getByRole('button', { name: 'Ajouter', exact: true }).click();
    await page.locator('#people li', { hasText: GRAND.name }).waitFor();
    await page.locator('#toast', { hasText: `${GRAND.name} peut se connecter` }).waitFor();
    await assertNoAxeViolations(page, 'Settings, Household, in French');

    // Logged out: the login screen.
    await page.getByRole('link', { name: 'Vous', exact: true }).click();
    await page.getByRole('button', { name: 'Se déconnecter' }).click();
    await page.getByRole('button', { name: 'Se connecter' }).waitFor();
    assert.equal(await htmlLang(page), 'fr');
    await assertWords(page, 'the login screen');
    await assertNoAxeViolations(page, 'the login screen in French');
    await shot(page, 'language-login-fr');

    // A wrong password, said in French.
    await page.getByLabel('Votre prénom').fill(GRAND.name);
    await page.getByLabel('Mot de passe ou code PIN').fill('pas-le-bon');
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.getByRole('alert').filter({ hasText: 'ne correspondent pas' }).waitFor();

    // The grandmother logs in: French, as her browser says, until she chooses English.
    await page.getByLabel('Mot de passe ou code PIN').fill(GRAND.password);
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.getByRole('heading', { name: 'Nouvelle discussion' }).waitFor();
    await assertWords(page, 'a grown-up\'s new chat');
    await page.getByRole('button', { name: 'Réglages' }).click();
    await page.getByLabel('Langue de cette page').selectOption('en');
    await page.getByRole('button', { name: 'Enregistrer les consignes et la langue' }).click();
    await page.getByRole('heading', { name: 'Settings', exact: true }).waitFor();
    assert.equal(await htmlLang(page), 'en');
    await page.getByRole('heading', { name: 'Appearance' }).waitFor();
    await page.getByRole('button', { name: 'Back to chat' }).waitFor();

    // Her choice is kept by Hearth: a reload, and another device with a French browser.
    await page.reload();
    await page.getByRole('heading', { name: 'Appearance' }).waitFor();
    assert.equal(await htmlLang(page), 'en');
    assert.equal(await page.getByLabel('Language of this page').inputValue(), 'en');
    await assertWords(page, 'Settings in English', { french: false });
    await assertNoAxeViolations(page, 'Settings in English, chosen over a French browser');
    const other = await browser.newContext({ locale: 'fr-FR', isMobile: true, hasTouch: true, viewport: { width: 360, height: 740 } });
    try {
      const phone = await other.newPage();
      await phone.goto(url);
      await phone.getByRole('button', { name: 'Se connecter' }).waitFor();
      await phone.getByLabel('Votre prénom').fill(GRAND.name);
      await phone.getByLabel('Mot de passe ou code PIN').fill(GRAND.password);
      await phone.getByRole('button', { name: 'Se connecter' }).click();
      await phone.getByRole('heading', { name: 'New chat' }).waitFor();
      assert.equal(await htmlLang(phone), 'en');
      await phone.getByRole('button', { name: 'Chats', exact: true }).waitFor();
    } finally {
      await other.close();
    }

    // Logged out, the next person at this device gets the browser's French again.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Se connecter' }).waitFor();
    assert.equal(await htmlLang(page), 'fr');
    await page.getByText('Déconnexion effectuée.').waitFor();
  } finally {
    await context.close();
  }
});

test('a chat in French: the reply\'s notes, the list, a plural, and the dialogs', async () => {
  const { url } = await run.serve('language-chat', ['--temperature', '0']);
  const context = await browser.newContext({ locale: 'fr-CA', isMobile: true, hasTouch: true, viewport: { width: 360, height: 740 }, colorScheme: 'dark' });
  const page = await context.newPage();
  try {
    await page.goto(setupUrl(url));
    await page.getByLabel('Comment s’appelle votre foyer ?').fill(KEEPER.household);
    await page.getByLabel('Votre prénom').fill(KEEPER.name);
    await page.getByLabel('Choisissez un mot de passe').fill(KEEPER.password);
    await page.getByLabel('Retapez le mot de passe').fill(KEEPER.password);
    await page.getByRole('button', { name: 'Créer mon foyer' }).click();
    await page.locator('.brand', { hasText: KEEPER.household }).waitFor();
    assert.equal(await htmlLang(page), 'fr', 'fr-CA is French too');

    const box = page.getByLabel('Votre message');
    await box.fill('Write a long story about a dragon who learns to bake bread.');
    await box.press('Enter');
    await page.getByRole('button', { name: 'Arrêter' }).click();
    await page.locator('.msg.assistant[data-status="stopped"]').waitFor();
    await page.getByText('Arrêtée avant la fin.').waitFor();
    await page.getByRole('button', { name: 'Essayer une autre réponse' }).waitFor();
    await assertNoAxeViolations(page, 'a chat on a phone in dark, in French');

    await page.getByRole('button', { name: 'Discussions', exact: true }).click();
    await page.locator('#convs .conv').first().waitFor();
    await assertNoAxeViolations(page, 'the chat list on a phone, in French');
    await page.getByRole('button', { name: 'Fermer les discussions' }).click();

    await page.getByRole('button', { name: 'Supprimer', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Supprimer cette discussion ?' });
    await dialog.getByText('sera supprimée définitivement').waitFor();
    await assertNoAxeViolations(page, 'the delete dialog, in French');
    await dialog.getByRole('button', { name: 'Annuler' }).click();

    // A message too long for the model: refused in French, its size said in pages.
    await page.locator('#new-chat-top', { hasText: 'Nouvelle discussion' }).click();
    await box.fill('Le renard brun saute par-dessus le chien paresseux. '.repeat(400));
    await box.press('Enter');
    const error = page.locator('#send-error');
    await error.getByText('Votre message n’a pas été envoyé.').waitFor();
    assert.match(await error.innerText(), /Ce message est trop long : il fait environ \d+ pages, et Hearth peut en prendre (environ \d+ pages?|environ une demi-page|quelques lignes) au maximum avec ce modèle\./);
    await error.getByRole('button', { name: 'Réessayer' }).waitFor();

    // Plural forms and numbers follow French rules (the page's own t(), inside the page).
    const said = await page.evaluate(async () => {
      const { t } = await import('/page/i18n.js');
      return [0, 1, 2, 1500].map((count) => t('chat.queued', { count }));
    });
    assert.deepEqual(said, [
      'Hearth est occupé avec d’autres personnes. 0 personne passe avant vous.',
      'Hearth est occupé avec d’autres personnes. 1 personne passe avant vous.',
      'Hearth est occupé avec d’autres personnes. 2 personnes passent avant vous.',
      'Hearth est occupé avec d’autres personnes. 1\u202f500 personnes passent avant vous.',
    ]);
  } finally {
    await context.close();
  }
});
