import { resolveConfig } from '../../lib/core/config.js';
import type { Dimension } from '../../emulator/policies/policy.js';
import type { RunMetrics } from './metrics.js';
import { type BenchSettings, LIMITER_LABELS, type LimiterKind, type Scenario } from './scenarios.js';

/** One limiter's run on one scenario. */
export interface RunRecord {
  readonly scenario: Scenario;
  readonly limiter: LimiterKind;
  /** The module's configuration, when there are several. */
  readonly variant?: string;
  readonly metrics: RunMetrics;
  readonly runMs: number;
}

const DIMENSION_NAMES: Record<Dimension, string> = {
  requests: 'RPM',
  tokens: 'TPM',
  inputTokens: 'ITPM',
  outputTokens: 'OTPM',
};

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const ms = (x: number) => (Number.isFinite(x) ? `${Math.round(x)} ms` : '–');

/**
 * What this module can serve in the long run when it counts each charge longer than the
 * provider's window (a longer window, or a sliding window's delivery margin) or refills slower:
 * a run of two windows cannot show it, so the report states it (1 when the spans are equal).
 */
export function longRunCap(run: RunRecord): number {
  if (run.limiter !== 'module' || !run.variant) return 1;
  const config = run.scenario.moduleVariants.find((v) => v.label === run.variant)?.config;
  if (!config) return 1;
  const resolved = resolveConfig(config);
  const providerMs = run.scenario.emulator.policy.windowMs;
  const ownMs = resolved.windowMs + (resolved.algorithm === 'sliding-window' ? resolved.deliveryMarginMs : 0);
  return Math.min(1, providerMs / ownMs);
}

/** Whether a run of this module meets the target: no 429 and at least 95% of the binding limit, in the long run too. */
export function meetsTarget(run: RunRecord): boolean {
  return run.metrics.refused === 0 && Math.min(run.metrics.binding.value, longRunCap(run)) >= 0.95;
}

function labelOf(run: RunRecord): string {
  return run.limiter === 'module' && run.variant ? `${LIMITER_LABELS.module} (\`${run.variant}\`)` : LIMITER_LABELS[run.limiter];
}

export function scenarioTable(scenario: Scenario, runs: readonly RunRecord[]): string {
  const lines = [
    `### ${scenario.name}: ${scenario.title}`,
    '',
    `Limits per ${scenario.emulator.policy.windowMs / 1000} s window: ${Object.entries(scenario.limits)
      .map(([d, v]) => `${DIMENSION_NAMES[d as Dimension]} ${v.toLocaleString('en-US')}`)
      .join(', ')}.`,
    '',
    '| limiter | 429s | served, % of binding limit | other limits | p50 wait | p99 wait | worker spread | Redis µs / call | Redis cmds / call | calls served |',
    '|---|---:|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const run of runs) {
    const m = run.metrics;
    const others = Object.entries(m.utilisation)
      .filter(([d]) => d !== m.binding.dimension)
      .map(([d, v]) => `${DIMENSION_NAMES[d as Dimension]} ${pct(v)}`)
      .join(', ');
    const refused = m.refusedShare > 0.001 ? ` (refused calls counted: +${pct(m.refusedShare)})` : '';
    const cap = longRunCap(run);
    const capped = cap < 1 ? ` (long run ≤ ${pct(cap)})` : '';
    lines.push(
      `| ${labelOf(run)} | ${m.refused} | ${pct(m.binding.value)} ${DIMENSION_NAMES[m.binding.dimension]}${capped}${refused} | ${others} | ${ms(m.waitP50Ms)} | ${ms(m.waitP99Ms)} | ${
        Number.isFinite(m.workerSpread) ? `${m.workerSpread.toFixed(2)}x` : '–'
      } | ${run.limiter === 'none' ? '–' : Math.round(m.redisUsecPerCall)} | ${run.limiter === 'none' ? '–' : m.redisCommandsPerCall.toFixed(1)} | ${m.served} |`,
    );
  }
  const notes = runs.flatMap((run) => {
    const m = run.metrics;
    const out: string[] = [];
    if (m.degraded > 0) out.push(`${labelOf(run)}: ${m.degraded} calls let through with Redis unavailable`);
    if (m.failed > 0 || m.gaveUp > 0) out.push(`${labelOf(run)}: ${m.failed} calls failed, ${m.gaveUp} gave up after repeated 429s`);
    if (m.errors.length > 0) out.push(`${labelOf(run)}: first error: ${m.errors[0]}`);
    return out;
  });
  if (notes.length) lines.push('', ...notes.map((n) => `- ${n}`));
  return lines.join('\n');
}

