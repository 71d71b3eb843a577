// The web center in a real browser at the kiosk size (800x480, touch): first boot, dashboard,
// devices, communication test, the write dialog (current value, range, refusals and who refused),
// the Live page (search, doubtful values), sign-out and sign-in, and more.
// Started by tests/browser/run, which brings up the edge and sets the environment below.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k from './kiosk-browser.mjs';
import { URL, OUT, PASSWORD, KIOSK } from './kiosk-browser.mjs';


let browser, page;
const figures = {};
const problems = [];
const shot = (name) => k.shot(page, name);
const checkKiosk = (where) => k.checkKiosk(page, where);
const headerWidths = () => k.headerWidths(page);

before(async () => {
  // 401/429 answers to wrong passwords, 403 to a wrong setup code, 422 to a bad point table, 503 for
  // what this test bus lacks (enos-ota, systemd) are expected; anything else, CSP refusals above all, is not
  browser = await k.launch(problems, /status of (401|403|422|429|503)/);
  page = browser.page;
});

function rssKiB() {
  const pid = process.env.ENOS_WEB_PID;
  if (!pid) return null;
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return m ? Number(m[1]) : null;
}

after(async () => {
  writeFileSync(join(OUT, 'figures.json'), JSON.stringify(figures, null, 2) + '\n');
  console.log('figures: ' + JSON.stringify(figures));
  await browser?.close();
});

test('first boot: the first visit sets the admin password', async () => {
  figures.rss_kib_idle_before_sign_in = rssKiB();
  await page.goto(URL);
  await page.locator('#password2').waitFor();
  assert.match(await page.locator('h1').innerText(), /claim this gateway/);
  await shot('01-first-boot');
  await checkKiosk('first boot');
  // a mismatch is caught in the page
  await page.fill('#password', PASSWORD);
  await page.fill('#password2', PASSWORD + 'x');
  await page.click('#signin-button');
  assert.match(await page.locator('#signin-error').innerText(), /differ/);
  await page.fill('#password2', PASSWORD);
  // over HTTPS (the network) the box asks for its one-time setup code, shows the certificate's
  // fingerprint, and refuses a wrong code in words
  assert.match(await page.locator('#tls-fingerprint').innerText(), /([0-9A-F]{2}:){31}[0-9A-F]{2}/);
  await page.fill('#setup-code', 'AAAA-AAAA-AAAA');
  await page.click('#signin-button');
  await page.locator('#signin-error', { hasText: 'setup code' }).waitFor();
  await shot('01b-first-boot-wrong-code');
  await page.fill('#setup-code', readFileSync(join(process.env.ENOS_WEB_STATE, 'setup-code'), 'utf8').trim());
  await page.click('#signin-button');
  await page.locator('#dash .card').first().waitFor();
  assert.match(await page.locator('#who').innerText(), /admin \(admin\)/);
});

test('dashboard: cloud state, backlog, outage hours, devices; refreshes by itself', async () => {
  await page.locator('#cloud.ok').waitFor({ timeout: 30000 });
  assert.equal(await page.locator('#cloud').innerText(), 'cloud connected');
  await page.getByText('1 of 1 online').waitFor({ timeout: 30000 });
  const text = await page.locator('#dash').innerText();
  for (const want of ['Cloud connection', 'Backlog', 'Outage the cache can hold', 'Delivered to the cloud', 'inv01']) {
    assert.ok(text.includes(want), `dashboard lacks "${want}":\n${text}`);
  }
  const t1 = await page.locator('#updated').innerText();
  await page.waitForFunction((t) => document.querySelector('#updated')?.textContent !== t, t1, { timeout: 6000 });
  await shot('02-dashboard');
  await checkKiosk('dashboard');
  const hw = await headerWidths();
  figures.header_content_px = hw.content;
  assert.ok(hw.scroll <= KIOSK.width && hw.content <= KIOSK.width, `the header needs ${hw.content} px`);
});

