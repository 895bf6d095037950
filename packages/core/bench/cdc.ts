/**
 * The CDC benchmark's pure parts, shared by both lines' `bench/cdc.ts`: its
 * options and results, the mix of 3 tables of 10 columns of varied types (SQL
 * text), the backlog's statements, the quantiles, and the Markdown section
 * with its verdicts against issue 24's targets. Each line's `bench/cdc.ts`
 * keeps the servers, the CDC service and the clock. Not shipped.
 */
import { median } from "./stats.js"

/** What a run does. */
export interface CdcBenchOptions {
  /** Changes in the backlog each target catches up on, per round; default 30 000. */
  readonly changes: number
  /** Length of each lag window; default 5 s. */
  readonly seconds: number
  /** Source transactions per second during the lag window; default 1 000. */
  readonly rate: number
  /** Interleaved rounds (each target once per round); default 5. */
  readonly rounds?: number | undefined
  /**
   * Catch-ups per target before round 1 that are not recorded (the JIT and
   * the targets' caches warming, as the main harness's system warm-up);
   * default 1. Each recorded round's rate is listed in order all the same.
   */
  readonly warmupRounds?: number | undefined
  /**
   * Seconds from the rule's start (the load starting with it) before a lag
   * window opens; default 2. What the stream catches up on while it starts is
   * reported apart, as the warm-up's largest lag.
   */
  readonly warmup?: number | undefined
}

/** One target's catch-up in one round. */
export interface Throughput {
  readonly target: "PostgreSQL" | "SQLite"
  readonly changes: number
  readonly transactions: number
  readonly millis: number
  readonly changesPerSecond: number
}

/** One target's lag window in one round. */
export interface Lag {
  readonly target: "PostgreSQL" | "SQLite"
  /** The largest lag sampled during the warm-up before the window (NaN: none sampled). */
  readonly warmupMax: number
  readonly samples: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
  readonly transactions: number
  /** Source transactions per second actually written during the window. */
  readonly achievedRate: number
}

/** A whole run. */
export interface CdcBenchResult {
  readonly options: CdcBenchOptions
  /** Every round's catch-up, target by target in round order. */
  readonly throughput: ReadonlyArray<Throughput>
  readonly lag: ReadonlyArray<Lag>
}

/** Changes per backlog transaction: a third in each table. */
export const perTransaction = 99
export const mixTables = ["mix_a", "mix_b", "mix_c"] as const

/** 10 columns of varied types. */
const mixColumns = `id int8 PRIMARY KEY, qty int4 NOT NULL, name text, price numeric(12,2), at timestamptz,
  active boolean, meta jsonb, ref uuid, score float8, day date`

/** The values of row `g` (an SQL expression over `g`), `v` making an update differ. */
export const mixValues = (v: string) =>
  `g, (g % 1000) + ${v}, md5(g::text), ((g % 100000) / 100.0)::numeric(12,2), timestamptz '2026-01-01' + g * interval '1 second',
   g % 2 = 0, jsonb_build_object('g', g, 'v', ${v}, 'tags', jsonb_build_array('x', g)), md5(g::text)::uuid, g * 0.5,
   date '2026-01-01' + (g % 365)::int`

/** The mix's tables, suffixed: `CREATE TABLE` statements. */
export const createMixStatements = (suffix: string): ReadonlyArray<string> =>
  mixTables.map((table) => `CREATE TABLE ${table}_${suffix} (${mixColumns})`)

/** The mix's tables, suffixed: `DROP TABLE IF EXISTS` statements. */
export const dropMixStatements = (suffix: string): ReadonlyArray<string> =>
  mixTables.map((table) => `DROP TABLE IF EXISTS ${table}_${suffix}`)

/**
 * About `count` changes in transactions of 99, a third in each table: inserts
 * of new rows, and one transaction in four updating rows written before; one
 * `DO` block per transaction.
 */
export function* backlogStatements(suffix: string, count: number): Generator<string> {
  const share = perTransaction / mixTables.length
  let inserted = 0
  for (let done = 0, i = 0; done < count; done += perTransaction, i++) {
    const update = i % 4 === 3 && inserted >= share
    const parts = mixTables.map((table) => {
      const name = `${table}_${suffix}`
      if (update) {
        const first = 1 + ((i * share) % (inserted - share + 1))
        return `UPDATE ${name} SET qty = qty + 1, meta = meta || '{"u": 1}', score = score + 1 WHERE id BETWEEN ${first} AND ${first + share - 1}`
      }
      return `INSERT INTO ${name} SELECT ${mixValues("0")} FROM generate_series(${inserted + 1}, ${inserted + share}) g`
    })
    if (!update) inserted += share
    yield `DO $$ BEGIN ${parts.join("; ")}; END $$`
  }
}

