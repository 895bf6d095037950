import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import * as Statement from "effect/sql/Statement"
import * as Stream from "effect/Stream"
import * as Consistency from "@effect-sql-router/effect4/Consistency"
import * as RoutedClient from "@effect-sql-router/effect4/RoutedClient"
import type * as RouterConfig from "@effect-sql-router/effect4/RouterConfig"
import { WriteOutcomeUnknown } from "@effect-sql-router/effect4/RouterError"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { activeStatements, configFor, eventually as poll, recordingTracer } from "./utils.js"

// The routed client's own hot path, against a real cluster: it must give what
// a stock @effect/sql-pg client gives, cancel on the server what nobody waits
// for, and keep its in-flight bookkeeping exact.

const Cluster = PgCluster.layer({ replicas: 2 })

/** A fresh router and routed client on the test cluster, in the test's scope. */
const routed = (extra: Partial<RouterConfig.RouterConfig> = {}, options: RoutedClient.Options = {}) =>
  Effect.flatMap(PgCluster.PgCluster, (cluster) => RoutedClient.make(configFor(cluster, extra), options))

/**
 * The reference: a stock `PgClient` on the primary, with the same name
 * transforms. (The Effect 3 line compared its statement fast path with
 * @effect/sql's general path; the Effect 4 routed client has no fast path of
 * its own, so it is compared with the driver's own client.)
 */
const stockClient = (options: {
  readonly transformResultNames?: ((s: string) => string) | undefined
  readonly transformQueryNames?: ((s: string) => string) | undefined
} = {}) =>
  Effect.flatMap(PgCluster.PgCluster, (cluster) =>
    PgClient.make({ url: cluster.primary.url, maxConnections: 2, ...options })).pipe(Effect.provide(Reactivity.layer))


const runningAnywhere = (cluster: PgCluster.PgCluster, pattern: string) =>
  Effect.map(Effect.forEach(cluster.nodes, (node) => activeStatements(cluster, node, pattern)), (ns) => ns.reduce((a, b) => a + b, 0))

/** Polls (live clock) until `check` holds; fails after a bounded number of tries. */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>) => poll(check, 200)

const inFlight = (router: SqlRouter.SqlRouter) =>
  Effect.map(router.stats, (s) => s.replicas.reduce((n, r) => n + r.inFlight, 0))