test('page weight and time to first render of the dashboard at the kiosk size', async () => {
  const p = await browser.context.newPage();
  await p.setViewportSize(KIOSK);
  await p.goto(URL + '#/dashboard');
  await p.locator('#dash .card.stat').first().waitFor();
  const m = await p.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    const assets = res.filter((r) => !r.name.includes('/api/'));
    const api = res.filter((r) => r.name.includes('/api/'));
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    return {
      page_bytes: nav.encodedBodySize + assets.reduce((s, r) => s + r.encodedBodySize, 0),
      page_files: 1 + assets.length,
      api_bytes_first_load: api.reduce((s, r) => s + r.encodedBodySize, 0),
      first_contentful_paint_ms: fcp ? Math.round(fcp.startTime) : null,
      dashboard_shown_ms: Math.round(performance.now()),
    };
  });
  Object.assign(figures, m);
  assert.ok(m.page_bytes < 100 * 1024, `the dashboard weighs ${m.page_bytes} bytes`);
  await p.close();
});

test('devices: list and communication test', async () => {
  await page.click('nav a[data-page="devices"]');
  await page.locator('.list .row').first().waitFor();
  assert.match(await page.locator('.list').innerText(), /inv01[\s\S]*online/);
  await shot('03-devices');
  await checkKiosk('devices');
  await page.getByRole('button', { name: 'Test' }).first().click();
  await page.locator('#readings table').waitFor({ timeout: 20000 });
  const table = await page.locator('#readings table').innerText();
  for (const p of ['counter', 'power_kw', 'voltage']) assert.ok(table.includes(p), table);
  assert.match(table, /good/);
  await shot('04-device-test');
  await checkKiosk('device test');
});

// enos_web_writes_total: every write the web center passed on to the collector
async function writesSent() {
  const m = await page.evaluate(() => fetch('/metrics').then((r) => r.text()));
  return Number(/^enos_web_writes_total (\d+)$/m.exec(m)[1]);
}

// The signed-in page's own API call (its session cookie and CSRF token).
async function apiCall(method, path, body) {
  return page.evaluate(async ([method, path, body]) => {
    const s = await fetch('/api/session').then((r) => r.json());
    const r = await fetch(path, { method, headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf }, body: JSON.stringify(body || {}) });
    return { status: r.status, doc: await r.json() };
  }, [method, path, body]);
}