/** The `q` quantile of ascending `sorted` (NaN when empty). */
export const quantile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

const fmt = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–"

/** Issue 24's catch-up targets, in changes per second. */
export const catchUpTargets: Readonly<Record<Throughput["target"], number>> = { PostgreSQL: 20_000, SQLite: 50_000 }

/**
 * Per target: rounds, median and min–max changes/s, each round's rate in
 * round order, and whether the whole range clears the target.
 */
export const summarizeThroughput = (result: CdcBenchResult) =>
  (["PostgreSQL", "SQLite"] as const).map((target) => {
    const rates = result.throughput.filter((t) => t.target === target).map((t) => t.changesPerSecond)
    const min = Math.min(...rates)
    return {
      target,
      rounds: rates.length,
      median: median(rates),
      min,
      max: Math.max(...rates),
      inOrder: rates,
      met: min >= catchUpTargets[target]
    }
  })

/** `48,123` → `48.1k`. */
const thousands = (n: number) => `${(n / 1000).toFixed(1)}k`

/** Issue 24's lag target: p99 in milliseconds. */
export const lagTarget = 50

/**
 * Per target, over its rounds' lag windows: the median written rate, the
 * median p50, the p99's median and range, the largest lag in any window and
 * in any warm-up, and whether every round's p99 clears the target.
 */
export const summarizeLag = (result: CdcBenchResult) =>
  (["PostgreSQL", "SQLite"] as const).flatMap((target) => {
    const windows = result.lag.filter((l) => l.target === target)
    if (windows.length === 0) return []
    const p99s = windows.map((l) => l.p99)
    const finite = (values: ReadonlyArray<number>) => values.filter(Number.isFinite)
    return [{
      target,
      rounds: windows.length,
      achievedRate: median(windows.map((l) => l.achievedRate)),
      p50: median(windows.map((l) => l.p50)),
      p99: median(p99s),
      p99Min: Math.min(...p99s),
      p99Max: Math.max(...p99s),
      max: Math.max(...finite(windows.map((l) => l.max))),
      warmupMax: Math.max(...finite(windows.map((l) => l.warmupMax))),
      met: p99s.every((p) => p <= lagTarget)
    }]
  })

/** The Markdown section for BENCHMARKS.md. */
export const renderCdc = (result: CdcBenchResult): string =>
  [
    "## Change data capture",
    "",
    `Backlog of about ${fmt(result.options.changes)} changes (transactions of ${perTransaction}: a third in each of 3 tables of`,
    "10 columns: int8, int4, text, numeric, timestamptz, boolean, jsonb, uuid, float8, date; one transaction in four updates)",
    `applied by one \`sync\`, ${result.options.rounds ?? 5} interleaved rounds after ${
      result.options.warmupRounds ?? 1
    } unrecorded warm-up catch-up(s) per target; source and targets on the same machine. Then end-to-end lag`,
    `(source commit to target commit, \`stats.applyLagMillis\` sampled every 10 ms) while ${result.options.rate} single-row transactions per`,
    `second are written, ${result.options.rounds ?? 5} interleaved rounds: the rule and the load start together, and after a warm-up of`,
    `${result.options.warmup ?? 2} s (the stream starting while transactions arrive; its largest lag is shown apart) a window of`,
    `${result.options.seconds} s is sampled.`,
    "",
    "| target | rounds | changes/s median | min–max | rounds in order | issue 24 target | met (whole range) |",
    "|---|---:|---:|---:|---|---:|---|",
    ...summarizeThroughput(result).map((s) =>
      `| ${s.target} | ${s.rounds} | ${fmt(s.median)} | ${fmt(s.min)}–${fmt(s.max)} | ${s.inOrder.map(thousands).join(", ")} | ${
        fmt(catchUpTargets[s.target])
      } | ${s.met ? "yes" : "no"} |`
    ),
    "",
    "| target | rounds | written tx/s (median) | lag p50 (ms, median) | p99 (ms) median | p99 min–max | max (ms) | warm-up max (ms) | p99 <= 50 ms (whole range) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ...summarizeLag(result).map((l) =>
      `| ${l.target} | ${l.rounds} | ${fmt(l.achievedRate)} | ${fmt(l.p50)} | ${fmt(l.p99)} | ${fmt(l.p99Min)}–${fmt(l.p99Max)} | ${fmt(l.max)} | ${
        fmt(l.warmupMax)
      } | ${l.met ? "yes" : "no"} |`
    ),
    ""
  ].join("\n")
