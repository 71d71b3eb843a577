// EnOS Edge configuration center: one page, hash routes, the JSON API of docs/web-api.md.
// Everything shown is built with DOM nodes and textContent (device names and errors are data,
// never markup). No libraries, nothing loaded from elsewhere.
'use strict';

const $ = (sel) => document.querySelector(sel);
let session = null;      // GET /api/session
let timer = null;        // the current page's refresh
let pageToken = 0;       // bumps on every navigation; late answers of an old page are dropped

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    if (session && session.csrf) opts.headers['X-CSRF-Token'] = session.csrf;
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body || {});
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, 'the gateway does not answer (network or service down)');
  }
  let doc = null;
  try { doc = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) {
    const msg = (doc && doc.error) || ('HTTP ' + r.status);
    const err = new ApiError(r.status, msg);
    err.errors = (doc && doc.errors) || null;
    if (r.status === 401 && !path.startsWith('/api/login') && !path.startsWith('/api/setup')) {
      session = null;
      showSignIn('Your session has ended: sign in again.');
    }
    throw err;
  }
  return doc;
}

// ---- formatting ----

function ago(ms) {
  if (!ms) return '–';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 2) return 'just now';
  if (s < 90) return s + ' s ago';
  if (s < 5400) return Math.round(s / 60) + ' min ago';
  if (s < 48 * 3600) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' days ago';
}
function clock(ms) { return ms ? new Date(ms).toLocaleTimeString() : '–'; }
function bytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}
/** Words from the API as a sentence: a capital first letter. */
function sentence(t) { return t ? t.charAt(0).toUpperCase() + t.slice(1) : ''; }
function count(n) { return (n === null || n === undefined) ? '–' : Number(n).toLocaleString(); }
function hours(hr) {
  if (hr === null || hr === undefined) return 'unknown';
  if (hr >= 48) return (hr / 24).toFixed(1) + ' days';
  return hr.toFixed(1) + ' hours';
}
function value(v) {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string') return '"' + v + '"';
  return String(v);
}
const stateClass = { online: 'ok', connected: 'ok', good: 'ok', connecting: 'warn', refusing: 'bad', failed: 'bad', offline: 'bad', disconnected: 'bad', disabled: 'off' };
function pill(text, cls) { return h('span', { class: 'pill ' + (cls || stateClass[text] || 'warn') }, text); }

function stat(label, val, sub, extra) {
  return h('div', { class: 'card stat' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, val), sub ? h('div', { class: 'sub' }, sub) : null, extra || null);
}

function banner(kind, text) { return h('div', { class: 'banner ' + kind, role: kind === 'error' ? 'alert' : 'status' }, text); }

// ---- dialog (the confirmation step) ----

function confirmDialog(title, body, okText, okClass) {
  return new Promise((resolve) => {
    const d = $('#dialog');
    $('#dialog-title').textContent = title;
    const b = $('#dialog-body');
    b.replaceChildren(...(Array.isArray(body) ? body : [body]));
    const ok = $('#dialog-ok');
    ok.textContent = okText || 'OK';
    ok.className = okClass || 'primary';
    ok.hidden = false;
    ok.disabled = false;
    $('#dialog-cancel').textContent = 'Cancel';
    const done = (v) => { d.hidden = true; ok.onclick = null; $('#dialog-cancel').onclick = null; resolve(v); };
    ok.onclick = () => done(true);
    $('#dialog-cancel').onclick = () => done(false);
    d.hidden = false;
    $('#dialog-cancel').focus();
  });
}

// ---- sign-in and first boot ----

function showSignIn(message) {
  stopTimer();
  $('#bar').hidden = true;
  $('#dialog').hidden = true;
  const setup = session === null ? false : !!session.setup_required;
  render(signInView(setup, message));
}

function signInView(setup, message) {
  const min = (session && session.min_password_len) || 10;
  const err = h('p', { class: 'error', role: 'alert', id: 'signin-error' }, message && !message.startsWith('Your') ? message : '');
  const info = message && message.startsWith('Your') ? banner('info', message) : null;
  const name = h('input', { id: 'name', name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', value: 'admin', required: true });
  const pw = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: setup ? 'new-password' : 'current-password', required: true });
  const pw2 = setup ? h('input', { id: 'password2', type: 'password', autocomplete: 'new-password', required: true }) : null;
  const needCode = setup && session && session.setup_code_required;
  const code = needCode ? h('input', { id: 'setup-code', autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false',
    placeholder: 'XXXX-XXXX-XXXX', required: true }) : null;
  const print = session && session.tls_fingerprint
    ? h('p', { class: 'hint', id: 'tls-fingerprint' }, 'Certificate fingerprint (SHA-256): ' + session.tls_fingerprint +
      '. Compare it with what your browser shows for this page before you enter a password.') : null;
  const btn = h('button', { type: 'submit', class: 'primary', id: 'signin-button' }, setup ? 'Set the admin password' : 'Sign in');
  const form = h('form', { class: 'card', novalidate: true },
    h('h1', {}, setup ? 'Welcome: claim this gateway' : 'Sign in'),
    setup ? h('p', { class: 'hint' }, 'This gateway has no account yet. Choose the admin password now; there is no default password.' +
      (needCode ? ' Over the network you also need the gateway\'s one-time setup code: it is on the gateway\'s label or screen.' : '')) : null,
    info,
    h('label', { for: 'name' }, setup ? 'Admin account name' : 'Account name'), name,
    h('label', { for: 'password' }, setup ? 'New password' : 'Password'), pw,
    setup ? h('p', { class: 'hint' }, 'At least ' + min + ' characters.') : null,
    setup ? h('label', { for: 'password2' }, 'The same password again') : null, pw2,
    needCode ? h('label', { for: 'setup-code' }, 'Setup code') : null, code,
    err, btn, print);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    if (setup && pw.value !== pw2.value) { err.textContent = 'The two passwords differ.'; return; }
    if (setup && pw.value.length < min) { err.textContent = 'The password must have at least ' + min + ' characters.'; return; }
    btn.disabled = true;
    btn.textContent = setup ? 'Saving…' : 'Signing in…';
    try {
      const body = { name: name.value.trim(), password: pw.value };
      if (needCode) body.setup_code = code.value.trim();
      session = await api('POST', setup ? '/api/setup' : '/api/login', body);
      pw.value = '';
      start();
    } catch (e) {
      err.textContent = e.message;
      btn.disabled = false;
      btn.textContent = setup ? 'Set the admin password' : 'Sign in';
      if (e.status === 409) { session = await api('GET', '/api/session').catch(() => session); showSignIn(e.message); }
    }
  });
  setTimeout(() => (setup ? pw : name).focus(), 0);
  return h('div', { class: 'signin' }, form);
}

// ---- pages ----

function stopTimer() { if (timer) { clearTimeout(timer); timer = null; } }

// Runs `load` now and every `ms` while the page is shown (paused while the tab is hidden).
function every(ms, load) {
  const token = pageToken;
  const tick = async () => {
    if (token !== pageToken) return;
    if (!document.hidden) { try { await load(); } catch (e) { /* shown by load */ } }
    if (token === pageToken) timer = setTimeout(tick, ms);
  };
  tick();
}

function render(...nodes) { $('#main').replaceChildren(...nodes); }

// ---- scripts loaded on demand: the Packages page (packages.js) and the OPC UA browse card
// (opcua.js) are fetched the first time they are opened, so the dashboard's first load stays small ----

const scriptsLoading = {};

/** Loads the script `src` of this server once (a <script> element); resolves when it has run. */
function loadScript(src) {
  if (!scriptsLoading[src]) {
    scriptsLoading[src] = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src;
      s.onload = () => resolve();
      s.onerror = () => {
        delete scriptsLoading[src]; // the next visit tries again
        s.remove();
        reject(new Error('This part of the page (' + src.slice(1) + ') did not load; check the connection and open it again'));
      };
      document.head.append(s);
    });
  }
  return scriptsLoading[src];
}

/** A page whose code is in `src`: "Loading…" until the script has run, then `make()`'s page. */
function onDemandView(src, make) {
  const token = pageToken;
  const box = h('section', {}, h('p', { class: 'loading' }, 'Loading…'));
  loadScript(src).then(() => { if (token === pageToken) box.replaceWith(make()); })
    .catch((e) => { if (token === pageToken) box.replaceChildren(banner('error', e.message)); });
  return box;
}

/** A file chooser with a big button (the native one is small on a touch screen), the chosen
 *  file's name and size, and an upload button enabled once a file is chosen. Ids: `${id}-file`,
 *  `-pick`, `-name`, `-upload`. */
function filePicker(id, accept, pickLabel, uploadLabel) {
  const file = h('input', { id: id + '-file', type: 'file', accept, class: 'file' });
  const pick = h('button', { type: 'button', id: id + '-pick' }, pickLabel);
  const chosen = h('span', { class: 'hint grow', id: id + '-name' }, 'no file chosen');
  const upBtn = h('button', { type: 'button', class: 'primary', id: id + '-upload', disabled: true }, uploadLabel);
  pick.addEventListener('click', () => file.click());
  file.addEventListener('change', () => {
    const f = file.files[0];
    chosen.textContent = f ? f.name + ' (' + bytes(f.size) + ')' : 'no file chosen';
    upBtn.disabled = !f;
  });
  return { file, pick, chosen, upBtn };
}

function cloudPill(st) {
  const c = $('#cloud');
  const u = st && st.uplink;
  const state = u ? u.cloud.state : 'unknown';
  c.textContent = 'cloud ' + state;
  c.className = 'pill ' + (u ? (stateClass[state] || 'warn') : 'off');
}

function dashboardView() {
  const updated = h('span', { class: 'updated', id: 'updated' }, '');
  const body = h('div', { id: 'dash' }, h('p', { class: 'loading' }, 'Loading…'));
  const root = h('section', {}, h('div', { class: 'toolbar' }, h('h1', { class: 'grow' }, 'Dashboard'), updated), body);
  let sys = null;
  let n = 0;
  every(2000, async () => {
    try {
      const st = await api('GET', '/api/status');
      if (n++ % 3 === 0) sys = await api('GET', '/api/system').catch(() => sys);
      cloudPill(st);
      body.replaceChildren(...dashboardCards(st, sys));
      updated.textContent = 'updated ' + clock(st.time_ms);
    } catch (e) {
      updated.textContent = '';
      body.replaceChildren(banner('error', 'Cannot get the status: ' + e.message));
      throw e;
    }
  });
  return root;
}

