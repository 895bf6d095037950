/**
 * CDC benchmark: changes per second applied to a PostgreSQL and to a SQLite
 * target, and end-to-end lag (source commit to target commit) under a steady
 * write load.
 *
 *   npx tsx bench/cdc.ts [--changes N] [--seconds S] [--rate TX_PER_S] [--rounds R]
 *
 * Prints a Markdown section on stdout (`renderCdc`), for BENCHMARKS.md.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { performance } from "node:perf_hooks"
import { pathToFileURL } from "node:url"
import Pg from "pg"
import * as Cdc from "#lib/Cdc.js"
import * as PgCluster from "#lib/testing/PgCluster.js"

export interface CdcBenchOptions {
  /** Changes in the backlog each target catches up on, per round; default 30 000. */
  readonly changes: number
  /** Length of each lag window; default 5 s. */
  readonly seconds: number
  /** Source transactions per second during the lag window; default 1 000. */
  readonly rate: number
  /** Interleaved rounds (each target once per round); default 5. */
  readonly rounds?: number | undefined
}

export interface Throughput {
  readonly target: "PostgreSQL" | "SQLite"
  readonly changes: number
  readonly transactions: number
  readonly millis: number
  readonly changesPerSecond: number
}

export interface Lag {
  readonly target: "PostgreSQL" | "SQLite"
  readonly samples: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
  readonly transactions: number
  /** Source transactions per second actually written during the window. */
  readonly achievedRate: number
}

export interface CdcBenchResult {
  readonly options: CdcBenchOptions
  /** Every round's catch-up, target by target in round order. */
  readonly throughput: ReadonlyArray<Throughput>
  readonly lag: ReadonlyArray<Lag>
}

/** Changes per backlog transaction: a third in each table. */
const perTransaction = 99
const mixTables = ["mix_a", "mix_b", "mix_c"] as const

/** 10 columns of varied types. */
const mixColumns = `id int8 PRIMARY KEY, qty int4 NOT NULL, name text, price numeric(12,2), at timestamptz,
  active boolean, meta jsonb, ref uuid, score float8, day date`

/** The values of row `g` (an SQL expression over `g`), `v` making an update differ. */
const mixValues = (v: string) =>
  `g, (g % 1000) + ${v}, md5(g::text), ((g % 100000) / 100.0)::numeric(12,2), timestamptz '2026-01-01' + g * interval '1 second',
   g % 2 = 0, jsonb_build_object('g', g, 'v', ${v}, 'tags', jsonb_build_array('x', g)), md5(g::text)::uuid, g * 0.5,
   date '2026-01-01' + (g % 365)::int`

const createMix = (client: Pg.Client, suffix: string) =>
  Effect.promise(async () => {
    for (const table of mixTables) await client.query(`CREATE TABLE ${table}_${suffix} (${mixColumns})`)
  })

const dropMix = (client: Pg.Client, suffix: string) =>
  Effect.promise(async () => {
    for (const table of mixTables) await client.query(`DROP TABLE IF EXISTS ${table}_${suffix}`)
  })

/**
 * About `count` changes in transactions of 99, a third in each table: inserts
 * of new rows, and one transaction in four updating rows written before.
 */
const backlog = (client: Pg.Client, suffix: string, count: number) =>
  Effect.promise(async () => {
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
      await client.query(`DO $$ BEGIN ${parts.join("; ")}; END $$`)
    }
  })

