// EnOS Edge configuration center: the Packages page (#/packages). Resource packages
// (docs/packages.md) uploaded by an admin go to the collector as they are (POST /api/packages),
// which checks the signature, validates and applies; the page says the outcome in words and lists
// the history. The page is reached from the System page; app.js loads this script the first time
// it is opened (loadScript) and it uses app.js's helpers (h, api, banner, every, ...).
'use strict';

function packagesView() {
  const isAdmin = session.role === 'admin';
  const installed = h('div', { id: 'pkg-installed' }, h('p', { class: 'loading' }, 'Loading…'));
  const hist = h('div', { id: 'pkg-history' });
  const out = h('div', { id: 'pkg-result', role: 'status' });

  async function load() {
    try {
      const p = await api('GET', '/api/packages');
      const i = p.installed;
      installed.replaceChildren(i
        ? h('div', {}, h('p', { class: 'big' }, i.name + ' ' + i.version), h('p', { class: 'hint' }, 'installed ' + ago(i.at_ms)),
          h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Item'), h('th', {}, 'Kind'))),
            h('tbody', {}, (i.items || []).map((x) => h('tr', {}, h('td', {}, x.path), h('td', {}, x.type))))))
        : h('p', { class: 'hint' }, 'No package installed: the configuration is the one edited here or shipped with the gateway.'));
      const rows = (p.history || []).slice(-10).reverse();
      hist.replaceChildren(rows.length
        ? h('table', { id: 'pkg-history-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'Package'), h('th', {}, 'Result'), h('th', {}, 'From'), h('th', {}, 'When'))),
          h('tbody', {}, rows.map((x) => h('tr', {},
            h('td', {}, (x.name || '–') + ' ' + (x.version || '')),
            h('td', { class: 'words' }, pill(x.outcome, x.outcome === 'installed' ? 'ok' : 'bad'), x.reason ? ' ' + x.reason : ''),
            h('td', {}, x.origin || '–'), h('td', {}, ago(x.at_ms))))))
        : h('p', { class: 'hint' }, 'No package yet.'));
    } catch (e) { installed.replaceChildren(banner('error', e.message)); }
  }
  every(5000, load);

  const { file, pick, chosen, upBtn } = filePicker('pkg', '.json,.pkg', 'Choose package…', 'Upload and apply');
  upBtn.addEventListener('click', async () => {
    const f = file.files[0];
    if (!f) return;
    if (!await confirmDialog('Apply this package?', [h('p', { class: 'big' }, f.name),
      h('p', {}, 'The gateway checks its signature and its configuration, applies it and waits for the devices to collect; if they do not, it puts the previous configuration back.')], 'Apply', 'danger')) return;
    upBtn.disabled = true;
    out.replaceChildren(banner('info', 'Uploading…'));
    const started = Date.now();
    let applying = null;
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/packages');
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('X-CSRF-Token', session.csrf);
    xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) out.replaceChildren(banner('info', 'Uploading… ' + Math.round(100 * ev.loaded / ev.total) + ' %')); };
    // The upload is done: the collector verifies, applies and waits for the devices.
    xhr.upload.onload = () => {
      const tick = () => out.replaceChildren(banner('info', 'Verifying and applying… ' + Math.round((Date.now() - started) / 1000) + ' s (the devices have up to a minute to collect)'));
      tick();
      applying = setInterval(tick, 1000);
    };
    const finish = (node) => { if (applying) clearInterval(applying); out.replaceChildren(...node); upBtn.disabled = false; load(); };
    xhr.onload = () => {
      let doc = null;
      try { doc = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 200 && doc) finish([banner('info', 'Package ' + doc.name + ' ' + doc.version + ' installed: the devices are collecting with it.')]);
      else {
        const problems = (doc && Array.isArray(doc.errors) && doc.errors.length > 1) ? h('ul', { class: 'problems', id: 'pkg-problems' }, doc.errors.map((e) => h('li', {}, e))) : null;
        finish([banner('error', sentence((doc && doc.error) || 'HTTP ' + xhr.status)), problems]);
      }
    };
    xhr.onerror = () => finish([banner('error', 'The upload broke off (network).')]);
    xhr.send(f);
  });

  return h('section', { class: 'stack' },
    h('div', { class: 'toolbar' }, h('h1', { class: 'grow' }, 'Packages'),
      h('a', { class: 'button', href: '#/system', role: 'button', id: 'pkg-back' }, '‹ System')),
    h('div', { class: 'card', id: 'pkg-card' }, h('h2', {}, 'Installed'), installed),
    isAdmin ? h('div', { class: 'card' }, h('h2', {}, 'Apply a package'),
      h('p', { class: 'hint' }, 'A resource package signed by the gateway\'s maker: configuration, point tables, device models, certificates.'),
      h('div', { class: 'toolbar' }, file, pick, chosen, upBtn), out) : null,
    h('div', { class: 'card' }, h('h2', {}, 'History'), hist));
}