function dashboardCards(st, sys) {
  const out = [];
  for (const [what, msg] of Object.entries(st.errors || {})) {
    if (what !== 'devices' || !st.errors.collector) out.push(banner('error', msg));
  }
  const cards = [];
  const u = st.uplink;
  if (u) {
    const c = u.cloud;
    cards.push(stat('Cloud connection', pill(c.state), (c.state === 'connected' ? 'since ' : 'last change ') + ago(c.since_ms) +
      (c.last_error ? ' — ' + c.last_error : ''), h('div', { class: 'sub' }, c.uri)));
    const ca = u.cache;
    const share = ca.max_bytes ? Math.min(100, 100 * ca.bytes / ca.max_bytes) : 0;
    cards.push(stat('Backlog (waiting for the cloud)', count(ca.points) + ' points',
      bytes(ca.bytes) + ' of ' + bytes(ca.max_bytes) + (ca.oldest_ts_ms ? ', oldest ' + ago(ca.oldest_ts_ms) : ''),
      h('div', { class: 'meter', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(share) }, h('div', { style: null, 'data-w': share }))));
    cards.push(stat('Outage the cache can hold', hours(ca.outage_hours_capacity),
      'at ' + count(Math.round(ca.ingest_points_per_s)) + ' points/s' + (ca.dropped_points ? '; ' + count(ca.dropped_points) + ' points dropped' : '')));
    if (ca.disk_low) out.push(banner('error', 'Data partition: ' + ca.disk_low + '.'));
    const s = u.sender;
    cards.push(stat('Delivered to the cloud', count(s.points_acked) + ' points',
      count(s.points_acked_live) + ' live, ' + count(s.points_acked_resume) + ' from the backlog' + (s.rejected ? ', ' + count(s.rejected) + ' refused' : '')));
  }
  const col = st.collector;
  if (col) {
    const off = col.devices - col.devices_online;
    cards.push(stat('Devices', col.devices_online + ' of ' + col.devices + ' online',
      off ? off + ' not answering' : 'all answering', null));
    // The collector's hand-off to the uplink: overload means samples wait or are shed.
    if (col.state && col.state !== 'ok') {
      out.push(banner('error', col.state === 'overloaded'
        ? 'The collector reads more than the uplink takes: ' + count(col.samples_buffered) + ' samples wait, ' + count(col.samples_dropped) + ' oldest shed so far.'
        : 'The collector cannot reach the uplink: ' + count(col.samples_buffered) + ' samples wait in memory.'));
    }
    cards.push(stat('Collector hand-off', pill(col.state || 'ok', col.state && col.state !== 'ok' ? 'bad' : 'ok'),
      count(col.samples_buffered) + ' of ' + count(col.buffer_max_samples || 0) + ' samples waiting' +
      (col.samples_dropped ? ', ' + count(col.samples_dropped) + ' shed' : ''), null));
  }
  const svc = (name, up) => h('div', { class: 'svc' }, h('span', {}, name), pill(up ? 'running' : 'not answering', up ? 'ok' : 'bad'));
  const otaUp = sys ? sys.services.some((x) => x.service === 'enos-ota' && x.state === 'running') : null;
  cards.push(h('div', { class: 'card stat' }, h('div', { class: 'label' }, 'Services'),
    svc('collector', !!st.collector), svc('uplink', !!st.uplink), otaUp === null ? null : svc('ota', otaUp)));
  if (sys) cards.push(...systemCards(sys));
  const grid = h('div', { class: 'grid' }, cards);
  // widths via CSSOM (the CSP allows no inline style attributes)
  grid.querySelectorAll('[data-w]').forEach((el) => { el.style.width = el.getAttribute('data-w') + '%'; });
  out.push(grid);
  if (st.devices && st.devices.length) {
    out.push(h('h2', {}, 'Devices'));
    out.push(h('div', { class: 'list' }, st.devices.map(deviceRow)));
  }
  return out;
}

function deviceRow(d) {
  return h('div', { class: 'card row' },
    h('div', { class: 'grow' },
      h('div', { class: 'name' }, d.id),
      h('div', { class: 'hint' }, d.protocol + ' · ' + d.points + ' points · last answer ' + ago(d.last_ok_ms) +
        ' · ' + count(d.polls_ok) + ' polls ok, ' + count(d.polls_failed) + ' failed'),
      d.last_error ? h('div', { class: 'hint error' }, d.last_error) : null,
      // reads the device kept refusing as one block, split for the life of the driver
      (d.split_reads || []).map((t) => h('div', { class: 'hint' }, 'Split: ' + t)),
      cloudLine(d)),
    pill(d.state),
    h('a', { class: 'button', href: '#/device/' + encodeURIComponent(d.id), role: 'button' }, 'Test'),
    session.role === 'admin' ? h('a', { class: 'button quiet', href: '#/device-edit/' + encodeURIComponent(d.id), role: 'button' }, 'Edit') : null);
}

// The device's cloud side: its identity and state, or why its data does not reach the cloud.
// `d.cloud` is left out when the uplink does not answer (then nothing is said here).
function cloudLine(d) {
  if (d.cloud === undefined) return null;
  const c = d.cloud;
  if (!c) return h('div', { class: 'hint error cloud' }, 'Cloud: not uploaded: this device has no cloud identity (give it a product key under Edit)');
  const who = c.product_key + (c.device_key ? '/' + c.device_key : '');
  const why = c.reason ? ': ' + c.reason : (c.uploading ? '' : ': its data is not uploaded');
  return h('div', { class: 'hint cloud' + (c.uploading ? '' : ' error') }, 'Cloud: ' + c.state + ' as ' + who + why);
}

function devicesView() {
  const body = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  every(3000, async () => {
    try {
      const list = await api('GET', '/api/devices');
      body.replaceChildren(list.length ? h('div', { class: 'list' }, list.map(deviceRow)) : banner('info', 'No device is configured.'));
    } catch (e) {
      body.replaceChildren(banner('error', e.message));
      throw e;
    }
  });
  const add = session.role === 'admin' ? h('a', { class: 'button primary', id: 'add-device', href: '#/device-edit/', role: 'button' }, '+ Add device') : null;
  return h('section', {}, h('div', { class: 'toolbar' }, h('h1', { class: 'grow' }, 'Devices'), add), body);
}

function deviceView(id) {
  const canWrite = session.role === 'operator' || session.role === 'admin';
  const result = h('div', { id: 'readings' });
  const status = h('span', { class: 'updated' }, '');
  const readBtn = h('button', { type: 'button', class: 'primary', id: 'read-now' }, 'Read now');
  const pointSel = h('select', { id: 'write-point' }, h('option', { value: '' }, 'Loading the points…'));
  const writeOut = h('div', { id: 'write-result', role: 'status' });
  const writeBtn = h('button', { type: 'button', class: 'primary', id: 'write-button', disabled: true }, 'Write…');
  let writable = [];

  async function read() {
    readBtn.disabled = true;
    status.textContent = 'reading from the device…';
    try {
      const r = await api('POST', '/api/devices/' + encodeURIComponent(id) + '/read', {});
      status.textContent = r.good + ' of ' + r.total + ' points good, ' + r.took_ms + ' ms, at ' + clock(Date.now());
      result.replaceChildren(readingsTable(r.readings));
    } catch (e) {
      status.textContent = '';
      result.replaceChildren(banner('error', 'The read failed: ' + e.message));
    } finally {
      readBtn.disabled = false;
    }
  }
  readBtn.addEventListener('click', read);

  // The points that can be written, with unit, range and kind (GET .../writable).
  async function loadWritable() {
    try {
      const w = await api('GET', '/api/devices/' + enc(id) + '/writable');
      writable = w.points;
      pointSel.replaceChildren(...(writable.length ? writable.map((f) => h('option', { value: f.point }, f.point + (f.unit ? ' (' + f.unit + ')' : '')))
        : [h('option', { value: '' }, 'no point of this device can be written')]));
      writeBtn.disabled = !writable.length;
      if (w.note) writeOut.replaceChildren(banner('info', w.note));
    } catch (e) {
      writeOut.replaceChildren(banner('error', 'Cannot list the points that can be written: ' + e.message));
    }
  }
  writeBtn.addEventListener('click', async () => {
    const f = writable.find((x) => x.point === pointSel.value);
    if (!f) return;
    writeOut.replaceChildren();
    const r = await writeDialog(id, f);
    if (r) writeOut.replaceChildren(r);
  });

  const writeCard = canWrite ? h('div', { class: 'card', id: 'write-card' },
    h('h2', {}, 'Write a point'),
    h('div', { class: 'row' },
      h('div', { class: 'grow' }, h('label', { for: 'write-point' }, 'Point'), pointSel),
      writeBtn),
    writeOut) : null;
  if (canWrite) loadWritable();

  setTimeout(read, 0);
  const edit = session.role === 'admin' ? h('a', { class: 'button', href: '#/device-edit/' + encodeURIComponent(id), role: 'button', id: 'edit-device' }, 'Edit') : null;
  return h('section', { class: 'stack' },
    h('div', { class: 'toolbar' }, h('a', { class: 'button quiet', href: '#/devices', role: 'button' }, '‹ Devices'), h('h1', { class: 'grow' }, id), edit),
    liveCard(id),
    h('div', { class: 'card' }, h('h2', {}, 'Communication test'), h('div', { class: 'toolbar' }, readBtn, status), result),
    commCard(id),
    writeCard,
    session.role === 'admin' ? adminProtocolCard(id) : null);
}

/** Cards for a device's admins that only some protocols have (the OPC UA server certificates),
 *  from the protocol's script, loaded the first time a device of it is opened. */
const adminCards = {};
const adminCardScripts = { opcua: '/opcua.js' };

function adminProtocolCard(id) {
  const box = h('div', {});
  api('GET', '/api/devices').then((devs) => {
    const d = devs.find((x) => x.id === id);
    const src = d && adminCardScripts[d.protocol];
    if (!src) return;
    return loadScript(src).then(() => { if (adminCards[d.protocol]) box.replaceWith(adminCards[d.protocol](id)); });
  }).catch((e) => box.replaceChildren(banner('error', e.message)));
  return box;
}

function readingsTable(rows) {
  return h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Point'), h('th', {}, 'Value'), h('th', {}, 'Quality'))),
    h('tbody', {}, rows.map((p) => h('tr', {},
      h('td', {}, p.point),
      h('td', { class: 'num' }, value(p.value)),
      h('td', { class: 'words' }, pill(p.quality, p.quality === 'good' ? 'ok' : 'bad'), ' ', p.quality === 'good' ? clock(p.ts_ms) : p.text,
        p.flags && p.flags.length ? h('div', { class: 'hint flags' }, 'Quality flags: ' + p.flags.join(', ')) : null)))));
}


// ---- the write dialog ----

function withUnit(v, unit) { return value(v) + (unit && v !== null && v !== undefined ? ' ' + unit : ''); }

/** What a point accepts, in words (`f` as GET /api/devices/{id}/writable answers it). */
function rangeWords(f) {
  const u = f.unit ? ' ' + f.unit : '';
  const has = (x) => x !== null && x !== undefined;
  if (f.kind === 'bool') return 'true or false';
  if (f.kind === 'choice') return f.choices.map((c) => c.label).join(' or ') + ' (' + f.type + ')';
  if (f.kind === 'text') return 'text (' + f.type + ')';
  if (has(f.min) && has(f.max)) return f.min + ' to ' + f.max + u;
  if (has(f.min)) return 'at least ' + f.min + u + ' (above: the data type, ' + f.type + ')';
  if (has(f.max)) return 'at most ' + f.max + u + ' (below: the data type, ' + f.type + ')';
  return 'data type (' + f.type + '), no range configured';
}

