// kitenats dashboard: polls the admin HTTP's /api endpoints and draws what
// they say. No framework, no network beyond this server. Data is always
// written with textContent, never parsed as HTML.
'use strict';

(function () {
  const POLL_MS = 2000;          // /api/stat
  const TX_POLL_MS = 5000;       // /api/tx
  const WINDOW_MS = 10 * 60e3;   // what the charts keep and show
  const DLQ_PAGE = 20;

  const samples = [];            // {t, c: counters, groups: Map(key → {pending, inflight, dead})}
  let selected = null;           // group key charted alone, or null: every group
  let dlq = null;                // {topic, group, offset}
  let polls = 0;

  const $ = (id) => document.getElementById(id);
  const key = (topic, group) => topic + '\u0000' + group;

  // api fetches one /api endpoint as JSON. Every request carries the header
  // the server asks of actions (a cross-site form cannot set it).
  async function api(path, body) {
    const init = { credentials: 'same-origin', headers: { 'X-Kitenats': '1' } };
    if (body !== undefined) {
      init.method = 'POST';
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    const text = await r.text();
    if (!r.ok) throw new Error(path.split('?')[0] + ': ' + r.status + ' ' + text.trim());
    return JSON.parse(text);
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function num(n) { return Number(n).toLocaleString('en-US'); }

  function rateText(v) {
    if (v === null || !isFinite(v)) return '';
    return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + '/s';
  }

  function ago(sec) {
    sec = Math.max(0, Math.round(sec));
    if (sec < 120) return sec + ' s';
    if (sec < 7200) return Math.round(sec / 60) + ' min';
    if (sec < 172800) return (sec / 3600).toFixed(1) + ' h';
    return (sec / 86400).toFixed(1) + ' d';
  }

  function clock(unix) {
    return new Date(unix * 1000).toLocaleString('en-GB', { hour12: false });
  }

  function setStatus(text, bad) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('error', !!bad);
    document.body.dataset.error = bad ? text : '';
  }

  // rate is the per-second change of counter f over the newest samples
  // spanning about span ms (null with fewer than two).
  function rate(f, span) {
    if (samples.length < 2) return null;
    const last = samples[samples.length - 1];
    let i = samples.length - 2;
    while (i > 0 && last.t - samples[i].t < span) i--;
    const first = samples[i];
    const dt = (last.t - first.t) / 1000;
    return dt > 0 ? Math.max(0, f(last) - f(first)) / dt : null;
  }

  // --- stat ---------------------------------------------------------------

  async function pollStat() {
    let st;
    try {
      st = await api('/api/stat');
    } catch (e) {
      setStatus(e.message, true);
      return;
    }
    const groups = new Map();
    const sum = { pending: 0, inflight: 0, dead: 0 };
    for (const g of st.groups || []) {
      groups.set(key(g.topic, g.groupId), { pending: g.pending, inflight: g.inflight, dead: g.dead });
      sum.pending += g.pending; sum.inflight += g.inflight; sum.dead += g.dead;
    }
    const now = Date.now();
    samples.push({ t: now, c: Object.assign({}, st, sum), groups });
    while (samples.length > 2 && now - samples[0].t > WINDOW_MS) samples.shift();

    $('broker').textContent = st.broker || '';
    for (const name of ['published', 'delivered', 'acked', 'nacked', 'redelivered', 'timeouts',
      'prepares', 'unmatched', 'refused', 'dropped', 'writeQueue']) {
      $('c-' + name).textContent = num(st[name] || 0);
    }
    for (const name of ['pending', 'inflight', 'dead']) $('c-' + name).textContent = num(sum[name]);
    for (const name of ['published', 'delivered', 'acked', 'nacked']) {
      $('r-' + name).textContent = rateText(rate((s) => s.c[name] || 0, 10e3));
    }
    renderGroups(st.groups || []);
    renderConsumers(st.consumers || []);
    renderTopics(st.topics || []);
    drawCharts();
    polls++;
    document.body.dataset.polls = String(polls);
    setStatus('updated ' + new Date(now).toLocaleTimeString('en-GB', { hour12: false }));
  }

  function emptyRow(tbody, cols, text) {
    const tr = el('tr');
    const td = el('td', text, 'empty');
    td.colSpan = cols;
    tr.append(td);
    tbody.append(tr);
  }

  function renderGroups(groups) {
    const tbody = $('groups').tBodies[0];
    tbody.replaceChildren();
    if (groups.length === 0) emptyRow(tbody, 7, 'no group has messages yet');
    for (const g of groups) {
      const k = key(g.topic, g.groupId);
      const tr = el('tr', null, 'selectable' + (k === selected ? ' selected' : ''));
      tr.dataset.topic = g.topic;
      tr.dataset.group = g.groupId;
      // The change of pending over the last minute: negative while the
      // group drains its backlog.
      let delta = '';
      if (samples.length > 1) {
        const last = samples[samples.length - 1];
        let i = samples.length - 2;
        while (i > 0 && last.t - samples[i].t < 60e3) i--;
        const first = samples[i];
        const dt = (last.t - first.t) / 1000;
        const p0 = (first.groups.get(k) || { pending: 0 }).pending;
        if (dt > 0) delta = ((g.pending - p0) / dt).toFixed(1);
      }
      tr.append(el('td', g.topic), el('td', g.groupId), el('td', num(g.pending), 'num pending'),
        el('td', num(g.inflight), 'num inflight'), el('td', num(g.dead), 'num dead'), el('td', delta, 'num delta'));
      const act = el('td');
      const b = el('button', 'dead letters', 'show-dlq');
      b.type = 'button';
      b.disabled = g.dead === 0;
      b.addEventListener('click', (ev) => { ev.stopPropagation(); openDLQ(g.topic, g.groupId); });
      act.append(b);
      tr.append(act);
      tr.addEventListener('click', () => select(k, g.groupId + ' on ' + g.topic));
      tbody.append(tr);
    }
  }

  function select(k, label) {
    selected = k;
    $('backlog-of').textContent = k === null ? 'every group' : label;
    $('backlog-all').hidden = k === null;
    for (const tr of $('groups').tBodies[0].rows) {
      tr.classList.toggle('selected', k !== null && key(tr.dataset.topic || '', tr.dataset.group || '') === k);
    }
    drawCharts();
  }

  function bar(pct, text, done) {
    const b = el('div', null, 'bar');
    const f = el('div', null, 'fill' + (done ? ' done' : ''));
    f.style.width = Math.max(0, Math.min(100, pct)) + '%';
    b.append(f, el('span', text, 'text'));
    return b;
  }

  function renderConsumers(consumers) {
    const tbody = $('consumers').tBodies[0];
    tbody.replaceChildren();
    if (consumers.length === 0) emptyRow(tbody, 6, 'no live consumer');
    const now = Date.now() / 1000;
    for (const c of consumers) {
      const tr = el('tr');
      tr.dataset.id = c.id;
      const pct = c.warmupPct === undefined ? 100 : c.warmupPct;
      const warm = c.warmingupSec > 0 && pct < 100
        ? pct + ' % of ' + ago(c.warmingupSec) + (c.joined ? ', ' + ago(c.joined + c.warmingupSec - now) + ' left' : '')
        : (c.warmingupSec > 0 ? 'warm (' + ago(c.warmingupSec) + ')' : 'no warmup');
      const warmTd = el('td');
      warmTd.className = 'warmup';
      warmTd.dataset.pct = String(pct);
      warmTd.append(bar(pct, warm, pct >= 100));
      const inflTd = el('td');
      inflTd.className = 'inflight';
      inflTd.dataset.n = String(c.inflight);
      inflTd.append(bar(c.maxInflight > 0 ? 100 * c.inflight / c.maxInflight : 0, c.inflight + ' / ' + c.maxInflight, false));
      tr.append(el('td', c.id, 'mono'), el('td', c.groupId), el('td', c.conn || '', 'num'), inflTd, warmTd,
        el('td', c.joined ? clock(c.joined) : ''));
      tbody.append(tr);
    }
  }

  function renderTopics(topics) {
    const tbody = $('topics').tBodies[0];
    tbody.replaceChildren();
    if (topics.length === 0) emptyRow(tbody, 4, 'no topic has messages yet');
    for (const t of topics) {
      const tr = el('tr');
      tr.dataset.topic = t.topic;
      tr.append(el('td', t.topic), el('td', num(t.messages), 'num messages'), el('td', num(t.prepared), 'num prepared'),
        el('td', num(t.unmatched), 'num unmatched'));
      tbody.append(tr);
    }
  }

  // --- charts -------------------------------------------------------------

  const RATE_SERIES = [
    { name: 'published', color: '#2563eb' },
    { name: 'delivered', color: '#16a34a' },
    { name: 'acked', color: '#9333ea' },
    { name: 'nacked', color: '#dc2626' },
  ];
  const BACKLOG_SERIES = [
    { name: 'pending', color: '#2563eb' },
    { name: 'inflight', color: '#f59e0b' },
    { name: 'dead', color: '#dc2626' },
  ];

  function legend(id, series) {
    const box = $(id);
    if (box.childElementCount) return;
    for (const s of series) {
      const i = el('i');
      i.style.background = s.color;
      const span = el('span');
      span.append(i, document.createTextNode(s.name));
      box.append(span);
    }
  }

  function drawCharts() {
    legend('legend-rates', RATE_SERIES);
    legend('legend-backlog', BACKLOG_SERIES);
    const rates = RATE_SERIES.map((s) => {
      const pts = [];
      for (let i = 1; i < samples.length; i++) {
        const a = samples[i - 1], b = samples[i];
        const dt = (b.t - a.t) / 1000;
        if (dt > 0) pts.push([b.t, Math.max(0, (b.c[s.name] || 0) - (a.c[s.name] || 0)) / dt]);
      }
      return Object.assign({ pts }, s);
    });
    const backlog = BACKLOG_SERIES.map((s) => ({
      name: s.name, color: s.color,
      pts: samples.map((x) => [x.t, selected === null ? x.c[s.name] : (x.groups.get(selected) || {})[s.name] || 0]),
    }));
    draw($('chart-rates'), rates);
    draw($('chart-backlog'), backlog);
  }

  // draw plots series of [time ms, value] points over the last WINDOW_MS.
  function draw(canvas, series) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const padL = 48, padR = 8, padT = 8, padB = 20;
    const now = Date.now(), t0 = now - WINDOW_MS;
    let max = 0;
    for (const s of series) for (const [, v] of s.pts) max = Math.max(max, v);
    max = niceMax(max);
    const x = (t) => padL + (w - padL - padR) * (t - t0) / WINDOW_MS;
    const y = (v) => h - padB - (h - padT - padB) * v / max;
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = '#6b7280';
    g.strokeStyle = '#e3e6ec';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = max * i / 4, yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(padL, yy); g.lineTo(w - padR, yy); g.stroke();
      g.fillText(short(v), padL - 4, yy);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (let m = 10; m >= 0; m -= 2) {
      const xx = x(now - m * 60e3);
      g.fillText(m === 0 ? 'now' : '-' + m + ' min', Math.min(Math.max(xx, padL + 12), w - padR - 12), h - padB + 4);
    }
    g.lineWidth = 1.5;
    for (const s of series) {
      g.strokeStyle = s.color;
      g.beginPath();
      let started = false;
      for (const [t, v] of s.pts) {
        if (t < t0) continue;
        if (started) g.lineTo(x(t), y(v)); else { g.moveTo(x(t), y(v)); started = true; }
      }
      g.stroke();
      // The newest point, so that a series of one sample shows too.
      const last = s.pts[s.pts.length - 1];
      if (last && last[0] >= t0) {
        g.fillStyle = s.color;
        g.beginPath();
        g.arc(x(last[0]), y(last[1]), 2.5, 0, 2 * Math.PI);
        g.fill();
      }
    }
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function short(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
    return v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1);
  }

  // --- prepared transactions ---------------------------------------------

  async function pollTx() {
    let page;
    try {
      page = await api('/api/tx?limit=50');
    } catch (e) {
      const note = $('tx-note');
      note.hidden = false;
      note.textContent = e.message;
      return;
    }
    $('tx-note').hidden = true;
    $('tx-total').textContent = num(page.total);
    const tbody = $('tx').tBodies[0];
    tbody.replaceChildren();
    if (page.items.length === 0) emptyRow(tbody, 7, 'no prepared message');
    const now = Date.now() / 1000;
    for (const tx of page.items) {
      const tr = el('tr');
      tr.dataset.id = tx.id;
      tr.append(el('td', tx.topic), el('td', tx.id, 'mono'), el('td', tx.messageType), el('td', tx.groupId),
        el('td', ago(tx.ageSeconds), 'num age'), el('td', tx.checks, 'num checks'),
        el('td', tx.nextCheck ? (tx.nextCheck > now ? 'in ' + ago(tx.nextCheck - now) : 'due') : ''));
      tbody.append(tr);
    }
    if (page.total > page.items.length) emptyRow(tbody, 7, (page.total - page.items.length) + ' more (kitenats tx lists them all)');
  }

  // --- dead letters --------------------------------------------------------

  function openDLQ(topic, group) {
    dlq = { topic, group, offset: 0 };
    $('dlq').hidden = false;
    loadDLQ();
  }

  async function loadDLQ(message) {
    if (!dlq) return;
    const q = new URLSearchParams({ topic: dlq.topic, group: dlq.group, offset: dlq.offset, limit: DLQ_PAGE });
    let page;
    try {
      page = await api('/api/dlq?' + q);
    } catch (e) {
      setStatus(e.message, true);
      return;
    }
    if (page.items.length === 0 && dlq.offset > 0 && page.total > 0) {
      dlq.offset = Math.max(0, page.total - DLQ_PAGE);
      return loadDLQ(message);
    }
    $('dlq-topic').textContent = dlq.topic;
    $('dlq-group').textContent = dlq.group;
    $('dlq-total').textContent = num(page.total);
    $('dlq-range').textContent = page.total === 0 ? '' : (dlq.offset + 1) + '–' + (dlq.offset + page.items.length) + ' of ' + num(page.total);
    $('dlq-prev').disabled = dlq.offset === 0;
    $('dlq-next').disabled = dlq.offset + page.items.length >= page.total;
    const tbody = $('dlq-table').tBodies[0];
    tbody.replaceChildren();
    if (page.items.length === 0) emptyRow(tbody, 7, 'no dead letter');
    for (const d of page.items) tbody.append(deadRow(d));
    if (message) setStatus(message);
  }

  function deadRow(d) {
    const tr = el('tr');
    tr.dataset.id = d.id;
    const body = el('td');
    const p = d.preview;
    body.append(el('span', p.encoding + (p.truncated ? ', first bytes' : ''), 'kind'),
      el('pre', p.data + (p.truncated ? ' …' : ''), 'preview'));
    const props = d.properties ? Object.entries(d.properties).map(([k, v]) => k + '=' + v).join(' ') : '';
    if (props) body.append(el('div', props, 'hint'));
    const act = el('td');
    const replay = el('button', 'replay', 'replay');
    replay.type = 'button';
    replay.addEventListener('click', () => act1(replay, 'replay', d, 'replayed ' + d.id));
    const del = el('button', 'delete', 'danger delete');
    del.type = 'button';
    del.addEventListener('click', () => {
      // Two clicks: the first arms the button.
      if (del.dataset.armed !== '1') { del.dataset.armed = '1'; del.textContent = 'confirm delete'; return; }
      act1(del, 'delete', d, 'deleted ' + d.id);
    });
    act.append(replay, document.createTextNode(' '), del);
    tr.append(el('td', d.id, 'mono'), el('td', d.messageType), el('td', d.reason), el('td', clock(d.at)),
      el('td', num(d.size), 'num'), body, act);
    return tr;
  }

  async function act1(button, what, d, done) {
    button.disabled = true;
    try {
      await api('/api/dlq/' + what, { topic: d.topic, id: d.id, groupId: d.groupId });
    } catch (e) {
      button.disabled = false;
      setStatus(e.message, true);
      return;
    }
    await loadDLQ(done);
    pollStat();
  }

  function init() {
    $('backlog-all').addEventListener('click', () => select(null));
    $('dlq-close').addEventListener('click', () => { dlq = null; $('dlq').hidden = true; });
    $('dlq-prev').addEventListener('click', () => { dlq.offset = Math.max(0, dlq.offset - DLQ_PAGE); loadDLQ(); });
    $('dlq-next').addEventListener('click', () => { dlq.offset += DLQ_PAGE; loadDLQ(); });
    window.addEventListener('resize', drawCharts);
    pollStat();
    pollTx();
    setInterval(pollStat, POLL_MS);
    setInterval(pollTx, TX_POLL_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
