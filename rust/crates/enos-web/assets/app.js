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
    if (r.status === 401 && !path.startsWith('/api/login') && !path.startsWith('/api/setup')) {
      session = null;
      showSignIn('Your session has ended: sign in again.');
    }
    throw new ApiError(r.status, msg);
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
const stateClass = { online: 'ok', connected: 'ok', good: 'ok', connecting: 'warn', offline: 'bad', disconnected: 'bad', disabled: 'off' };
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
  const btn = h('button', { type: 'submit', class: 'primary', id: 'signin-button' }, setup ? 'Set the admin password' : 'Sign in');
  const form = h('form', { class: 'card', novalidate: true },
    h('h1', {}, setup ? 'Welcome: claim this gateway' : 'Sign in'),
    setup ? h('p', { class: 'hint' }, 'This gateway has no account yet. Choose the admin password now; there is no default password. ' +
      'Anyone who reaches this page before you could do the same, so do it before connecting the gateway to a shared network.') : null,
    info,
    h('label', { for: 'name' }, setup ? 'Admin account name' : 'Account name'), name,
    h('label', { for: 'password' }, setup ? 'New password' : 'Password'), pw,
    setup ? h('p', { class: 'hint' }, 'At least ' + min + ' characters.') : null,
    setup ? h('label', { for: 'password2' }, 'The same password again') : null, pw2,
    err, btn);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    if (setup && pw.value !== pw2.value) { err.textContent = 'The two passwords differ.'; return; }
    if (setup && pw.value.length < min) { err.textContent = 'The password must have at least ' + min + ' characters.'; return; }
    btn.disabled = true;
    btn.textContent = setup ? 'Saving…' : 'Signing in…';
    try {
      session = await api('POST', setup ? '/api/setup' : '/api/login', { name: name.value.trim(), password: pw.value });
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
  every(2000, async () => {
    try {
      const st = await api('GET', '/api/status');
      cloudPill(st);
      body.replaceChildren(...dashboardCards(st));
      updated.textContent = 'updated ' + clock(st.time_ms);
    } catch (e) {
      updated.textContent = '';
      body.replaceChildren(banner('error', 'Cannot get the status: ' + e.message));
      throw e;
    }
  });
  return root;
}

function dashboardCards(st) {
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
    const s = u.sender;
    cards.push(stat('Delivered to the cloud', count(s.points_acked) + ' points',
      count(s.points_acked_live) + ' live, ' + count(s.points_acked_resume) + ' from the backlog' + (s.rejected ? ', ' + count(s.rejected) + ' refused' : '')));
  }
  const col = st.collector;
  if (col) {
    const off = col.devices - col.devices_online;
    cards.push(stat('Devices', col.devices_online + ' of ' + col.devices + ' online',
      off ? off + ' not answering' : 'all answering', null));
  }
  const svc = (name, up) => h('div', { class: 'svc' }, h('span', {}, name), pill(up ? 'running' : 'not answering', up ? 'ok' : 'bad'));
  cards.push(h('div', { class: 'card stat' }, h('div', { class: 'label' }, 'Services'),
    svc('collector', !!st.collector), svc('uplink', !!st.uplink)));
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
      d.last_error && d.state !== 'online' ? h('div', { class: 'hint error' }, d.last_error) : null),
    pill(d.state),
    h('a', { class: 'button', href: '#/device/' + encodeURIComponent(d.id), role: 'button' }, 'Test'));
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
  return h('section', {}, h('h1', {}, 'Devices'), body);
}