const quantile = (sorted: ReadonlyArray<number>, q: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

export const runCdcBench = (options: CdcBenchOptions) =>
  Effect.gen(function*() {
    const source = yield* PgCluster.make({ replicas: 0, walLevel: "logical" })
    const target = yield* PgCluster.make({ replicas: 0 })
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "cdc-bench-"))),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const targets: ReadonlyArray<readonly [Throughput["target"], SqlClient.SqlClient]> = [
      ["PostgreSQL", yield* PgClient.make({ url: target.primary.url })],
      ["SQLite", yield* SqliteClient.make({ filename: Path.join(dir, "bench.db") })]
    ]
    const connectWriter = Effect.acquireRelease(
      Effect.promise(async () => {
        const client = new Pg.Client({ connectionString: Redacted.value(source.primary.url) })
        await client.connect()
        return client
      }),
      (client) => Effect.promise(() => client.end())
    )
    const writer = yield* connectWriter
    const cdc = yield* Cdc.make({
      primary: source.primary.url,
      targets: Object.fromEntries(targets.map(([name, client]) => [name, Cdc.sqlTarget(client)]))
    })
    const tablesOf = (suffix: string) => mixTables.map((t) => `${t}_${suffix}`)
    const dropTarget = (client: SqlClient.SqlClient, suffix: string) =>
      Effect.forEach(tablesOf(suffix), (t) => Effect.orDie(client.unsafe(`DROP TABLE IF EXISTS "${t}"`)), { discard: true })

    const throughput: Array<Throughput> = []
    const rounds = options.rounds ?? 5
    for (let round = 0; round < rounds; round++) {
      for (const [name, client] of targets) {
        const suffix = `t${round}_${name === "SQLite" ? "lite" : "pg"}`
        yield* createMix(writer, suffix)
        yield* cdc.addRule({ name: `tput_${suffix}`, tables: tablesOf(suffix), target: name, snapshot: false })
        yield* cdc.sync(`tput_${suffix}`) // creates the slot: the backlog below is all in the stream
        yield* backlog(writer, suffix, options.changes)
        const started = performance.now()
        const result = yield* cdc.sync(`tput_${suffix}`)
        const millis = performance.now() - started
        throughput.push({
          target: name,
          changes: result.changes,
          transactions: result.transactions,
          millis,
          changesPerSecond: result.changes / (millis / 1000)
        })
        yield* cdc.removeRule(`tput_${suffix}`)
        yield* dropMix(writer, suffix)
        yield* dropTarget(client, suffix)
      }
    }

    // Lag: single-row transactions (one table of the mix each, in turn) from
    // 4 writers, each paced to a quarter of the rate.
    const lag: Array<Lag> = []
    const writers = [writer, yield* connectWriter, yield* connectWriter, yield* connectWriter]
    for (const [name, client] of targets) {
      const suffix = `lag_${name === "SQLite" ? "lite" : "pg"}`
      const rule = `lag_${suffix}`
      yield* createMix(writer, suffix)
      yield* cdc.addRule({ name: rule, tables: tablesOf(suffix), target: name })
      yield* cdc.sync(rule)
      const running = yield* cdc.run(rule)
      let id = 0
      let written = 0
      const every = Math.max(1, Math.round((1000 * writers.length) / options.rate))
      const load = yield* Effect.fork(Effect.forEach(writers, (w) =>
        Effect.suspend(() => {
          const g = ++id
          return Effect.promise(() =>
            w.query(`INSERT INTO ${mixTables[g % 3]}_${suffix} SELECT ${mixValues("0")} FROM (SELECT ${g}::int8 AS g) s`)
          ).pipe(Effect.tap(() => written++))
        }).pipe(Effect.repeat(Schedule.fixed(`${every} millis`))), { concurrency: "unbounded", discard: true }))
      const samples: Array<number> = []
      let last = 0
      const windowStart = performance.now()
      const writtenAtStart = written
      yield* Effect.gen(function*() {
        const stats = yield* cdc.stats(rule)
        // One sample per look that saw newly applied transactions: an idle target repeats the last value.
        if (stats.transactionsApplied > last && stats.applyLagMillis !== undefined) samples.push(stats.applyLagMillis)
        last = stats.transactionsApplied
      }).pipe(Effect.repeat(Schedule.spaced("10 millis")), Effect.timeout(`${options.seconds} seconds`), Effect.ignore)
      const achievedRate = (written - writtenAtStart) / ((performance.now() - windowStart) / 1000)
      yield* Fiber.interrupt(load)
      yield* Fiber.interrupt(running)
      const sorted = samples.slice().sort((a, b) => a - b)
      lag.push({
        target: name,
        samples: sorted.length,
        p50: quantile(sorted, 0.5),
        p95: quantile(sorted, 0.95),
        p99: quantile(sorted, 0.99),
        max: sorted.at(-1) ?? Number.NaN,
        transactions: last,
        achievedRate
      })
      yield* cdc.removeRule(rule)
      yield* dropMix(writer, suffix)
      yield* dropTarget(client, suffix)
    }
    return { options, throughput, lag } satisfies CdcBenchResult
  }).pipe(Effect.provide(Reactivity.layer), Effect.scoped)