export function targetTable(runs: readonly RunRecord[]): string {
  const lines = ['| emulator policy | configuration | 429s | served | target met |', '|---|---|---:|---:|---|'];
  for (const run of runs.filter((r) => r.limiter === 'module')) {
    const m = run.metrics;
    const cap = longRunCap(run);
    const served = `${pct(m.binding.value)} ${DIMENSION_NAMES[m.binding.dimension]}${cap < 1 ? ` (long run ≤ ${pct(cap)})` : ''}`;
    lines.push(`| ${run.scenario.name} | \`${run.variant}\` | ${m.refused} | ${served} | ${meetsTarget(run) ? 'yes' : '**no**'} |`);
  }
  return lines.join('\n');
}

export function settingsText(settings: BenchSettings): string {
  return [
    `- ${settings.workers} worker processes x ${settings.concurrency} concurrent calls, each call made as soon as the previous one of its lane ends;`,
    `- the emulated minute is ${settings.windowMs / 1000} s and each run lasts ${settings.runWindows} windows (${settings.noLimiterRunWindows} without a limiter); "served" is what the provider counted for served calls in a window, as a share of the limit, averaged over every window ending from 1.25 windows after the start to the end (the cold-start burst is left out, and bursts count the same wherever they fall); waits are those of the calls sent in that span;`,
    `- prompts log-normal (median 700 tokens, long tail to 8,000), half of them behind one of 4 shared system prompts of 1,200-3,000 tokens (prompt cache); max_tokens 256/512/1024/2048; real output 5-90% of max_tokens;`,
    `- the emulated tokenizer is within ±${settings.inputError * 100}% of the 4-characters estimate; clients reserve the estimate + ${settings.inputMargin * 100}% where the provider counts real tokens and report real usage afterwards;`,
    `- latency 150 ms + 0.3 ms per output token; a 429 is retried after \`retry-after-ms\`, at most 8 attempts.`,
  ].join('\n');
}

const COLORS: Record<LimiterKind, string> = {
  module: '#1d4ed8',
  'rate-limiter-flexible': '#d97706',
  bottleneck: '#059669',
  none: '#9ca3af',
};

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Two panels of grouped bars, one group per scenario: served share of the binding limit, and
 * 429 responses (on a log scale).
 */
