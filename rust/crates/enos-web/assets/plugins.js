'use strict';
// Plugin devices' pages of the configuration center, on app.js's helpers (h, api, banner,
// cellInput, runCommTest…): the communication test's card (points read now through the driver)
// and the device editor's endpoint rows and settings form from the installed plugin's schema.
// app.js loads this script the first time a page needs one of them, not at start.

/** A plugin device: chosen points (none ticked: all) read now by a poll of its driver, each value or why it is missing. */
function pluginReadCard(id, t) {
  const list = h('div', { id: 'plugin-read-points', class: 'stack' }, h('p', { class: 'hint' }, 'Loading the points…'));
  const boxes = [];
  api('GET', '/api/devices/' + enc(id) + '/config').then((d) => {
    list.replaceChildren(...(d.point || []).map((p) => {
      const box = h('input', { type: 'checkbox', value: p.name, id: 'plugin-read-' + p.name });
      boxes.push(box);
      return h('label', { class: 'check', for: box.id }, box, ' ' + p.name + (p.address ? ' (' + p.address + ')' : ''));
    }));
  }).catch((e) => list.replaceChildren(banner('error', e.message)));
  const btn = h('button', { type: 'button', class: 'primary', id: 'plugin-read-run' }, 'Read now');
  const res = h('div', { id: 'plugin-read-result', role: 'status' });
  btn.addEventListener('click', () => {
    const points = boxes.filter((b) => b.checked).map((b) => b.value);
    runCommTest(id, { kind: t.kind, points }, btn, res, (r) => [
      r.ok ? h('p', { class: 'hint' }, sentence(r.message) + ', ' + r.took_ms + ' ms (' + r.plugin + ')')
        : r.failure ? failureBanner(r) : banner('error', sentence(r.message) + ', ' + r.took_ms + ' ms'),
      h('table', { id: 'plugin-read-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Point'), h('th', {}, 'Address'), h('th', {}, 'Value'), h('th', {}, 'Quality'))),
        h('tbody', {}, r.values.map((v) => h('tr', {},
          h('td', {}, v.point),
          h('td', { class: 'words' }, v.address),
          h('td', { class: v.ok ? 'num' : 'words error' }, v.text),
          h('td', { class: 'words' }, v.ok ? v.quality : '–')))))]);
  });
  return h('div', { class: 'card', id: 'comm-card' }, h('h2', {}, t.label),
    h('p', { class: 'hint' }, 'Asks the driver to poll now, beside its schedule; what it reads also goes on to the cloud. Tick the points to show (none: all).'),
    list, h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), btn), res);
}

