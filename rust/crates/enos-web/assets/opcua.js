'use strict';
// OPC UA pages of the configuration center, on app.js's helpers (h, api, banner, runCommTest…):
// the communication test's browse card. app.js loads this script the first time a device page
// needs the card (commTestScripts), not at start.

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