/**
 * The value typed for point `f`, or why it is not sent. The gateway checks the same range again
 * (and the data type's); this check only saves a round trip and says it before anything is sent.
 */
function checkWrite(f, raw) {
  if (f.kind === 'bool') return raw === true || raw === false ? { value: raw } : { error: 'Choose true or false.' };
  if (f.kind === 'choice') return raw === null ? { error: 'Choose ' + f.choices.map((c) => c.label).join(' or ') + '.' } : { value: raw };
  if (f.kind === 'text') return { value: raw };
  const t = raw.trim();
  if (!t) return { error: 'Enter a value.' };
  // a touch keyboard may offer the decimal comma
  const n = /^[-+]?\d+,\d+$/.test(t) ? t.replace(',', '.') : t;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(n)) return { error: '"' + t + '" is not a number.' };
  const x = Number(n);
  const u = f.unit ? ' ' + f.unit : '';
  if (f.min !== null && f.min !== undefined && x < f.min) return { error: x + u + ' is below the minimum ' + f.min + u + '.' };
  if (f.max !== null && f.max !== undefined && x > f.max) return { error: x + u + ' is above the maximum ' + f.max + u + '.' };
  return { value: x };
}

/**
 * Writes point `f` of `device`: shows its current value (read now), unit and range, takes the
 * new value, refuses what is out of range before sending, then shows the outcome and who refused
 * (the gateway's checks or the device). Resolves with the last outcome banner, or null.
 */
function writeDialog(device, f) {
  const d = $('#dialog');
  const ok = $('#dialog-ok');
  const cancel = $('#dialog-cancel');
  const current = h('p', { class: 'big', id: 'write-current' }, 'Current value: reading…');
  const when = h('p', { class: 'hint', id: 'write-current-when' }, '');
  const check = h('p', { class: 'error', role: 'alert', id: 'write-check' }, '');
  const outcome = h('div', { id: 'write-outcome', role: 'status' });
  let last = null;
  let chosen = null;     // a bool or choice point's choice
  let input;
  const choosing = f.kind === 'bool' || f.kind === 'choice';
  // what is sent and its word: a command's states (off/on), else true/false
  const choices = f.kind === 'choice' ? f.choices : [true, false].map((v) => ({ value: v, label: String(v) }));
  // the word of a value sent or read (a command's states; a double point reads 1 off, 2 on)
  const word = (v) => { const st = (f.states || []).find((x) => x[0] === v); return st ? st[1] : withUnit(v, f.unit); };
  if (choosing) {
    const pick = (c) => {
      chosen = c.value;
      check.textContent = '';
      input.querySelectorAll('button').forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.label === c.label)));
    };
    input = h('div', { class: 'choice', id: 'write-value', role: 'group', 'aria-label': 'New value' },
      choices.map((c) => h('button', { type: 'button', 'data-label': c.label, 'aria-pressed': 'false', id: 'write-' + c.label, onclick: () => pick(c) }, c.label)));
  } else {
    input = h('input', { id: 'write-value', class: 'big-input', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false',
      inputmode: f.kind === 'number' ? 'decimal' : 'text', enterkeyhint: 'send',
      placeholder: f.kind === 'number' ? rangeWords(f) : '' });
    input.addEventListener('input', () => { check.textContent = ''; });
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); ok.click(); } });
  }
  $('#dialog-title').textContent = 'Write ' + device + ' · ' + f.point;
  $('#dialog-body').replaceChildren(current, when,
    h('p', { id: 'write-range' }, h('strong', {}, 'Range: '), rangeWords(f)),
    h('label', { for: choosing ? null : 'write-value' }, 'New value' + (f.unit && !choosing ? ' (' + f.unit + ')' : '')), input,
    check, outcome);
  ok.textContent = 'Write';
  ok.className = 'danger';
  ok.hidden = false;
  ok.disabled = false;
  cancel.textContent = 'Cancel';
  d.hidden = false;
  (choosing ? cancel : input).focus();

  api('POST', '/api/devices/' + enc(device) + '/read', { points: [f.point] }).then((r) => {
    const p = r.readings[0];
    if (p.quality === 'good') {
      current.textContent = 'Current value: ' + word(p.value);
      when.textContent = 'read from the device at ' + clock(p.ts_ms);
    } else {
      current.textContent = 'Current value: unknown';
      when.textContent = sentence(p.text) + '.';
    }
  }).catch((e) => { current.textContent = 'Current value: unknown'; when.textContent = 'The read failed: ' + e.message; });

  return new Promise((resolve) => {
    const close = () => { d.hidden = true; ok.onclick = null; cancel.onclick = null; ok.hidden = false; cancel.textContent = 'Cancel'; resolve(last); };
    cancel.onclick = close;
    ok.onclick = async () => {
      const c = checkWrite(f, choosing ? chosen : input.value);
      if (c.error) { check.textContent = 'Not sent: ' + c.error; return; }
      check.textContent = '';
      ok.disabled = true;
      const said = f.kind === 'choice' ? choices.find((x) => x.value === c.value).label : withUnit(c.value, f.unit);
      outcome.replaceChildren(banner('info', 'Writing ' + said + '…'));
      try {
        const r = await api('POST', '/api/devices/' + enc(device) + '/points/' + enc(f.point) + '/write', { value: c.value });
        last = r.ok
          ? banner('info', 'The device accepted ' + f.point + ' = ' + said + ' (' + r.took_ms + ' ms).')
          : banner('error', sentence(r.text) + ' (code ' + r.code + ').');
        if (r.ok) { ok.hidden = true; cancel.textContent = 'Close'; cancel.focus(); }
      } catch (e) {
        last = banner('error', 'The write failed: ' + e.message);
      }
      outcome.replaceChildren(last.cloneNode(true));
      ok.disabled = false;
    };
  });
}

// ---- device configuration (admin) ----

const enc = encodeURIComponent;

function problemList(errors) {
  return h('ul', { class: 'problems', id: 'edit-problems' }, (errors || []).map((e) => h('li', {},
    e.text ? e.text : ((e.device ? 'device ' + e.device + ', ' : '') + (e.point ? 'point ' + e.point + ', ' : '') + (e.field || e.key) + ': ' + e.reason))));
}

function groupsText(groups) { return (groups || []).map((g) => g.name + '=' + g.interval_ms).join(', '); }
function parseGroups(text) {
  const out = [];
  for (const part of text.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^([^=\s]+)\s*=\s*(\d+)$/.exec(part);
    if (!m) throw new Error('Poll groups: "' + part + '" is not name=milliseconds');
    out.push({ name: m[1], interval_ms: Number(m[2]) });
  }
  return out;
}

// Sub-fields of the nested settings kinds (their keys are the file's).
const NESTED = {
  serial: [['port', 'Port', 'text', '/dev/ttyS1'], ['baud', 'Baud rate', 'integer', '9600'], ['parity', 'Parity', 'choice', 'none', ['none', 'even', 'odd']],
    ['data_bits', 'Data bits', 'integer', '8'], ['stop_bits', 'Stop bits', 'integer', '1']],
  tls: [['ca', 'CA certificate (file)', 'text', ''], ['cert', 'Certificate (file)', 'text', ''], ['key', 'Key (file)', 'text', ''], ['server_name', 'Server name', 'text', '']],
};

/**
 * The settings of one protocol as a form built from its fields (GET /api/protocols). Returns
 * { el, value() -> the settings' keys, set(device), mark(findings) -> findings left over }.
 */
