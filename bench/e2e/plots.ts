/**
 * The report's plots as SVG: Vega-Lite specifications compiled to Vega and rendered headless
 * (`View.toSVG()` with the `none` renderer needs no canvas and no native module).
 */
import { parse, View } from 'vega';
import { compile } from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
/** A plot of a few thousand points stays readable (and the SVG small): every n-th point is kept. */
const MAX_POINTS = 4000;

function thin<T>(points: readonly T[]): readonly T[] {
  const every = Math.ceil(points.length / MAX_POINTS);
  return every <= 1 ? points : points.filter((_, i) => i % every === 0);
}

export interface LatencySeries {
  readonly mode: string;
  readonly points: readonly { readonly seconds: number; readonly ms: number }[];
  readonly windows: readonly { readonly seconds: number; readonly p99: number }[];
}

/** Accept → terminal of each order by its acceptance time, with the p99 of each 1-s window; a row per mode. */
export function latencyOverTime(title: string, series: readonly LatencySeries[]): TopLevelSpec {
  const points = series.flatMap((s) => thin(s.points).map((p) => ({ mode: s.mode, ...p, kind: 'order' })));
  const windows = series.flatMap((s) =>
    s.windows.map((w) => ({ mode: s.mode, seconds: w.seconds + 0.5, ms: w.p99 })),
  );
  const x = { field: 'seconds', type: 'quantitative', title: 'seconds since the first acceptance' } as const;
  const y = { field: 'ms', type: 'quantitative', title: 'accept → terminal (ms)' } as const;
  return {
    $schema: SCHEMA,
    title,
    data: { values: [...points, ...windows.map((w) => ({ ...w, kind: 'p99 of 1-s window' }))] },
    facet: { row: { field: 'mode', type: 'nominal', title: null } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 640,
      height: 160,
      layer: [
        {
          transform: [{ filter: "datum.kind === 'order'" }],
          mark: { type: 'circle', size: 6, opacity: 0.35, color: '#4c78a8' },
          encoding: { x, y },
        },
        {
          transform: [{ filter: "datum.kind !== 'order'" }],
          mark: { type: 'line', color: '#e45756', strokeWidth: 1.5, point: { size: 10, color: '#e45756' } },
          encoding: { x, y },
        },
      ],
    },
  };
}

export interface OfferedPoint {
  readonly mode: string;
  readonly offered: number;
  readonly completed: number;
  readonly p99: number;
}

/** Completed/s and p99 against the offered rate (open loop), the closed loop's maximum as a rule. */
export function throughputVsOffered(
  title: string,
  points: readonly OfferedPoint[],
  closed: readonly { readonly mode: string; readonly completed: number }[],
): TopLevelSpec {
  const color = { field: 'mode', type: 'nominal', title: 'mode' } as const;
  const offered = { field: 'offered', type: 'quantitative', title: 'offered orders/s (open loop)' } as const;
  const top = Math.max(...points.map((p) => p.offered), 1);
  return {
    $schema: SCHEMA,
    title,
    vconcat: [
      {
        width: 560,
        height: 260,
        layer: [
          {
            data: { values: [{ a: 0 }, { a: top }] },
            mark: { type: 'line', color: '#bbb', strokeDash: [2, 2] },
            encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'a', type: 'quantitative' } },
          },
          {
            data: { values: [...closed] },
            mark: { type: 'rule', strokeDash: [6, 3] },
            encoding: { y: { field: 'completed', type: 'quantitative' }, color },
          },
          {
            data: { values: [...points] },
            mark: { type: 'line', point: true },
            encoding: {
              x: offered,
              y: {
                field: 'completed',
                type: 'quantitative',
                title: 'completed orders/s (dashed: closed loop)',
              },
              color,
            },
          },
        ],
      },
      {
        width: 560,
        height: 200,
        data: { values: [...points] },
        mark: { type: 'line', point: true },
        encoding: {
          x: offered,
          y: {
            field: 'p99',
            type: 'quantitative',
            title: 'p99 accept → terminal (ms)',
            scale: { type: 'log' },
          },
          color,
        },
      },
    ],
  };
}

/** Resident memory of each process over a soak; a row per mode. */
export function memoryOverTime(
  title: string,
  series: readonly {
    readonly mode: string;
    readonly seconds: number;
    readonly name: string;
    readonly mb: number;
  }[],
): TopLevelSpec {
  return {
    $schema: SCHEMA,
    title,
    data: { values: series.map((s) => ({ ...s, minutes: Math.round((s.seconds / 60) * 1000) / 1000 })) },
    facet: { row: { field: 'mode', type: 'nominal', title: null } },
    resolve: { scale: { y: 'independent', color: 'independent' } },
    spec: {
      width: 640,
      height: 200,
      mark: { type: 'line' },
      encoding: {
        x: { field: 'minutes', type: 'quantitative', title: 'minutes' },
        y: { field: 'mb', type: 'quantitative', title: 'RSS (MB; PSS summed for groups)' },
        color: { field: 'name', type: 'nominal', title: 'process' },
      },
    },
  };
}
