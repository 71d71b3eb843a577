'use strict';
// OPC UA pages of the configuration center, on app.js's helpers (h, api, banner, runCommTest…):
// the communication test's browse card and, for admins, the server certificates card. app.js
// loads this script the first time a device page needs one of them (commTestScripts,
// adminCardScripts), not at start.

/**
 * OPC UA: browse the server's address space, Objects first; a node with children opens with a
 * tap, a path of the nodes opened leads back. Variables picked with their box are added to the
 * device's point table (name from the browse name, node id in its nsu= form when it has one).
 */
function opcuaBrowseCard(id, t) {
  const path = [{ node: 'i=85', name: 'Objects' }];
  const crumbs = h('nav', { class: 'toolbar wrap', id: 'opcua-path', 'aria-label': 'Path in the address space' });
  const [lN, nodeIn] = field('opcua-node', 'Node id (any form, e.g. ns=2;s=Plant)', { autocapitalize: 'none', spellcheck: 'false' });
  const btn = h('button', { type: 'button', class: 'primary', id: 'opcua-browse-run' }, 'Browse');
  const res = h('div', { id: 'opcua-browse-result', role: 'status' });
  const addBtn = h('button', { type: 'button', id: 'opcua-add-points', disabled: true }, 'Add picked variables as points');
  const added = h('div', { id: 'opcua-add-result', role: 'status' });
  let picked = new Map();   // node id -> the node's row of the answer

  function drawPath() {
    crumbs.replaceChildren(...path.map((p, i) => {
      const b = h('button', { type: 'button', class: i === path.length - 1 ? 'quiet current' : 'quiet', 'aria-current': i === path.length - 1 ? 'location' : null }, p.name);
      b.addEventListener('click', () => { path.length = i + 1; go(); });
      return b;
    }));
  }
  function countPicked() {
    addBtn.disabled = !picked.size;
    addBtn.textContent = picked.size ? 'Add ' + picked.size + ' picked variable' + (picked.size === 1 ? '' : 's') + ' as points' : 'Add picked variables as points';
  }
  function go() {
    const at = path[path.length - 1];
    nodeIn.value = at.node;
    drawPath();
    runCommTest(id, { kind: t.kind, node: at.node }, btn, res, show);
  }
  function show(r) {
    if (!r.ok) return [failureBanner(r)];
    const rows = r.nodes.map((n) => {
      const isVar = n.node_class === 'Variable';
      const box = isVar ? h('input', { type: 'checkbox', class: 'pick', 'aria-label': 'Pick ' + n.browse_name }) : null;
      if (box) {
        box.checked = picked.has(n.node_id);
        box.addEventListener('change', () => { if (box.checked) picked.set(n.node_id, n); else picked.delete(n.node_id); countPicked(); });
      }
      const open = h('button', { type: 'button', class: 'quiet open-node', 'aria-label': 'Open ' + n.display_name }, '›');
      open.addEventListener('click', () => { path.push({ node: n.node_id, name: n.display_name || n.browse_name }); go(); });
      return h('tr', { 'data-node': n.node_id },
        h('td', {}, box),
        h('td', { class: 'words' }, n.display_name || n.browse_name, h('div', { class: 'hint' }, n.browse_name)),
        h('td', { class: 'words' }, h('code', {}, n.node_id), n.nsu_id ? h('div', { class: 'hint' }, h('code', {}, n.nsu_id)) : null),
        h('td', {}, n.node_class, n.data_type ? h('div', { class: 'hint' }, n.data_type) : null),
        h('td', { class: 'words' }, n.access || '–'),
        h('td', { class: 'num' }, isVar ? n.text : '–', n.point ? h('div', { class: 'hint' }, 'point ' + n.point) : null),
        h('td', {}, open));
    });
    return [h('p', { class: 'hint' }, sentence(r.message) + ', ' + r.took_ms + ' ms'),
      h('div', { class: 'scroll' }, h('table', { id: 'opcua-browse-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Pick'), h('th', {}, 'Name'), h('th', {}, 'Node id'), h('th', {}, 'Class, type'),
          h('th', {}, 'Access'), h('th', {}, 'Value'), h('th', {}, 'Open'))),
        h('tbody', {}, rows)))];
  }

  btn.addEventListener('click', () => {
    const node = nodeIn.value.trim() || 'i=85';
    if (node !== path[path.length - 1].node) path.push({ node, name: node });
    go();
  });
  nodeIn.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); btn.click(); } });

  // picked variables into the point table: the device's configuration with the points added
  addBtn.addEventListener('click', async () => {
    addBtn.disabled = true;
    added.replaceChildren();
    try {
      const d = await api('GET', '/api/devices/' + enc(id) + '/config');
      const points = d.point || [];
      const names = new Set(points.map((p) => p.name));
      const nodes = new Set(points.map((p) => p.node));
      const fresh = [];
      for (const n of picked.values()) {
        const node = n.nsu_id || n.node_id;
        if (nodes.has(node) || nodes.has(n.node_id)) continue;
        const base = (n.browse_name.replace(/^\d+:/, '') || 'point').replace(/[^A-Za-z0-9_.-]+/g, '_');
        let name = base;
        for (let i = 2; names.has(name); i++) name = base + '_' + i;
        names.add(name);
        const p = { name, node };
        if (n.writable) p.access = 'rw';
        fresh.push(p);
      }
      if (!fresh.length) { added.replaceChildren(banner('info', 'The picked variables are points of ' + id + ' already.')); return; }
      d.point = points.concat(fresh);
      await api('PUT', '/api/devices/' + enc(id) + '/config', d);
      picked = new Map();
      added.replaceChildren(banner('info', 'Added ' + fresh.map((p) => p.name).join(', ') + ' to ' + id + '\'s points.'),
        h('a', { class: 'button', href: '#/device-edit/' + enc(id), role: 'button', id: 'opcua-edit-points' }, 'Edit the points ›'));
      go();
    } catch (e) {
      added.replaceChildren(banner('error', 'Not added: ' + e.message), e.errors ? problemList(e.errors) : null);
    } finally {
      countPicked();
    }
  });

  drawPath();
  return h('div', { class: 'card', id: 'comm-card' }, h('h2', {}, t.label),
    h('p', { class: 'hint' }, 'What the server has, from its Objects folder: open a node with ›, pick variables to add them as points.'),
    crumbs, lN, nodeIn,
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), btn), res,
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), addBtn), added);
}