test('write a point: the dialog shows current value, unit and range, refuses out-of-range input, says who refused', async () => {
  // only writable points are offered, with their unit
  await page.locator('#write-point option[value="voltage"]').waitFor({ state: 'attached' });
  assert.deepEqual(await page.locator('#write-point option').allInnerTexts(), ['voltage (V)', 'enable']);
  await page.selectOption('#write-point', 'voltage');
  await page.click('#write-button');
  await page.locator('#dialog').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#dialog-title').innerText(), 'Write inv01 · voltage');
  assert.equal(await page.locator('#write-range').innerText(), 'Range: 0 to 400 V');
  // the simulator serves 2300..2306 (x0.1)
  await page.locator('#write-current', { hasText: /^Current value: 230(\.\d)? V$/ }).waitFor({ timeout: 20000 });
  await shot('05-write-dialog');
  await checkKiosk('write dialog');
  await page.click('#dialog-cancel');
  await page.locator('#dialog').waitFor({ state: 'hidden' });
  assert.equal(await page.locator('#write-result').innerText(), '', 'cancel sends nothing');

  // out of range: refused in the page, with the reason, and nothing sent
  const sent = await writesSent();
  await page.click('#write-button');
  await page.fill('#write-value', '999');
  await page.click('#dialog-ok');
  assert.equal(await page.locator('#write-check').innerText(), 'Not sent: 999 V is above the maximum 400 V.');
  await page.fill('#write-value', '-1');
  await page.press('#write-value', 'Enter');
  assert.equal(await page.locator('#write-check').innerText(), 'Not sent: -1 V is below the minimum 0 V.');
  await page.fill('#write-value', 'abc');
  await page.click('#dialog-ok');
  assert.equal(await page.locator('#write-check').innerText(), 'Not sent: "abc" is not a number.');
  await shot('05b-write-refused-in-the-page');
  assert.equal(await page.locator('#write-outcome').innerText(), '');
  assert.equal(await writesSent(), sent, 'a value refused in the page never reaches the gateway');

  // in range but not a whole step of the scale 0.1: the gateway's own check refuses it, in words
  await page.fill('#write-value', '231.55');
  await page.click('#dialog-ok');
  await page.locator('#write-outcome .banner.error', { hasText: 'code 2004' }).waitFor({ timeout: 20000 });
  const refused = await page.locator('#write-outcome').innerText();
  assert.match(refused, /^The gateway refused it, nothing was sent to the device: 231\.55 is not a whole number of steps/, refused);
  assert.doesNotMatch(refused, /did not take it|bad-value/, refused);

  // accepted: said in the dialog, the dialog offers only Close, and the card keeps the outcome
  await page.fill('#write-value', '231,5'); // a touch keyboard's decimal comma
  await page.click('#dialog-ok');
  await page.locator('#write-outcome .banner.info', { hasText: 'The device accepted voltage = 231.5 V' }).waitFor({ timeout: 20000 });
  assert.equal(await writesSent(), sent + 2);
  assert.ok(await page.locator('#dialog-ok').isHidden(), 'no second send of the same value by a double tap');
  assert.equal(await page.locator('#dialog-cancel').innerText(), 'Close');
  await shot('06-write-result');
  await page.click('#dialog-cancel');
  await page.locator('#write-result .banner.info', { hasText: 'accepted' }).waitFor();

  // a coil: two large choices instead of a text field
  await page.selectOption('#write-point', 'enable');
  await page.click('#write-button');
  assert.equal(await page.locator('#write-range').innerText(), 'Range: true or false');
  await page.locator('#write-current', { hasText: /^Current value: (true|false)$/ }).waitFor({ timeout: 20000 });
  await page.click('#dialog-ok');
  assert.equal(await page.locator('#write-check').innerText(), 'Not sent: Choose true or false.');
  await page.click('#write-true');
  assert.equal(await page.getAttribute('#write-true', 'aria-pressed'), 'true');
  await shot('06b-write-coil');
  await checkKiosk('write dialog, coil');
  await page.click('#dialog-ok');
  await page.locator('#write-outcome .banner.info', { hasText: 'The device accepted enable = true' }).waitFor({ timeout: 20000 });
  await page.click('#dialog-cancel');
});

test('live page: every device\'s values; the search filters by device, point and unit as one types', async () => {
  await page.click('nav a[data-page="live"]');
  const rows = page.locator('#live-table tbody tr:visible');
  await page.locator('#live-table tbody tr', { hasText: 'voltage' }).waitFor({ timeout: 20000 });
  await rows.nth(3).waitFor();
  assert.match(await page.locator('#live-table').innerText(), /inv01\s+counter\s+\d+ Wh[\s\S]*inv01\s+voltage\s+[\d.]+ V/);
  assert.match(await page.locator('#live-summary').innerText(), /^4 of 4 values · all good$/);
  await shot('21-live');
  await checkKiosk('live');
  // key by key, as a touch keyboard sends it: the rows follow every letter
  await page.locator('#live-search').pressSequentially('vol');
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().innerText(), /voltage/);
  assert.equal(await page.locator('#live-summary').innerText(), '1 of 4 values · all good');
  // a refresh keeps the filter and the keyboard's focus
  const t = await page.locator('#live-all-updated').innerText();
  await page.waitForFunction((t) => document.querySelector('#live-all-updated').textContent !== t, t, { timeout: 10000 });
  assert.equal(await rows.count(), 1);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'live-search');
  await shot('22-live-search');
  // the filter is kept while one looks at a device and comes back
  await page.click('nav a[data-page="devices"]');
  await page.locator('.list .row').first().waitFor();
  await page.click('nav a[data-page="live"]');
  assert.equal(await page.inputValue('#live-search'), 'vol');
  await page.locator('#live-table tbody tr', { hasText: 'voltage' }).waitFor({ timeout: 10000 });
  assert.equal(await rows.count(), 1);
  // by unit, and by several words (device and point)
  await page.fill('#live-search', 'wh');
  assert.deepEqual(await page.locator('#live-table tbody tr:visible td:nth-child(2)').allInnerTexts(), ['counter']);
  await page.fill('#live-search', 'INV01 power');
  assert.deepEqual(await page.locator('#live-table tbody tr:visible td:nth-child(2)').allInnerTexts(), ['power_kw']);
  await page.fill('#live-search', 'no-such-thing');
  assert.equal(await page.locator('#live-none').innerText(), 'No value matches "no-such-thing".');
  await page.click('#live-clear');
  assert.equal(await page.inputValue('#live-search'), '');
  assert.equal(await rows.count(), 4);
});

