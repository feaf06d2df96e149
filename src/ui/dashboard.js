// The dashboard (/ui): the newest orders a page at a time, patched live from the order feed
// (GET /ui/stream/orders: one message per 250 ms tick at most, the table redrawn at most once per
// message), counters and sparklines, and a form that places an order and shows the API's
// validation messages beside the fields.

import { api, ApiError, askForKey, age, currentKey, el, openStream, setKey, whoami } from './common.js';

const PAGE_SIZE = 50;
const SPARK_SECONDS = 60;
const FIELDS = ['user_id', 'from_amount', 'from_currency', 'to_currency'];
const TERMINAL = new Set(['completed', 'failed']);

const $ = (id) => document.getElementById(id);

const state = {
  who: null,
  /** The filters applied: status ('' for all) and user ('' for any). */
  status: '',
  user: '',
  /** The rows shown, newest first, and each by id. */
  rows: [],
  byId: new Map(),
  /** Cursors of the pages before this one ([] on the newest page) and of the next one. */
  previous: [],
  cursor: undefined,
  next: null,
  stream: null,
  counts: null,
  /** Orders seen finished (so each counts once in the sparkline), and the last minute by second. */
  finished: new Set(),
  buckets: [],
  renderQueued: false,
  renders: 0,
  messages: 0,
};

const onFirstPage = () => state.cursor === undefined;
const matches = (row) =>
  (state.status === '' || row.status === state.status) && (state.user === '' || row.user_id === state.user);
const newerFirst = (a, b) =>
  a.created_at === b.created_at ? (a.order_id < b.order_id ? 1 : -1) : a.created_at < b.created_at ? 1 : -1;

// ---- the list --------------------------------------------------------------------------------

function listPath(cursor) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.status) query.set('status', state.status);
  if (cursor) query.set('cursor', cursor);
  if (state.who.admin) {
    if (state.user) query.set('user', state.user);
    return `/admin/orders?${query}`;
  }
  return `/users/${encodeURIComponent(state.who.user_id)}/orders?${query}`;
}

async function loadPage(cursor) {
  const list = $('list-error');
  try {
    const page = await api(listPath(cursor));
    state.cursor = cursor;
    state.next = page.next_cursor;
    // A row the stream already brought newer than this answer keeps the stream's version.
    const held = cursor === state.cursor ? state.byId : new Map();
    state.rows = page.orders.map((row) => {
      const newer = held.get(row.order_id);
      return newer && newer.version > row.version ? newer : row;
    });
    state.byId = new Map(state.rows.map((row) => [row.order_id, row]));
    list.hidden = true;
  } catch (error) {
    list.textContent = `The orders could not be loaded: ${error.message}`;
    list.hidden = false;
  }
  scheduleRender();
}

/** Applies one order's new version: patches its row, or adds it on the newest page. */
function apply(row) {
  const held = state.byId.get(row.order_id);
  if (held) {
    if (held.version > row.version) return;
    if (!matches(row)) {
      state.byId.delete(row.order_id);
      state.rows = state.rows.filter((r) => r.order_id !== row.order_id);
      return;
    }
    state.byId.set(row.order_id, row);
    state.rows = state.rows.map((r) => (r.order_id === row.order_id ? row : r));
    return;
  }
  if (!onFirstPage() || !matches(row)) return;
  const oldest = state.rows.at(-1);
  if (state.rows.length >= PAGE_SIZE && oldest && newerFirst(row, oldest) > 0) return;
  state.rows.push(row);
  state.byId.set(row.order_id, row);
}

function applyBatch(batch) {
  state.messages += 1;
  for (const row of batch.orders) {
    apply(row);
    if (TERMINAL.has(row.status) && !state.finished.has(row.order_id)) {
      state.finished.add(row.order_id);
      record(Date.parse(row.updated_at) - Date.parse(row.created_at));
    }
  }
  if (state.finished.size > 20_000) state.finished.clear();
  state.rows.sort(newerFirst);
  if (onFirstPage() && state.rows.length > PAGE_SIZE) {
    for (const dropped of state.rows.splice(PAGE_SIZE)) state.byId.delete(dropped.order_id);
    // Rows fell off the newest page, so there is an older page now.
    state.next ??= 'more';
  }
  if (batch.counts) state.counts = batch.counts;
  if (batch.truncated) void loadPage(state.cursor);
  scheduleRender();
}

// ---- throughput and latency ------------------------------------------------------------------

function record(latencyMs) {
  const second = Math.floor(Date.now() / 1000);
  let bucket = state.buckets.at(-1);
  if (!bucket || bucket.second !== second) {
    bucket = { second, finished: 0, latency: 0 };
    state.buckets.push(bucket);
    while (state.buckets.length > SPARK_SECONDS + 1) state.buckets.shift();
  }
  bucket.finished += 1;
  bucket.latency += Math.max(0, latencyMs);
}

