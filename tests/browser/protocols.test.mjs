// IEC 104 and DL/T 645 devices in the web center, in a real browser at the kiosk size: the point
// grid (rows added, edited, removed, a finding at its cell, CSV out and back in), each protocol's
// communication test (an interrogation; data identifiers with their frames) and the write dialog's
// choices (a command's states; a meter is read-only). The devices talk to real peers: a c104
// station and a DL/T 645 meter of the `dlt645` library, started by tests/browser/run. Last, the
// OPC UA browse card, whose script is loaded only when an OPC UA device's page is opened, which
// browses an asyncua server and adds picked variables as points, and the
// admin's card of an OPC UA device's server certificates (trust and remove, each confirmed), and
// a plugin device's communication test: chosen points read now through the IEC 62056-21 plugin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as k from './kiosk-browser.mjs';
import { URL } from './kiosk-browser.mjs';

assert.ok(process.env.ENOS_SIM_IEC104 && process.env.ENOS_SIM_DLT645, 'run through tests/browser/run');

let browser, page;
const problems = [];
const shot = (name) => k.shot(page, name);

before(async () => {
  // 400: a data identifier refused on purpose below; 422: the findings of a device the collector refused
  browser = await k.launch(problems, /status of (400|401|422)/);
  page = browser.page;
});

after(async () => {
  await browser?.close();
});

test('sign in (or claim the gateway when this file runs alone)', () => k.signIn(page));

// The grid's content: per row, each cell's value by field key.
async function gridRows() {
  return page.evaluate(() => [...document.querySelectorAll('#point-grid tbody tr')].map((tr) =>
    Object.fromEntries([...tr.querySelectorAll('td[data-key]')].map((td) => {
      const el = td.querySelector('input, select');
      return [td.dataset.key, el.type === 'checkbox' ? el.checked : el.value];
    }))));
}

/** Sets the cells of grid row `n` from `values` (field key → value). */
async function fillRow(n, values) {
  const row = page.locator('#point-grid tbody tr').nth(n);
  for (const [key, v] of Object.entries(values)) {
    const cell = row.locator(`td[data-key="${key}"]`);
    if (await cell.locator('select').count()) await cell.locator('select').selectOption(String(v));
    else if (typeof v === 'boolean') await cell.locator('input').setChecked(v);
    else await cell.locator('input').fill(String(v));
  }
}

/** A new device of `protocol` in the editor, its grid emptied. */
async function newDevice(protocol, id) {
  await page.goto(URL + '#/devices');
  await page.click('#add-device');
  await page.locator(`#dev-protocol option[value="${protocol}"]`).waitFor({ state: 'attached' });
  await page.selectOption('#dev-protocol', protocol);
  await page.fill('#dev-id', id);
  while (await page.locator('#point-grid tbody tr').count()) await page.locator('#point-grid tbody tr button.remove-row').first().click();
}

/** Adds a row and fills it. */
async function addRow(values) {
  await page.click('#add-point');
  await fillRow((await page.locator('#point-grid tbody tr').count()) - 1, values);
}