test('live page: only doubtful values, why in words; a write the device does not take says so', async () => {
  // a device nothing answers for (the discard port): its values become doubtful
  const dead = { id: 'dead01', protocol: 'modbus-tcp', address: '127.0.0.1:9', timeout_ms: 300, retries: 0, offline_after: 2,
    reconnect_min_ms: 100, reconnect_max_ms: 400, poll_groups: [{ name: 'default', interval_ms: 300 }],
    point: [{ name: 'flow', area: 'holding', address: 0, type: 'u16', unit: 'm3/h', access: 'rw', min: 0, max: 50 }] };
  const added = await apiCall('PUT', '/api/devices/dead01/config', dead);
  assert.equal(added.status, 201, JSON.stringify(added.doc));
  await page.goto(URL + '#/live');
  await page.locator('#live-table tbody tr', { hasText: 'flow' }).waitFor({ timeout: 20000 });
  assert.equal(await page.getAttribute('#live-doubtful', 'aria-pressed'), 'false');
  await page.click('#live-doubtful');
  assert.equal(await page.getAttribute('#live-doubtful', 'aria-pressed'), 'true');
  const rows = page.locator('#live-table tbody tr:visible');
  await page.waitForFunction(() => document.querySelectorAll('#live-table tbody tr:not([hidden])').length === 1, null, { timeout: 10000 });
  const row = await rows.first().innerText();
  // the quality in words, and the device's own last error; no flags line when the reading has none
  assert.match(row, /dead01\s+flow[\s\S]*(comm-failure|offline)/, row);
  assert.match(row, /No answer from the device|The device is offline/, row);
  assert.match(row, /Last error of dead01: .*(refused|connect)/i, row);
  assert.equal(await page.locator('#live-table .flags').count(), 0);
  assert.match(await page.locator('#live-summary').innerText(), /^1 of 5 values · 1 doubtful$/);
  await shot('23-live-doubtful');
  await checkKiosk('live, doubtful');
  // the search applies within the doubtful ones
  await page.fill('#live-search', 'volt');
  assert.equal(await page.locator('#live-none').innerText(), 'No value matches "volt" among the doubtful ones.');
  await page.fill('#live-search', 'm3/h');
  assert.equal(await rows.count(), 1);
  await page.click('#live-doubtful');
  await page.click('#live-clear');
  assert.equal(await rows.count(), 5);

  // writing to it: the gateway's checks pass, the device does not take it, and the dialog says who refused
  await page.goto(URL + '#/device/dead01');
  await page.locator('#write-point option[value="flow"]').waitFor({ state: 'attached' });
  await page.click('#write-button');
  assert.equal(await page.locator('#write-range').innerText(), 'Range: 0 to 50 m3/h');
  await page.locator('#write-current', { hasText: 'Current value: unknown' }).waitFor({ timeout: 20000 });
  await page.fill('#write-value', '60');
  await page.click('#dialog-ok');
  assert.equal(await page.locator('#write-check').innerText(), 'Not sent: 60 m3/h is above the maximum 50 m3/h.');
  await page.fill('#write-value', '10');
  await page.click('#dialog-ok');
  await page.locator('#write-outcome .banner.error').waitFor({ timeout: 20000 });
  assert.match(await page.locator('#write-outcome').innerText(), /^The device did not take it: .* \(code 200[78]\)\.$/);
  await shot('24-write-device-refused');
  await page.click('#dialog-cancel');
  const removed = await apiCall('DELETE', '/api/devices/dead01/config');
  assert.equal(removed.status, 200, JSON.stringify(removed.doc));
  await page.goto(URL + '#/device/inv01');
  await page.locator('#readings table').waitFor({ timeout: 20000 });
});

