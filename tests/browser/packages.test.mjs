// Resource packages in the web center, in a real browser at the kiosk size (docs/packages.md):
// an admin opens the Packages page from the System page (its script is loaded then) and uploads
// a signed package; a tampered one and one whose point table is wrong are refused in words naming
// what is wrong, a good one is applied (the new point is collected), and the history lists every
// attempt. The package is built and signed here with the box's key made by tests/browser/run
// (node's ed25519).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash, createPrivateKey, sign } from 'node:crypto';
import * as k from './kiosk-browser.mjs';
import { KIOSK } from './kiosk-browser.mjs';

assert.ok(process.env.ENOS_PACKAGE_PRIVATE && process.env.ENOS_SIM_MODBUS, 'run through tests/browser/run');

let browser, page;
const problems = [];
const shot = (name) => k.shot(page, name);
const checkKiosk = (where) => k.checkKiosk(page, where);
const headerWidths = () => k.headerWidths(page);

before(async () => {
  // 422: the packages refused on purpose below; 503: the System page (on the way to Packages)
  // asks for what this test bus lacks (enos-ota, systemd)
  browser = await k.launch(problems, /status of (401|422|503)/);
  page = browser.page;
});

/** A package (docs/packages.md, "The file") of `files` (path → [type, text]), signed unless `signed` is false. */
function buildPackage(version, files, signed = true) {
  const items = Object.entries(files).map(([path, [type, text]]) =>
    ({ path, type, version, sha256: createHash('sha256').update(text).digest('hex') }));
  const manifest = JSON.stringify({ format: 1, name: 'site', version, items }, null, 2);
  const env = { manifest, files: Object.fromEntries(Object.entries(files).map(([p, [, t]]) => [p, Buffer.from(t).toString('base64')])) };
  if (signed) {
    const key = createPrivateKey(readFileSync(process.env.ENOS_PACKAGE_PRIVATE));
    env.signature = sign(null, Buffer.from(manifest), key).toString('base64');
  }
  return Buffer.from(JSON.stringify(env, null, 2));
}

/** The box's configuration (inv01 on the simulator) with one more point, `extra` (`type` as given). */
function configWithExtra(type) {
  return `[[device]]
id = "inv01"
protocol = "modbus-tcp"
address = "${process.env.ENOS_SIM_MODBUS}"
poll_groups = [{ name = "default", interval_ms = 500 }]

[[device.point]]
name = "counter"
area = "holding"
address = 0
type = "u32"
unit = "Wh"

[[device.point]]
name = "extra"
area = "holding"
address = 4
type = "${type}"
`;
}

async function upload(name, bytes) {
  await page.setInputFiles('#pkg-file', { name, mimeType: 'application/json', buffer: bytes });
  assert.match(await page.locator('#pkg-name').innerText(), new RegExp(name.replace('.', '\\.')));
  await page.click('#pkg-upload');
  await page.locator('#dialog').waitFor({ state: 'visible' });
  await page.click('#dialog-ok');
}

after(async () => {
  await browser?.close();
});

test('sign in (or claim the gateway when this file runs alone)', () => k.signIn(page));

test('packages: tampered and invalid packages refused in words, a good one applied and collected, the history listed', async () => {
  // the page's script is not part of the first load: it comes when the page is first opened
  assert.equal(await page.evaluate(() => typeof packagesView), 'undefined');
  assert.equal(await page.locator('script[src="/packages.js"]').count(), 0);
  // Packages is reached from the System page (the kiosk header has no room for one more tab)
  await page.click('nav a[data-page="system"]');
  await page.click('#open-packages');
  await page.locator('#pkg-installed .hint', { hasText: 'No package installed' }).waitFor({ timeout: 20000 });
  assert.equal(await page.locator('nav a.active').innerText(), 'System');
  const hw = await headerWidths();
  console.log(`header on the Packages page: its content needs ${hw.content} px (screen ${KIOSK.width} px)`);
  assert.ok(hw.scroll <= KIOSK.width && hw.content <= KIOSK.width, `the header needs ${hw.content} px`);
  await shot('50-packages-empty');
  await checkKiosk('packages');

  // tampered: the manifest changed after signing
  const good = buildPackage('1.0.0', { 'collector.toml': ['collector-config', configWithExtra('u16')] });
  const tampered = JSON.parse(good.toString());
  tampered.manifest = tampered.manifest.replace('"1.0.0"', '"9.0.0"');
  await upload('tampered.json', Buffer.from(JSON.stringify(tampered)));
  await page.locator('#pkg-result .banner.error', { hasText: 'signature does not match' }).waitFor({ timeout: 30000 });
  await shot('51-package-tampered');

  // a point of an unknown type: refused, naming device, point and field
  await upload('invalid.json', buildPackage('1.0.0', { 'collector.toml': ['collector-config', configWithExtra('u17')] }));
  const refused = page.locator('#pkg-result .banner.error', { hasText: 'was refused' });
  await refused.waitFor({ timeout: 30000 });
  const words = await page.locator('#pkg-result').innerText();
  for (const want of ['inv01', 'extra', 'type', 'u17']) assert.ok(words.includes(want), `the refusal does not name ${want}: ${words}`);
  assert.doesNotMatch(words, /Some\(|org\.enos/);
  await shot('52-package-invalid');

  // the good one: applied, its new point collected
  await upload('site-1.0.0.json', good);
  await page.locator('#pkg-result .banner.info', { hasText: 'Package site 1.0.0 installed' }).waitFor({ timeout: 60000 });
  await page.locator('#pkg-installed', { hasText: 'site 1.0.0' }).waitFor({ timeout: 10000 });
  const history = await page.locator('#pkg-history-table').innerText();
  assert.match(history, /site 1\.0\.0[\s\S]*installed/);
  assert.equal((history.match(/refused/g) || []).length, 2, history);
  await page.locator('#pkg-card').scrollIntoViewIfNeeded();
  await shot('53-package-installed');
  await checkKiosk('package installed');
  await page.click('nav a[data-page="live"]');
  await page.locator('#live-table tbody tr', { hasText: 'extra' }).waitFor({ timeout: 20000 });
});

test('no script errors on the packages page', () => {
  assert.deepEqual(problems, []);
});