function settingsForm(fields) {
  const inputs = new Map();   // key -> { get, set, el, msg }
  const parts = [];
  for (const f of fields) {
    const msg = h('div', { class: 'cell-error', role: 'alert' });
    let entry;
    if (f.kind === 'serial' || f.kind === 'tls') {
      const subs = NESTED[f.kind].map(([k, label, kind, def, choices]) => ({ k, el: cellInput({ key: k, label, kind, default: def, choices, required: kind === 'choice' }, undefined, 'dev-' + f.key + '-' + k), label, kind }));
      entry = {
        // absent unless its first part (the port, the CA) is given: the rest have defaults
        get: () => {
          if (!subs[0].el.value.trim()) return undefined;
          const o = {};
          for (const s of subs) { const v = cellValue({ kind: s.kind }, s.el); if (v !== undefined) o[s.k] = v; }
          return o;
        },
        set: (v) => { for (const s of subs) { const x = v && v[s.k]; s.el.value = x === undefined || x === null ? (s.kind === 'choice' ? s.el.value : '') : String(x); } },
        el: subs[0].el,
      };
      parts.push(h('fieldset', { class: 'nested' }, h('legend', {}, f.label), h('p', { class: 'hint' }, f.help),
        h('div', { class: 'row' }, subs.map((s) => h('div', { class: 'grow' }, h('label', { for: s.el.id }, s.label), s.el))), msg));
    } else if (f.kind === 'endpoints') {
      entry = endpointRows(f, msg);
      parts.push(entry.part);
    } else if (f.kind === 'plugin-settings') {
      entry = pluginSettings(f, msg);
      parts.push(entry.part);
    } else if (f.kind === 'poll-groups') {
      const el = h('input', { id: 'dev-groups', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', placeholder: 'default=1000' });
      entry = { get: () => { const g = parseGroups(el.value); return g.length ? g : undefined; }, set: (v) => { el.value = groupsText(v); }, el };
      parts.push(h('div', {}, h('label', { for: el.id }, f.label + ' (name=ms, …)'), el, h('p', { class: 'hint' }, f.help), msg));
    } else {
      const el = cellInput(f, undefined, 'dev-' + f.key);
      entry = { get: () => cellValue(f, el), set: (v) => { const n = cellInput(f, v, el.id); if (f.kind === 'bool') el.checked = n.checked; else el.value = n.value; }, el };
      parts.push(h('div', { class: 'field ' + f.kind }, h('label', { for: el.id }, f.label + (f.required ? ' *' : '')), el, h('p', { class: 'hint' }, f.help), msg));
    }
    entry.msg = msg;
    entry.el.addEventListener('input', () => { msg.textContent = ''; entry.el.removeAttribute('aria-invalid'); });
    inputs.set(f.key, entry);
  }
  // a plugin device: its settings' fields follow the plugin named
  const plugin = inputs.get('plugin');
  const ps = [...inputs.values()].find((e) => e.forPlugin);
  if (plugin && ps) {
    offerInstalledPlugins(plugin.el);
    plugin.el.addEventListener('change', () => ps.forPlugin(plugin.el.value.trim()));
    ps.forPlugin('');
  }
  return {
    el: h('div', { class: 'settings' }, parts),
    value() {
      const o = {};
      for (const [k, e] of inputs) { const v = e.get(); if (v !== undefined) o[k] = v; }
      return o;
    },
    set(d) {
      for (const [k, e] of inputs) e.set(d[k]);
      if (plugin && ps) ps.forPlugin(String(d.plugin || ''));
    },
    mark(errors) {
      for (const e of inputs.values()) { e.msg.textContent = ''; e.el.removeAttribute('aria-invalid'); if (e.clear) e.clear(); }
      const rest = [];
      for (const x of errors) {
        const e = !x.point && inputs.get(String(x.field || '').split('.')[0]);
        if (!e) { rest.push(x); continue; }
        if (e.markSub && e.markSub(x)) continue;
        e.msg.textContent = x.reason;
        e.el.setAttribute('aria-invalid', 'true');
      }
      return rest;
    },
  };
}

// ---- the point grid (device editor) ----

/** The value an input holds for field `f`; undefined: nothing entered (the key is left out). */
function cellValue(f, el) {
  if (f.kind === 'bool') return el.checked;
  const t = el.value.trim();
  if (t === '') return undefined;
  if (f.kind === 'integer' || f.kind === 'number') return el.validity.badInput ? t : Number(t);
  return t;
}

/** An input fitting field `f` (`kind` choice, bool, integer, number or text) holding `v`. */
function cellInput(f, v, id) {
  const attrs = { id, 'aria-label': f.label, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' };
  if (f.kind === 'choice') {
    const el = h('select', attrs, f.required ? null : h('option', { value: '' }, f.default ? '– (' + f.default + ')' : '–'),
      (f.choices || []).map((c) => h('option', { value: c }, c)));
    el.value = v === undefined || v === null ? (f.required && f.default !== undefined && f.default !== null ? String(f.default) : '') : String(v);
    return el;
  }
  if (f.kind === 'bool') {
    const el = h('input', Object.assign(attrs, { type: 'checkbox' }));
    el.checked = v === undefined || v === null ? f.default === 'true' : !!v;
    return el;
  }
  if (f.kind === 'integer' || f.kind === 'number') {
    const el = h('input', Object.assign(attrs, { type: 'number', inputmode: f.kind === 'integer' ? 'numeric' : 'decimal',
      step: f.kind === 'integer' ? 1 : 'any', min: f.min, max: f.max, placeholder: f.default }));
    el.value = v === undefined || v === null ? '' : String(v);
    return el;
  }
  const el = h('input', Object.assign(attrs, { placeholder: f.default }));
  el.value = v === undefined || v === null ? '' : String(v);
  return el;
}

/**
 * The point table as a grid: one row per point, one column per field of the device's protocol.
 * `fields` come from GET /api/protocols; keys the grid does not show are kept as they were.
 */
function pointGrid(fields) {
  let rows = [];       // { orig, tr, cells: Map(key -> { el, msg }) }
  let serial = 0;
  const tbody = h('tbody', {});
  const none = h('p', { class: 'hint', id: 'grid-empty' }, 'No point yet: add one, or import a CSV file.');
  const table = h('table', { class: 'point-grid', id: 'point-grid' },
    h('thead', {}, h('tr', {}, fields.map((f) => h('th', { scope: 'col', 'data-key': f.key }, f.label + (f.required ? ' *' : ''))), h('th', {}, ''))),
    tbody);
  const wrap = h('div', { class: 'scroll grid-wrap' }, table);

  function addRow(p, focus) {
    const n = serial++;
    const cells = new Map();
    const tr = h('tr', {});
    for (const f of fields) {
      const el = cellInput(f, p[f.key], 'pt-' + n + '-' + f.key);
      const msg = h('div', { class: 'cell-error', role: 'alert' });
      el.addEventListener('input', () => { msg.textContent = ''; el.removeAttribute('aria-invalid'); });
      cells.set(f.key, { el, msg });
      tr.append(h('td', { 'data-key': f.key }, el, msg));
    }
    const row = { orig: p, tr, cells };
    const del = h('button', { type: 'button', class: 'quiet remove-row', 'aria-label': 'Remove this point', title: 'Remove' }, '✕');
    del.addEventListener('click', () => { rows = rows.filter((r) => r !== row); tr.remove(); none.hidden = rows.length > 0; });
    tr.append(h('td', {}, del));
    rows.push(row);
    tbody.append(tr);
    none.hidden = true;
    if (focus) { const first = cells.get(fields[0].key).el; first.focus(); first.scrollIntoView({ block: 'nearest', inline: 'start' }); }
  }

  return {
    el: h('div', {}, wrap, none),
    /** Replaces every row. */
    set(points) {
      rows = [];
      tbody.replaceChildren();
      for (const p of points) addRow(p, false);
      none.hidden = rows.length > 0;
    },
    /** A new row: empty cells show the defaults the collector applies. */
    add() { addRow({}, true); },
    /** The points as the configuration takes them. */
    points() {
      return rows.map((r) => {
        const p = Object.assign({}, r.orig);
        for (const f of fields) {
          const v = cellValue(f, r.cells.get(f.key).el);
          if (v === undefined) delete p[f.key]; else p[f.key] = v;
        }
        return p;
      });
    },
    /**
     * Marks the server's findings at their cells (`device[i].point[j].field`, else the point by
     * name); answers the ones that belong to no cell.
     */
    mark(errors) {
      for (const r of rows) for (const c of r.cells.values()) { c.msg.textContent = ''; c.el.removeAttribute('aria-invalid'); }
      const rest = [];
      let first = null;
      for (const e of errors || []) {
        const m = /point\[(\d+)\]\.([A-Za-z0-9_]+)/.exec(e.key || '');
        let row = m ? rows[Number(m[1])] : null;
        if (!row && e.point) row = rows.find((r) => r.cells.has('name') && r.cells.get('name').el.value.trim() === e.point);
        const cell = row && row.cells.get(m ? m[2] : e.field);
        if (!cell) { rest.push(e); continue; }
        cell.msg.textContent = e.reason;
        cell.el.setAttribute('aria-invalid', 'true');
        first = first || cell.el;
      }
      if (first) first.scrollIntoView({ block: 'nearest', inline: 'nearest' });
      return rest;
    },
    count() { return rows.length; },
  };
}

function deviceEditView(id) {
  const isNew = !id;
  const out = h('div', { id: 'edit-result', role: 'status' });
  const [lId, idIn] = field('dev-id', 'Device id (A-Z a-z 0-9 - _ .)', { autocapitalize: 'none', spellcheck: 'false', readonly: !isNew });
  const proto = h('select', { id: 'dev-protocol' });
  const enabled = h('select', { id: 'dev-enabled' }, h('option', { value: 'yes' }, 'yes'), h('option', { value: 'no' }, 'no (kept, not polled)'));
  // the EnOS product the gateway registers the device under (its keys come from the cloud)
  const [lPk, pkIn] = field('dev-product-key', 'Cloud product key (empty: not uploaded)', { autocapitalize: 'none', spellcheck: 'false' });
  const settingsBox = h('div', {});
  const gridBox = h('div', {});
  const file = h('input', { id: 'csv-file', type: 'file', accept: '.csv,text/csv', class: 'file' });
  const importBtn = h('button', { type: 'button', id: 'csv-import' }, 'Import CSV…');
  const exportLink = isNew ? null : h('a', { class: 'button', id: 'csv-export', href: '/api/devices/' + enc(id) + '/points.csv', download: id + '-points.csv', role: 'button' }, 'Export CSV');
  const addBtn = h('button', { type: 'button', id: 'add-point' }, '+ Add point');
  const saveBtn = h('button', { type: 'button', class: 'primary', id: 'save-device' }, isNew ? 'Add device' : 'Save');
  const delBtn = isNew ? null : h('button', { type: 'button', class: 'danger', id: 'delete-device' }, 'Remove…');
  const tmpl = h('select', { id: 'dev-template' }, h('option', { value: '' }, '— none —'));
  let protocols = [];
  let models = [];
  let form = null;
  let grid = null;
  let loaded = null;      // the device as loaded (keys the form does not show are kept)

  // The form and the grid of the chosen protocol; `d` fills them.
  // `points`: those to keep when the protocol changes.
  function build(d, points) {
    const p = protocols.find((x) => x.name === proto.value);
    if (!p) return;
    // a plugin device's settings form and endpoint rows are in plugins.js, loaded when first needed
    if (p.device_fields.some((f) => f.kind === 'plugin-settings' || f.kind === 'endpoints') && typeof pluginSettings === 'undefined') {
      loadScript('/plugins.js').then(() => build(d, points), (e) => out.replaceChildren(banner('error', e.message)));
      return;
    }
    form = settingsForm(p.device_fields);
    grid = pointGrid(p.point_fields);
    settingsBox.replaceChildren(form.el);
    gridBox.replaceChildren(grid.el);
    if (d) { form.set(d); grid.set(d.point || []); } else if (points) grid.set(points);
  }
  function fill(d, keepId) {
    loaded = d;
    if (!keepId) idIn.value = d.id || '';
    proto.value = d.protocol || proto.value;
    enabled.value = d.enabled === false ? 'no' : 'yes';
    pkIn.value = d.product_key || '';
    build(d);
  }
  proto.addEventListener('change', () => {
    // the points keep what both protocols share (name, unit, scale, ...); the settings start empty
    build(null, grid ? grid.points() : []);
  });
  addBtn.addEventListener('click', () => grid && grid.add());
  tmpl.addEventListener('change', () => {
    const m = models.find((x) => x.id === tmpl.value);
    if (m) { fill(m.device, true); out.replaceChildren(banner('info', 'Filled in from "' + m.name + '": set the id and the address.')); }
  });
  importBtn.addEventListener('click', () => file.click());
  file.addEventListener('change', async () => {
    const f = file.files[0];
    if (!f) return;
    file.value = '';
    if (f.size > 2 * 1024 * 1024) { out.replaceChildren(banner('error', 'That file is larger than 2 MiB.')); return; }
    try {
      const r = await api('POST', '/api/points-csv', { csv: await f.text(), protocol: proto.value });
      grid.set(r.points);
      out.replaceChildren(banner('info', 'Imported ' + r.points.length + ' points from ' + f.name + ': check them, then save.'));
    } catch (e) {
      out.replaceChildren(banner('error', 'Not imported: ' + e.message), problemList(e.errors));
    }
  });

  saveBtn.addEventListener('click', async () => {
    out.replaceChildren();
    const devId = idIn.value.trim();
    if (!devId) { out.replaceChildren(banner('error', 'Give the device an id.')); return; }
    let settings;
    try { settings = form.value(); } catch (e) { out.replaceChildren(banner('error', e.message)); return; }
    const same = loaded && loaded.protocol === proto.value;
    const d = Object.assign({}, same ? loaded : {}, settings, { id: devId, protocol: proto.value, enabled: enabled.value === 'yes', points_csv: null, product_key: pkIn.value.trim() || null, point: grid.points() });
    // keys the form shows but left empty go back to their defaults
    if (same) for (const f of protocols.find((x) => x.name === proto.value).device_fields) if (!(f.key in settings)) delete d[f.key];
    saveBtn.disabled = true;
    try {
      const r = await api('PUT', '/api/devices/' + enc(devId) + '/config', d);
      grid.mark([]);
      form.mark([]);
      const a = r.applied;
      const what = [['started', a.started], ['restarted', a.restarted], ['left running', a.unchanged]].filter(([, l]) => l && l.length).map(([k, l]) => k + ': ' + l.join(', ')).join('; ');
      out.replaceChildren(banner('info', (r.created ? 'Added ' : 'Saved ') + devId + '. ' + what + (a.note ? ' (' + a.note + ')' : '')),
        h('a', { class: 'button', href: '#/device/' + enc(devId), role: 'button', id: 'go-test' }, 'Test ' + devId + ' ›'));
      if (isNew) { idIn.readOnly = true; }
      loaded = d;
    } catch (e) {
      // each finding of this device at its cell or setting; the others (other devices') listed
      const errs = e.errors || [];
      const rest = form.mark(grid.mark(errs.filter((x) => x.device === devId))).concat(errs.filter((x) => x.device !== devId));
      out.replaceChildren(...[banner('error', e.message), rest.length ? problemList(rest) : null].filter((x) => x));
    } finally {
      saveBtn.disabled = false;
      out.scrollIntoView({ block: 'nearest' });
    }
  });

  if (delBtn) delBtn.addEventListener('click', async () => {
    if (!await confirmDialog('Remove the device?', [h('p', {}, 'Its polling stops now; data already collected stays in the cache.'), h('p', { class: 'big' }, id)], 'Remove', 'danger')) return;
    try {
      await api('DELETE', '/api/devices/' + enc(id) + '/config');
      location.hash = '#/devices';
    } catch (e) {
      out.replaceChildren(banner('error', e.message));
    }
  });

  const token = pageToken;
  (async () => {
    try {
      protocols = await api('GET', '/api/protocols');
      proto.replaceChildren(...protocols.map((p) => h('option', { value: p.name }, p.label)));
      if (isNew) {
        build({ point: [] });
        const lib = await api('GET', '/api/device-models');
        models = lib.models || [];
        tmpl.append(...models.map((m) => h('option', { value: m.id }, m.name)));
      } else {
        const d = await api('GET', '/api/devices/' + enc(id) + '/config');
        if (token === pageToken) fill(d, false);
      }
    } catch (e) {
      out.replaceChildren(banner('error', e.message));
    }
  })();

  return h('section', { class: 'stack' },
    h('div', { class: 'toolbar' }, h('a', { class: 'button quiet', href: '#/devices', role: 'button' }, '‹ Devices'),
      h('h1', { class: 'grow' }, isNew ? 'Add a device' : 'Edit ' + id), delBtn),
    h('div', { class: 'card' },
      isNew ? h('div', {}, h('label', { for: 'dev-template' }, 'Start from a device model'), tmpl) : null,
      h('div', { class: 'row' }, h('div', { class: 'grow' }, lId, idIn), h('div', { class: 'grow' }, h('label', { for: 'dev-protocol' }, 'Protocol'), proto),
        h('div', { class: 'grow' }, h('label', { for: 'dev-enabled' }, 'Enabled'), enabled)),
      h('div', { class: 'row' }, h('div', { class: 'grow' }, lPk, pkIn)),
      settingsBox),
    h('div', { class: 'card' },
      h('h2', {}, 'Points'),
      h('p', { class: 'hint' }, 'One row per point; * marks a required field; an empty cell takes the default shown in it.'),
      gridBox, file,
      h('div', { class: 'toolbar' }, addBtn, h('span', { class: 'grow' }), importBtn, exportLink)),
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), saveBtn),
    out);
}

// ---- live values and raw registers (device page) ----

function sparkline(hist, now) {
  const NS = 'http://www.w3.org/2000/svg';
  const W = 140, H = 40;
  const first = hist.find(([, v]) => v !== null);
  // the last 5 minutes, or what there is of them (at least 30 s)
  const SPAN = Math.min(300000, Math.max(30000, first ? now - first[0] : 0));
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('width', W);
  svg.setAttribute('height', H);
  svg.setAttribute('class', 'spark');
  const pts = hist.filter(([t, v]) => v !== null && t >= now - SPAN);
  if (pts.length < 2) return svg;
  let lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[1]));
  if (hi === lo) { hi += 1; lo -= 1; }
  const xy = pts.map(([t, v]) => ((W * (t - (now - SPAN)) / SPAN).toFixed(1) + ',' + (H - 3 - (H - 6) * (v - lo) / (hi - lo)).toFixed(1)));
  const line = document.createElementNS(NS, 'polyline');
  line.setAttribute('points', xy.join(' '));
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', '#2b5689');
  line.setAttribute('stroke-width', '2');
  svg.append(line);
  return svg;
}