commTests['opcua-browse'] = opcuaBrowseCard;

/**
 * OPC UA, for admins: the device's server certificates (its PKI's trusted/ and rejected/). A
 * server refused at a connect is listed as rejected with what to check before trusting it:
 * subject, issuer, validity and SHA-256 thumbprint. Trust and Remove each ask first; a trusted
 * server is accepted at the device's next connect attempt, without a restart.
 */
function opcuaCertsCard(id) {
  const list = h('div', { id: 'opcua-certs' }, h('p', { class: 'loading' }, 'Loading…'));
  const out = h('div', { id: 'opcua-certs-result', role: 'status' });
  const refresh = h('button', { type: 'button', id: 'opcua-certs-refresh' }, 'Refresh');
  const day = (ms) => new Date(ms).toLocaleDateString();
  // the thumbprint in groups of 8, so it wraps on a narrow screen and can be read aloud
  const groups = (hex) => hex.match(/.{1,8}/g).join(' ');

  async function load() {
    try {
      const r = await api('GET', '/api/devices/' + enc(id) + '/opcua-certificates');
      list.replaceChildren(show(r));
    } catch (e) {
      list.replaceChildren(banner('error', e.message));
    }
  }
  function about(c) {
    return [h('p', { class: 'big words' }, c.subject),
      h('p', { class: 'words' }, 'Issued by ' + c.issuer + ', valid ' + day(c.not_before_ms) + ' to ' + day(c.not_after_ms) + '.'),
      h('p', { class: 'words' }, 'SHA-256 ', h('code', {}, groups(c.sha256)))];
  }
  async function act(c, trust) {
    const ok = trust
      ? await confirmDialog('Trust this server?', about(c).concat(h('p', {}, 'Compare the thumbprint with the one the server itself shows (its own screen, or its administrator) before trusting it. The gateway then connects to this server at its next attempt.')), 'Trust', 'primary')
      : await confirmDialog('Remove this certificate?', about(c).concat(h('p', {}, c.state === 'trusted'
        ? 'The gateway refuses this server from its next connection on, until it is trusted again.'
        : 'It is forgotten; the server\'s next refusal lists it here again.')), 'Remove', 'danger');
    if (!ok) return;
    out.replaceChildren(banner('info', trust ? 'Trusting…' : 'Removing…'));
    try {
      await api('POST', '/api/devices/' + enc(id) + '/opcua-certificates/' + enc(c.sha256) + '/' + (trust ? 'trust' : 'remove'));
      out.replaceChildren(banner('info', trust
        ? 'Trusted ' + c.subject + ': ' + id + ' connects to this server at its next attempt.'
        : 'Removed ' + c.subject + ' from the ' + c.state + ' certificates.'));
    } catch (e) {
      out.replaceChildren(banner('error', (trust ? 'Not trusted: ' : 'Not removed: ') + e.message));
    }
    load();
  }
  function show(r) {
    if (!r.certificates.length) return h('p', { class: 'hint' }, 'No server certificates yet: a server\'s certificate is listed here once the gateway has connected to it with security.');
    const now = Date.now();
    const rows = r.certificates.map((c) => {
      const valid = now < c.not_before_ms ? 'not yet valid' : now > c.not_after_ms ? 'expired' : null;
      const trustBtn = c.state === 'rejected' ? h('button', { type: 'button', class: 'primary trust' }, 'Trust…') : null;
      const removeBtn = h('button', { type: 'button', class: 'danger remove' }, 'Remove…');
      if (trustBtn) trustBtn.addEventListener('click', () => act(c, true));
      removeBtn.addEventListener('click', () => act(c, false));
      return h('tr', { 'data-sha256': c.sha256 },
        h('td', {}, pill(c.state, c.state === 'trusted' ? 'ok' : 'bad')),
        h('td', { class: 'words' }, c.subject, h('div', { class: 'hint' }, 'issued by ' + c.issuer)),
        h('td', { class: 'words' }, day(c.not_before_ms) + ' – ' + day(c.not_after_ms), valid ? h('div', {}, pill(valid, 'bad')) : null),
        h('td', { class: 'words' }, h('code', {}, groups(c.sha256))),
        h('td', {}, h('div', { class: 'toolbar wrap' }, trustBtn, removeBtn)));
    });
    return h('div', { class: 'scroll' }, h('table', { id: 'opcua-certs-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'State'), h('th', {}, 'Subject'), h('th', {}, 'Valid'), h('th', {}, 'SHA-256 thumbprint'), h('th', {}, ''))),
      h('tbody', {}, rows)));
  }

  refresh.addEventListener('click', () => { out.replaceChildren(); load(); });
  load();
  return h('div', { class: 'card', id: 'opcua-certs-card' }, h('h2', {}, 'Server certificates'),
    h('p', { class: 'hint' }, 'The OPC UA servers this gateway trusts, and those it refused (a server it has not been told to trust). Only admins see this.'),
    h('div', { class: 'toolbar' }, h('span', { class: 'grow' }), refresh), list, out);
}

adminCards.opcua = opcuaCertsCard;
