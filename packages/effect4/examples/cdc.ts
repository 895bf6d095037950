/**
 * Change data capture: a table on the embedded primary mirrored into an
 * analytics database while orders are written, with the lag printed live.
 *
 *   npx tsx examples/cdc.ts [--seconds N]     (default 10)
 *
 * It starts a throwaway primary with wal_level = logical, creates the
 * `analytics` database on it (any `effect/sql` client is a target; the Effect
 * 3 line's example uses SQLite, which has no driver for effect 4.1 yet), and
 * one CDC rule; at the end it checks that the mirror holds exactly the
 * primary's rows (exit code 1 otherwise).
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { pathToFileURL } from "node:url"
import * as Cdc from "@effect-sql-router/effect4/Cdc"
import { PgCluster } from "@effect-sql-router/effect4/testing"

/** What one run did. */
export interface Summary {
  readonly written: number
  readonly onPrimary: number
  readonly inMirror: number
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
    yield* cluster.query(cluster.primary, "CREATE DATABASE analytics")
    const { host, port, user } = cluster.primary
    const analytics = yield* PgClient.make({ url: Redacted.make(`postgres://${user}@${host}:${port}/analytics`) })
    const cdc = yield* Cdc.make({
      primary: cluster.primary.url,
      targets: { analytics: Cdc.sqlTarget(analytics) },
      rules: [{ name: "orders_to_analytics", tables: ["orders"], target: "analytics" }]
    })
    yield* cdc.run("orders_to_analytics")

    // The shop: new orders, some changed, some cancelled.
    let written = 0
    const writer = yield* Effect.forkChild(Effect.forever(Effect.gen(function*() {
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
      const stats = yield* cdc.stats("orders_to_analytics")
      options.output(
        `applied ${String(stats.changesApplied).padStart(6)} changes in ${String(stats.transactionsApplied).padStart(5)} transactions` +
          `  lag ${String(stats.lagBytes ?? "?").padStart(7)} bytes  apply lag ${String(stats.applyLagMillis ?? "?").padStart(4)} ms` +
          `  at ${stats.lastAppliedLsn ?? "-"}`
      )
    })
    yield* report.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.timeout(`${options.seconds} seconds`), Effect.ignore)
    yield* Fiber.interrupt(writer)

    // Caught up once the mirror's checksum is the primary's.
    const [source] = yield* cluster.query<{ n: unknown; sum: unknown }>(cluster.primary, checksum)
    const mirrored = yield* analytics.unsafe<{ n: unknown; sum: unknown }>(checksum).pipe(
      Effect.filterOrFail((rows) => String(rows[0]!.n) === String(source!.n) && String(rows[0]!.sum) === String(source!.sum)),
      Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: "30 seconds" }))),
      Effect.catch(() => analytics.unsafe<{ n: unknown; sum: unknown }>(checksum))
    )
    yield* report
    const stats = yield* cdc.stats("orders_to_analytics")
    const summary: Summary = {
      written,
      onPrimary: Number(source!.n),
      inMirror: Number(mirrored[0]!.n),
      equal: String(mirrored[0]!.n) === String(source!.n) && String(mirrored[0]!.sum) === String(source!.sum),
      stats
    }
    options.output(
      `summary: ${summary.written} orders written, ${summary.onPrimary} on the primary, ${summary.inMirror} in analytics: ${
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