function liveCard(id) {
  const body = h('div', { id: 'live' }, h('p', { class: 'hint' }, 'Waiting for the next poll…'));
  const when = h('span', { class: 'updated', id: 'live-updated' }, '');
  const hist = new Map();
  let since = 0;
  let ticks = 0;
  let sent = new Map();      // point -> what the cloud last acknowledged
  let sentNote = '';
  every(1000, async () => {
    if (ticks++ % 3 === 0) {
      try {
        const ls = await api('GET', '/api/devices/' + enc(id) + '/last-sent');
        sent = new Map(ls.points.map((p) => [p.point, p]));
        sentNote = ls.routed ? '' : ls.note;
      } catch (e) { sentNote = 'cloud side: ' + e.message; }
    }
    const r = await api('GET', '/api/devices/' + enc(id) + '/live?since_ms=' + since);
    for (const p of r.points) {
      const arr = (hist.get(p.point) || []).concat(p.history).filter(([t]) => t >= r.time_ms - 300000);
      hist.set(p.point, arr);
      for (const [t] of p.history) since = Math.max(since, t);
    }
    if (!r.points.length) return;
    body.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Point'), h('th', {}, 'Value'), h('th', {}, 'Quality, time'), h('th', {}, 'Last 5 min'))),
      h('tbody', {}, r.points.map((p) => h('tr', {},
        h('td', {}, p.point),
        h('td', {}, h('div', { class: 'num live-value' }, value(p.value)),
          h('div', { class: 'hint sent' }, sent.has(p.point) ? 'cloud got ' + value(sent.get(p.point).value) + ', ' + ago(sent.get(p.point).acked_ms) : 'cloud: –')),
        h('td', { class: 'words' }, pill(p.quality, p.quality === 'good' ? 'ok' : 'bad'), ' ', clock(p.ts_ms)),
        h('td', {}, sparkline(hist.get(p.point) || [], r.time_ms)))))));
    if (sentNote) body.append(h('p', { class: 'hint' }, sentNote));
    when.textContent = 'updated ' + clock(r.time_ms);
  });
  return h('div', { class: 'card' }, h('div', { class: 'toolbar' }, h('h2', { class: 'grow' }, 'Live values'), when), body);
}

// ---- the live page: every device's values, searchable ----

/** Rows whose device, point or unit hold every word of the search (any case, any order). */
function liveMatches(row, words) {
  const hay = (row.device + ' ' + row.point + ' ' + (row.unit || '')).toLowerCase();
  return words.every((w) => hay.includes(w));
}

// The Live page's filter, kept while the page is left for a device and back.
const liveFilter = { text: '', doubtful: false };

function liveView() {
  // type=search with input events: filters as each letter arrives, from a touch keyboard too
  const search = h('input', { id: 'live-search', type: 'search', value: liveFilter.text, inputmode: 'search', enterkeyhint: 'search', autocomplete: 'off',
    autocapitalize: 'none', autocorrect: 'off', spellcheck: 'false', placeholder: 'Search device, point or unit', 'aria-label': 'Search device, point or unit' });
  const clear = h('button', { type: 'button', class: 'quiet', id: 'live-clear', 'aria-label': 'Clear the search' }, '✕');
  const doubtful = h('button', { type: 'button', id: 'live-doubtful', 'aria-pressed': 'false' }, 'Only doubtful values');
  const summary = h('p', { class: 'hint', id: 'live-summary', role: 'status' }, '');
  const problems = h('div', { id: 'live-errors' });
  const body = h('div', { id: 'live-all', class: 'scroll' }, h('p', { class: 'loading' }, 'Loading…'));
  const updated = h('span', { class: 'updated', id: 'live-all-updated' }, '');
  let last = null;
  let onlyDoubtful = liveFilter.doubtful;
  doubtful.setAttribute('aria-pressed', String(onlyDoubtful));

  let drawn = [];       // [{ r, tr }] of the last answer: typing only hides and shows rows
  let table = null;
  const none = h('p', { class: 'hint', id: 'live-none', hidden: true }, '');

  // The rows of a new answer, then the filter over them.
  function draw() {
    if (!last.points.length) {
      drawn = [];
      body.replaceChildren(h('p', { class: 'hint' }, 'Waiting for the first values: the collector keeps them once this page asks, from the next poll on.'));
      show();
      return;
    }
    drawn = last.points.map((r) => ({ r, tr: h('tr', { class: r.doubtful ? 'doubtful' : null },
      h('td', {}, r.device), h('td', {}, r.point),
      h('td', { class: 'num live-value' }, withUnit(r.value, r.unit)),
      h('td', { class: 'words' },
        pill(r.quality || 'no value', r.doubtful ? 'bad' : 'ok'), r.ts_ms ? ' ' + clock(r.ts_ms) : null,
        r.why ? h('div', { class: 'why' }, sentence(r.why)) : null,
        r.device_error ? h('div', { class: 'hint' }, 'Last error of ' + r.device + ': ' + r.device_error) : null,
        r.flags ? h('div', { class: 'hint flags' }, 'Quality flags: ' + r.flags.join(', ')) : null)) }));
    table = h('table', { id: 'live-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Device'), h('th', {}, 'Point'), h('th', {}, 'Value'), h('th', {}, 'Quality, time'))),
      h('tbody', {}, drawn.map((d) => d.tr)));
    body.replaceChildren(table, none);
    show();
  }

  // The filter: rows hidden or shown, the count, and a word when nothing matches.
  function show() {
    liveFilter.text = search.value;
    liveFilter.doubtful = onlyDoubtful;
    if (!last || !drawn.length) { summary.textContent = ''; return; }
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const { r, tr } of drawn) {
      tr.hidden = !((!onlyDoubtful || r.doubtful) && liveMatches(r, words));
      if (!tr.hidden) shown++;
    }
    const bad = drawn.filter((d) => d.r.doubtful).length;
    summary.textContent = shown + ' of ' + drawn.length + ' values' + (bad ? ' · ' + bad + ' doubtful' : ' · all good');
    table.hidden = !shown;
    none.hidden = shown > 0;
    none.textContent = onlyDoubtful && !words.length ? 'No doubtful value: every value is good.'
      : 'No value matches' + (words.length ? ' "' + search.value.trim() + '"' : '') + (onlyDoubtful ? ' among the doubtful ones' : '') + '.';
  }
  search.addEventListener('input', show);
  // Enter closes a touch keyboard; the filter is already applied
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); search.blur(); } });
  clear.addEventListener('click', () => { search.value = ''; show(); search.focus(); });
  doubtful.addEventListener('click', () => {
    onlyDoubtful = !onlyDoubtful;
    doubtful.setAttribute('aria-pressed', String(onlyDoubtful));
    show();
  });
  every(2000, async () => {
    try {
      last = await api('GET', '/api/live');
      problems.replaceChildren(...Object.entries(last.errors || {}).map(([dev, msg]) => banner('error', dev + ': ' + msg)));
      updated.textContent = 'updated ' + clock(last.time_ms);
      draw();
    } catch (e) {
      updated.textContent = '';
      body.replaceChildren(banner('error', 'Cannot get the live values: ' + e.message));
      throw e;
    }
  });
  return h('section', { class: 'stack' },
    h('div', { class: 'toolbar' }, h('h1', { class: 'grow' }, 'Live values'), updated),
    h('div', { class: 'toolbar' }, h('div', { class: 'search grow' }, search, clear), doubtful),
    summary, problems, body);
}

