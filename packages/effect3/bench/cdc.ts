/**
 * CDC benchmark: changes per second applied to a PostgreSQL and to a SQLite
 * target, and end-to-end lag (source commit to target commit) under a steady
 * write load.
 *
 *   npx tsx bench/cdc.ts [--changes N] [--seconds S] [--rate TX_PER_S] [--rounds R] [--warmup-rounds W] [--warmup S]
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
import * as Bench from "../../core/bench/cdc.js"
import * as Cdc from "#lib/Cdc.js"
import * as PgCluster from "#lib/testing/PgCluster.js"

const createMix = (client: Pg.Client, suffix: string) =>
  Effect.promise(async () => {
    for (const statement of Bench.createMixStatements(suffix)) await client.query(statement)
  })

const dropMix = (client: Pg.Client, suffix: string) =>
  Effect.promise(async () => {
    for (const statement of Bench.dropMixStatements(suffix)) await client.query(statement)
  })

/** The backlog (`Bench.backlogStatements`), one source transaction per statement. */
const backlog = (client: Pg.Client, suffix: string, count: number) =>
  Effect.promise(async () => {
    for (const statement of Bench.backlogStatements(suffix, count)) await client.query(statement)
  })

export { renderCdc } from "../../core/bench/cdc.js"
export type { CdcBenchOptions, CdcBenchResult } from "../../core/bench/cdc.js"

export const runCdcBench = (options: Bench.CdcBenchOptions) =>
  Effect.gen(function*() {
    const source = yield* PgCluster.make({ replicas: 0, walLevel: "logical" })
    const target = yield* PgCluster.make({ replicas: 0 })
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "cdc-bench-"))),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const targets: ReadonlyArray<readonly [Bench.Throughput["target"], SqlClient.SqlClient]> = [
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
    const tablesOf = (suffix: string) => Bench.mixTables.map((t) => `${t}_${suffix}`)
    const dropTarget = (client: SqlClient.SqlClient, suffix: string) =>
      Effect.forEach(tablesOf(suffix), (t) => Effect.orDie(client.unsafe(`DROP TABLE IF EXISTS "${t}"`)), { discard: true })

    const throughput: Array<Bench.Throughput> = []
    const rounds = options.rounds ?? 5
    // Rounds below 0 are the unrecorded warm-up catch-ups.
    for (let round = -(options.warmupRounds ?? 1); round < rounds; round++) {
      for (const [name, client] of targets) {
        const suffix = `${round < 0 ? `w${-round}` : `t${round}`}_${name === "SQLite" ? "lite" : "pg"}`
        yield* createMix(writer, suffix)
        yield* cdc.addRule({ name: `tput_${suffix}`, tables: tablesOf(suffix), target: name, snapshot: false })
        yield* cdc.sync(`tput_${suffix}`) // creates the slot: the backlog below is all in the stream
        yield* backlog(writer, suffix, options.changes)
        const started = performance.now()
        const result = yield* cdc.sync(`tput_${suffix}`)
        const millis = performance.now() - started
        if (round >= 0) {
          throughput.push({
            target: name,
            changes: result.changes,
            transactions: result.transactions,
            millis,
            changesPerSecond: result.changes / (millis / 1000)
          })
        }
        yield* cdc.removeRule(`tput_${suffix}`)
        yield* dropMix(writer, suffix)
        yield* dropTarget(client, suffix)
      }
    }

    // Lag: single-row transactions (one table of the mix each, in turn) from
    // 4 writers, each paced to a quarter of the rate.
    const lag: Array<Bench.Lag> = []
    const writers = [writer, yield* connectWriter, yield* connectWriter, yield* connectWriter]
    for (let round = 1; round <= Math.max(1, options.rounds ?? 5); round++) for (const [name, client] of targets) {
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
            w.query(`INSERT INTO ${Bench.mixTables[g % 3]}_${suffix} SELECT ${Bench.mixValues("0")} FROM (SELECT ${g}::int8 AS g) s`)
          ).pipe(Effect.tap(() => written++))
        }).pipe(Effect.repeat(Schedule.fixed(`${every} millis`))), { concurrency: "unbounded", discard: true }))
      let last = 0
      // One sample per look that saw newly applied transactions (an idle target repeats the last value), for `seconds`.
      const sample = (seconds: number, samples: Array<number>) =>
        Effect.gen(function*() {
          const stats = yield* cdc.stats(rule)
          if (stats.transactionsApplied > last && stats.applyLagMillis !== undefined) samples.push(stats.applyLagMillis)
          last = stats.transactionsApplied
        }).pipe(Effect.repeat(Schedule.spaced("10 millis")), Effect.timeout(`${seconds} seconds`), Effect.ignore)
      // The warm-up: the stream starting while transactions arrive, then catching up; reported apart.
      const warmup: Array<number> = []
      yield* sample(options.warmup ?? 2, warmup)
      const samples: Array<number> = []
      const windowStart = performance.now()
      const writtenAtStart = written
      yield* sample(options.seconds, samples)
      const achievedRate = (written - writtenAtStart) / ((performance.now() - windowStart) / 1000)
      yield* Fiber.interrupt(load)
      yield* Fiber.interrupt(running)
      const sorted = samples.slice().sort((a, b) => a - b)
      lag.push({
        target: name,
        warmupMax: warmup.length === 0 ? Number.NaN : Math.max(...warmup),
        samples: sorted.length,
        p50: Bench.quantile(sorted, 0.5),
        p95: Bench.quantile(sorted, 0.95),
        p99: Bench.quantile(sorted, 0.99),
        max: sorted.at(-1) ?? Number.NaN,
        transactions: last,
        achievedRate
      })
      yield* cdc.removeRule(rule)
      yield* dropMix(writer, suffix)
      yield* dropTarget(client, suffix)
    }
    return { options, throughput, lag } satisfies Bench.CdcBenchResult
  }).pipe(Effect.provide(Reactivity.layer), Effect.scoped)

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (flag: string, fallback: number) => {
    const at = process.argv.indexOf(flag)
    return at > 0 ? Number(process.argv[at + 1]) : fallback
  }
  const options = {
    changes: arg("--changes", 30_000),
    seconds: arg("--seconds", 5),
    rate: arg("--rate", 1_000),
    rounds: arg("--rounds", 5),
    warmupRounds: arg("--warmup-rounds", 1),
    warmup: arg("--warmup", 2)
  }
  Effect.runPromise(runCdcBench(options)).then(
    (result) => console.log(Bench.renderCdc(result)),
    (error) => {
      console.error(String(error))
      process.exitCode = 1
    }
  )
}