async function csvRoundTrip(id, rows) {
  await page.goto(URL + '#/device-edit/' + id);
  await page.locator('#point-grid tbody tr').nth(rows - 1).waitFor({ timeout: 20000 });
  const before = await gridRows();
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv-export')]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert.match(csv, /^name,/);
  await page.setInputFiles('#csv-file', { name: 'back.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.locator('#edit-result .banner.info', { hasText: `Imported ${rows} points` }).waitFor();
  assert.deepEqual(await gridRows(), before);
  return csv;
}

test('IEC 104 device: rows added, edited and removed in the grid, a finding at its cell, CSV out and back in', async () => {
  await newDevice('iec104', 'rtu1');
  await page.fill('#dev-address', process.env.ENOS_SIM_IEC104);
  const headers = await page.locator('#point-grid thead th').allInnerTexts();
  for (const want of ['Name *', 'IOA *', 'Type *', 'Command']) assert.ok(headers.includes(want), headers.join('|'));
  await addRow({ name: 'P', ioa: 7, type: 'M_ME_NC', unit: 'kW' });
  await addRow({ name: 'Q', ioa: 8, type: 'M_ME_NC' });
  await addRow({ name: 'spare', ioa: 99, type: 'M_SP' });
  // writable without a command: the collector's finding is shown at the access cell
  await addRow({ name: 'switch', ioa: 30, type: 'M_SP', access: 'rw', command_ioa: 130 });
  await addRow({ name: 'breaker', ioa: 40, type: 'M_DP', command: 'C_DC', command_ioa: 140, access: 'rw' });
  await page.click('#save-device');
  const access = page.locator('#point-grid tbody tr').nth(3).locator('td[data-key="access"]');
  await access.locator('.cell-error', { hasText: 'a writable point needs `command`' }).waitFor({ timeout: 20000 });
  await page.locator('#edit-result .banner.error').waitFor();
  await access.scrollIntoViewIfNeeded();
  await shot('40-iec104-finding-at-its-cell');
  // edit: the command; a unit; remove the spare row
  await fillRow(3, { command: 'C_SC' });
  await fillRow(1, { unit: 'kvar' });
  await page.locator('#point-grid tbody tr').nth(2).locator('button.remove-row').click();
  assert.deepEqual((await gridRows()).map((r) => r.name), ['P', 'Q', 'switch', 'breaker']);
  await page.click('#save-device');
  await page.locator('#edit-result .banner.info', { hasText: 'Added rtu1' }).waitFor({ timeout: 20000 });
  await shot('41-iec104-added');
  const csv = await csvRoundTrip('rtu1', 4);
  assert.match(csv, /\nQ,[^\n]*kvar/, csv);
  assert.match(csv, /\nswitch,[^\n]*C_SC/, csv);
});

test('DL/T 645 device: rows in the grid, a wrong data identifier marked at its cell, CSV out and back in', async () => {
  await newDevice('dlt645', 'meter1');
  await page.fill('#dev-meter', '123456789012');
  await page.fill('#dev-address', process.env.ENOS_SIM_DLT645);
  await page.selectOption('#dev-address_order', 'as-written');
  await page.fill('#dev-groups', 'default=1000');
  await addRow({ name: 'Ua', di: '0201010G' });
  await addRow({ name: 'E', di: '00010000', unit: 'kWh' });
  await addRow({ name: 'extra', di: '02800002' });
  await page.click('#save-device');
  const di = page.locator('#point-grid tbody tr').nth(0).locator('td[data-key="di"]');
  await di.locator('.cell-error', { hasText: 'is not a data identifier' }).waitFor({ timeout: 20000 });
  await shot('42-dlt645-finding-at-its-cell');
  await fillRow(0, { di: '02010100' });
  assert.equal(await di.locator('.cell-error').innerText(), '', 'the mark goes as the cell is edited');
  await page.locator('#point-grid tbody tr').nth(2).locator('button.remove-row').click();
  await page.click('#save-device');
  await page.locator('#edit-result .banner.info', { hasText: 'Added meter1' }).waitFor({ timeout: 20000 });
  const csv = await csvRoundTrip('meter1', 2);
  assert.match(csv, /\nUa,02010100/, csv);
});

test('IEC 104 communication test: an interrogation lists every object with type, value, quality and time tag', async () => {
  await page.goto(URL + '#/device/rtu1');
  await page.locator('#gi-run').waitFor({ timeout: 20000 });
  assert.equal(await page.locator('#comm-card h2').innerText(), 'Interrogation');
  // the station may still be connecting just after the device was added
  for (let i = 0; i < 40; i++) {
    await page.click('#gi-run');
    await page.locator('#gi-table, #gi-result .banner.error').first().waitFor({ timeout: 20000 });
    if (await page.locator('#gi-table').count()) break;
    await page.waitForTimeout(250); // a retry interval, not a synchronisation
  }
  const rows = page.locator('#gi-table tbody tr');
  assert.equal(await rows.count(), 4, await page.locator('#gi-result').innerText());
  const text = await page.locator('#gi-table').innerText();
  assert.match(text, /7\s+P\s+M_ME_NC_1\s+measured value, short float\s+231\.5\s+good/, text);
  assert.match(text, /8\s+Q\s+M_ME_NC_1[\s\S]*1\.25\s+invalid/, text);
  assert.match(text, /40\s+breaker\s+M_DP_NA_1\s+double point\s+off/, text);
  await page.locator('#comm-card').scrollIntoViewIfNeeded();
  await shot('43-iec104-interrogation');
  // one range of addresses
  await page.fill('#gi-from', '8');
  await page.fill('#gi-to', '30');
  await page.click('#gi-run');
  await page.waitForFunction(() => document.querySelectorAll('#gi-table tbody tr').length === 2, null, { timeout: 20000 });
  await page.fill('#gi-from', 'x');
  await page.click('#gi-run');
  assert.equal(await page.locator('#gi-result').innerText(), 'Common address and IOAs are whole numbers.');
});

test('IEC 104 write dialog: a single command offers off/on, a double command off/on, never a number field', async () => {
  await page.locator('#write-point option[value="switch"]').waitFor({ state: 'attached' });
  assert.deepEqual(await page.locator('#write-point option').allInnerTexts(), ['switch', 'breaker']);
  await page.selectOption('#write-point', 'switch');
  await page.click('#write-button');
  assert.equal(await page.locator('#write-range').innerText(), 'Range: off or on (C_SC_NA_1 single command)');
  assert.deepEqual(await page.locator('#write-value button').allInnerTexts(), ['off', 'on']);
  assert.equal(await page.locator('input#write-value').count(), 0, 'no text field for a switching command');
  await page.locator('#write-current', { hasText: /^Current value: (off|on)$/ }).waitFor({ timeout: 20000 });
  await page.click('#dialog-ok');
  assert.equal(await page.locator('#write-check').innerText(), 'Not sent: Choose off or on.');
  await page.click('#write-on');
  assert.equal(await page.getAttribute('#write-on', 'aria-pressed'), 'true');
  assert.equal(await page.locator('#write-check').innerText(), '', 'a choice clears the refusal');
  await shot('44-iec104-write-single');
  await page.click('#dialog-ok');
  await page.locator('#write-outcome .banner.info', { hasText: 'The device accepted switch = on' }).waitFor({ timeout: 20000 });
  await page.click('#dialog-cancel');
  await page.selectOption('#write-point', 'breaker');
  await page.click('#write-button');
  assert.equal(await page.locator('#write-range').innerText(), 'Range: off or on (C_DC_NA_1 double command)');
  // the station's double point reads 1: off, in words
  await page.locator('#write-current', { hasText: 'Current value: off' }).waitFor({ timeout: 20000 });
  await shot('45-iec104-write-double');
  await page.click('#dialog-cancel');
});

test('DL/T 645 communication test: chosen identifiers with request and response frames and the value with its unit', async () => {
  await page.goto(URL + '#/device/meter1');
  await page.locator('#di-run').waitFor({ timeout: 20000 });
  // the known identifiers come from the registry
  assert.ok((await page.locator('#di-pick option').allInnerTexts()).includes('02010100 voltage, phase A (V)'));
  await page.selectOption('#di-pick', '02010100');
  await page.click('#di-run');
  await page.locator('#di-table').waitFor({ timeout: 20000 });
  const text = await page.locator('#di-table').innerText();
  assert.match(text, /02010100\s+voltage, phase A\s+231\.4 V/, text);
  assert.match(text, /→ FE FE FE FE 68 12 34 56 78 90 12 68 11 04 33 34 34 35 6B 16/, text);
  assert.match(text, /← 68 12 34 56 78 90 12 68 91 /, text);
  await page.locator('#comm-card').scrollIntoViewIfNeeded();
  await shot('46-dlt645-identifiers');
  // typed, one the meter does not have: its abnormal reply in words
  await page.fill('#di-typed', '02-99-01-00, 00010000');
  await page.click('#di-run');
  await page.locator('#di-result .banner.error', { hasText: '1 of 2 identifiers read' }).waitFor({ timeout: 20000 });
  const t2 = await page.locator('#di-table').innerText();
  assert.match(t2, /02990100\s+meter 123456789012: reading 02990100: device exception 0x02 \(no requested data\)/, t2);
  assert.match(t2, /12345\.67 kWh/, t2);
  await page.fill('#di-typed', '0201');
  await page.click('#di-run');
  await page.locator('#di-result .banner.error', { hasText: '"0201" is not a data identifier' }).waitFor({ timeout: 20000 });
  await shot('47-dlt645-refused');
  // the write card says the meter is read-only
  assert.match(await page.locator('#write-result').innerText(), /DL\/T 645 meters are read-only/);
});

test('OPC UA device page: the browse card\'s script is loaded when the page is opened, not before', async () => {
  await page.goto(URL + '#/devices');
  await page.locator('.list .row').first().waitFor({ timeout: 20000 });
  assert.equal(await page.evaluate(() => typeof opcuaBrowseCard), 'undefined');
  assert.equal(await page.locator('script[src="/opcua.js"]').count(), 0);
  // a device on a server that is not there: the card comes from the protocol registry alone
  await page.evaluate((pki) => api('PUT', '/api/devices/plc1/config', {
    id: 'plc1', protocol: 'opcua', endpoint: 'opc.tcp://127.0.0.1:9', security_policy: 'None', pki_dir: pki,
    point: [{ name: 'P', node: 'ns=2;s=P' }],
  }), join(dirname(process.env.ENOS_WEB_STATE), 'opcua-pki'));
  await page.evaluate(() => { location.hash = '#/device/plc1'; });
  await page.locator('#opcua-browse-run').waitFor({ timeout: 20000 });
  assert.equal(await page.locator('script[src="/opcua.js"]').count(), 1);
  await page.locator('#comm-card').scrollIntoViewIfNeeded();
  await shot('48-opcua-browse-card');
  // a second device page uses the script already there
  await page.evaluate(() => { location.hash = '#/devices'; });
  await page.locator('.list .row').first().waitFor();
  await page.evaluate(() => { location.hash = '#/device/plc1'; });
  await page.locator('#opcua-browse-run').waitFor({ timeout: 20000 });
  assert.equal(await page.locator('script[src="/opcua.js"]').count(), 1);
  // its read ended and its page left before the device goes (see the next test)
  await page.locator('#read-now:enabled').waitFor({ timeout: 30000 });
  await page.evaluate(() => { location.hash = '#/devices'; });
  await page.locator('.list .row').first().waitFor();
  await page.evaluate(() => api('DELETE', '/api/devices/plc1/config'));
});

test('OPC UA device page: the server browsed, a folder opened, two variables picked and added as points, then read', async () => {
  await page.evaluate(([endpoint, pki]) => api('PUT', '/api/devices/plc3/config', {
    id: 'plc3', protocol: 'opcua', endpoint, security_policy: 'None', pki_dir: pki,
    point: [{ name: 'P', node: 'ns=2;s=P' }],
  }), [process.env.ENOS_SIM_OPCUA, join(dirname(process.env.ENOS_WEB_STATE), 'opcua-pki-browse')]);
  // online first (its first start makes the gateway's certificate, which takes seconds)
  const online = await page.evaluate(async () => {
    for (let i = 0; i < 300; i++) {
      const d = (await api('GET', '/api/devices')).find((x) => x.id === 'plc3');
      if (d && d.state === 'online') return true;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    return false;
  });
  assert.ok(online, 'plc3 online');
  await page.evaluate(() => { location.hash = '#/device/plc3'; });
  await page.locator('#opcua-browse-run').click({ timeout: 20000 });
  // Objects, then the test server's folder: its variables, the configured one marked
  const plant = page.locator('#opcua-browse-table tr[data-node="ns=2;s=Plant"]');
  await plant.waitFor({ timeout: 30000 });
  await plant.locator('.open-node').click();
  await page.locator('#opcua-path button.current', { hasText: 'Plant' }).waitFor({ timeout: 20000 });
  const row = (node) => page.locator(`#opcua-browse-table tr[data-node="${node}"]`);
  await row('ns=2;s=Setpoint').waitFor({ timeout: 20000 });
  assert.match(await row('ns=2;s=P').innerText(), /point P/);
  assert.match(await row('ns=2;s=Setpoint').innerText(), /Double/);
  assert.equal(await page.locator('#opcua-add-points').isDisabled(), true);
  await row('ns=2;s=Setpoint').locator('.pick').check();
  await row('ns=2;s=Locked').locator('.pick').check();
  assert.equal(await page.locator('#opcua-add-points').innerText(), 'Add 2 picked variables as points');
  await page.locator('#comm-card').scrollIntoViewIfNeeded();
  await shot('48b-opcua-browse-picked');
  await page.click('#opcua-add-points');
  await page.locator('#opcua-add-result .banner', { hasText: 'Added Setpoint, Locked to plc3' }).waitFor({ timeout: 20000 });
  // in the device's configuration: the node in its nsu= form, writable only where the server allows
  const cfg = await page.evaluate(() => api('GET', '/api/devices/plc3/config'));
  assert.deepEqual(cfg.point.map((p) => [p.name, p.node, p.access || 'r']),
    [['P', 'ns=2;s=P', 'r'], ['Setpoint', 'nsu=urn:enos:test;s=Setpoint', 'rw'], ['Locked', 'nsu=urn:enos:test;s=Locked', 'r']]);
  // and the collector reads them from the server (the server's values: 231.5, 0, 0)
  const values = await page.evaluate(async () => {
    for (let i = 0; i < 100; i++) {
      const r = await api('POST', '/api/devices/plc3/read', {});
      const by = Object.fromEntries(r.readings.map((x) => [x.point, x]));
      if (['P', 'Setpoint', 'Locked'].every((p) => by[p] && by[p].quality === 'good')) return [by.P.value, by.Setpoint.value, by.Locked.value];
      await new Promise((ok) => setTimeout(ok, 200));
    }
    return null;
  });
  assert.deepEqual(values, [231.5, 0, 0]);
  await page.evaluate(() => { location.hash = '#/devices'; });
  await page.locator('.list .row').first().waitFor();
  await page.evaluate(() => api('DELETE', '/api/devices/plc3/config'));
});

test('OPC UA device page, admin: a server certificate refused at a connect is trusted, then removed, each after a confirmation', async () => {
  // a certificate in the device's rejected/, as the collector leaves one (its server is not there)
  const pki = join(dirname(process.env.ENOS_WEB_STATE), 'opcua-pki-certs');
  mkdirSync(join(pki, 'rejected'), { recursive: true });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', '/CN=plc-7/O=Plant',
    '-outform', 'DER', '-keyout', join(pki, 'plc-7.key'), '-out', join(pki, 'rejected', 'plc-7.der')], { stdio: 'ignore' });
  await page.evaluate((pki) => api('PUT', '/api/devices/plc2/config', {
    id: 'plc2', protocol: 'opcua', endpoint: 'opc.tcp://127.0.0.1:9', security_policy: 'None', pki_dir: pki,
    point: [{ name: 'P', node: 'ns=2;s=P' }],
  }), pki);
  await page.evaluate(() => { location.hash = '#/device/plc2'; });
  const row = page.locator('#opcua-certs-table tbody tr');
  await row.first().waitFor({ timeout: 20000 });
  assert.equal(await row.count(), 1);
  const text = await row.innerText();
  assert.match(text, /rejected/);
  assert.match(text, /CN=plc-7/);
  assert.match(text, /([0-9a-f]{8} ){7}[0-9a-f]{8}/, 'the thumbprint in groups of eight');
  await page.locator('#opcua-certs-card').scrollIntoViewIfNeeded();
  await shot('49-opcua-certificate-rejected');
  // Trust… asks first, showing what to compare; Cancel changes nothing
  await row.locator('button.trust').click();
  await page.locator('#dialog-body', { hasText: 'Compare the thumbprint' }).waitFor();
  await shot('50-opcua-certificate-trust-confirm');
  await page.click('#dialog-cancel');
  assert.match(await row.innerText(), /rejected/);
  await row.locator('button.trust').click();
  await page.click('#dialog-ok');
  await page.locator('#opcua-certs-result .banner', { hasText: 'connects to this server at its next attempt' }).waitFor({ timeout: 20000 });
  await page.locator('#opcua-certs-table tbody tr', { hasText: 'trusted' }).waitFor({ timeout: 20000 });
  assert.equal(await page.locator('#opcua-certs-table button.trust').count(), 0, 'a trusted one has no Trust button');
  // Remove… asks too; then the list is empty
  await page.locator('#opcua-certs-table button.remove').click();
  await page.locator('#dialog-body', { hasText: 'refuses this server' }).waitFor();
  await page.click('#dialog-ok');
  await page.locator('#opcua-certs .hint', { hasText: 'No server certificates yet' }).waitFor({ timeout: 20000 });
  // the page's own read (answered once the driver's first connect attempt has failed) ends, and
  // the page is left, before the device goes: either would otherwise meet a driver being removed
  await page.locator('#read-now:enabled').waitFor({ timeout: 30000 });
  await page.evaluate(() => { location.hash = '#/devices'; });
  await page.locator('.list .row').first().waitFor();
  await page.evaluate(() => api('DELETE', '/api/devices/plc2/config'));
});

test('plugin device communication test: the chosen points read now through its driver, each with value and quality', async () => {
  await page.goto(URL + '#/devices');
  const put = await page.evaluate((addr) => api('PUT', '/api/devices/meter21/config', {
    id: 'meter21', protocol: 'plugin', plugin: 'iec62056', poll_interval_ms: 60000,
    endpoints: { line: { address: addr } }, settings: { timeout_ms: 2000 },
    point: [{ name: 'energy', address: '1.8.0', unit: 'kWh' }, { name: 'voltage', address: '32.7.0', unit: 'V' },
      { name: 'current', address: '31.7.0', unit: 'A' }],
  }), process.env.ENOS_SIM_IEC62056);
  assert.equal(put.applied.ok, true, JSON.stringify(put));
  await page.goto(URL + '#/device/meter21');
  await page.locator('#plugin-read-run').waitFor({ timeout: 20000 });
  await page.locator('#plugin-read-points label', { hasText: 'voltage (32.7.0)' }).waitFor({ timeout: 20000 });
  // one point ticked: only it is read
  await page.check('#plugin-read-voltage');
  await page.click('#plugin-read-run');
  await page.locator('#plugin-read-table').waitFor({ timeout: 20000 });
  let text = await page.locator('#plugin-read-table').innerText();
  assert.match(text, /voltage\s+32\.7\.0\s+230\.1 V\s+good/, text);
  assert.doesNotMatch(text, /energy/, text);
  assert.match(await page.locator('#plugin-read-result').innerText(), /1 of 1 points read, \d+ ms \(iec62056 /);
  // none ticked: all; a point the meter does not send is said in words
  await page.uncheck('#plugin-read-voltage');
  await page.click('#plugin-read-run');
  await page.locator('#plugin-read-result .banner.error', { hasText: '2 of 3 points read' }).waitFor({ timeout: 20000 });
  text = await page.locator('#plugin-read-table').innerText();
  assert.match(text, /energy\s+1\.8\.0\s+1234\.\d+ kWh\s+good/, text);
  assert.match(text, /current\s+31\.7\.0\s+the driver sent no value for it in this poll/, text);
  await page.locator('#comm-card').scrollIntoViewIfNeeded();
  await shot('55-plugin-read');
  // settings the plugin's schema refuses: the device is not changed, each finding names the setting
  const refused = await page.evaluate((addr) => api('PUT', '/api/devices/meter21/config', {
    id: 'meter21', protocol: 'plugin', plugin: 'iec62056', endpoints: { line: { address: addr } },
    settings: { timeout_ms: 5, baud: 300 }, point: [{ name: 'energy', address: '1.8.0' }],
  }).then(() => null, (e) => e.errors), process.env.ENOS_SIM_IEC62056);
  const said = (refused || []).map((e) => e.device + ' ' + e.field + ': ' + e.reason);
  assert.ok(said.includes('meter21 settings.timeout_ms: 5 is below the minimum 100'), said.join('\n'));
  assert.ok(said.some((x) => x.startsWith('meter21 settings.baud: not a setting of this protocol')), said.join('\n'));
});

test('plugin device editor: settings as a form from the plugin\'s schema, endpoints as rows, a refused setting marked at its field', async () => {
  await page.goto(URL + '#/device-edit/meter21');
  await page.locator('#dev-settings-timeout_ms').waitFor({ timeout: 20000 });
  // the schema's types and defaults: a number field holding the device's value, text fields with their defaults
  assert.equal(await page.locator('#dev-settings-timeout_ms').getAttribute('type'), 'number');
  assert.equal(await page.locator('#dev-settings-timeout_ms').inputValue(), '2000');
  assert.equal(await page.locator('#dev-settings-timeout_ms').getAttribute('min'), '100');
  assert.equal(await page.locator('#dev-settings-endpoint').getAttribute('placeholder'), 'line');
  assert.match(await page.locator('#dev-settings legend').innerText(), /^Settings of iec62056 /);
  // the plugin field offers the installed plugins to pick
  await page.locator('#installed-plugins option[value="iec62056"]').waitFor({ state: 'attached', timeout: 20000 });
  assert.equal(await page.locator('#dev-plugin').getAttribute('list'), 'installed-plugins');
  assert.match(await page.locator('#installed-plugins option[value="iec62056"]').textContent(), /^iec62056 \d+\.\d+\.\d+/);
  assert.equal(await page.locator('#ep-id-0').inputValue(), 'line');
  assert.equal(await page.locator('#ep-address-0').inputValue(), process.env.ENOS_SIM_IEC62056);
  assert.equal(await page.locator('#ep-baud-0').isDisabled(), true, 'baud is for serial endpoints');
  // a value the schema refuses: marked at its field, nothing changed
  await page.fill('#dev-settings-timeout_ms', '5');
  await page.click('#save-device');
  await page.locator('#dev-settings .cell-error', { hasText: '5 is below the minimum 100' }).waitFor({ timeout: 20000 });
  assert.equal(await page.locator('#dev-settings-timeout_ms').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.locator('#edit-result').innerText(), 'the configuration was refused (1 problem): settings.timeout_ms: 5 is below the minimum 100');
  await shot('56-plugin-settings-refused');
  // a good one is saved; the endpoint and the points come back as they were
  await page.fill('#dev-settings-timeout_ms', '1500');
  await page.click('#save-device');
  await page.locator('#edit-result .banner.info', { hasText: 'Saved meter21' }).waitFor({ timeout: 20000 });
  const d = await page.evaluate(() => api('GET', '/api/devices/meter21/config'));
  assert.deepEqual([d.settings, d.endpoints, d.point.length], [{ timeout_ms: 1500 }, { line: { address: process.env.ENOS_SIM_IEC62056 } }, 3]);
});

test('no script errors on these pages', () => {
  assert.deepEqual(problems, []);
});
