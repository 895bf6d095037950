/**
 * The PgBouncer scenario of the Effect 4 line (`npm run scenario:pgbouncer`
 * at the repository root runs both lines): an embedded primary + 2 replicas,
 * one PgBouncer in transaction mode in front of each, and a router whose
 * `primary`/`replicas` are the PgBouncers and whose `direct` URLs are the
 * servers themselves, its pools with `prepare: false` (no named prepared
 * statements, which a transaction pooler cannot keep). Reads, writes, transactions (committed and rolled back) and
 * a `Durable` notification are asserted; PgBouncer's own statistics show the
 * statements went through it. Everything is stopped when it ends, also on
 * failure. Exits 2, saying how to install it, when PgBouncer is missing.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import Pg from "pg"
import * as Scenario from "../../core/bench/pgbouncer.js"
import * as Durable from "#lib/Durable.js"
import type * as RouterConfig from "#lib/RouterConfig.js"
import * as SqlRouter from "#lib/SqlRouter.js"
import * as PgCluster from "#lib/testing/PgCluster.js"

const line = "Effect 4"

const check = (condition: boolean, what: string) =>
  condition ? Effect.sync(() => console.log(`  ok: ${what}`)) : Effect.die(new Error(`${line}: failed: ${what}`))

const sql = Effect.service(SqlClient.SqlClient)

/** PgBouncer's admin console: transactions it ran per database, and server connections it holds. */
const bouncerStats = (port: number) =>
  Effect.promise(async () => {
    const client = new Pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "pgbouncer" })
    await client.connect()
    try {
      // The admin console speaks the simple protocol only.
      const stats = await client.query({ text: "SHOW STATS", rowMode: "array" })
      const columns = stats.fields.map((f) => f.name)
      const row = stats.rows.find((r) => r[columns.indexOf("database")] === "postgres")
      const servers = await client.query("SHOW SERVERS")
      return {
        transactions: row === undefined ? 0 : Number(row[columns.indexOf("total_xact_count")]),
        servers: servers.rows.length
      }
    } finally {
      await client.end()
    }
  })