// ---- the communication test of a device: its protocol's kind (GET /api/protocols, comm_test) ----

/**
 * The card of the device's communication test. Which test a protocol has comes from the registry
 * (`comm_test.kind`), so no protocol is named here; a kind this page does not know is said so.
 */
function commCard(id) {
  const card = h('div', { class: 'card', id: 'comm-card' }, h('h2', {}, 'Communication test'), h('p', { class: 'hint' }, 'Loading…'));
  Promise.all([api('GET', '/api/devices'), api('GET', '/api/protocols')]).then(([devs, protos]) => {
    const d = devs.find((x) => x.id === id);
    const p = d && protos.find((x) => x.name === d.protocol);
    const t = p && p.comm_test;
    return (t && !commTests[t.kind] && commTestScripts[t.kind] ? loadScript(commTestScripts[t.kind]) : Promise.resolve()).then(() => [d, p, t]);
  }).then(([d, p, t]) => {
    const build = t && commTests[t.kind];
    card.replaceWith(build ? build(id, t) : h('div', { class: 'card', id: 'comm-card' }, h('h2', {}, 'Communication test'),
      banner('info', d ? 'Devices of this protocol (' + (p ? p.label : d.protocol) + ') have no communication test yet.' : 'No device ' + id + '.')));
  }).catch((e) => card.replaceChildren(h('h2', {}, 'Communication test'), banner('error', e.message)));
  return card;
}

/** Runs test `req` on device `id` into `res`, with `btn` disabled meanwhile; `show` renders an answer that worked. */
async function runCommTest(id, req, btn, res, show) {
  btn.disabled = true;
  res.replaceChildren(banner('info', 'Asking the device…'));
  try {
    const r = await api('POST', '/api/devices/' + enc(id) + '/raw-read', req);
    res.replaceChildren(...show(r));
  } catch (e) {
    res.replaceChildren(banner('error', e.message));
  } finally {
    btn.disabled = false;
  }
}

function failureBanner(r) {
  const what = { timeout: 'Timeout: ', exception: 'Exception: ', offline: 'Offline: ', refused: 'Refused: ' }[r.failure] || 'Failed: ';
  return banner('error', what + r.message);
}

const commTests = {
  'modbus-registers': rawCard,
  'iec104-interrogation': interrogationCard,
  'dlt645-identifiers': identifiersCard,
  'dnp3-poll': dnp3PollCard,
};

/** Tests whose card is in a script of its own, loaded when a device's page first needs it. */
const commTestScripts = {
  'opcua-browse': '/opcua.js',
  'plugin-read': '/plugins.js',
};

/** DNP3: an integrity or event poll of the outstation now; every object with its flags, and the IIN, in words. */
function dnp3PollCard(id, t) {
  const which = h('select', { id: 'dnp3-poll-kind' },
    h('option', { value: 'integrity' }, 'Integrity poll (classes 1, 2, 3 and 0)'), h('option', { value: 'events' }, 'Event poll (classes 1, 2 and 3)'));
  const btn = h('button', { type: 'button', class: 'primary', id: 'dnp3-poll-run' }, 'Poll');
  const res = h('div', { id: 'dnp3-poll-result', role: 'status' });
  btn.addEventListener('click', () => {
    runCommTest(id, { kind: t.kind, poll: which.value }, btn, res, (r) => {
      if (!r.ok) return [failureBanner(r), r.iin.length ? h('p', { class: 'hint' }, 'IIN: ' + r.iin.join(', ')) : null].filter((x) => x);
      const time = (o) => o.time_ms === null || o.time_ms === undefined ? '–' : new Date(o.time_ms).toLocaleString();
      return [h('p', { class: 'hint' }, sentence(r.message) + ', ' + r.took_ms + ' ms'),
        h('p', { class: 'hint', id: 'dnp3-iin' }, 'IIN: ' + (r.iin.length ? r.iin.join(', ') : 'none')),
        h('table', { id: 'dnp3-poll-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Type'), h('th', {}, 'Index'), h('th', {}, 'Value'), h('th', {}, 'Flags'), h('th', {}, 'Time'))),
          h('tbody', {}, r.objects.map((o) => h('tr', {},
            h('td', { class: 'words' }, o.type + (o.event ? ' event' : ''), h('div', { class: 'hint' }, o.type_words)),
            h('td', {}, String(o.index), o.point ? h('div', { class: 'hint' }, o.point) : null),
            h('td', { class: 'num' }, String(o.value)),
            h('td', { class: 'words' }, o.flags.length ? o.flags.join(', ') : 'online'),
            h('td', {}, time(o))))))];
    });
  });
  return h('div', { class: 'card', id: 'comm-card' }, h('h2', {}, t.label),
    h('p', { class: 'hint' }, 'Asks the outstation now, beside its scheduled polls; what it sends also goes on to the cloud.'),
    h('label', { for: 'dnp3-poll-kind' }, 'Poll'), which,
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), btn), res);
}

/** IEC 104: a general interrogation now, optionally of one range of addresses. */
function interrogationCard(id, t) {
  const [lC, ca] = field('gi-ca', 'Common address (empty: the device\'s)', { inputmode: 'numeric' });
  const [lF, from] = field('gi-from', 'From IOA (empty: all)', { inputmode: 'numeric' });
  const [lT, to] = field('gi-to', 'To IOA', { inputmode: 'numeric' });
  const btn = h('button', { type: 'button', class: 'primary', id: 'gi-run' }, 'Interrogate');
  const res = h('div', { id: 'gi-result', role: 'status' });
  btn.addEventListener('click', () => {
    const req = { kind: t.kind };
    for (const [k, el] of [['ca', ca], ['ioa_from', from], ['ioa_to', to]]) {
      const v = el.value.trim();
      if (v === '') continue;
      if (!/^\d+$/.test(v)) { res.replaceChildren(banner('error', 'Common address and IOAs are whole numbers.')); return; }
      req[k] = Number(v);
    }
    runCommTest(id, req, btn, res, (r) => {
      if (!r.ok) return [failureBanner(r)];
      const time = (o) => o.time_ms === null || o.time_ms === undefined ? '–' : new Date(o.time_ms).toLocaleString() + (o.time_invalid ? ' (invalid)' : '');
      return [h('p', { class: 'hint' }, sentence(r.message) + ', ' + r.took_ms + ' ms'),
        h('table', { id: 'gi-table' },
          h('thead', {}, h('tr', {}, h('th', {}, 'IOA'), h('th', {}, 'Type'), h('th', {}, 'Value'), h('th', {}, 'Quality'), h('th', {}, 'Time tag'))),
          h('tbody', {}, r.objects.map((o) => h('tr', {},
            h('td', {}, String(o.ioa), o.point ? h('div', { class: 'hint' }, o.point) : null),
            h('td', { class: 'words' }, o.type, h('div', { class: 'hint' }, o.type_words)),
            h('td', { class: 'num' }, o.text),
            h('td', { class: 'words' }, o.flags.length ? o.flags.join(', ') : 'good'),
            h('td', {}, time(o))))))];
    });
  });
  return h('div', { class: 'card', id: 'comm-card' }, h('h2', {}, t.label),
    h('p', { class: 'hint' }, 'A general interrogation: the station sends every object it has now.'),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lC, ca), h('div', { class: 'grow' }, lF, from), h('div', { class: 'grow' }, lT, to)),
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), btn), res);
}

/** DL/T 645: chosen data identifiers (the standard's table, or typed), frames in hex, values with units. */
function identifiersCard(id, t) {
  const pick = h('select', { id: 'di-pick' }, (t.identifiers || []).map((k) => h('option', { value: k.di }, k.di + ' ' + k.name + (k.unit ? ' (' + k.unit + ')' : ''))));
  const [lT, typed] = field('di-typed', 'Or type identifiers (e.g. 02-01-01-00, several with commas)', { autocapitalize: 'none', spellcheck: 'false' });
  const btn = h('button', { type: 'button', class: 'primary', id: 'di-run' }, 'Read');
  const res = h('div', { id: 'di-result', role: 'status' });
  btn.addEventListener('click', () => {
    const ids = typed.value.split(/[,;\s]+/).filter((x) => x);
    runCommTest(id, { kind: t.kind, identifiers: ids.length ? ids : [pick.value] }, btn, res, (r) => {
      const rows = r.reads.map((x) => h('tr', {},
        h('td', {}, x.di, x.name ? h('div', { class: 'hint' }, x.name) : null),
        h('td', { class: x.ok ? 'num' : 'words error' }, x.text),
        h('td', { class: 'frames' }, x.frames.map((f) => h('div', {},
          h('div', { class: 'hex' }, '→ ' + f.request), h('div', { class: 'hex' }, '← ' + (f.response || 'no answer')))))));
      return [r.ok ? h('p', { class: 'hint' }, sentence(r.message) + ', ' + r.took_ms + ' ms') : failureBanner(r),
        h('table', { id: 'di-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'Identifier'), h('th', {}, 'Value'), h('th', {}, 'Frames (hex)'))),
          h('tbody', {}, rows))];
    });
  });
  return h('div', { class: 'card', id: 'comm-card' }, h('h2', {}, t.label),
    h('label', { for: 'di-pick' }, 'Data identifier'), pick, lT, typed,
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), btn), res);
}