layer(Cluster, { timeout: "180 seconds", excludeTestServices: true })("hot path", (it) => {
  it.effect("setup", () =>
    Effect.gen(function*() {
      const { client: sql } = yield* routed()
      yield* sql`CREATE TABLE hot (id int PRIMARY KEY, user_name text NOT NULL, meta jsonb)`
      yield* sql`INSERT INTO hot SELECT i, 'user_' || i, jsonb_build_object('some_key', i) FROM generate_series(1, 50) i`
      yield* Effect.flatMap(PgCluster.PgCluster, (c) => c.awaitReplication())
    }))

  describe("the routed client and a stock PgClient agree", () => {
    it.effect("on a corpus of reads, writes, values, raw, unprepared, streams, transforms and sessions", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
        const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
        const { client: plain } = yield* routed()
        const { client: transformed } = yield* routed({}, { transformResultNames: camel, transformQueryNames: snake })
        const stockPlain = yield* stockClient()
        const stockTransformed = yield* stockClient({ transformResultNames: camel, transformQueryNames: snake })
        let next = 1000
        const corpus = (sql: PgClient.PgClient) => {
          const id = next++
          return Effect.all({
            read: sql`SELECT id, user_name, meta FROM hot WHERE id <= ${5} ORDER BY id`,
            identifier: sql`SELECT ${sql("user_name")} FROM hot WHERE id = ${1}`,
            values: sql`SELECT id, user_name FROM hot WHERE id IN (${1}, ${2}) ORDER BY id`.values,
            raw: Effect.map(sql`SELECT id FROM hot WHERE id = ${3}`.raw, (r) => (r as PgConnection.Result).rows),
            unprepared: sql`SELECT user_name FROM hot WHERE id = ${4}`.unprepared,
            withoutTransform: sql`SELECT user_name FROM hot WHERE id = ${4}`.withoutTransform,
            stream: Stream.runCollect(sql`SELECT id FROM hot WHERE id <= ${3} ORDER BY id`.stream),
            unsafe: sql.unsafe("SELECT count(*)::int AS total_rows FROM hot WHERE id <= $1", [50]),
            write: Effect.map(
              sql`INSERT INTO hot (id, user_name) VALUES (${id}, 'written') RETURNING user_name, current_setting('cluster_name') AS node_name`,
              (rows) => rows
            ),
            inSession: Consistency.session(Effect.gen(function*() {
              yield* sql`UPDATE hot SET user_name = 'session' WHERE id = ${id}`
              return yield* sql`SELECT user_name FROM hot WHERE id = ${id}`
            })),
            inTransaction: sql.withTransaction(
              Effect.map(sql`SELECT user_name, current_setting('cluster_name') AS node_name FROM hot WHERE id = ${id}`, (r) => r)
            )
          }, { concurrency: 1 })
        }
        for (const [sql, stock] of [[plain, stockPlain], [transformed, stockTransformed]] as const) {
          const fast = yield* corpus(sql)
          const general = yield* corpus(stock)
          // The written ids differ (one per run); everything else must be equal.
          expect(general).toEqual(fast)
        }
        const fast = yield* corpus(transformed)
        expect(fast.read[0]).toEqual({ id: 1, userName: "user_1", meta: { someKey: 1 } })
        expect(fast.identifier).toEqual([{ userName: "user_1" }])
        expect(fast.write).toEqual([{ userName: "written", nodeName: "primary" }])
        expect(fast.inSession).toEqual([{ userName: "session" }])
        expect(fast.inTransaction).toEqual([{ userName: "session", nodeName: "primary" }])
        yield* cluster.awaitReplication()
      }))
  })

  describe("cancellation", () => {
    it.effect("an interrupted statement is cancelled on the server; its connection and in-flight count come back", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client: sql, router } = yield* routed()
        const fiber = yield* Effect.forkChild(sql`SELECT pg_sleep(60), 'hot_interrupt_marker'`)
        yield* eventually(Effect.map(runningAnywhere(cluster, "hot_interrupt_marker"), (n) => n === 1))
        yield* Fiber.interrupt(fiber)
        yield* eventually(Effect.map(runningAnywhere(cluster, "hot_interrupt_marker"), (n) => n === 0))
        yield* eventually(Effect.map(inFlight(router), (n) => n === 0))
        // The pool got its connection back and works.
        expect(yield* sql`SELECT 1 AS one`).toEqual([{ one: 1 }])
      }))

    it.effect("in-flight counts return to zero after a load with interruptions", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client: sql, router } = yield* routed({ selection: "least-connections" })
        yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          (i) =>
            i % 2 === 0
              ? Effect.asVoid(Effect.timeoutOption(sql`SELECT pg_sleep(0.5), 'hot_load_marker'`, "20 millis"))
              : Effect.asVoid(sql`SELECT ${i}::int AS i`),
          { concurrency: 32, discard: true }
        )
        yield* eventually(Effect.map(runningAnywhere(cluster, "hot_load_marker"), (n) => n === 0))
        yield* eventually(Effect.map(inFlight(router), (n) => n === 0))
        const stats = yield* router.stats
        for (const replica of stats.replicas) expect(replica.healthy).toBe(true)
      }))

    it.effect("readTimeout cancels the slow read on the server, takes the replica out, and reads elsewhere", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client: sql, router } = yield* routed({ readTimeout: "300 millis" })
        // A fresh round-robin router sends its first read to replica-0, where this sleeps.
        const [row] = yield* sql<{ name: string }>`
          SELECT current_setting('cluster_name') AS name,
                 CASE WHEN current_setting('cluster_name') = 'replica-0' THEN pg_sleep(60) END AS slept,
                 'hot_timeout_marker' AS marker`
        expect(row!.name).not.toBe("replica-0")
        const replica0 = cluster.replicas.find((r) => r.name === "replica-0")!
        yield* eventually(Effect.map(activeStatements(cluster, replica0, "hot_timeout_marker"), (n) => n === 0))
        const stats = yield* router.stats
        expect(stats.replicas.find((r) => r.id === "replica-0")!.healthy).toBe(false)
        yield* eventually(Effect.map(inFlight(router), (n) => n === 0))
      }))
  })

  describe("writeTimeout", () => {
    it.effect("a write past writeTimeout is cancelled on the server and fails as WriteOutcomeUnknown, once", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client: sql, router } = yield* routed({}, { writeTimeout: "300 millis" })
        const before = (yield* router.stats).primary.served.writes
        const error = yield* Effect.flip(
          sql`UPDATE hot SET user_name = 'never' WHERE id = 1 AND pg_sleep(60) IS NOT NULL AND 'hot_write_marker' <> ''`
        )
        // The router's reason travels as the cause of the SqlError's reason.
        const cause = error.reason.cause
        expect(cause).toBeInstanceOf(WriteOutcomeUnknown)
        expect((cause as WriteOutcomeUnknown).node).toBe("primary")
        expect((cause as WriteOutcomeUnknown).retryable).toBe(true)
        yield* eventually(Effect.map(activeStatements(cluster, cluster.primary, "hot_write_marker"), (n) => n === 0))
        // Sent once, never retried; cancelled before it changed the row.
        expect((yield* router.stats).primary.served.writes).toBe(before + 1)
        const [row] = yield* SqlRouter.primary(sql<{ user_name: string }>`SELECT user_name FROM hot WHERE id = 1`)
        expect(row!.user_name).toBe("user_1")
      }))
  })

  describe("spans", () => {
    it.effect("under a tracer, statement spans name the node and carry the database attributes", () =>
      Effect.gen(function*() {
        const { spans, tracer } = recordingTracer()
        const cluster = yield* PgCluster.PgCluster
        const { client: sql } = yield* routed({}, { spanAttributes: { "service.component": "hot-test" } })
        yield* Effect.withTracer(
          Effect.all([
            sql`SELECT 1`,
            sql`UPDATE hot SET user_name = user_name WHERE false`,
            sql.withTransaction(sql`SELECT 2`)
          ]),
          tracer
        ).pipe(
          // effect/sql hands the statement's span to the connection only with propagation on:
          // that is how the node that served it gets onto it.
          Effect.provideService(Statement.SpanPropagationEnabled, true)
        )
        // Statement spans are the ones with a query text (BEGIN/COMMIT have spans of their own without one).
        const executes = spans.filter((s) => s.attributes.has("db.query.text")).map((s) => s.attributes)
        expect(executes).toHaveLength(3)
        const [read, write, inTransaction] = executes as [
          ReadonlyMap<string, unknown>,
          ReadonlyMap<string, unknown>,
          ReadonlyMap<string, unknown>
        ]
        expect(read.get("effect_sql_router.intent")).toBe("read")
        expect(String(read.get("effect_sql_router.node"))).toMatch(/^replica-/)
        expect(read.get("effect_sql_router.role")).toBe("replica")
        expect(write.get("effect_sql_router.intent")).toBe("write")
        expect(write.get("effect_sql_router.node")).toBe("primary")
        expect(write.get("effect_sql_router.role")).toBe("primary")
        expect(write.get("server.address")).toBe(cluster.primary.host)
        expect(write.get("server.port")).toBe(cluster.primary.port)
        expect(inTransaction.get("effect_sql_router.node")).toBe("primary")
        for (const attributes of executes) {
          expect(attributes.get("db.system.name")).toBe("postgresql")
          expect(attributes.get("effect.sql.method")).toBe("execute")
          expect(String(attributes.get("db.query.text"))).toMatch(/^(SELECT|UPDATE)/)
          expect(attributes.get("service.component")).toBe("hot-test")
          for (const value of attributes.values()) expect(String(value)).not.toContain("password")
        }
        const transaction = spans.find((s) => s.name === "sql.transaction")!
        expect(transaction.attributes.get("effect_sql_router.node")).toBe("primary")
      }))
  })

  describe("PgClient options on every node", () => {
    it.effect("result-name transforms and withoutTransforms, in statements and regions", () =>
      Effect.gen(function*() {
        const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
        const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
        const { client: sql, router } = yield* routed({}, { transformResultNames: camel, transformQueryNames: snake })
        expect(yield* sql`SELECT 1 AS first_name`).toEqual([{ firstName: 1 }])
        expect(yield* sql`SELECT 2 AS big_number`).toEqual([{ bigNumber: 2 }])
        expect(yield* sql`SELECT 3 AS ${sql("firstName")}`).toEqual([{ firstName: 3 }])
        const bare = sql.withoutTransforms()
        expect(yield* bare`SELECT 1 AS first_name`).toEqual([{ first_name: 1 }])
        expect(yield* bare`SELECT 3 AS ${bare("firstName")}`).toEqual([{ firstName: 3 }])
        // Regions get each node's own client, with the same options.
        const inRegion = yield* router.withRead(Effect.flatMap(SqlClient.SqlClient, (s) => s`SELECT 4 AS last_name`))
        expect(inRegion).toEqual([{ lastName: 4 }])
        const written = yield* router.withWrite(Effect.flatMap(SqlClient.SqlClient, (s) => s`SELECT 5 AS big_number`))
        expect(written).toEqual([{ bigNumber: 5 }])
      }))
  })

  // Last: it promotes a replica, so the cluster has a new primary afterwards.
  describe("after a promotion", () => {
    it.effect("the routed client's config and json follow the new primary", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client: sql, router } = yield* routed()
        // The config is the current primary's: its URL names the server's port.
        const portOf = () => Number(new URL(Redacted.value(sql.config.url!)).port)
        expect(portOf()).toBe(cluster.primary.port)
        yield* cluster.awaitReplication()
        const promoted = yield* router.promote("replica-1")
        const replica1 = cluster.replicas.find((r) => r.name === "replica-1")!
        expect(promoted.id).toBe("replica-1")
        expect(portOf()).toBe(replica1.port)
        // json is a fragment for the current primary's compiler; writes use the new primary.
        const [row] = yield* sql<{ node: string; v: unknown }>`
          SELECT current_setting('cluster_name') AS node, ${sql.json({ a_key: 1 })}::jsonb AS v FOR UPDATE`
        expect(row).toEqual({ node: "replica-1", v: { a_key: 1 } })
      }))
  })
})
