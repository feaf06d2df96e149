/**
 * The saga's statechart: the machine graph of GET /orders/:id/saga (`machine`), laid out by elkjs
 * (window.ELK, from /ui/vendor/elk.bundled.js) and drawn here as inline SVG, with where the
 * saga's stored events took it.
 *
 * A graph node is { id, key, type, initial, children, edges: [{ source, target, label: { text } }] }.
 */

const SVG = 'http://www.w3.org/2000/svg';

/** The compensation path's states (by key): they and the transitions into them get their own colour. */
const COMPENSATION = new Set(['compensating', 'failed']);

/** Failure reasons that come from the deadline (or a cancel) rather than from a failed step. */
const DEADLINE_REASONS = new Set(['deadline_exceeded', 'cancelled']);

const LABEL_FONT_PX = 11;
const STATE_FONT_PX = 13;

/** The graph's nodes by id, and each node's parent. */
function indexGraph(root) {
  const nodes = new Map();
  const parent = new Map();
  const visit = (node, up) => {
    nodes.set(node.id, node);
    if (up) parent.set(node.id, up.id);
    for (const child of node.children) visit(child, node);
  };
  visit(root, null);
  return { nodes, parent };
}

/** A state value (`'completed'`, `{ executingSwap: 'awaitingOutcome' }`) as the ids of its leaves. */
export function leafIds(rootId, value) {
  if (typeof value === 'string') return [`${rootId}.${value}`];
  return Object.entries(value).flatMap(([key, inner]) => leafIds(`${rootId}.${key}`, inner));
}

const edgeKey = (edge) => `${edge.source}>${edge.target}`;

/**
 * Replays the stored events over the graph as the machine takes them: the states visited and the
 * transitions taken. Step outcomes are not stored (StepFailed, DeadlinePassed): an OrderFailed met
 * outside `compensating` went through it, by the transition its reason names, as the live saga did.
 *
 * @param root the machine graph
 * @param events the stored events of both streams, in the order they were stored ({ event_type })
 * @param failureReason the reason of the order's OrderFailed, if it failed
 */
export function walkHistory(root, events, failureReason) {
  const { nodes, parent } = indexGraph(root);
  const visited = new Set();
  const taken = new Set();
  const enter = (id) => {
    let node = nodes.get(id);
    while (node && node.type === 'compound' && node.initial) node = nodes.get(node.initial);
    for (let up = node?.id; up && up !== root.id; up = parent.get(up)) visited.add(up);
    return node?.id;
  };
  // The innermost state's transition for the event, as XState picks it.
  const transitionFor = (from, type) => {
    for (let id = from; id && id !== root.id; id = parent.get(id)) {
      const edge = nodes.get(id)?.edges.find((e) => e.label.text === type);
      if (edge) return edge;
    }
    return undefined;
  };
  const take = (edge) => {
    taken.add(edgeKey(edge));
    return enter(edge.target);
  };

  let current = enter(root.initial);
  for (const { event_type: type } of events) {
    if (current === undefined) break;
    if (type === 'OrderFailed' && nodes.get(current)?.key !== 'compensating') {
      const via = DEADLINE_REASONS.has(failureReason) ? 'DeadlinePassed' : 'StepFailed';
      const [step] = [via, 'StepFailed', 'DeadlinePassed']
        .map((candidate) => transitionFor(current, candidate))
        .filter((edge) => edge && nodes.get(edge.target)?.key === 'compensating');
      if (step) current = take(step);
    }
    const edge = transitionFor(current, type);
    if (edge) current = take(edge);
  }
  return { visited, taken, current };
}

/** Every transition of the graph but the root's own (events taken in any state), one per source and target. */
function transitionsOf(root) {
  const grouped = new Map();
  const visit = (node) => {
    if (node.id !== root.id) {
      for (const edge of node.edges) {
        const key = edgeKey(edge);
        const group = grouped.get(key) ?? { source: edge.source, target: edge.target, events: [] };
        group.events.push(edge.label.text);
        grouped.set(key, group);
      }
    }
    for (const child of node.children) visit(child);
  };
  visit(root);
  return [...grouped.values()];
}