function rawCard(id) {
  const fn = h('select', { id: 'raw-function' },
    h('option', { value: 3 }, '3 holding registers'), h('option', { value: 4 }, '4 input registers'),
    h('option', { value: 1 }, '1 coils'), h('option', { value: 2 }, '2 discrete inputs'));
  const [lA, a] = field('raw-address', 'Address (0-based)', { inputmode: 'numeric', value: '0' });
  const [lN, n] = field('raw-count', 'Count', { inputmode: 'numeric', value: '4' });
  const [lU, u] = field('raw-unit', 'Unit id (empty: the device\'s)', { inputmode: 'numeric' });
  const type = h('select', { id: 'raw-type' }, ['u16', 'i16', 'u32', 'i32', 'f32', 'u64', 'i64', 'f64'].map((t) => h('option', { value: t }, t)));
  const order = h('select', { id: 'raw-order' }, ['ABCD', 'CDAB', 'BADC', 'DCBA'].map((t) => h('option', { value: t }, t)));
  const btn = h('button', { type: 'button', class: 'primary', id: 'raw-read' }, 'Read registers');
  const res = h('div', { id: 'raw-result', role: 'status' });
  btn.addEventListener('click', async () => {
    const req = { function: Number(fn.value), address: Number(a.value), count: Number(n.value), type: type.value, order: order.value };
    if (u.value.trim() !== '') req.unit_id = Number(u.value);
    if (![req.address, req.count].every(Number.isInteger) || (req.unit_id !== undefined && !Number.isInteger(req.unit_id))) {
      res.replaceChildren(banner('error', 'Address, count and unit id are whole numbers.'));
      return;
    }
    btn.disabled = true;
    res.replaceChildren(banner('info', 'Reading…'));
    try {
      const r = await api('POST', '/api/devices/' + enc(id) + '/raw-read', req);
      if (!r.ok) {
        res.replaceChildren(banner('error', (r.failure === 'timeout' ? 'Timeout: ' : r.failure === 'exception' ? 'Exception: ' : 'Failed: ') + r.message));
        return;
      }
      const vals = new Map((r.values || []).map((v) => [v.offset, v.value]));
      const rows = r.words.length
        ? r.words.map((w, i) => h('tr', {}, h('td', {}, r.address + i), h('td', { class: 'num' }, w), h('td', { class: 'num' }, '0x' + w.toString(16).padStart(4, '0')),
          h('td', { class: 'num' }, vals.has(i) ? value(vals.get(i)) : '')))
        : r.bits.map((b, i) => h('tr', {}, h('td', {}, r.address + i), h('td', { class: 'num' }, b ? '1' : '0'), h('td', {}, ''), h('td', {}, '')));
      res.replaceChildren(h('p', { class: 'hint' }, 'unit ' + r.unit_id + ', function ' + r.function + ': ' + r.message + ', ' + r.took_ms + ' ms'),
        h('table', { id: 'raw-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'Address'), h('th', {}, r.words.length ? 'Word' : 'Bit'), h('th', {}, 'Hex'), h('th', {}, 'As ' + type.value + ' ' + order.value))),
          h('tbody', {}, rows)));
    } catch (e) {
      res.replaceChildren(banner('error', e.message));
    } finally {
      btn.disabled = false;
    }
  });
  return h('div', { class: 'card', id: 'raw-card' }, h('h2', {}, 'Raw registers'),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, h('label', { for: 'raw-function' }, 'Function'), fn), h('div', { class: 'grow' }, lA, a), h('div', { class: 'grow' }, lN, n)),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lU, u), h('div', { class: 'grow' }, h('label', { for: 'raw-type' }, 'Decode as'), type), h('div', { class: 'grow' }, h('label', { for: 'raw-order' }, 'Byte order'), order)),
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), btn), res);
}


// ---- system: update, logs, services, diagnostics ----

function systemCards(sys) {
  const o = sys.ota;
  const mem = sys.memory, disk = sys.disk;
  const cards = [];
  cards.push(stat('Software', o ? (o.version || 'unknown') : '–', o ? 'slot ' + (o.booted_slot || '?') + ' · update ' + o.state : (sys.errors && sys.errors.ota) || ''));
  cards.push(stat('CPU · memory', (sys.cpu_percent === null ? '–' : sys.cpu_percent + ' %'),
    mem ? bytes(mem.total_bytes - mem.available_bytes) + ' of ' + bytes(mem.total_bytes) + ' memory used' : ''));
  if (disk) {
    const used = disk.total_bytes ? 100 * (disk.total_bytes - disk.free_bytes) / disk.total_bytes : 0;
    cards.push(stat('Data partition', bytes(disk.free_bytes) + ' free', 'of ' + bytes(disk.total_bytes) + (sys.uptime_s ? ' · up ' + hours(sys.uptime_s / 3600) : ''),
      h('div', { class: 'meter', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(used) }, h('div', { 'data-w': used }))));
  }
  return cards;
}


function cloudCard() {
  const isAdmin = session.role === 'admin';
  const out = h('div', { id: 'cloud-result', role: 'status' });
  const [lUri, uri] = field('cloud-uri', 'Broker (ssl://host:port)', { autocapitalize: 'none', spellcheck: 'false' });
  const [lPk, pk] = field('cloud-pk', 'Product key', { autocapitalize: 'none', spellcheck: 'false' });
  const [lDk, dk] = field('cloud-dk', 'Device key', { autocapitalize: 'none', spellcheck: 'false' });
  const [lSec, sec] = field('cloud-secret', 'Device secret', { type: 'password', autocomplete: 'new-password' });
  const plain = h('select', { id: 'cloud-plain' }, h('option', { value: 'no' }, 'no'), h('option', { value: 'yes' }, 'yes (test brokers only)'));
  const [lCa, ca] = field('cloud-ca', 'CA file (empty: system store)', { spellcheck: 'false' });
  const [lCert, cert] = field('cloud-cert', 'Client certificate file (mutual TLS)', { spellcheck: 'false' });
  const [lKey, key] = field('cloud-key', 'Client key file', { spellcheck: 'false' });
  const testBtn = h('button', { type: 'button', id: 'cloud-test' }, 'Test connection');
  const saveBtn = h('button', { type: 'button', class: 'primary', id: 'cloud-save' }, 'Save and reconnect');
  const body = () => ({ uri: uri.value.trim(), product_key: pk.value.trim(), device_key: dk.value.trim(), device_secret: sec.value || null,
    allow_plain: plain.value === 'yes', ca_file: ca.value.trim() || null, cert_file: cert.value.trim() || null, key_file: key.value.trim() || null });
  async function load() {
    const c = await api('GET', '/api/cloud');
    uri.value = c.uri; pk.value = c.product_key; dk.value = c.device_key;
    sec.value = '';
    sec.placeholder = c.secret_set ? 'set (leave empty to keep it)' : 'not set';
    plain.value = c.allow_plain ? 'yes' : 'no';
    ca.value = c.ca_file || ''; cert.value = c.cert_file || ''; key.value = c.key_file || '';
  }
  testBtn.addEventListener('click', async () => {
    testBtn.disabled = true;
    out.replaceChildren(banner('info', 'Connecting…'));
    try {
      const r = await api('POST', '/api/cloud/test', body());
      out.replaceChildren(banner(r.ok ? 'info' : 'error', (r.ok ? 'Works: ' : 'Failed: ') + r.message + ' (' + r.took_ms + ' ms)'));
    } catch (e) { out.replaceChildren(banner('error', e.message)); }
    finally { testBtn.disabled = false; }
  });
  saveBtn.addEventListener('click', async () => {
    if (!await confirmDialog('Change the cloud settings?', h('p', {}, 'The cloud session starts again with them; data waiting in the cache stays and is sent once connected.'), 'Save', 'danger')) return;
    saveBtn.disabled = true;
    try {
      await api('POST', '/api/cloud', body());
      out.replaceChildren(banner('info', 'Saved: the session is reconnecting.'));
      await load();
    } catch (e) { out.replaceChildren(banner('error', 'Not saved: ' + e.message)); }
    finally { saveBtn.disabled = false; }
  });
  load().catch((e) => out.replaceChildren(banner('error', e.message)));
  const dis = (el) => { if (!isAdmin) el.disabled = true; return el; };
  [uri, pk, dk, sec, plain, ca, cert, key].forEach(dis);
  return h('div', { class: 'card', id: 'cloud-card' }, h('h2', {}, 'Cloud connection'),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lUri, uri)),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lPk, pk), h('div', { class: 'grow' }, lDk, dk)),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lSec, sec), h('div', { class: 'grow' }, h('label', { for: 'cloud-plain' }, 'Allow plain TCP'), plain)),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lCa, ca)),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lCert, cert), h('div', { class: 'grow' }, lKey, key)),
    isAdmin ? h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), testBtn, saveBtn) : null, out);
}