test('sign out, a wrong password, sign in again', async () => {
  await page.click('#signout');
  await page.locator('#signin-button', { hasText: 'Sign in' }).waitFor();
  await page.fill('#password', 'not-the-password');
  await page.click('#signin-button');
  await page.locator('#signin-error', { hasText: 'wrong account name or password' }).waitFor();
  await shot('07-sign-in');
  await checkKiosk('sign-in');
  await page.fill('#password', PASSWORD);
  await page.click('#signin-button');
  // back on the page that was open (the device test), signed in
  await page.locator('#readings table').waitFor({ timeout: 20000 });
  assert.match(await page.locator('#who').innerText(), /admin/);
});

test('accounts: the admin adds a viewer, who sees values but no write controls', async () => {
  await page.click('nav a[data-page="accounts"]');
  await page.locator('#add-account').waitFor();
  await page.fill('#new-name', 'vic');
  await page.selectOption('#new-role', 'viewer');
  await page.fill('#new-password', 'viewer-password-1');
  await page.click('#add-account');
  await page.locator('#accounts-result .banner.info', { hasText: 'Added vic (viewer)' }).waitFor();
  assert.match(await page.locator('#accounts').innerText(), /vic[\s\S]*viewer/);
  await page.locator('h1').scrollIntoViewIfNeeded();
  await shot('08-accounts');
  await checkKiosk('accounts');
  await page.click('#signout');
  await page.locator('#signin-button', { hasText: 'Sign in' }).waitFor();
  await page.fill('#name', 'vic');
  await page.fill('#password', 'viewer-password-1');
  await page.click('#signin-button');
  await page.locator('#who', { hasText: 'vic (viewer)' }).waitFor();
  await page.goto(URL + '#/device/inv01');
  await page.locator('#readings table').waitFor({ timeout: 20000 });
  assert.equal(await page.locator('#write-card').count(), 0, 'no write controls for a viewer');
  await shot('09-viewer-device');
  await page.click('#signout');
  await page.locator('#signin-button', { hasText: 'Sign in' }).waitFor();
  await page.fill('#name', 'admin');
  await page.fill('#password', PASSWORD);
  await page.click('#signin-button');
  await page.locator('#readings table').waitFor({ timeout: 20000 });
});

// The grid's content: per row, each cell's value (inputs, selects, checkboxes) by field key.
async function gridRows() {
  return page.evaluate(() => [...document.querySelectorAll('#point-grid tbody tr')].map((tr) =>
    Object.fromEntries([...tr.querySelectorAll('td[data-key]')].map((td) => {
      const el = td.querySelector('input, select');
      return [td.dataset.key, el.type === 'checkbox' ? el.checked : el.value];
    }))));
}