const main = Effect.gen(function*() {
  const binary = Scenario.findBinary()
  if (binary === undefined) {
    console.error(Scenario.missingMessage)
    return yield* Effect.sync(() => process.exit(2))
  }
  console.log(`${line}: ${Scenario.version(binary)}, cluster primary + 2 replicas`)
  const cluster = yield* PgCluster.make({ replicas: 2 })
  const defaultPoolSize = 5
  const { bouncers } = yield* Effect.acquireRelease(
    Effect.promise(() =>
      Scenario.start(binary, cluster.nodes.map((n) => ({ name: n.name, host: n.host, port: n.port })), {
        users: ["postgres"],
        defaultPoolSize
      })
    ),
    (started) => Effect.promise(() => started.stop())
  )
  const pooled = (i: number) => Redacted.make(`postgres://postgres@127.0.0.1:${bouncers[i]!.port}/postgres`)
  const config: RouterConfig.RouterConfig = {
    primary: pooled(0),
    replicas: [pooled(1), pooled(2)],
    direct: { primary: cluster.primary.url, replicas: cluster.replicas.map((replica) => replica.url) },
    primaryPool: { prepare: false },
    replicaPool: { prepare: false }
  }
  yield* Effect.gen(function*() {
    yield* SqlRouter.withWrite(Effect.flatMap(sql, (s) => s`CREATE TABLE bouncer_t (id int PRIMARY KEY, v text NOT NULL)`))
    // Writes with parameters, 10 at a time: a named prepared statement would meet another server connection.
    yield* Effect.forEach(
      Array.from({ length: 100 }, (_, i) => i + 1),
      (id) => SqlRouter.withWrite(Effect.flatMap(sql, (s) => s`INSERT INTO bouncer_t VALUES (${id}, ${`row ${id}`})`)),
      { concurrency: 10, discard: true }
    )
    const [written] = yield* SqlRouter.withWrite(Effect.flatMap(sql, (s) => s<{ n: number }>`SELECT count(*)::int AS n FROM bouncer_t`))
    yield* check(written?.n === 100, "100 parameterised writes, 10 at a time, through PgBouncer")

    // A transaction: every statement on one server connection, committed whole.
    yield* SqlRouter.withWrite(Effect.flatMap(sql, (s) =>
      s.withTransaction(Effect.gen(function*() {
        yield* s`INSERT INTO bouncer_t VALUES (101, 'in a transaction')`
        yield* s`UPDATE bouncer_t SET v = 'updated in it' WHERE id = 101`
      }))))
    // One that fails after a write: rolled back whole.
    const refused = yield* SqlRouter.withWrite(Effect.flatMap(sql, (s) =>
      s.withTransaction(Effect.gen(function*() {
        yield* s`INSERT INTO bouncer_t VALUES (102, 'rolled back')`
        yield* s`INSERT INTO bouncer_t VALUES (1, 'duplicate key')`
      })))).pipe(Effect.result)
    const rows = yield* SqlRouter.withWrite(Effect.flatMap(sql, (s) =>
      s<{ id: number; v: string }>`SELECT id, v FROM bouncer_t WHERE id > 100 ORDER BY id`))
    yield* check(
      refused._tag === "Failure" && rows.length === 1 && rows[0]!.v === "updated in it",
      "a transaction committed whole, a failing one rolled back whole"
    )

    // Reads with parameters, 20 at a time, on the replicas: once the router knows (by its probes) that
    // both have replayed the schema change, until then it sends reads to the primary.
    yield* cluster.awaitReplication()
    yield* SqlRouter.withRead(Effect.flatMap(sql, (s) => s<{ node: string }>`SELECT current_setting('cluster_name') AS node`)).pipe(
      Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (r) => r[0]?.node !== "primary" }),
      Effect.timeout("10 seconds")
    )
    const reads = yield* Effect.forEach(
      Array.from({ length: 200 }, (_, i) => (i % 101) + 1),
      (id) =>
        SqlRouter.withRead(Effect.flatMap(sql, (s) =>
          s<{ node: string; v: string }>`SELECT current_setting('cluster_name') AS node, v FROM bouncer_t WHERE id = ${id}`)),
      { concurrency: 20 }
    )
    const served = new Map<string, number>()
    for (const r of reads) served.set(r[0]?.node ?? "none", (served.get(r[0]?.node ?? "none") ?? 0) + 1)
    yield* check(
      reads.every((r, i) => r[0]?.v === (((i % 101) + 1) === 101 ? "updated in it" : `row ${(i % 101) + 1}`)) &&
        (served.get("replica-0") ?? 0) > 0 && (served.get("replica-1") ?? 0) > 0,
      `200 parameterised reads, 20 at a time, right rows, both replicas serving (${
        [...served].sort().map(([n, c]) => `${n} ${c}`).join(", ")
      })`
    )

    // Durable: LISTEN on the primary's direct URL, NOTIFY through the pooled one.
    const received = yield* Effect.forkChild(
      Stream.runHead(Stream.unwrap(Durable.notifications("bouncer_channel")))
    )
    yield* cluster.query<{ n: number }>(
      cluster.primary,
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'"
    ).pipe(
      Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (r) => r[0]!.n > 0 }),
      Effect.timeout("10 seconds")
    )
    yield* SqlRouter.withWrite(Effect.flatMap(sql, (s) => s`SELECT pg_notify('bouncer_channel', 'through the pooler')`))
    const payload = yield* Fiber.join(received).pipe(Effect.timeout("10 seconds"))
    yield* check(
      Option.getOrUndefined(payload) === "through the pooler",
      "a Durable notification: LISTEN on direct.primary, NOTIFY through PgBouncer"
    )

    // PgBouncer ran the statements, on at most default_pool_size server connections each.
    for (const [i, bouncer] of bouncers.entries()) {
      const stats = yield* bouncerStats(bouncer.port)
      yield* check(
        stats.transactions > 0 && stats.servers <= defaultPoolSize,
        `PgBouncer for ${cluster.nodes[i]!.name}: ${stats.transactions} transactions, ${stats.servers} server connections`
      )
    }
  }).pipe(Effect.provide(SqlRouter.layer(config)), Effect.scoped)
  console.log(`${line}: PgBouncer scenario passed`)
}).pipe(Effect.scoped)

Effect.runPromiseExit(main).then((exit) => {
  if (exit._tag === "Failure") {
    console.error(Cause.pretty(exit.cause))
    process.exit(1)
  }
  process.exit(0)
})