/** A plugin device's endpoints as rows: id, then a TCP address or a serial port with baud and parity. */
function endpointRows(f, msg) {
  const tbody = h('tbody', {});
  let n = 0;
  const add = (id, e) => {
    const k = n++;
    const s = (e && e.serial) || {};
    const idIn = h('input', { id: 'ep-id-' + k, 'aria-label': 'Endpoint id', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', value: id || '' });
    const kind = h('select', { id: 'ep-kind-' + k, 'aria-label': 'Kind' }, h('option', { value: 'tcp' }, 'TCP'), h('option', { value: 'serial' }, 'Serial'));
    kind.value = e && e.serial ? 'serial' : 'tcp';
    const addr = h('input', { id: 'ep-address-' + k, 'aria-label': 'Address or port', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none',
      value: e && e.serial ? (s.port || '') : ((e && e.address) || ''), placeholder: 'host:port or /dev/ttyS1' });
    const baud = h('input', { id: 'ep-baud-' + k, 'aria-label': 'Baud', type: 'number', inputmode: 'numeric', value: s.baud === undefined ? '' : String(s.baud), placeholder: '9600' });
    const parity = h('select', { id: 'ep-parity-' + k, 'aria-label': 'Parity' }, ['none', 'even', 'odd'].map((p) => h('option', { value: p }, p)));
    parity.value = s.parity || 'none';
    const serialOnly = () => { baud.disabled = parity.disabled = kind.value !== 'serial'; };
    kind.addEventListener('change', serialOnly);
    serialOnly();
    const rm = h('button', { type: 'button', class: 'remove-row', 'aria-label': 'Remove endpoint' }, '✕');
    const tr = h('tr', {}, h('td', {}, idIn), h('td', {}, kind), h('td', {}, addr), h('td', {}, baud), h('td', {}, parity), h('td', {}, rm));
    tr.read = () => {
      const i = idIn.value.trim();
      if (!i) return null;
      if (kind.value === 'tcp') return [i, { address: addr.value.trim() }];
      // data and stop bits the form does not show are kept
      const ser = Object.assign({}, s, { port: addr.value.trim(), parity: parity.value });
      delete ser.baud;
      if (baud.value.trim()) ser.baud = Number(baud.value);
      return [i, { serial: ser }];
    };
    rm.addEventListener('click', () => tr.remove());
    tbody.append(tr);
  };
  const addBtn = h('button', { type: 'button', id: 'add-endpoint' }, '+ Add endpoint');
  addBtn.addEventListener('click', () => add('', null));
  const table = h('table', { class: 'point-grid', id: 'endpoint-rows' },
    h('thead', {}, h('tr', {}, ['Id', 'Kind', 'Address / port', 'Baud', 'Parity', ''].map((t) => h('th', { scope: 'col' }, t)))), tbody);
  return {
    part: h('fieldset', { class: 'nested' }, h('legend', {}, f.label), h('p', { class: 'hint' }, 'What the driver may open, by id (a plugin never sees an address).'),
      h('div', { class: 'scroll grid-wrap' }, table), addBtn, msg),
    el: table,
    get: () => {
      const rows = [...tbody.children].map((tr) => tr.read()).filter((x) => x);
      return rows.length ? Object.fromEntries(rows) : undefined;
    },
    set: (v) => { tbody.replaceChildren(); for (const [id, e] of Object.entries(v || {})) add(id, e); },
  };
}

/** The installed plugins (GET /api/plugins), asked once per page load. */
let pluginsAsked = null;
function installedPlugins() {
  if (!pluginsAsked) pluginsAsked = api('GET', '/api/plugins').then((r) => r.plugins || [], () => { pluginsAsked = null; return []; });
  return pluginsAsked;
}

/**
 * The plugin field offers the installed plugins to pick (a touch screen has no keyboard at
 * hand) and stays free text: a device may name a plugin its package installs later.
 */
function offerInstalledPlugins(input) {
  const list = h('datalist', { id: 'installed-plugins' });
  input.setAttribute('list', list.id);
  input.after(list);
  installedPlugins().then((ps) => list.replaceChildren(...ps.map((p) => h('option', { value: p.name }, p.name + ' ' + p.version))));
}

/** A JSON Schema property as a form field (the kinds `cellInput` knows). */
function schemaField(key, p, required) {
  const kind = p.enum ? 'choice' : { integer: 'integer', number: 'number', boolean: 'bool' }[p.type] || 'text';
  const def = p.default === undefined ? undefined : String(p.default);
  return { key, label: key, kind, required, choices: p.enum, default: def, min: p.minimum, max: p.maximum, help: p.description || '' };
}

/**
 * A plugin device's settings: one field per property of the named plugin's schema (type,
 * default, required, range); a plugin not installed here gets its settings as JSON text.
 * Settings the schema does not name are kept, so the collector's finding names them.
 */
function pluginSettings(f, msg) {
  const box = h('div', { id: 'dev-settings' });
  let value = {};
  let fields = null;   // key -> { f, el, msg }; null: the JSON text
  let json = null;
  let shown = null;
  const read = () => {
    if (!fields) {
      const t = json ? json.value.trim() : '';
      if (!t) return {};
      try { return JSON.parse(t); } catch (e) { throw new Error('Settings: not a JSON object (' + e.message + ')'); }
    }
    const o = Object.assign({}, value);
    for (const [k, x] of fields) { const v = cellValue(x.f, x.el); if (v === undefined) delete o[k]; else o[k] = v; }
    return o;
  };
  const render = (name) => installedPlugins().then((list) => {
    if (shown !== null) { try { value = read(); } catch (e) { /* unreadable JSON: the last good value stays */ } }
    shown = name;
    const p = list.find((x) => x.name === name);
    const schema = p && p.config_schema;
    if (!schema || !schema.properties) {
      fields = null;
      json = h('input', { id: 'dev-settings-json', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', placeholder: '{"key": "value"}' });
      json.value = Object.keys(value).length ? JSON.stringify(value) : '';
      box.replaceChildren(h('label', { for: json.id }, f.label + ' (JSON)'), json,
        h('p', { class: 'hint' }, name ? 'Plugin "' + name + '" is not installed here: its settings as JSON.' : 'Name the plugin to get its settings\' form.'));
      return;
    }
    fields = new Map();
    const req = schema.required || [];
    const parts = Object.entries(schema.properties).map(([k, prop]) => {
      const sf = schemaField(k, prop, req.includes(k));
      const el = cellInput(sf, value[k], 'dev-settings-' + k);
      const m = h('div', { class: 'cell-error', role: 'alert' });
      el.addEventListener('input', () => { m.textContent = ''; el.removeAttribute('aria-invalid'); });
      fields.set(k, { f: sf, el, msg: m });
      return h('div', { class: 'field ' + sf.kind }, h('label', { for: el.id }, k + (sf.required ? ' *' : '')), el, h('p', { class: 'hint' }, sf.help), m);
    });
    box.replaceChildren(h('fieldset', { class: 'nested' }, h('legend', {}, f.label + ' of ' + p.name + ' ' + p.version), ...parts));
  });
  return {
    part: h('div', {}, box, h('p', { class: 'hint' }, f.help), msg),
    el: box,
    get: () => { const o = read(); return Object.keys(o).length ? o : undefined; },
    set: (v) => { value = v && typeof v === 'object' ? Object.assign({}, v) : {}; shown = null; },
    forPlugin: (name) => { if (name !== shown) render(name); },
    clear: () => { for (const x of (fields || new Map()).values()) { x.msg.textContent = ''; x.el.removeAttribute('aria-invalid'); } },
    /** A finding of `settings.KEY` at its field. */
    markSub: (x) => {
      const k = String(x.field || '').split('.')[1];
      const t = fields && fields.get(k);
      if (!t) return false;
      t.msg.textContent = x.reason;
      t.el.setAttribute('aria-invalid', 'true');
      t.el.scrollIntoView({ block: 'nearest' });
      return true;
    },
  };
}

commTests['plugin-read'] = pluginReadCard;