test('devices: add a device from a model, a point grid built from the protocol, CSV import, findings at their cells', async () => {
  await page.goto(URL + '#/devices');
  await page.click('#add-device');
  await page.locator('#dev-template option').nth(2).waitFor({ state: 'attached' });
  // the protocols and their fields come from the registry
  assert.ok((await page.locator('#dev-protocol option').allInnerTexts()).includes('IEC 60870-5-104'));
  // a model of the library fills in protocol, settings and points
  await page.selectOption('#dev-template', 'pv-inverter-sunspec');
  assert.equal(await page.inputValue('#dev-groups'), 'fast=1000, slow=60000');
  assert.equal(await page.locator('#point-grid tbody tr').count(), 15, 'the model\'s points in the grid');
  const headers = await page.locator('#point-grid thead th').allInnerTexts();
  for (const want of ['Name *', 'Area *', 'Address *', 'Type *', 'Scale', 'Unit', 'Access']) assert.ok(headers.includes(want), headers.join('|'));
  // inputs fit the field: a choice is a select, a number a numeric input with its bounds
  assert.equal(await page.locator('#point-grid tbody tr').first().locator('td[data-key="area"] select').count(), 1);
  assert.equal(await page.locator('#point-grid tbody tr').first().locator('td[data-key="address"] input').getAttribute('max'), '65535');
  await shot('10-device-add-template');
  await checkKiosk('add device');
  await page.fill('#dev-id', 'meter02');
  await page.fill('#dev-address', process.env.ENOS_SIM_MODBUS);
  await page.fill('#dev-groups', 'default=500');
  // a CSV file with mistakes: each row and column named, the grid left as it was
  const bad = 'name,area,address,type,scale,unit\nline_voltage,holding,4,u16,0.1,V\npower,holding,40002x,f32,,kW\nflag,coil,1,u16,,\n';
  await page.setInputFiles('#csv-file', { name: 'meter.csv', mimeType: 'text/csv', buffer: Buffer.from(bad) });
  await page.locator('#edit-problems li').nth(1).waitFor();
  const problems = await page.locator('#edit-problems').innerText();
  assert.match(problems, /line 3, column "address"/);
  assert.match(problems, /line 4, column "type"/);
  assert.equal(await page.locator('#point-grid tbody tr').count(), 15);
  await shot('11-device-csv-errors');
  const good = 'name,area,address,type,order,scale,unit\nline_voltage,holding,4,u16,,0.1,V\npower,holding,2,f32,,,kW\nspare,holding,9,u16,,,\n';
  await page.setInputFiles('#csv-file', { name: 'meter.csv', mimeType: 'text/csv', buffer: Buffer.from(good) });
  await page.locator('#edit-result .banner.info', { hasText: 'Imported 3 points' }).waitFor();
  assert.deepEqual((await gridRows()).map((r) => r.name), ['line_voltage', 'power', 'spare']);
  // remove a row
  await page.locator('#point-grid tbody tr').nth(2).locator('button.remove-row').click();
  assert.deepEqual((await gridRows()).map((r) => r.name), ['line_voltage', 'power']);
  // add a row: a coil
  await page.click('#add-point');
  const row = page.locator('#point-grid tbody tr').nth(2);
  await row.locator('td[data-key="name"] input').fill('flag');
  await row.locator('td[data-key="area"] select').selectOption('coil');
  await row.locator('td[data-key="address"] input').fill('1');
  await row.locator('td[data-key="type"] select').selectOption('bool');
  // edit a cell to a value the collector refuses: its finding is shown at that cell, nothing saved
  const scale = page.locator('#point-grid tbody tr').nth(0).locator('td[data-key="scale"]');
  await scale.locator('input').fill('0');
  await page.click('#save-device');
  await scale.locator('.cell-error', { hasText: 'must be a finite, non-zero number' }).waitFor({ timeout: 20000 });
  assert.equal(await scale.locator('input').getAttribute('aria-invalid'), 'true');
  await page.locator('#edit-result .banner.error').waitFor();
  await scale.scrollIntoViewIfNeeded();
  await shot('11b-device-finding-at-its-cell');
  assert.equal(await page.locator('.list .row', { hasText: 'meter02' }).count(), 0);
  await scale.locator('input').fill('0.1');
  assert.equal(await scale.locator('.cell-error').innerText(), '', 'the mark goes as the cell is edited');
  await page.click('#save-device');
  await page.locator('#edit-result .banner.info', { hasText: 'Added meter02' }).waitFor({ timeout: 20000 });
  await shot('12-device-added');
  await page.click('#go-test');
  await page.locator('#readings table').waitFor({ timeout: 20000 });
  const table = await page.locator('#readings table').innerText();
  assert.match(table, /line_voltage[\s\S]*good/, table);
  assert.match(table, /flag[\s\S]*good/, table);
  await page.goto(URL + '#/devices');
  await page.locator('.list .row', { hasText: 'meter02' }).locator('.pill.ok').waitFor({ timeout: 20000 });
  assert.match(await page.locator('.list').innerText(), /inv01[\s\S]*meter02/);
  await shot('13-devices-two');
});