export function chartSvg(groups: ReadonlyArray<{ scenario: Scenario; runs: readonly RunRecord[] }>): string {
  const barWidth = 22;
  const barGap = 4;
  const groupGap = 34;
  const left = 64;
  const panelHeight = 210;
  const top1 = 84;
  const top2 = top1 + panelHeight + 70;
  const groupWidths = groups.map((g) => g.runs.length * (barWidth + barGap) - barGap);
  const plotRight = left + groupWidths.reduce((a, b) => a + b + groupGap, 0);
  const width = plotRight + 230;
  const height = top2 + panelHeight + 64;
  const maxShare = 1.2;
  const max429 = Math.max(10, ...groups.flatMap((g) => g.runs.map((r) => r.metrics.refused)));
  const logMax = Math.log10(1 + max429);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
  );
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(
    `<text x="${left}" y="24" font-size="15" font-weight="bold">Zero 429s at near-full utilisation: this module beside the alternatives</text>`,
  );
  out.push(
    `<text x="${left}" y="44" fill="#555">Same emulated provider, same load (4 processes x 32 concurrent calls), one run per bar</text>`,
  );

  const axis = (top: number, title: string, ticks: Array<[number, string]>, y: (v: number) => number) => {
    out.push(`<text x="${left}" y="${top - 10}" font-size="12" font-weight="bold">${escape(title)}</text>`);
    for (const [v, label] of ticks) {
      const yy = y(v);
      out.push(`<line x1="${left}" y1="${yy}" x2="${plotRight}" y2="${yy}" stroke="#e5e7eb"/>`);
      out.push(`<text x="${left - 6}" y="${yy + 4}" text-anchor="end" fill="#555">${label}</text>`);
    }
    out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + panelHeight}" stroke="#111"/>`);
    out.push(`<line x1="${left}" y1="${top + panelHeight}" x2="${plotRight}" y2="${top + panelHeight}" stroke="#111"/>`);
  };
  const yShare = (v: number) => top1 + panelHeight - (Math.min(v, maxShare) / maxShare) * panelHeight;
  const y429 = (v: number) => top2 + panelHeight - (Math.log10(1 + v) / logMax) * panelHeight;
  axis(
    top1,
    'Served, % of the binding limit (measured windows)',
    [0, 0.25, 0.5, 0.75, 1, 1.2].map((v) => [v, `${Math.round(v * 100)}%`]),
    yShare,
  );
  for (const [v, dash] of [
    [1, '6 3'],
    [0.95, '2 3'],
  ] as const) {
    out.push(`<line x1="${left}" y1="${yShare(v)}" x2="${plotRight}" y2="${yShare(v)}" stroke="#dc2626" stroke-dasharray="${dash}"/>`);
  }
  out.push(`<text x="${plotRight + 6}" y="${yShare(1) - 2}" fill="#dc2626">limit</text>`);
  out.push(`<text x="${plotRight + 6}" y="${yShare(0.95) + 10}" fill="#dc2626">95% target</text>`);
  const ticks429: Array<[number, string]> = [[0, '0']];
  for (let p = 1; p <= max429 * 10; p *= 10) ticks429.push([p, String(p)]);
  axis(top2, '429 responses per run (log scale)', ticks429, y429);

  let x = left + groupGap / 2;
  groups.forEach((group, gi) => {
    const gw = groupWidths[gi];
    out.push(
      `<text x="${x + gw / 2}" y="${top1 + panelHeight + 16}" text-anchor="middle" font-weight="bold">${escape(group.scenario.name)}</text>`,
    );
    out.push(
      `<text x="${x + gw / 2}" y="${top2 + panelHeight + 16}" text-anchor="middle" font-weight="bold">${escape(group.scenario.name)}</text>`,
    );
    group.runs.forEach((run, ri) => {
      const bx = x + ri * (barWidth + barGap);
      const color = COLORS[run.limiter];
      const opacity = run.limiter === 'module' && ri > 0 ? 0.55 : 1;
      const share = run.metrics.binding.value;
      const title = `${escape(run.variant ?? LIMITER_LABELS[run.limiter])}: ${(share * 100).toFixed(1)}%, ${run.metrics.refused} x 429`;
      out.push(
        `<rect x="${bx}" y="${yShare(share)}" width="${barWidth}" height="${top1 + panelHeight - yShare(share)}" fill="${color}" fill-opacity="${opacity}"><title>${title}</title></rect>`,
      );
      out.push(
        `<text x="${bx + barWidth / 2}" y="${yShare(share) - 3}" text-anchor="middle" font-size="9">${Math.round(share * 100)}</text>`,
      );
      const n = run.metrics.refused;
      out.push(
        `<rect x="${bx}" y="${y429(n)}" width="${barWidth}" height="${top2 + panelHeight - y429(n)}" fill="${color}" fill-opacity="${opacity}"><title>${title}</title></rect>`,
      );
      out.push(
        `<text x="${bx + barWidth / 2}" y="${y429(n) - 3}" text-anchor="middle" font-size="9"${n === 0 && run.limiter === 'module' ? ' font-weight="bold"' : ''}>${n}</text>`,
      );
    });
    x += gw + groupGap;
  });

  const legend: Array<[string, string, number]> = [
    [LIMITER_LABELS.module, COLORS.module, 1],
    [`${LIMITER_LABELS.module}, 2nd config`, COLORS.module, 0.55],
    [LIMITER_LABELS['rate-limiter-flexible'], COLORS['rate-limiter-flexible'], 1],
    [LIMITER_LABELS.bottleneck, COLORS.bottleneck, 1],
    [LIMITER_LABELS.none, COLORS.none, 1],
  ];
  legend.forEach(([label, color, opacity], i) => {
    const ly = top2 + 10 + i * 18;
    out.push(`<rect x="${plotRight + 12}" y="${ly}" width="12" height="12" fill="${color}" fill-opacity="${opacity}"/>`);
    out.push(`<text x="${plotRight + 30}" y="${ly + 10}">${escape(label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
