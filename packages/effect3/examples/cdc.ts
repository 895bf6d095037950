/**
 * Change data capture: a table on the embedded primary mirrored into SQLite
 * while orders are written, with the lag printed live.
 *
 *   npx tsx examples/cdc.ts [--seconds N]     (default 10)
 *
 * It starts a throwaway primary with wal_level = logical, a SQLite file in a
 * temporary directory, and one CDC rule; at the end it checks that SQLite
 * holds exactly the primary's rows (exit code 1 otherwise).
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { Cdc } from "effect-sql-router"
import { PgCluster } from "effect-sql-router/testing"

/** What one run did. */
export interface Summary {
  readonly written: number
  readonly onPrimary: number
  readonly inSqlite: number
  readonly equal: boolean
  readonly stats: Cdc.Stats
}

const checksum = "SELECT count(*) AS n, coalesce(sum(id * 7 + quantity), 0) AS sum FROM orders"

export const runCdcExample = (options: { readonly seconds: number; readonly output: (line: string) => void }) =>
  Effect.gen(function*() {
    const cluster = yield* PgCluster.make({ replicas: 0, walLevel: "logical" })
    yield* cluster.query(
      cluster.primary,
      "CREATE TABLE orders (id int8 PRIMARY KEY, customer text NOT NULL, quantity int NOT NULL, total numeric(12,2), placed timestamptz DEFAULT now())"
    )
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "cdc-example-"))),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const sqlite = yield* SqliteClient.make({ filename: Path.join(dir, "mirror.db") })
    const cdc = yield* Cdc.make({
      primary: cluster.primary.url,
      targets: { sqlite: Cdc.sqlTarget(sqlite) },
      rules: [{ name: "orders_to_sqlite", tables: ["orders"], target: "sqlite" }]
    })
    yield* cdc.run("orders_to_sqlite")

    // The shop: new orders, some changed, some cancelled.
    let written = 0
    const writer = yield* Effect.fork(Effect.forever(Effect.gen(function*() {
      written++
      const id = written
      yield* cluster.query(cluster.primary, "INSERT INTO orders (id, customer, quantity, total) VALUES ($1, $2, $3, $4)", [
        id,
        `customer-${id % 50}`,
        1 + (id % 5),
        (id % 1000) / 10
      ])
      if (id % 3 === 0) yield* cluster.query(cluster.primary, "UPDATE orders SET quantity = quantity + 1 WHERE id = $1", [id - 1])
      if (id % 10 === 0) yield* cluster.query(cluster.primary, "DELETE FROM orders WHERE id = $1", [id - 5])
    })))

    const report = Effect.gen(function*() {
      const stats = yield* cdc.stats("orders_to_sqlite")
      options.output(
        `applied ${String(stats.changesApplied).padStart(6)} changes in ${String(stats.transactionsApplied).padStart(5)} transactions` +
          `  lag ${String(stats.lagBytes ?? "?").padStart(7)} bytes  apply lag ${String(stats.applyLagMillis ?? "?").padStart(4)} ms` +
          `  at ${stats.lastAppliedLsn ?? "-"}`
      )
    })
    yield* report.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.timeout(`${options.seconds} seconds`), Effect.ignore)
    yield* Fiber.interrupt(writer)

    // Caught up once the mirror's checksum is the primary's.
    const [source] = yield* cluster.query<{ n: string; sum: string }>(cluster.primary, checksum)
    const mirrored = yield* sqlite.unsafe<{ n: number; sum: number }>(checksum).pipe(
      Effect.filterOrFail((rows) => String(rows[0]!.n) === source!.n && String(rows[0]!.sum) === source!.sum),
      Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))),
      Effect.orElse(() => sqlite.unsafe<{ n: number; sum: number }>(checksum))
    )
    yield* report
    const stats = yield* cdc.stats("orders_to_sqlite")
    const summary: Summary = {
      written,
      onPrimary: Number(source!.n),
      inSqlite: Number(mirrored[0]!.n),
      equal: String(mirrored[0]!.n) === source!.n && String(mirrored[0]!.sum) === source!.sum,
      stats
    }
    options.output(
      `summary: ${summary.written} orders written, ${summary.onPrimary} on the primary, ${summary.inSqlite} in SQLite: ${
        summary.equal ? "equal" : "DIFFERENT"
      }`
    )
    return summary
  }).pipe(Effect.provide(Reactivity.layer), Effect.scoped)

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf("--seconds")
  const seconds = at > 0 ? Number(process.argv[at + 1]) : 10
  Effect.runPromise(runCdcExample({ seconds, output: (line) => console.log(line) })).then(
    (summary) => {
      if (!summary.equal) process.exitCode = 1
    },
    (error) => {
      console.error(String(error))
      process.exitCode = 1
    }
  )
}