test('devices: the point table exported as CSV imports back as the same grid', async () => {
  await page.goto(URL + '#/device-edit/meter02');
  await page.locator('#point-grid tbody tr').nth(2).waitFor({ timeout: 20000 });
  const before = await gridRows();
  assert.deepEqual(before.map((r) => r.name), ['line_voltage', 'power', 'flag']);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv-export')]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert.match(csv, /^name,/);
  await page.setInputFiles('#csv-file', { name: 'back.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.locator('#edit-result .banner.info', { hasText: 'Imported 3 points' }).waitFor();
  assert.deepEqual(await gridRows(), before);
});

test('device page: raw registers from the simulator, errors in words', async () => {
  await page.goto(URL + '#/device/inv01');
  await page.locator('#raw-card').scrollIntoViewIfNeeded();
  await page.fill('#raw-address', '0');
  await page.fill('#raw-count', '6');
  await page.click('#raw-read');
  await page.locator('#raw-table tbody tr').nth(5).waitFor({ timeout: 20000 });
  const t = await page.locator('#raw-table').innerText();
  assert.match(t, /0x[0-9a-f]{4}/);
  assert.equal(await page.locator('#raw-table tbody tr').count(), 6);
  await page.locator('#raw-result').scrollIntoViewIfNeeded();
  await shot('14-raw-registers');
  await checkKiosk('raw registers');
  // f32 across two registers
  await page.fill('#raw-address', '2');
  await page.fill('#raw-count', '2');
  await page.selectOption('#raw-type', 'f32');
  await page.click('#raw-read');
  await page.locator('#raw-table th', { hasText: 'As f32 ABCD' }).waitFor({ timeout: 20000 });
  // another unit id: the simulator stays silent, the page says what to check
  await page.fill('#raw-unit', '9');
  await page.click('#raw-read');
  await page.locator('#raw-result .banner.error', { hasText: 'unit id 9' }).waitFor({ timeout: 20000 });
  assert.match(await page.locator('#raw-result').innerText(), /Timeout/);
  await shot('15-raw-timeout');
});

test('device page: live values refresh by themselves, with a chart per point', async () => {
  await page.goto(URL + '#/device/inv01');
  const counter = page.locator('#live tr', { hasText: 'counter' }).locator('.live-value');
  await counter.waitFor({ timeout: 20000 });
  const v1 = await counter.innerText();
  await page.waitForFunction((v) => {
    const row = [...document.querySelectorAll('#live tr')].find((r) => r.textContent.includes('counter'));
    return row && row.querySelector('.live-value').textContent !== v;
  }, v1, { timeout: 10000 });
  await page.locator('#live tr', { hasText: 'counter' }).locator('svg.spark polyline').waitFor({ timeout: 10000 });
  // what the cloud acknowledged for the point (the uplink records it once the page asks)
  await page.locator('#live tr', { hasText: 'counter' }).locator('.sent', { hasText: 'cloud got' }).waitFor({ timeout: 20000 });
  await page.locator('#live').scrollIntoViewIfNeeded();
  await shot('16-live-values');
  await checkKiosk('live values');
});

test('system: an update bundle uploaded; with no enos-ota on the bus the page says so; restart unavailable without systemd', async () => {
  await page.click('nav a[data-page="system"]');
  await page.locator('#sys-info .card.stat').first().waitFor({ timeout: 20000 });
  assert.match(await page.locator('#sys-info').innerText(), /enos-ota/);
  assert.match(await page.locator('#services').innerText(), /enos-collector[\s\S]*running/);
  await shot('17-system');
  await checkKiosk('system');
  // a cpio (new ASCII) archive starting with a sw-description, as a SWUpdate bundle does
  const desc = 'software = {\n  version = "2.0.0";\n}\n';
  const name = 'sw-description\0';
  const hex = (n) => n.toString(16).padStart(8, '0');
  const head = '070701' + [1, 0o100644, 0, 0, 1, 0, desc.length, 0, 0, 0, 0, name.length, 0].map(hex).join('') + name;
  const pad = (t) => t + '\0'.repeat((4 - (t.length % 4)) % 4);
  const bundle = Buffer.concat([Buffer.from(pad(pad(head) + desc)), Buffer.alloc(256 * 1024, 0x30)]);
  await page.setInputFiles('#bundle-file', { name: 'enos-update.swu', mimeType: 'application/octet-stream', buffer: bundle });
  assert.match(await page.locator('#bundle-name').innerText(), /enos-update\.swu/);
  await page.click('#bundle-upload');
  await page.locator('#dialog').waitFor({ state: 'visible' });
  await page.click('#dialog-ok');
  await page.locator('#update-result .banner.error', { hasText: 'enos-ota) is not running' }).waitFor({ timeout: 20000 });
  await page.locator('#update-card').scrollIntoViewIfNeeded();
  await shot('18-update-without-ota');
  await page.click('.restart[data-svc="enos-collector"]');
  await page.click('#dialog-ok');
  await page.locator('#sys-result .banner.error', { hasText: 'not available here' }).waitFor({ timeout: 20000 });
  await page.click('#log-show');
  await page.locator('#log-result > *').first().waitFor({ timeout: 20000 });
  await page.locator('#log-result').scrollIntoViewIfNeeded();
  await shot('19-logs');
  await checkKiosk('logs');
  // the dashboard shows the box's own figures too
  await page.click('nav a[data-page="dashboard"]');
  await page.locator('#dash .stat', { hasText: 'Data partition' }).waitFor({ timeout: 20000 });
});

test('cloud settings: test the connection (a wrong secret refused), save, the session comes back', async () => {
  await page.click('nav a[data-page="system"]');
  await page.locator('#cloud-card').scrollIntoViewIfNeeded();
  await page.waitForFunction(() => document.querySelector('#cloud-uri')?.value.startsWith('tcp://'), null, { timeout: 20000 });
  assert.match(await page.getAttribute('#cloud-secret', 'placeholder'), /^set/);
  assert.equal(await page.inputValue('#cloud-secret'), '', 'the secret is never shown');
  await page.fill('#cloud-secret', 'not-the-secret');
  await page.click('#cloud-test');
  await page.locator('#cloud-result .banner.error', { hasText: 'refused the sign-in' }).waitFor({ timeout: 30000 });
  await page.fill('#cloud-secret', '');
  await page.click('#cloud-test');
  await page.locator('#cloud-result .banner.info', { hasText: 'Works' }).waitFor({ timeout: 30000 });
  await shot('20-cloud-settings');
  await checkKiosk('cloud settings');
  await page.fill('#cloud-secret', 'local-dev-secret');
  const savedAt = Date.now();
  await page.click('#cloud-save');
  await page.click('#dialog-ok');
  await page.locator('#cloud-result .banner.info', { hasText: 'reconnecting' }).waitFor({ timeout: 20000 });
  // a new session (connected after the save) that delivers again; polled with a deadline
  const deadline = Date.now() + 30000;
  for (;;) {
    const st = await page.evaluate(() => fetch('/api/status').then((r) => r.json()));
    const u = st.uplink;
    if (u && u.cloud.state === 'connected' && u.cloud.since_ms >= savedAt - 1000 && u.sender.points_acked > 0) break;
    assert.ok(Date.now() < deadline, 'no new delivering session after the change: ' + JSON.stringify(u && u.cloud));
    await page.waitForTimeout(250);
  }
});

test('five dashboards refreshing: the server stays small', async () => {
  figures.rss_kib_signed_in = rssKiB();
  const pages = [];
  for (let i = 0; i < 5; i++) {
    const p = await browser.context.newPage();
    await p.goto(URL + '#/dashboard');
    await p.locator('#dash .card.stat').first().waitFor();
    pages.push(p);
  }
  await new Promise((r) => setTimeout(r, 20000));
  figures.rss_kib_5_dashboards_20s = rssKiB();
  for (const p of pages) await p.close();
  if (figures.rss_kib_5_dashboards_20s) assert.ok(figures.rss_kib_5_dashboards_20s < 64 * 1024, `RSS ${figures.rss_kib_5_dashboards_20s} KiB`);
});

test('no script errors and no CSP refusals on any page', () => {
  assert.deepEqual(problems, []);
});
