/**
 * The order page (`/ui/orders/:id`): the saga as a statechart, the timeline of the order's and
 * the position's events, the notifications sent, and, for an admin key, retry and cancel.
 *
 * Live by polling GET /orders/:id/saga once a second while the saga runs: one request reading the
 * order's two short streams by their index; the rest is fetched again only when an event was
 * added. Polling stops once the saga has ended and its notifications are in.
 */
import { ApiError, api, currentKey, setKey } from './common.js';
import { drawStatechart, leafIds, walkHistory } from './statechart.js';

const POLL_MS = 1000;
/** How long after the end the page keeps looking for the notifications (sent after the end). */
const NOTIFICATIONS_WAIT_MS = 15_000;

const $ = (id) => document.getElementById(id);
const orderId = decodeURIComponent(location.pathname.split('/').filter(Boolean).at(-1) ?? '');

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    if (key === 'class') node.className = value;
    else node.setAttribute(key, String(value));
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

const clock = (iso) => {
  const time = new Date(iso);
  return `${time.toLocaleTimeString([], { hour12: false })}.${String(time.getMilliseconds()).padStart(3, '0')}`;
};

function untilText(iso, now = Date.now()) {
  const ms = Date.parse(iso) - now;
  const seconds = Math.round(Math.abs(ms) / 1000);
  return ms >= 0 ? `in ${seconds} s` : `${seconds} s ago`;
}

const leafName = (value) => (typeof value === 'string' ? value : leafName(Object.values(value)[0]));

const state = {
  view: undefined,
  order: undefined,
  events: [],
  notifications: [],
  eventCount: -1,
  finishedAt: undefined,
  /** Whether the key reaches the admin API: undefined until asked, after the first load. */
  admin: undefined,
  timer: undefined,
  /** Counts poll() calls: only the latest one schedules the next poll. */
  generation: 0,
};

// ---- the summary ----

function renderSummary() {
  const { view, order } = state;
  const facts = [
    ['Status', element('span', { class: `status ${order.status}`, id: 'status' }, order.status)],
    ['User', order.user_id],
    [
      'Swap',
      `${order.from_amount} ${order.from_currency} → ${order.to_amount ?? order.quoted_to_amount ?? '?'} ${order.to_currency}`,
    ],
    [
      `Price (${order.to_currency} per ${order.from_currency})`,
      order.executed_price ?? order.quoted_price ?? '—',
    ],
    ['Saga state', element('span', { id: 'saga-state' }, leafName(view.state))],
    [
      'Pending step',
      element('span', { id: 'pending-step' }, view.pending_step ?? 'none: the saga has ended'),
    ],
    [
      'Deadline',
      element(
        'span',
        { id: 'deadline', title: 'acceptance + SAGA_DEADLINE_MS' },
        view.status === 'running'
          ? `${clock(view.deadline)} (${untilText(view.deadline)})`
          : `${clock(view.deadline)} (saga ended ${Date.parse(order.updated_at) <= Date.parse(view.deadline) ? 'before it' : 'after it'})`,
      ),
    ],
    ['Accepted', clock(view.accepted_at)],
  ];
  if (order.tx_hash) facts.push(['Transaction', element('code', {}, order.tx_hash)]);
  $('summary').replaceChildren(
    ...facts.flatMap(([term, value]) => [element('dt', {}, term), element('dd', {}, value)]),
  );

  const failed = state.events.findLast((e) => e.event_type === 'OrderFailed');
  const failure = $('failure');
  failure.hidden = !failed;
  if (failed) {
    const { reason, failed_step: step, detail } = failed.data;
    failure.replaceChildren(
      element('strong', {}, 'Failed: '),
      element('span', { id: 'failure-reason' }, reason),
      ` at step ${step}`,
      detail ? element('span', { class: 'detail' }, ` — ${detail}`) : undefined,
    );
  }
}

// ---- the timeline and the notifications ----

