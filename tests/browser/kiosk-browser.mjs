// What every browser test file shares: the environment tests/browser/run sets, a headless
// Chromium at the kiosk size (800x480, touch) that collects page errors and unexpected console
// errors, the sign-in, and the kiosk layout checks.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const URL = process.env.ENOS_WEB_URL;
export const OUT = process.env.ENOS_TEST_OUT;
// kiosk.test.mjs sets it on the first visit; so does any file that runs alone (signIn)
export const PASSWORD = 'kiosk-first-boot-1';
export const KIOSK = { width: 800, height: 480 };
assert.ok(URL && OUT, 'run through tests/browser/run');
mkdirSync(OUT, { recursive: true });

/** A fresh browser profile and page. Console errors whose text matches `expected` (the HTTP
 *  statuses a file provokes on purpose) are not problems; every other one, and every page error,
 *  is pushed to `problems`. */
export async function launch(problems, expected) {
  const profile = mkdtempSync(join(tmpdir(), 'enos-chromium-'));
  // launchPersistentContext passes the profile as --user-data-dir
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: KIOSK, hasTouch: true, isMobile: false, ignoreHTTPSErrors: true, locale: 'en-GB',
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !expected.test(m.text())) problems.push('console: ' + m.text());
  });
  return {
    context, page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Signs in as the admin, or claims the gateway first when this file runs alone. */
export async function signIn(page) {
  await page.goto(URL);
  await page.locator('#password').waitFor();
  await page.fill('#password', PASSWORD);
  if (await page.locator('#password2').count()) {
    await page.fill('#password2', PASSWORD);
    await page.fill('#setup-code', readFileSync(join(process.env.ENOS_WEB_STATE, 'setup-code'), 'utf8').trim());
  }
  await page.click('#signin-button');
  await page.locator('#dash .card').first().waitFor({ timeout: 20000 });
}

export async function shot(page, name) {
  await page.screenshot({ path: join(OUT, name + '.png') });
}

/** Layout at the kiosk size: nothing wider than the screen, every control big enough to tap. */
export async function checkKiosk(page, where) {
  const r = await page.evaluate(() => {
    const small = [];
    for (const el of document.querySelectorAll('button, a.button, nav a, input, select')) {
      const b = el.getBoundingClientRect();
      if (b.width === 0 || b.height === 0) continue; // not shown
      if (b.height < 44 || b.width < 44) small.push(`${el.tagName.toLowerCase()}#${el.id || ''} "${(el.textContent || '').trim()}" ${Math.round(b.width)}x${Math.round(b.height)}`);
    }
    return { overflow: document.documentElement.scrollWidth - window.innerWidth, small };
  });
  assert.ok(r.overflow <= 0, `${where}: ${r.overflow} px wider than the screen`);
  assert.deepEqual(r.small, [], `${where}: controls smaller than 44 px`);
}

/** The width the header's content needs (its tabs, pill, user, button, gaps and padding; the tab
 *  bar stretches, so the header's own width says nothing) and its scrolled width. */
export async function headerWidths(page) {
  return page.evaluate(() => {
    const px = (v) => parseFloat(v) || 0;
    const bar = document.querySelector('#bar');
    const nav = document.querySelector('#nav');
    const shown = (e) => e.getBoundingClientRect().width > 0;
    const kids = [...bar.children].filter(shown);
    const links = [...nav.children].filter(shown);
    const navW = links.reduce((s, a) => s + a.getBoundingClientRect().width, 0) + px(getComputedStyle(nav).columnGap) * (links.length - 1);
    const cs = getComputedStyle(bar);
    const content = px(cs.paddingLeft) + px(cs.paddingRight) + px(cs.columnGap) * (kids.length - 1)
      + kids.reduce((s, e) => s + (e === nav ? navW : e.getBoundingClientRect().width), 0);
    return { content: Math.ceil(content), scroll: bar.scrollWidth };
  });
}
