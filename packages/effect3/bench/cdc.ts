/**
 * CDC benchmark: changes per second applied to a PostgreSQL and to a SQLite
 * target, and end-to-end lag (source commit to target commit) under a steady
 * write load.
 *
 *   npx tsx bench/cdc.ts [--changes N] [--seconds S] [--rate TX_PER_S]
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
  /** Changes in the backlog each target catches up on; default 20 000. */
  readonly changes: number
  /** Length of the lag measurement; default 10 s. */
  readonly seconds: number
  /** Source transactions per second during the lag measurement; default 200. */
  readonly rate: number
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
  readonly max: number
  readonly transactions: number
}

export interface CdcBenchResult {
  readonly options: CdcBenchOptions
  readonly throughput: ReadonlyArray<Throughput>
  readonly lag: ReadonlyArray<Lag>
}

const perTransaction = 100

/** `count` changes in transactions of 100: inserts, then updates of the same rows. */
const backlog = (client: Pg.Client, table: string, count: number) =>
  Effect.promise(async () => {
    for (let done = 0; done < count; done += perTransaction) {
      const n = Math.min(perTransaction, count - done)
      const round = Math.floor(done / 10_000)
      const first = (done % 10_000) + 1
      await client.query(
        round === 0
          ? `INSERT INTO ${table} SELECT g, 0, md5(g::text) FROM generate_series(${first}, ${first + n - 1}) g`
          : `UPDATE ${table} SET v = v + 1 WHERE id BETWEEN ${first} AND ${first + n - 1}`
      )
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
    const writer = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const client = new Pg.Client({ connectionString: Redacted.value(source.primary.url) })
        await client.connect()
        return client
      }),
      (client) => Effect.promise(() => client.end())
    )
    const cdc = yield* Cdc.make({
      primary: source.primary.url,
      targets: Object.fromEntries(targets.map(([name, client]) => [name, Cdc.sqlTarget(client)]))
    })

    const throughput: Array<Throughput> = []
    for (const [name] of targets) {
      const table = `tput_${name.toLowerCase()}`
      yield* Effect.promise(() => writer.query(`CREATE TABLE ${table} (id int8 PRIMARY KEY, v int NOT NULL, payload text)`))
      yield* cdc.addRule({ name: table, tables: [table], target: name, snapshot: false })
      yield* cdc.sync(table) // creates the slot: the backlog below is all in the stream
      yield* backlog(writer, table, options.changes)
      const started = performance.now()
      const result = yield* cdc.sync(table)
      const millis = performance.now() - started
      throughput.push({
        target: name,
        changes: result.changes,
        transactions: result.transactions,
        millis,
        changesPerSecond: result.changes / (millis / 1000)
      })
      yield* cdc.removeRule(table)
    }

    const lag: Array<Lag> = []
    for (const [name] of targets) {
      const table = `lag_${name.toLowerCase()}`
      yield* Effect.promise(() => writer.query(`CREATE TABLE ${table} (id int8 PRIMARY KEY, v int NOT NULL, payload text)`))
      yield* cdc.addRule({ name: table, tables: [table], target: name })
      yield* cdc.sync(table)
      const running = yield* cdc.run(table)
      let id = 0
      const load = yield* Effect.fork(
        Effect.promise(() => writer.query(`INSERT INTO ${table} VALUES (${++id}, 0, md5('${id}'))`)).pipe(
          Effect.repeat(Schedule.spaced(`${Math.max(1, Math.round(1000 / options.rate))} millis`))
        )
      )
      const samples: Array<number> = []
      let last = 0
      yield* Effect.gen(function*() {
        const stats = yield* cdc.stats(table)
        // One sample per newly applied transaction batch: an idle target repeats the last value.
        if (stats.transactionsApplied > last && stats.applyLagMillis !== undefined) samples.push(stats.applyLagMillis)
        last = stats.transactionsApplied
      }).pipe(Effect.repeat(Schedule.spaced("50 millis")), Effect.timeout(`${options.seconds} seconds`), Effect.ignore)
      yield* Fiber.interrupt(load)
      yield* Fiber.interrupt(running)
      const sorted = samples.slice().sort((a, b) => a - b)
      lag.push({ target: name, samples: sorted.length, p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), max: sorted.at(-1) ?? Number.NaN, transactions: last })
      yield* cdc.removeRule(table)
    }
    return { options, throughput, lag } satisfies CdcBenchResult
  }).pipe(Effect.provide(Reactivity.layer), Effect.scoped)

const fmt = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–"

/** The Markdown section for BENCHMARKS.md. */
export const renderCdc = (result: CdcBenchResult): string =>
  [
    "## Change data capture",
    "",
    `Backlog of ${fmt(result.options.changes)} changes (transactions of ${perTransaction}) applied by one \`sync\`, `,
    "source and targets on the same machine; then end-to-end lag (source commit to target commit, from",
    `\`stats.applyLagMillis\`) while ${result.options.rate} single-row transactions per second are written for ${result.options.seconds} s.`,
    "",
    "| target | changes | transactions | time (ms) | changes/s |",
    "|---|---:|---:|---:|---:|",
    ...result.throughput.map((t) => `| ${t.target} | ${fmt(t.changes)} | ${fmt(t.transactions)} | ${fmt(t.millis)} | ${fmt(t.changesPerSecond)} |`),
    "",
    "| target | transactions applied | lag p50 (ms) | p95 (ms) | max (ms) |",
    "|---|---:|---:|---:|---:|",
    ...result.lag.map((l) => `| ${l.target} | ${fmt(l.transactions)} | ${fmt(l.p50)} | ${fmt(l.p95)} | ${fmt(l.max)} |`),
    ""
  ].join("\n")

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (flag: string, fallback: number) => {
    const at = process.argv.indexOf(flag)
    return at > 0 ? Number(process.argv[at + 1]) : fallback
  }
  const options = { changes: arg("--changes", 20_000), seconds: arg("--seconds", 10), rate: arg("--rate", 200) }
  Effect.runPromise(runCdcBench(options)).then(
    (result) => console.log(renderCdc(result)),
    (error) => {
      console.error(String(error))
      process.exitCode = 1
    }
  )
}