/** The last minute, one value per second (0 where nothing finished). */
function series(now) {
  const bySecond = new Map(state.buckets.map((b) => [b.second, b]));
  const rate = [];
  const latency = [];
  for (let s = now - SPARK_SECONDS + 1; s <= now; s += 1) {
    const b = bySecond.get(s);
    rate.push(b ? b.finished : 0);
    latency.push(b && b.finished > 0 ? b.latency / b.finished : null);
  }
  return { rate, latency };
}

/** Draws `values` (null: no point) as a polyline across the SVG's 120×30 box. */
function drawSpark(svg, values) {
  const known = values.filter((v) => v !== null);
  const max = Math.max(1, ...known);
  const step = 120 / Math.max(1, values.length - 1);
  const points = [];
  values.forEach((v, i) => {
    if (v !== null) points.push(`${(i * step).toFixed(1)},${(29 - (v / max) * 27).toFixed(1)}`);
  });
  const svgNode = (tag, attributes) => {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    return node;
  };
  const line = svgNode('polyline', { points: points.join(' '), class: 'spark-line' });
  // The newest point as a dot, so that a single value shows too.
  const last = points.at(-1)?.split(',');
  svg.replaceChildren(
    line,
    ...(last ? [svgNode('circle', { cx: last[0], cy: last[1], r: '1.5', class: 'spark-dot' })] : []),
  );
}

// ---- drawing ---------------------------------------------------------------------------------

function scheduleRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(render);
}

/**
 * A decimal string cut to 8 significant digits for the table (the full value is the cell's
 * title): string work only, no float stands between the API's digits and the page.
 */
function short(value) {
  if (value === null || value === undefined) return '–';
  const [whole, fraction = ''] = value.split('.');
  if (fraction === '') return whole;
  const significant = whole.replace(/^0+/, '').length;
  const zeros = significant > 0 ? 0 : fraction.length - fraction.replace(/^0+/, '').length;
  const kept = fraction.slice(0, Math.max(0, zeros + 8 - significant)).replace(/0+$/, '');
  return kept ? `${whole}.${kept}` : whole;
}

const amount = (value, currency) =>
  value === null || value === undefined ? '–' : `${short(value)} ${currency}`;

function rowElement(row, now) {
  const tr = el('tr');
  tr.dataset.orderId = row.order_id;
  tr.dataset.status = row.status;
  const cell = (text, className, title) => {
    const td = tr.appendChild(el('td', className, text));
    if (title) td.title = title;
    return td;
  };
  cell(age(row.created_at, now), 'age');
  const idCell = tr.appendChild(el('td', 'id'));
  const link = el('a', null, row.order_id.slice(0, 8));
  link.href = `/ui/orders/${row.order_id}`;
  link.title = row.order_id;
  idCell.appendChild(link);
  cell(row.user_id, 'user');
  const statusCell = tr.appendChild(el('td'));
  statusCell.appendChild(el('span', `status status-${row.status}`, row.status));
  const to = row.to_amount ?? row.quoted_to_amount;
  const price = row.executed_price ?? row.quoted_price;
  cell(amount(row.from_amount, row.from_currency), 'num', row.from_amount);
  cell(amount(to, row.to_currency), 'num', to);
  cell(short(price), 'num', price && `${price} ${row.to_currency}/${row.from_currency}`);
  cell(row.failure_reason ? `${row.failure_reason} (${row.failed_step})` : '', 'failure');
  return tr;
}

function render() {
  state.renderQueued = false;
  state.renders += 1;
  const now = Date.now();
  const body = $('orders').tBodies[0];
  body.replaceChildren(...state.rows.map((row) => rowElement(row, now)));
  $('empty').hidden = state.rows.length > 0;
  $('older').hidden = !state.next;
  $('newest').hidden = onFirstPage();

  const counts = state.counts;
  if (counts) {
    $('count-accepted').textContent = String(
      counts.pending + counts.processing + counts.completed + counts.failed,
    );
    $('count-open').textContent = String(counts.pending + counts.processing);
    $('count-completed').textContent = String(counts.completed);
    $('count-failed').textContent = String(counts.failed);
  }
  const { rate, latency } = series(Math.floor(now / 1000));
  drawSpark($('spark-rate'), rate);
  drawSpark($('spark-latency'), latency);
  $('rate-now').textContent = String(rate.at(-2) ?? 0);
  const lastLatency = latency
    .slice(0, -1)
    .reverse()
    .find((v) => v !== null);
  $('latency-now').textContent = lastLatency === undefined ? '' : `${Math.round(lastLatency)} ms`;
  document.body.dataset.renders = String(state.renders);
  document.body.dataset.messages = String(state.messages);
}