function deviceView(id) {
  const canWrite = session.role === 'operator' || session.role === 'admin';
  const result = h('div', { id: 'readings' });
  const status = h('span', { class: 'updated' }, '');
  let points = [];
  const readBtn = h('button', { type: 'button', class: 'primary', id: 'read-now' }, 'Read now');
  const pointSel = h('select', { id: 'write-point' });
  const valueIn = h('input', { id: 'write-value', inputmode: 'decimal', autocomplete: 'off', placeholder: 'e.g. 42.5, true or "text"' });
  const writeOut = h('div', { id: 'write-result', role: 'status' });
  const writeBtn = h('button', { type: 'button', class: 'primary', id: 'write-button' }, 'Write…');

  async function read() {
    readBtn.disabled = true;
    status.textContent = 'reading from the device…';
    try {
      const r = await api('POST', '/api/devices/' + encodeURIComponent(id) + '/read', {});
      points = r.readings.map((p) => p.point);
      status.textContent = r.good + ' of ' + r.total + ' points good, ' + r.took_ms + ' ms, at ' + clock(Date.now());
      result.replaceChildren(readingsTable(r.readings));
      const keep = pointSel.value;
      pointSel.replaceChildren(...points.map((p) => h('option', { value: p }, p)));
      if (points.includes(keep)) pointSel.value = keep;
    } catch (e) {
      status.textContent = '';
      result.replaceChildren(banner('error', 'The read failed: ' + e.message));
    } finally {
      readBtn.disabled = false;
    }
  }
  readBtn.addEventListener('click', read);

  writeBtn.addEventListener('click', async () => {
    writeOut.replaceChildren();
    const point = pointSel.value;
    const raw = valueIn.value.trim();
    if (!point) { writeOut.replaceChildren(banner('error', 'Read the device first, then choose a point.')); return; }
    if (!raw) { writeOut.replaceChildren(banner('error', 'Enter a value.')); return; }
    let v;
    if (raw === 'true' || raw === 'false') v = raw === 'true';
    else if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw)) v = Number(raw);
    else if (/^".*"$/.test(raw)) v = raw.slice(1, -1);
    else { writeOut.replaceChildren(banner('error', 'A value is a number, true, false, or text in "quotes".')); return; }
    const ok = await confirmDialog('Write to the device?', [
      h('p', {}, 'This sends a command to the field device now.'),
      h('p', { class: 'big' }, id + ' · ' + point + ' = ' + value(v)),
    ], 'Write', 'danger');
    if (!ok) return;
    writeBtn.disabled = true;
    writeOut.replaceChildren(banner('info', 'Writing…'));
    try {
      const r = await api('POST', '/api/devices/' + encodeURIComponent(id) + '/points/' + encodeURIComponent(point) + '/write', { value: v });
      writeOut.replaceChildren(r.ok
        ? banner('info', 'The device accepted ' + point + ' = ' + value(v) + ' (' + r.took_ms + ' ms).')
        : banner('error', 'The device did not take it: ' + r.message + ' (code ' + r.code + ', ' + r.failure + ').'));
    } catch (e) {
      writeOut.replaceChildren(banner('error', 'The write failed: ' + e.message));
    } finally {
      writeBtn.disabled = false;
      writeOut.scrollIntoView({ block: 'nearest' });
    }
  });

  const writeCard = canWrite ? h('div', { class: 'card', id: 'write-card' },
    h('h2', {}, 'Write a point'),
    h('div', { class: 'row' },
      h('div', { class: 'grow' }, h('label', { for: 'write-point' }, 'Point'), pointSel),
      h('div', { class: 'grow' }, h('label', { for: 'write-value' }, 'Value (engineering units)'), valueIn)),
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), writeBtn),
    writeOut) : null;

  setTimeout(read, 0);
  return h('section', {},
    h('div', { class: 'toolbar' }, h('a', { class: 'button quiet', href: '#/devices', role: 'button' }, '‹ Devices'), h('h1', { class: 'grow' }, id)),
    h('div', { class: 'toolbar' }, readBtn, status),
    result,
    writeCard);
}

function readingsTable(rows) {
  return h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Point'), h('th', {}, 'Value'), h('th', {}, 'Quality'))),
    h('tbody', {}, rows.map((p) => h('tr', {},
      h('td', {}, p.point),
      h('td', { class: 'num' }, value(p.value)),
      h('td', { class: 'words' }, pill(p.quality, p.quality === 'good' ? 'ok' : 'bad'), ' ', p.quality === 'good' ? clock(p.ts_ms) : p.text)))));
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
  else if (page === 'accounts') view = accountsView();
  else if (page === 'device' && parts[1]) { view = deviceView(decodeURIComponent(parts.slice(1).join('/'))); page = 'devices'; }
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
document.addEventListener('visibilitychange', () => { /* `every` skips loads while hidden */ });
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
