import { describe, expect, it } from 'vitest';
import { formatReport } from '../../src/ops/guarantees.ts';
import type { GuaranteeResult } from '../../src/ops/guarantees.ts';

const ok: GuaranteeResult = {
  guarantee: 5,
  title: "each aggregate's versions run 1..n with no gaps",
  status: 'ok',
  checked: '12 aggregates',
  violations: [],
  violationCount: 0,
};

describe("check's report", () => {
  it('is a table a row per guarantee, ending in "zero violations" when nothing is violated', () => {
    const report = formatReport([ok]).split('\n');
    expect(report[0]).toMatch(/^# +guarantee +status +checked +violations +example$/);
    expect(report[1]).toMatch(/^5 +each aggregate's versions run 1\.\.n with no gaps +ok +12 aggregates +0$/);
    expect(report.at(-1)).toBe('zero violations');
  });

  it('names a violated guarantee, its count, an example in the table and every sample below it', () => {
    const examples = Array.from({ length: 3 }, (_, i) => ({
      order_id: `order-${i}`,
      problem: 'two terminal events, the second one after the first',
    }));
    const violated: GuaranteeResult = {
      guarantee: 1,
      title: 'every accepted order reaches exactly one terminal event, nothing follows it',
      status: 'violated',
      checked: '40 orders',
      violations: examples,
      violationCount: 17,
      detail: 'the first ten of 17 shown',
    };
    const report = formatReport([violated, ok]);
    const rows = report.split('\n');
    expect(rows[1]).toMatch(/^1 +every accepted order .* +FAIL +40 orders +17 +\{"order_id":"order-0",/);
    expect(rows[1]?.endsWith('…')).toBe(true);
    for (const e of examples) expect(report).toContain(`   ${JSON.stringify(e)}`);
    expect(report).toContain('1. the first ten of 17 shown');
    expect(rows.at(-1)).toBe('1 guarantee(s) violated, 17 violation(s): 1');
  });
});