const fmt = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–"

const median = (values: ReadonlyArray<number>) => {
  const sorted = values.slice().sort((a, b) => a - b)
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor((sorted.length - 1) / 2)]!
}

/** Issue 24's catch-up targets, in changes per second. */
export const catchUpTargets: Readonly<Record<Throughput["target"], number>> = { PostgreSQL: 20_000, SQLite: 50_000 }

/** Per target: rounds, median and min–max changes/s, and whether the whole range clears the target. */
export const summarizeThroughput = (result: CdcBenchResult) =>
  (["PostgreSQL", "SQLite"] as const).map((target) => {
    const rates = result.throughput.filter((t) => t.target === target).map((t) => t.changesPerSecond)
    const min = Math.min(...rates)
    return { target, rounds: rates.length, median: median(rates), min, max: Math.max(...rates), met: min >= catchUpTargets[target] }
  })

/** The Markdown section for BENCHMARKS.md. */
export const renderCdc = (result: CdcBenchResult): string =>
  [
    "## Change data capture",
    "",
    `Backlog of about ${fmt(result.options.changes)} changes (transactions of ${perTransaction}: a third in each of 3 tables of`,
    "10 columns: int8, int4, text, numeric, timestamptz, boolean, jsonb, uuid, float8, date; one transaction in four updates)",
    `applied by one \`sync\`, ${result.options.rounds ?? 5} interleaved rounds; source and targets on the same machine. Then end-to-end lag`,
    `(source commit to target commit, \`stats.applyLagMillis\` sampled every 10 ms) while ${result.options.rate} single-row transactions per`,
    `second are written for ${result.options.seconds} s.`,
    "",
    "| target | rounds | changes/s median | min–max | issue 24 target | met (whole range) |",
    "|---|---:|---:|---:|---:|---|",
    ...summarizeThroughput(result).map((s) =>
      `| ${s.target} | ${s.rounds} | ${fmt(s.median)} | ${fmt(s.min)}–${fmt(s.max)} | ${fmt(catchUpTargets[s.target])} | ${s.met ? "yes" : "no"} |`
    ),
    "",
    "| target | written tx/s | transactions applied | lag p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | p99 <= 50 ms |",
    "|---|---:|---:|---:|---:|---:|---:|---|",
    ...result.lag.map((l) =>
      `| ${l.target} | ${fmt(l.achievedRate)} | ${fmt(l.transactions)} | ${fmt(l.p50)} | ${fmt(l.p95)} | ${fmt(l.p99)} | ${fmt(l.max)} | ${l.p99 <= 50 ? "yes" : "no"} |`
    ),
    ""
  ].join("\n")

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (flag: string, fallback: number) => {
    const at = process.argv.indexOf(flag)
    return at > 0 ? Number(process.argv[at + 1]) : fallback
  }
  const options = {
    changes: arg("--changes", 30_000),
    seconds: arg("--seconds", 5),
    rate: arg("--rate", 1_000),
    rounds: arg("--rounds", 5)
  }
  Effect.runPromise(runCdcBench(options)).then(
    (result) => console.log(renderCdc(result)),
    (error) => {
      console.error(String(error))
      process.exitCode = 1
    }
  )
}