function renderEvents() {
  const open = new Set([...document.querySelectorAll('#events details[open]')].map((d) => d.dataset.eventId));
  const items = [...state.events]
    .sort((a, b) => a.recorded_at.localeCompare(b.recorded_at) || a.stream_rank - b.stream_rank)
    .map((event) => {
      const details = element(
        'details',
        { 'data-event-id': event.event_id },
        element(
          'summary',
          {},
          element('time', { datetime: event.recorded_at }, clock(event.recorded_at)),
          element('span', { class: `stream ${event.stream}` }, event.stream),
          element('span', { class: 'type' }, event.event_type),
          element('span', { class: 'version' }, `v${event.version}`),
        ),
        element('pre', {}, JSON.stringify({ data: event.data, metadata: event.metadata }, null, 2)),
      );
      if (open.has(event.event_id)) details.open = true;
      return element('li', { 'data-stream': event.stream, 'data-type': event.event_type }, details);
    });
  $('events').replaceChildren(...items);
}

function renderNotifications() {
  const list = state.notifications;
  $('notifications-empty').hidden = list.length > 0;
  $('notifications').replaceChildren(
    ...list.map((n) =>
      element(
        'li',
        { 'data-channel': n.channel, 'data-status': n.status },
        element(
          'div',
          { class: 'notification-head' },
          element('strong', {}, n.channel),
          element('span', { class: `badge ${n.status}` }, n.status),
          n.recipient ? element('span', { class: 'muted' }, `to ${n.recipient}`) : undefined,
          element('time', { datetime: n.sent_at ?? n.created_at }, clock(n.sent_at ?? n.created_at)),
        ),
        element('p', { class: 'notification-text' }, n.text),
        n.error ? element('p', { class: 'muted' }, n.error) : undefined,
      ),
    ),
  );
}

// ---- the statechart ----

async function renderChart() {
  const { view } = state;
  const failed = state.events.find((e) => e.event_type === 'OrderFailed');
  const walked = walkHistory(view.machine, view.events, failed?.data.reason);
  const current = new Set(leafIds(view.machine.id, view.state));
  $('machine-version').textContent = `machine v${view.saga_version}`;
  try {
    await drawStatechart($('statechart'), view.machine, { ...walked, current });
  } catch (error) {
    console.error(error);
    // The rest of the page stands without the chart.
    $('statechart').replaceChildren(
      element('p', { class: 'problem' }, `The statechart could not be drawn: ${error.message}`),
    );
  }
}

// ---- loading and polling ----

/** Both streams' events with their data; the position's once it exists. */
async function loadEvents(view) {
  const { events: orderEvents } = await api(`/orders/${orderId}/events`);
  const hasPosition = view.events.some((e) => e.stream === 'position');
  const positionEvents = hasPosition ? (await api(`/positions/${view.position_id}/events`)).events : [];
  return [
    ...orderEvents.map((e) => ({ ...e, stream: 'order', stream_rank: 0 })),
    ...positionEvents.map((e) => ({ ...e, stream: 'position', stream_rank: 1 })),
  ];
}

function showProblem(error) {
  const problem = $('load-problem');
  const refused = error instanceof ApiError && (error.status === 401 || error.status === 403);
  // Without a key, or with one that may not see this order: ask for (another) key.
  $('key-form').hidden = !refused;
  $('key-problem').hidden = !(refused && currentKey());
  $('key-problem').textContent = refused && currentKey() ? error.message : '';
  problem.hidden = refused;
  if (refused) return;
  problem.textContent =
    error instanceof ApiError && error.status === 404
      ? `There is no order with id ${orderId}.`
      : `Could not load the order: ${error.message}`;
}

async function refresh() {
  const view = await api(`/orders/${orderId}/saga`);
  const changed = view.events.length !== state.eventCount;
  state.view = view;
  if (changed) {
    const [order, events] = await Promise.all([api(`/orders/${orderId}`), loadEvents(view)]);
    state.order = order;
    state.events = events;
    state.eventCount = view.events.length;
  }
  const finished = view.status === 'finished';
  if (finished) state.finishedAt ??= Date.now();
  if (finished && state.notifications.length === 0) {
    state.notifications = (await api(`/orders/${orderId}/notifications`)).notifications;
    renderNotifications();
  }
  $('key-form').hidden = true;
  $('load-problem').hidden = true;
  $('order').hidden = false;
  renderSummary();
  if (changed) {
    renderEvents();
    await renderChart();
  }
  const done =
    finished && (state.notifications.length > 0 || Date.now() - state.finishedAt > NOTIFICATIONS_WAIT_MS);
  $('live').textContent = done ? 'ended' : `live · every ${POLL_MS / 1000} s`;
  $('live').className = done ? 'live ended' : 'live running';
  document.body.dataset.loaded = done ? 'final' : 'live';
  return done;
}

