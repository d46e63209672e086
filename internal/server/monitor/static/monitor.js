// OCM monitor: draws each stream's tree from the API and keeps it live
// from the event stream. Plain JavaScript, no dependencies.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const COLLAPSE_LEVEL = 3; // members at this level and deeper start collapsed
  const WIDE = 30;          // beyond this many children, a "+N more" box
  const W = 150, H = 50, GX = 12, GY = 44;
  const S = {
    trees: new Map(), nodes: new Map(), failed: new Map(), stream: '',
    expanded: new Set(), collapsed: new Set(), more: new Set(),
    selected: '', found: '', drawn: false, gen: 0,
    switching: new Map(), // node -> when it was told to move (reconnect, handover)
    global: '', // server-wide counts from the last report_summary
  };
  const SWITCH_MS = 30000; // a move not seen done by then is no longer shown
  const tokenBox = $('token');
  tokenBox.value = sessionStorage.getItem('ocm-token') || '';
  tokenBox.addEventListener('change', () => { sessionStorage.setItem('ocm-token', tokenBox.value.trim()); start(); });

  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = tokenBox.value.trim();
    if (t) h.Authorization = 'Bearer ' + t;
    return h;
  }
  async function httpError(r) {
    let msg = r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    const e = new Error(r.status + ' ' + r.statusText + ': ' + msg + (r.status === 401 ? ' (type the server\'s token in the token field)' : ''));
    e.status = r.status;
    return e;
  }
  async function get(path) {
    const r = await fetch(path, { headers: headers({ Accept: 'application/json' }), cache: 'no-store' });
    if (!r.ok) throw await httpError(r);
    return { body: await r.json(), id: r.headers.get('OCM-Event-ID') };
  }
  function show(msg, ok) {
    const el = $('result');
    el.textContent = msg;
    el.className = ok ? 'ok' : 'error';
  }
  function setLive(on, what) {
    const el = $('live');
    el.className = 'live ' + (on ? 'on' : 'off');
    el.textContent = what || (on ? 'live' : 'disconnected');
  }

  // --- data ---
  async function loadNodes() {
    try {
      const { body } = await get('/api/v1/nodes');
      S.nodes = new Map(body.map((n) => [n.id, n]));
      draw();
    } catch (e) { show('nodes: ' + e.message); }
  }
  let nodesTimer = null;
  function scheduleNodes() {
    if (!nodesTimer) nodesTimer = setTimeout(() => { nodesTimer = null; loadNodes(); }, 1000);
  }
  const pending = new Set();
  let treeTimer = null;
  function refetch(stream) {
    pending.add(stream);
    if (!treeTimer) treeTimer = setTimeout(flush, 100);
  }
  async function flush() {
    treeTimer = null;
    const streams = [...pending];
    pending.clear();
    await Promise.all(streams.map(async (s) => {
      try {
        const { body } = await get('/api/v1/tree?stream=' + encodeURIComponent(s));
        S.trees.set(s, body);
      } catch (e) {
        if (e.status === 404) S.trees.delete(s); else show('tree: ' + e.message);
      }
    }));
    draw();
  }

  // start fetches every tree with the event id it includes, draws, and
  // follows the events from exactly there.
  async function start() {
    const gen = ++S.gen;
    try {
      const { body, id } = await get('/api/v1/tree');
      if (gen !== S.gen) return;
      S.trees = new Map(body.map((t) => [t.stream, t]));
      draw();
      loadNodes();
      follow(gen, id === null ? -1 : Number(id));
    } catch (e) {
      show(e.message);
      setLive(false, e.status === 401 ? '401: token needed' : 'unreachable');
      if (e.status !== 401) { await sleep(2000); if (gen === S.gen) start(); }
    }
  }

  // follow reads GET /api/v1/events (fetch, so the token goes in a
  // header), resuming after the last id on every reconnect.
  async function follow(gen, last) {
    while (gen === S.gen) {
      try {
        const q = last >= 0 ? '?since=' + last : '';
        const r = await fetch('/api/v1/events' + q, { headers: headers({ Accept: 'text/event-stream' }), cache: 'no-store' });
        if (!r.ok) throw await httpError(r);
        setLive(true);
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done || gen !== S.gen) { reader.cancel(); break; }
          buf += value;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const ev = { id: null, name: 'message', data: '' };
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) continue;
              const j = line.indexOf(':');
              const k = j < 0 ? line : line.slice(0, j);
              let v = j < 0 ? '' : line.slice(j + 1);
              if (v[0] === ' ') v = v.slice(1);
              if (k === 'id') ev.id = Number(v);
              else if (k === 'event') ev.name = v;
              else if (k === 'data') ev.data += v;
            }
            if (ev.id !== null) last = ev.id;
            if (ev.data) onEvent(ev);
          }
        }
      } catch (e) {
        show('events: ' + e.message);
        if (e.status === 401) { setLive(false, '401: token needed'); return; }
      }
      if (gen !== S.gen) return;
      setLive(false);
      await sleep(1000);
    }
  }

  function onEvent(ev) {
    let d;
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    logEvent(ev, d);
    if (['tree_joined', 'tree_removed', 'tree_left', 'node_failed', 'node_left'].includes(ev.name)) S.switching.delete(d.node);
    switch (ev.name) {
      case 'reset':
        start();
        return;
      case 'reconnect_sent':
        S.switching.set(d.node, Date.now());
        draw();
        refetch(d.stream);
        return;
      case 'handover_started':
        for (const c of d.children || []) S.switching.set(c.node, Date.now());
        draw();
        refetch(d.stream);
        return;
      case 'node_failed':
        S.failed.set(d.node, { streams: d.streams || [], cause: d.cause });
        (d.streams || []).forEach(refetch);
        draw();
        scheduleNodes();
        return;
      case 'node_joined':
        if (S.failed.delete(d.node)) draw();
        scheduleNodes();
        return;
      case 'node_left':
        (d.streams || []).forEach(refetch);
        scheduleNodes();
        return;
      case 'report_summary':
        // Server-wide counts, as of the last report interval; the
        // selected stream's own counts are drawn from its tree (summarize).
        S.global = d.nodes + ' nodes, ' + d.streams + ' streams' + (d.lossy ? ', ' + d.lossy + ' lossy' : '');
        summarize(S.trees.get(S.stream));
        if (S.stream) refetch(S.stream);
        scheduleNodes();
        return;
      default:
        if (d.stream) refetch(d.stream);
    }
  }
  function logEvent(ev, d) {
    const li = document.createElement('li');
    li.textContent = ev.name + ' ' + (d.node || '') + (d.parent ? ' → ' + d.parent : '') +
      (d.by ? ' (by ' + d.by + ', ' + d.rtt_ms + ' ms against ' + d.worst_ms + ' ms)' : '');
    const ol = $('events');
    ol.insertBefore(li, ol.firstChild);
    while (ol.childNodes.length > 100) ol.removeChild(ol.lastChild);
  }

  // --- drawing ---
  function stateOf(m) {
    if (S.failed.has(m.node)) return 'failed';
    if (m.leaving) return 'leaving';
    const told = S.switching.get(m.node);
    if (told && Date.now() - told < SWITCH_MS) return 'switching';
    if (!m.attached || m.pending_parent || m.reserved_parent) return 'switching';
    if (m.loss > 0.01) return 'lossy';
    return 'ok';
  }
  function rate(bps) {
    if (!bps) return '0 b/s';
    if (bps >= 1e6) return (bps / 1e6).toFixed(1) + ' Mb/s';
    return (bps / 1e3).toFixed(0) + ' kb/s';
  }
  function isCollapsed(id, level) {
    return S.collapsed.has(id) || (!S.expanded.has(id) && level >= COLLAPSE_LEVEL);
  }

  function updatePicker() {
    const sel = $('stream');
    const names = [...S.trees.keys()].sort();
    if (!names.includes(S.stream)) S.stream = names[0] || '';
    const have = [...sel.options].map((o) => o.value).join('\n');
    if (have !== names.join('\n')) {
      sel.innerHTML = names.map((n) => '<option>' + esc(n) + '</option>').join('');
    }
    sel.value = S.stream;
  }

  // summarize says what the drawn tree holds, from the tree itself (so
  // it never lags the drawing), then the server-wide counts.
  function summarize(t) {
    let line = '';
    if (t) {
      const attached = t.nodes.filter((m) => m.attached).length;
      const orphans = t.nodes.filter((m) => !m.attached && !m.parent).length;
      line = t.nodes.length + ' relays: ' + attached + ' attached, ' + orphans + ' orphans, depth ' + t.depth;
    }
    if (S.global) line += (line ? ' · server: ' : 'server: ') + S.global;
    $('summary').textContent = line;
  }

  function draw() {
    updatePicker();
    const svg = $('tree');
    const t = S.trees.get(S.stream);
    summarize(t);
    const failedHere = [...S.failed.entries()].filter(([id, f]) => f.streams.includes(S.stream) || !t);
    renderFailed();
    if (!t) {
      svg.setAttribute('width', 600); svg.setAttribute('height', 60);
      svg.innerHTML = '<text x="10" y="20">no streams: no relay has joined one yet</text>' + failedBoxes(failedHere, 40).svg;
      drawn(0);
      return;
    }
    const by = new Map();
    for (const m of t.nodes) by.set(m.node, m);
    // Subtree sizes, deepest first (nodes come by level).
    const size = new Map();
    for (let i = t.nodes.length - 1; i >= 0; i--) {
      const m = t.nodes[i];
      if (!m.attached) continue;
      let n = 1;
      for (const c of m.children) n += size.get(c) || 0;
      size.set(m.node, n);
    }
    const pos = [];
    let nextX = 10;
    const out = [];
    // place lays out id's visible subtree and returns its centre x.
    const place = (id, parent, level) => {
      const m = by.get(id);
      const kids = m ? m.children.filter((c) => by.has(c)) : [];
      const collapsed = kids.length > 0 && isCollapsed(id, level);
      let shown = collapsed ? [] : kids;
      let hidden = 0;
      if (shown.length > WIDE && !S.more.has(id)) { hidden = shown.length - WIDE; shown = shown.slice(0, WIDE); }
      let x;
      const xs = shown.map((c) => place(c, id, level + 1));
      if (hidden) {
        xs.push(nextX + W / 2);
        pos.push({ more: id, x: nextX, level: level + 1, hidden, parent: id });
        nextX += W + GX;
      }
      if (xs.length === 0) { x = nextX + W / 2; nextX += W + GX; } else x = (xs[0] + xs[xs.length - 1]) / 2;
      pos.push({ id, m, x: x - W / 2, level, parent, collapsed, hiddenCount: collapsed ? (size.get(id) || 1) - 1 : 0 });
      return x;
    };
    const origin = { node: 'origin', children: t.origin.children, capacity: t.origin.capacity };
    by.set('origin', origin);
    place('origin', '', 0);
    by.delete('origin');
    // Detached members (orphans, pending) in a row below.
    const maxLevel = pos.reduce((a, p) => Math.max(a, p.level), 0);
    const detached = t.nodes.filter((m) => !m.attached);
    let dx = 10;
    for (const m of detached) { pos.push({ id: m.node, m, x: dx, level: maxLevel + 1.5, parent: m.parent || '', detached: true }); dx += W + GX; }
    const at = new Map();
    for (const p of pos) if (p.id) at.set(p.id, p);
    const y = (level) => 10 + level * (H + GY);
    for (const p of pos) {
      const pp = at.get(p.parent);
      if (!pp || p.detached) continue;
      const x1 = pp.x + W / 2, y1 = y(pp.level) + H, x2 = p.x + W / 2, y2 = y(p.level);
      out.push('<path class="edge" d="M' + x1 + ' ' + y1 + 'C' + x1 + ' ' + (y1 + GY / 2) + ' ' + x2 + ' ' + (y2 - GY / 2) + ' ' + x2 + ' ' + y2 + '"/>');
    }
    let count = 0;
    for (const p of pos) {
      const yy = y(p.level);
      if (p.more) {
        out.push('<g class="node more" data-more="' + esc(p.more) + '" transform="translate(' + p.x + ',' + yy + ')"><rect width="' + W + '" height="' + H +
          '"/><text x="8" y="28">+' + p.hidden + ' more (click)</text></g>');
        continue;
      }
      if (p.id === 'origin') {
        out.push('<g class="node st-origin" data-node="origin" transform="translate(' + p.x + ',' + yy + ')"><rect width="' + W + '" height="' + H +
          '"/><text x="8" y="16">origin</text><text x="8" y="31">' + t.origin.children.length + '/' + t.origin.capacity + ' children</text>' +
          '<text x="8" y="45">' + esc(S.stream).slice(0, 26) + '</text></g>');
        continue;
      }
      count++;
      const m = p.m;
      const st = stateOf(m);
      const n = S.nodes.get(m.node);
      const cpu = n ? Math.round(n.cpu * 100) + '%' : '?';
      const cls = ['node', 'st-' + st];
      if (p.collapsed) cls.push('collapsed');
      if (S.selected === m.node) cls.push('selected');
      if (S.found === m.node) cls.push('found');
      out.push('<g class="' + cls.join(' ') + '" data-node="' + esc(m.node) + '" data-parent="' + esc(m.parent || '') + '" data-state="' + st +
        '" data-level="' + m.level + '" transform="translate(' + p.x + ',' + yy + ')"><title>' + esc(m.node) + ' (' + st + ')</title><rect width="' + W + '" height="' + H + '"/>' +
        '<text x="8" y="16">' + esc(m.node).slice(0, 18) + ' · ' + m.readers + ' rd</text>' +
        '<text x="8" y="31">' + m.children.length + '/' + m.capacity + ' · loss ' + (m.loss * 100).toFixed(1) + '%</text>' +
        '<text x="8" y="45">' + rate(m.bitrate) + ' · cpu ' + cpu + (p.collapsed ? ' · +' + p.hiddenCount : '') + '</text></g>');
    }
    const bottom = y(maxLevel + (detached.length ? 2.5 : 1)) + 10;
    const fb = failedBoxes(failedHere.filter(([id]) => !by.has(id)), bottom);
    const width = Math.max(nextX, dx, fb.width) + 10;
    svg.setAttribute('width', width);
    svg.setAttribute('height', bottom + (fb.svg ? H + 30 : 0));
    svg.innerHTML = out.join('') + fb.svg;
    drawn(count + fb.count);
  }
  // failedBoxes draws failed nodes no longer in the tree, in a row.
  function failedBoxes(list, top) {
    if (!list.length) return { svg: '', width: 0, count: 0 };
    const out = ['<text x="10" y="' + (top + 12) + '">failed:</text>'];
    let x = 10;
    for (const [id, f] of list) {
      out.push('<g class="node st-failed" data-node="' + esc(id) + '" data-state="failed" transform="translate(' + x + ',' + (top + 20) + ')"><rect width="' + W +
        '" height="' + H + '"/><text x="8" y="16">' + esc(id).slice(0, 18) + '</text><text x="8" y="31">failed: ' + esc(f.cause || '') + '</text></g>');
      x += W + GX;
    }
    return { svg: out.join(''), width: x, count: list.length };
  }
  function renderFailed() {
    $('failed').innerHTML = [...S.failed.entries()].map(([id, f]) => '<li>' + esc(id) + ' (' + esc(f.cause || '') + ')</li>').join('');
  }
  // drawn marks the first draw (window.ocmFirstDraw, the "ocm-drawn"
  // performance mark) and tells listeners of "ocm-draw" after every draw.
  function drawn(count) {
    document.body.dataset.nodes = String(count);
    document.dispatchEvent(new CustomEvent('ocm-draw'));
    if (!S.drawn) {
      S.drawn = true;
      window.ocmFirstDraw = performance.now();
      performance.mark('ocm-drawn');
      document.body.dataset.drawn = 'true';
    }
  }

  // --- interaction ---
  // A click selects a node (for the actions) and expands it if collapsed;
  // a double click collapses it.
  function nodeAt(e) {
    const g = e.target.closest('g.node');
    if (!g) return null;
    const t = S.trees.get(S.stream);
    return { g, id: g.dataset.node, m: t && t.nodes.find((x) => x.node === g.dataset.node) };
  }
  $('tree').addEventListener('click', (e) => {
    const n = nodeAt(e);
    if (!n) return;
    if (n.g.dataset.more) { S.more.add(n.g.dataset.more); draw(); return; }
    if (n.id === 'origin') return;
    if (n.m && n.m.children.length && isCollapsed(n.id, n.m.level)) { S.collapsed.delete(n.id); S.expanded.add(n.id); }
    select(n.id);
    draw();
  });
  $('tree').addEventListener('dblclick', (e) => {
    const n = nodeAt(e);
    if (!n || !n.m || !n.m.children.length) return;
    S.expanded.delete(n.id);
    S.collapsed.add(n.id);
    draw();
  });
  function select(id) {
    S.selected = id;
    $('selected').textContent = 'selected: ' + id;
    for (const b of ['reconnect', 'drain', 'kick']) $(b).disabled = !id;
  }
  $('stream').addEventListener('change', (e) => { S.stream = e.target.value; draw(); });
  $('search').addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    const id = e.target.value.trim();
    let t = S.trees.get(S.stream);
    if (!t || !t.nodes.some((m) => m.node === id)) {
      const other = [...S.trees.values()].find((x) => x.nodes.some((m) => m.node === id));
      if (!other) { show('no node ' + id + ' in any tree'); return; }
      S.stream = other.stream;
      t = other;
    }
    const by = new Map(t.nodes.map((m) => [m.node, m]));
    for (let m = by.get(id), p; m && (p = by.get(m.parent)); m = p) {
      S.expanded.add(p.node); S.collapsed.delete(p.node); S.more.add(p.node);
    }
    S.more.add('origin');
    S.found = id;
    select(id);
    draw();
    const el = document.querySelector('g.node[data-node="' + CSS.escape(id) + '"]');
    if (el) el.scrollIntoView({ block: 'center', inline: 'center' });
  });
  async function post(path, what) {
    try {
      const r = await fetch(path, { method: 'POST', headers: headers({ Accept: 'application/json' }) });
      if (!r.ok) throw await httpError(r);
      show(what + ': done ' + JSON.stringify(await r.json()), true);
    } catch (e) { show(what + ': ' + e.message); }
  }
  for (const action of ['reconnect', 'drain', 'kick']) {
    $(action).addEventListener('click', () => {
      if (S.selected) post('/api/v1/' + action + '?node=' + encodeURIComponent(S.selected), action + ' ' + S.selected);
    });
  }
  $('setpolicy').addEventListener('click', () => post('/api/v1/policy?recovery=' + encodeURIComponent($('policy').value), 'policy'));
  get('/api/v1/policy').then(({ body }) => { $('policy').value = body.recovery; }).catch(() => {});
  start();
})();