/** The nearest state containing both ends: where elk wants a transition declared. */
function containerOf(parent, rootId, source, target) {
  const above = new Set();
  for (let id = parent.get(source); id; id = parent.get(id)) above.add(id);
  for (let id = parent.get(target); id; id = parent.get(id)) if (above.has(id)) return id;
  return rootId;
}

function svg(name, attributes = {}, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** Measures text as the page will draw it (the stylesheet's fonts), in an off-screen SVG. */
function textMeasurer() {
  const scratch = svg('svg', { class: 'measure', width: 0, height: 0, 'aria-hidden': 'true' });
  document.body.append(scratch);
  return {
    width(text, className) {
      const node = svg('text', { class: className }, text);
      scratch.append(node);
      const width = node.getComputedTextLength();
      node.remove();
      return Math.ceil(width);
    },
    done: () => scratch.remove(),
  };
}

/** The machine as an elk graph: states as nodes (compound ones with their children), transitions with their labels. */
function elkGraph(root, measure) {
  const { parent } = indexGraph(root);
  const byId = new Map();
  const toElk = (node) => {
    const labelWidth = measure.width(node.key, 'state-label');
    const elkNode = {
      id: node.id,
      labels: [{ text: node.key, width: labelWidth, height: STATE_FONT_PX + 4 }],
      children: node.children.map(toElk),
      edges: [],
    };
    if (node.children.length > 0) {
      elkNode.layoutOptions = {
        'elk.padding': '[top=30,left=14,bottom=14,right=14]',
        'elk.nodeLabels.placement': '[H_LEFT, V_TOP, INSIDE]',
      };
    } else {
      elkNode.width = Math.max(96, labelWidth + 28);
      elkNode.height = 36;
    }
    byId.set(node.id, elkNode);
    return elkNode;
  };
  const graph = toElk(root);
  graph.layoutOptions = {
    'elk.algorithm': 'layered',
    'elk.direction': 'DOWN',
    'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
    'elk.edgeRouting': 'ORTHOGONAL',
    'elk.edgeLabels.placement': 'CENTER',
    'elk.layered.spacing.nodeNodeBetweenLayers': '36',
    'elk.layered.spacing.edgeNodeBetweenLayers': '14',
    'elk.spacing.nodeNode': '28',
    'elk.spacing.edgeLabel': '3',
    'elk.padding': '[top=12,left=12,bottom=12,right=12]',
  };
  for (const transition of transitionsOf(root)) {
    const text = transition.events.join(' / ');
    const container = containerOf(parent, root.id, transition.source, transition.target);
    byId.get(container).edges.push({
      id: edgeKey(transition),
      sources: [transition.source],
      targets: [transition.target],
      labels: [{ text, width: measure.width(text, 'transition-label'), height: LABEL_FONT_PX + 3 }],
      events: transition.events,
    });
  }
  return graph;
}

/** Each laid-out node's absolute position, and the nodes by id. */
function absolute(laidOut) {
  const at = new Map();
  const walk = (node, dx, dy) => {
    const x = dx + (node.x ?? 0);
    const y = dy + (node.y ?? 0);
    at.set(node.id, { node, x, y });
    for (const child of node.children ?? []) walk(child, x, y);
  };
  walk(laidOut, 0, 0);
  return at;
}

function edgesOf(laidOut) {
  const all = [];
  const walk = (node) => {
    for (const edge of node.edges ?? []) all.push({ edge, declaredIn: node.id });
    for (const child of node.children ?? []) walk(child);
  };
  walk(laidOut);
  return all;
}

/**
 * Lays the machine out and draws it into `host` (replacing what was there).
 *
 * @param host the element to draw into
 * @param root the machine graph
 * @param marks { current: Set of leaf ids, visited: Set of ids, taken: Set of "source>target" }
 */
export async function drawStatechart(host, root, marks) {
  const measure = textMeasurer();
  let laidOut;
  try {
    laidOut = await new window.ELK().layout(elkGraph(root, measure));
  } finally {
    measure.done();
  }
  const { nodes } = indexGraph(root);
  const at = absolute(laidOut);
  const width = Math.ceil(laidOut.width ?? 0);
  const height = Math.ceil(laidOut.height ?? 0);
  const drawing = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    class: 'statechart-svg',
  });
  const defs = svg('defs');
  for (const kind of ['plain', 'taken', 'compensation', 'compensation-taken']) {
    const marker = svg('marker', {
      id: `arrow-${kind}`,
      viewBox: '0 0 10 10',
      refX: 9,
      refY: 5,
      markerWidth: 7,
      markerHeight: 7,
      orient: 'auto-start-reverse',
      class: `arrow ${kind}`,
    });
    marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z' }));
    defs.append(marker);
  }
  drawing.append(defs);

  const states = svg('g', { class: 'states' });
  for (const [id, { node, x, y }] of at) {
    if (id === root.id) continue;
    const state = nodes.get(id);
    const classes = ['state', state.type];
    if (COMPENSATION.has(state.key)) classes.push('compensation');
    if (marks.visited.has(id)) classes.push('visited');
    if (marks.current.has(id)) classes.push('current');
    const group = svg('g', { class: classes.join(' '), 'data-state': state.key });
    group.append(svg('rect', { x, y, width: node.width, height: node.height, rx: 8 }));
    if (state.type === 'final') {
      group.append(
        svg('rect', {
          class: 'inner',
          x: x + 3,
          y: y + 3,
          width: node.width - 6,
          height: node.height - 6,
          rx: 6,
        }),
      );
    }
    const compound = state.children.length > 0;
    group.append(
      svg(
        'text',
        compound
          ? { class: 'state-label', x: x + 12, y: y + 19 }
          : {
              class: 'state-label',
              x: x + node.width / 2,
              y: y + node.height / 2 + 4.5,
              'text-anchor': 'middle',
            },
        state.key,
      ),
    );
    if (marks.current.has(id)) group.append(svg('title', {}, `${state.key}: the current state`));
    states.append(group);
  }

  const transitions = svg('g', { class: 'transitions' });
  for (const { edge, declaredIn } of edgesOf(laidOut)) {
    // elk gives an edge's points relative to its container (elkjs names it).
    const origin = at.get(edge.container ?? declaredIn) ?? { x: 0, y: 0 };
    const target = nodes.get(edge.targets[0]);
    const compensation = COMPENSATION.has(target?.key);
    const isTaken = marks.taken.has(edge.id);
    const kind = compensation ? `compensation${isTaken ? '-taken' : ''}` : isTaken ? 'taken' : 'plain';
    const classes = ['transition'];
    if (compensation) classes.push('compensation');
    if (isTaken) classes.push('taken');
    const group = svg('g', { class: classes.join(' '), 'data-transition': edge.id });
    for (const section of edge.sections ?? []) {
      const points = [section.startPoint, ...(section.bendPoints ?? []), section.endPoint];
      const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'} ${origin.x + p.x} ${origin.y + p.y}`).join(' ');
      group.append(svg('path', { d, 'marker-end': `url(#arrow-${kind})` }));
    }
    for (const label of edge.labels ?? []) {
      const lx = origin.x + (label.x ?? 0);
      const ly = origin.y + (label.y ?? 0);
      group.append(
        svg('rect', {
          class: 'label-bg',
          x: lx - 2,
          y: ly - 1,
          width: label.width + 4,
          height: label.height + 2,
          rx: 3,
        }),
      );
      group.append(svg('text', { class: 'transition-label', x: lx, y: ly + LABEL_FONT_PX }, label.text));
    }
    group.append(svg('title', {}, `${edge.events.join(' or ')}${isTaken ? ' (taken)' : ''}`));
    transitions.append(group);
  }
  // States under transitions: a transition's label stays readable where it crosses a compound state.
  drawing.append(states, transitions);
  host.replaceChildren(drawing);
}
