/** Upper bounds (ms) of the histogram's buckets; the last bucket takes everything above. */
export const DURATION_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000] as const;

/** A duration histogram: counts per bucket (cumulative, as Prometheus shows them) and extremes. */
export interface DurationHistogram {
  readonly count: number;
  readonly sumMs: number;
  readonly maxMs: number;
  /** `le` → how many samples took at most that long; `+Inf` holds every sample. */
  readonly buckets: Readonly<Record<string, number>>;
}

/** A histogram that records samples and reads as a {@link DurationHistogram}. */
export function durationHistogram() {
  const counts = new Array<number>(DURATION_BUCKETS_MS.length + 1).fill(0);
  let count = 0;
  let sumMs = 0;
  let maxMs = 0;
  return {
    observe(ms: number): void {
      const index = DURATION_BUCKETS_MS.findIndex((bound) => ms <= bound);
      const slot = index === -1 ? DURATION_BUCKETS_MS.length : index;
      counts[slot] = (counts[slot] ?? 0) + 1;
      count += 1;
      sumMs += ms;
      maxMs = Math.max(maxMs, ms);
    },
    read(): DurationHistogram {
      const buckets: Record<string, number> = {};
      let running = 0;
      DURATION_BUCKETS_MS.forEach((bound, i) => {
        running += counts[i] ?? 0;
        buckets[String(bound)] = running;
      });
      buckets['+Inf'] = count;
      return { count, sumMs, maxMs, buckets };
    },
  };
}