function systemView() {
  const isAdmin = session.role === 'admin';
  const info = h('div', { id: 'sys-info' }, h('p', { class: 'loading' }, 'Loading…'));
  const svcBox = h('div', { class: 'list', id: 'services' });
  const out = h('div', { id: 'sys-result', role: 'status' });
  const upOut = h('div', { id: 'update-result', role: 'status' });
  const hist = h('div', { id: 'update-history' });

  async function restart(name) {
    if (!await confirmDialog('Restart ' + name + '?', h('p', {}, 'The service stops for a few seconds; nothing it has stored is lost.'), 'Restart', 'danger')) return;
    try {
      await api('POST', '/api/services/' + enc(name) + '/restart');
      out.replaceChildren(banner('info', name + ' is restarting.'));
    } catch (e) { out.replaceChildren(banner('error', 'Cannot restart ' + name + ': ' + e.message)); }
  }
  let follow = false;
  every(2000, async () => {
    try {
      const sys = await api('GET', '/api/system');
      const grid = h('div', { class: 'grid' }, systemCards(sys));
      grid.querySelectorAll('[data-w]').forEach((el) => { el.style.width = el.getAttribute('data-w') + '%'; });
      info.replaceChildren(grid);
      svcBox.replaceChildren(...sys.services.map((s) => h('div', { class: 'card row' },
        h('div', { class: 'grow name' }, s.service), pill(s.state, s.state === 'running' ? 'ok' : 'bad'),
        isAdmin ? h('button', { type: 'button', class: 'quiet restart', 'data-svc': s.service, onclick: () => restart(s.service) }, 'Restart…') : null)));
    } catch (e) { info.replaceChildren(banner('error', e.message)); }
    try {
      const u = await api('GET', '/api/update');
      const j = u.status.job;
      if (follow && j) upOut.replaceChildren(banner(j.step < 0 || j.state === 'failed' ? 'error' : 'info', 'Update ' + j.version + ': ' + j.state + (j.step >= 0 ? ' (' + j.step + ' %)' : '') + (j.desc ? ' — ' + j.desc : '')));
      hist.replaceChildren(u.history.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Version'), h('th', {}, 'Result'), h('th', {}, 'When'))),
        h('tbody', {}, u.history.slice(-5).reverse().map((x) => h('tr', {}, h('td', {}, x.version || '–'), h('td', { class: 'words' }, x.state + (x.desc ? ': ' + x.desc : '')), h('td', {}, ago(x.updated_ms))))))
        : h('p', { class: 'hint' }, 'No update yet.'));
    } catch (e) { hist.replaceChildren(banner('error', e.message)); }
  });

  const { file, pick, chosen, upBtn } = filePicker('bundle', '.swu', 'Choose bundle…', 'Upload and install');
  upBtn.addEventListener('click', async () => {
    const f = file.files[0];
    if (!f) return;
    if (!await confirmDialog('Install this update?', [h('p', { class: 'big' }, f.name), h('p', {}, 'The gateway installs it into the other slot and restarts; it returns to this version by itself if the new one does not come up healthy.')], 'Install', 'danger')) return;
    upBtn.disabled = true;
    upOut.replaceChildren(banner('info', 'Uploading…'));
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/update/upload');
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('X-CSRF-Token', session.csrf);
    xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) upOut.replaceChildren(banner('info', 'Uploading… ' + Math.round(100 * ev.loaded / ev.total) + ' %')); };
    xhr.onload = () => {
      let doc = null;
      try { doc = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 202) { follow = true; upOut.replaceChildren(banner('info', 'Uploaded (' + bytes(doc.bytes) + '); installing as job ' + doc.job + '…')); }
      else upOut.replaceChildren(banner('error', 'The update was not started: ' + ((doc && doc.error) || 'HTTP ' + xhr.status)));
      upBtn.disabled = false;
    };
    xhr.onerror = () => { upOut.replaceChildren(banner('error', 'The upload broke off (network).')); upBtn.disabled = false; };
    xhr.send(f);
  });

  const svcSel = h('select', { id: 'log-service' }, h('option', { value: 'all' }, 'all services'), ['enos-collector', 'enos-uplink', 'enos-ota', 'enos-web'].map((x) => h('option', { value: x }, x)));
  const lvlSel = h('select', { id: 'log-level' }, ['info', 'notice', 'warning', 'err', 'debug'].map((x) => h('option', { value: x }, x)));
  const logBtn = h('button', { type: 'button', class: 'primary', id: 'log-show' }, 'Show logs');
  const logOut = h('div', { id: 'log-result' });
  logBtn.addEventListener('click', async () => {
    logBtn.disabled = true;
    try {
      const r = await api('GET', '/api/logs?service=' + enc(svcSel.value) + '&level=' + enc(lvlSel.value) + '&lines=200');
      logOut.replaceChildren(r.entries.length ? h('pre', { class: 'log' }, r.entries.map((e) => (e.ts_ms ? new Date(e.ts_ms).toLocaleTimeString() : '') + ' ' + (e.unit || '') + ' ' + e.message).join('\n'))
        : banner('info', 'Nothing at this level.'));
    } catch (e) { logOut.replaceChildren(banner('error', e.message)); }
    finally { logBtn.disabled = false; }
  });
  const rebootBtn = h('button', { type: 'button', class: 'danger', id: 'reboot' }, 'Reboot…');
  rebootBtn.addEventListener('click', async () => {
    if (!await confirmDialog('Reboot the gateway?', h('p', {}, 'Collection stops for about a minute; the cache keeps what it holds.'), 'Reboot', 'danger')) return;
    try { await api('POST', '/api/system/reboot'); out.replaceChildren(banner('info', 'Rebooting…')); }
    catch (e) { out.replaceChildren(banner('error', 'Cannot reboot: ' + e.message)); }
  });

  return h('section', { class: 'stack' },
    h('div', { class: 'toolbar' }, h('h1', { class: 'grow' }, 'System'), isAdmin ? rebootBtn : null),
    out, info,
    h('div', { class: 'card' }, h('h2', {}, 'Services'), svcBox),
    cloudCard(),
    h('div', { class: 'card', id: 'update-card' }, h('h2', {}, 'Update'),
      isAdmin ? h('div', { class: 'toolbar' }, file, pick, chosen, upBtn) : null, upOut, hist),
    h('div', { class: 'card', id: 'packages-card' }, h('h2', {}, 'Resource packages'),
      h('p', { class: 'hint' }, 'Configuration, point tables, device models and certificates in one file signed by the gateway\'s maker: the one installed, ' + (isAdmin ? 'applying another, ' : '') + 'the history.'),
      h('div', { class: 'toolbar' }, h('span', { class: 'grow' }),
        h('a', { class: 'button', href: '#/packages', role: 'button', id: 'open-packages' }, 'Packages ›'))),
    isAdmin ? h('div', { class: 'card' }, h('h2', {}, 'Logs'),
      h('div', { class: 'row' }, h('div', { class: 'grow' }, h('label', { for: 'log-service' }, 'Service'), svcSel), h('div', { class: 'grow' }, h('label', { for: 'log-level' }, 'At least'), lvlSel)),
      h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), logBtn), logOut) : null,
    isAdmin ? h('div', { class: 'card' }, h('h2', {}, 'Diagnostics'), h('p', { class: 'hint' }, 'Status, configuration without secrets and recent logs, as one .tar.gz for support.'),
      h('a', { class: 'button', href: '/api/diagnostics', download: 'enos-diagnostics.tar.gz', role: 'button', id: 'diagnostics' }, 'Download diagnostics')) : null);
}

// ---- accounts ----

function field(id, label, attrs) {
  return [h('label', { for: id }, label), h('input', Object.assign({ id, autocomplete: 'off' }, attrs || {}))];
}

function accountsView() {
  const min = session.min_password_len || 10;
  const isAdmin = session.role === 'admin';
  const pwOut = h('div', { role: 'status', id: 'password-result' });
  const [lCur, cur] = field('pw-current', 'Current password', { type: 'password', autocomplete: 'current-password' });
  const [lNew, nw] = field('pw-new', 'New password', { type: 'password', autocomplete: 'new-password' });
  const [lNew2, nw2] = field('pw-new2', 'The new password again', { type: 'password', autocomplete: 'new-password' });
  const pwBtn = h('button', { type: 'button', class: 'primary', id: 'pw-change' }, 'Change my password');
  pwBtn.addEventListener('click', async () => {
    if (nw.value !== nw2.value) { pwOut.replaceChildren(banner('error', 'The two new passwords differ.')); return; }
    if (nw.value.length < min) { pwOut.replaceChildren(banner('error', 'The new password must have at least ' + min + ' characters.')); return; }
    pwBtn.disabled = true;
    try {
      session = await api('POST', '/api/password', { current: cur.value, new: nw.value });
      cur.value = nw.value = nw2.value = '';
      pwOut.replaceChildren(banner('info', 'Password changed. Other sessions of this account have ended.'));
    } catch (e) {
      pwOut.replaceChildren(banner('error', e.message));
    } finally {
      pwBtn.disabled = false;
    }
  });
  const own = h('div', { class: 'card' }, h('h2', {}, 'My password (' + session.user + ')'),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lCur, cur)),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lNew, nw), h('div', { class: 'grow' }, lNew2, nw2)),
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), pwBtn), pwOut);
  if (!isAdmin) return h('section', {}, h('h1', {}, 'Account'), own);

  const list = h('div', { class: 'list', id: 'accounts' });
  const out = h('div', { role: 'status', id: 'accounts-result' });
  async function load() {
    const users = await api('GET', '/api/users');
    list.replaceChildren(...users.map((u) => h('div', { class: 'card row' },
      h('div', { class: 'grow' }, h('div', { class: 'name' }, u.name), h('div', { class: 'hint' }, 'since ' + new Date(u.created_ms).toLocaleDateString())),
      pill(u.role, u.role === 'admin' ? 'warn' : 'off'),
      u.name === session.user ? h('span', { class: 'hint' }, 'you') : h('button', { type: 'button', class: 'quiet', onclick: () => remove(u.name) }, 'Remove'))));
  }
  async function remove(name) {
    if (!await confirmDialog('Remove the account?', h('p', { class: 'big' }, name), 'Remove', 'danger')) return;
    try {
      await api('DELETE', '/api/users/' + encodeURIComponent(name));
      out.replaceChildren(banner('info', 'Removed ' + name + '.'));
    } catch (e) {
      out.replaceChildren(banner('error', e.message));
    }
    load().catch((e) => out.replaceChildren(banner('error', e.message)));
  }
  const [lName, name] = field('new-name', 'Account name', { autocapitalize: 'none', spellcheck: 'false' });
  const role = h('select', { id: 'new-role' }, ['viewer', 'operator', 'admin'].map((r) => h('option', { value: r }, r)));
  const [lPw, pw] = field('new-password', 'Password', { type: 'password', autocomplete: 'new-password' });
  const addBtn = h('button', { type: 'button', class: 'primary', id: 'add-account' }, 'Add account');
  addBtn.addEventListener('click', async () => {
    addBtn.disabled = true;
    try {
      await api('POST', '/api/users', { name: name.value.trim(), password: pw.value, role: role.value });
      out.replaceChildren(banner('info', 'Added ' + name.value.trim() + ' (' + role.value + ').'));
      name.value = pw.value = '';
      await load();
    } catch (e) {
      out.replaceChildren(banner('error', e.message));
    } finally {
      addBtn.disabled = false;
      out.scrollIntoView({ block: 'nearest' });
    }
  });
  load().catch((e) => out.replaceChildren(banner('error', e.message)));
  const add = h('div', { class: 'card' }, h('h2', {}, 'Add an account'),
    h('p', { class: 'hint' }, 'viewer: sees everything, tests communication · operator: also writes points · admin: also manages accounts'),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lName, name), h('div', { class: 'grow' }, h('label', { for: 'new-role' }, 'Role'), role)),
    h('div', { class: 'row' }, h('div', { class: 'grow' }, lPw, pw)),
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), addBtn), out);
  return h('section', { class: 'stack' }, h('h1', {}, 'Accounts'), list, add, own);
}

// ---- routing ----

function route() {
  stopTimer();
  pageToken++;
  if (!session || !session.signed_in) return;
  const hash = location.hash || '#/dashboard';
  const parts = hash.slice(2).split('/');
  let page = parts[0];
  let view;
  if (page === 'devices') view = devicesView();
  else if (page === 'live') view = liveView();
  else if (page === 'accounts') view = accountsView();
  else if (page === 'system') view = systemView();
  else if (page === 'packages') { view = onDemandView('/packages.js', () => packagesView()); page = 'system'; } // reached from the System page
  else if (page === 'device' && parts[1]) { view = deviceView(decodeURIComponent(parts.slice(1).join('/'))); page = 'devices'; }
  else if (page === 'device-edit') { view = deviceEditView(parts[1] ? decodeURIComponent(parts.slice(1).join('/')) : null); page = 'devices'; }
  else { page = 'dashboard'; view = dashboardView(); }
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === page));
  render(view);
  $('#main').focus({ preventScroll: true });
}

function start() {
  $('#bar').hidden = false;
  $('#who').textContent = session.user + ' (' + session.role + ')';
  route();
}

window.addEventListener('hashchange', route);
document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !$('#dialog').hidden) $('#dialog-cancel').click(); });

window.addEventListener('DOMContentLoaded', async () => {
  $('#signout').addEventListener('click', async () => {
    try { await api('POST', '/api/logout', {}); } catch (e) { /* gone anyway */ }
    session = await api('GET', '/api/session').catch(() => null);
    showSignIn();
  });
  try {
    session = await api('GET', '/api/session');
  } catch (e) {
    render(banner('error', 'The gateway does not answer: ' + e.message));
    return;
  }
  if (session.signed_in) start(); else showSignIn();
});