// ---- the live feed ---------------------------------------------------------------------------

function follow() {
  state.stream?.close();
  const query = new URLSearchParams();
  if (state.who.admin && state.user) query.set('user', state.user);
  const live = $('live');
  state.stream = openStream(`/ui/stream/orders${query.size ? `?${query}` : ''}`, {
    onMessage(event, data) {
      if (event === 'reset') void loadPage(state.cursor);
      else if (event === 'orders') applyBatch(data);
    },
    onState(s, error) {
      // Back after a dropped connection: the stream sends what was missed, and the page is
      // read again too, so that nothing depends on the catch-up alone.
      if (s === 'open' && live.dataset.state === 'reconnecting') void loadPage(state.cursor);
      live.dataset.state = s;
      live.textContent =
        s === 'open'
          ? 'live'
          : s === 'reconnecting'
            ? 'reconnecting…'
            : `stopped${error ? `: ${error.message}` : ''}`;
    },
  });
}

// ---- placing an order ------------------------------------------------------------------------

function showProblems(form, problem) {
  const unplaced = [];
  for (const { field, message } of problem?.errors ?? []) {
    const span = $(`error-${field}`);
    if (span) {
      span.textContent = message;
      form.elements[field]?.setAttribute('aria-invalid', 'true');
    } else unplaced.push(`${field} ${message}`);
  }
  const result = $('form-result');
  result.className = 'form-result error';
  result.textContent = unplaced.length > 0 ? unplaced.join('; ') : (problem?.title ?? 'Refused');
  if (!problem?.errors) result.textContent = problem?.detail ?? 'The order was refused';
}

async function placeOrder(event) {
  event.preventDefault();
  const form = event.currentTarget;
  for (const field of FIELDS) {
    $(`error-${field}`).textContent = '';
    form.elements[field].removeAttribute('aria-invalid');
  }
  const result = $('form-result');
  result.className = 'form-result';
  result.textContent = 'Placing…';
  const order = { order_type: 'market' };
  for (const field of FIELDS) order[field] = form.elements[field].value.trim();
  try {
    const accepted = await api('/orders', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': crypto.randomUUID() },
      body: JSON.stringify(order),
    });
    result.className = 'form-result ok';
    result.textContent = 'Accepted: ';
    const link = el('a', null, accepted.order_id.slice(0, 8));
    link.href = `/ui/orders/${accepted.order_id}`;
    result.appendChild(link);
    form.elements.from_amount.value = '';
  } catch (error) {
    if (error instanceof ApiError) showProblems(form, error.problem);
    else {
      result.className = 'form-result error';
      result.textContent = `Not sent: ${error.message}`;
    }
  }
}

// ---- start -----------------------------------------------------------------------------------

function showWho(who) {
  $('who').textContent = who.user_id
    ? `user ${who.user_id}`
    : who.keys_required
      ? 'admin'
      : 'open API (no keys configured)';
  $('forget-key').hidden = !currentKey();
}

async function start() {
  const main = $('main');
  let who = await whoami();
  if (!who) {
    const content = [...main.children];
    who = await askForKey(
      main,
      currentKey() ? 'The key held was refused.' : 'This service needs an API key.',
    );
    main.replaceChildren(...content);
  }
  state.who = who;
  showWho(who);
  const userInput = $('user_id');
  if (who.user_id) {
    userInput.value = who.user_id;
    userInput.readOnly = true;
    $('filter-user').value = who.user_id;
    $('filter-user').disabled = true;
  }

  $('order-form').addEventListener('submit', (event) => void placeOrder(event));
  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    state.status = $('filter-status').value;
    state.user = who.admin ? $('filter-user').value.trim() : '';
    state.previous = [];
    follow();
    void loadPage(undefined);
  });
  $('older').addEventListener('click', async () => {
    // Rows that fell off the live newest page leave no cursor: ask for the page once more.
    if (state.next === 'more') state.next = (await api(listPath(undefined))).next_cursor;
    if (!state.next) return scheduleRender();
    state.previous.push(state.cursor);
    await loadPage(state.next);
  });
  $('newest').addEventListener('click', () => {
    state.previous = [];
    void loadPage(undefined);
  });
  $('forget-key').addEventListener('click', () => {
    setKey(null);
    location.reload();
  });
  // Ages move on even when no order does.
  setInterval(scheduleRender, 1000);

  follow();
  await loadPage(undefined);
}

void start();