/** Loads now and goes on every POLL_MS until the end; a newer call takes over from an older one. */
function poll() {
  clearTimeout(state.timer);
  const generation = ++state.generation;
  const next = () => {
    if (generation === state.generation) state.timer = setTimeout(poll, POLL_MS);
  };
  refresh().then(
    (done) => {
      if (state.admin === undefined) void detectAdmin();
      if (!done) next();
    },
    (error) => {
      showProblem(error);
      // A dropped connection or a restart: keep trying; a missing key or order waits for the user.
      if (!(error instanceof ApiError) || error.status >= 500) next();
    },
  );
}

// ---- admin: retry and cancel ----

const ACTIONS = {
  retry: {
    title: 'Retry the pending step?',
    consequence: () =>
      `The saga runs its pending step (${state.view?.pending_step ?? 'none'}) now, as the sweeper would: ` +
      'the swap is sent only under its idempotency key, and past the deadline the saga compensates ' +
      '(or asks the venue to void a swap in doubt) instead.',
    go: 'Retry now',
    reason: false,
  },
  cancel: {
    title: 'Cancel this order?',
    consequence: () =>
      'The order will fail with reason cancelled; a swap already sent is voided first; if the venue ' +
      'executed it, the order completes instead.',
    go: 'Cancel the order',
    reason: true,
  },
};

let pendingAction;

function openConfirm(name) {
  const action = ACTIONS[name];
  pendingAction = name;
  $('confirm-title').textContent = action.title;
  $('confirm-consequence').textContent = action.consequence();
  $('reason-field').hidden = !action.reason;
  $('cancel-reason').value = '';
  $('confirm-go').textContent = action.go;
  $('confirm-problem').hidden = true;
  $('confirm').showModal();
}

function showResult(text, kind) {
  const result = $('admin-result');
  result.hidden = false;
  result.className = `admin-result ${kind}`;
  result.textContent = text;
}

async function runAction(event) {
  event.preventDefault();
  const name = pendingAction;
  const init = { method: 'POST' };
  if (name === 'cancel') {
    const reason = $('cancel-reason').value.trim();
    if (!reason) {
      $('confirm-problem').hidden = false;
      $('confirm-problem').textContent = 'Give a reason: it is stored with the failure.';
      return;
    }
    init.headers = { 'content-type': 'application/json' };
    init.body = JSON.stringify({ reason });
  }
  $('confirm').close();
  showResult(`${name === 'cancel' ? 'Cancelling' : 'Retrying'}…`, 'working');
  try {
    const outcome = await api(`/admin/sagas/${orderId}/${name}`, init);
    showResult(`${name}: ${outcome.outcome}${outcome.detail ? ` — ${outcome.detail}` : ''}`, 'ok');
  } catch (error) {
    const title = error instanceof ApiError && error.problem?.title ? `${error.problem.title}: ` : '';
    showResult(`${name} refused: ${title}${error.message}`, 'refused');
  }
  state.eventCount = -1;
  state.finishedAt = undefined;
  poll();
}

/** Admin keys (and the open API) reach /admin; a user's key gets 403 and sees no actions. */
async function detectAdmin() {
  state.admin = false;
  try {
    await api(`/admin/sagas/${orderId}`);
    state.admin = true;
  } catch {
    state.admin = false;
  }
  $('admin').hidden = !state.admin;
}

function start() {
  $('order-id').textContent = orderId;
  document.title = `Order ${orderId.slice(0, 8)} · market-order-saga`;
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    setKey($('key-input').value.trim());
    state.admin = undefined;
    poll();
  });
  $('retry').addEventListener('click', () => openConfirm('retry'));
  $('cancel').addEventListener('click', () => openConfirm('cancel'));
  $('confirm-back').addEventListener('click', () => $('confirm').close());
  $('confirm-form').addEventListener('submit', (event) => void runAction(event));
  // On a narrow screen the chart is shrunk to fit; a click shows it at its own size (scrolling).
  $('statechart').addEventListener('click', () => $('statechart').classList.toggle('zoomed'));
  poll();
}

start();
