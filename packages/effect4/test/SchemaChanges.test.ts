/**
 * Schema changes through the routed client: the DDL barrier (reads after a
 * routed CREATE/ALTER/DROP go only to replicas that replayed it), the safety
 * net for undefined tables/columns/functions on a replica that is behind, and
 * `sideEffectFunctions: "catalog"`.
 */
import { expect, layer } from "@effect/vitest"
import * as SqlClient from "effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as RoutedClient from "@effect-sql-router/effect4/RoutedClient"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { configFor } from "./utils.js"

const Routed = Layer.unwrap(
  Effect.gen(function*() {
    const cluster = yield* PgCluster.PgCluster
    // Defined before the router starts: found in pg_proc at start. (One
    // statement per call: the native driver has no simple-query protocol.)
    yield* cluster.query(cluster.primary, "CREATE TABLE audit (id serial PRIMARY KEY, what text)")
    yield* cluster.query(
      cluster.primary,
      "CREATE FUNCTION audit_early() RETURNS int LANGUAGE sql AS $$ INSERT INTO audit (what) VALUES ('early') RETURNING id $$"
    )
    yield* cluster.awaitReplication()
    return RoutedClient.layer(configFor(cluster, { sideEffectFunctions: "catalog" }))
  })
).pipe(Layer.provideMerge(PgCluster.layer({ replicas: 2 })))

const served = Effect.map(SqlRouter.stats, (s) => ({
  primaryReads: s.primary.served.reads,
  primaryWrites: s.primary.served.writes,
  replicaReads: s.replicas.reduce((n, r) => n + r.served.reads, 0)
}))

const pauseReplicas = Effect.flatMap(PgCluster.PgCluster, (c) => Effect.forEach(c.replicas, c.pauseReplay))
const resumeReplicas = Effect.flatMap(PgCluster.PgCluster, (c) =>
  Effect.andThen(Effect.forEach(c.replicas, c.resumeReplay), c.awaitReplication()))

/** With replay paused on every replica, runs `body`, and resumes them whatever happens. */
const whilePaused = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(pauseReplicas, () => body, () => Effect.orDie(resumeReplicas))

const who = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ name: string }>`SELECT current_setting('cluster_name') AS name`, (rows) => rows[0]!.name))

/** Reads until one lands on a replica (the barrier is down), bounded. */
const untilReplicaServes = Effect.gen(function*() {
  for (;;) {
    const name = yield* who
    if (name !== "primary") return name
    yield* Effect.sleep("10 millis")
  }
}).pipe(Effect.timeout("10 seconds"))

layer(Routed, { timeout: "120 seconds", excludeTestServices: true })("schema changes", (it) => {
  it.effect("a routed CREATE TABLE: reads wait for replicas that replayed it, then return to them", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* whilePaused(Effect.gen(function*() {
        yield* sql`CREATE TABLE made_now (id int PRIMARY KEY)`
        yield* sql`INSERT INTO made_now VALUES (1), (2)`
        const before = yield* served
        // Without the barrier these would reach a replica that has no such table.
        for (let i = 0; i < 5; i++) {
          const [row] = yield* sql<{ n: number; node: string }>`
            SELECT count(*)::int AS n, current_setting('cluster_name') AS node FROM made_now`
          expect(row).toEqual({ n: 2, node: "primary" })
        }
        const during = yield* served
        expect(during.replicaReads).toBe(before.replicaReads)
        expect(during.primaryReads).toBe(before.primaryReads + 5)
      }))
      expect(yield* untilReplicaServes).toMatch(/^replica-/)
      const [row] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM made_now`
      expect(row!.n).toBe(2)
    }))

  it.effect("a schema change inside a transaction raises the barrier at its COMMIT", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* whilePaused(Effect.gen(function*() {
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`CREATE TABLE made_in_tx (id int PRIMARY KEY)`
          yield* sql`INSERT INTO made_in_tx VALUES (7)`
        }))
        const before = yield* served
        const [row] = yield* sql<{ id: number; node: string }>`
          SELECT id, current_setting('cluster_name') AS node FROM made_in_tx`
        expect(row).toEqual({ id: 7, node: "primary" })
        expect((yield* served).replicaReads).toBe(before.replicaReads)
      }))
      expect(yield* untilReplicaServes).toMatch(/^replica-/)
    }))

  it.effect("DDL the router did not see: a replica that has not replayed it answers 42P01, the read runs on the primary", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const cluster = yield* PgCluster.PgCluster
      yield* untilReplicaServes
      yield* whilePaused(Effect.gen(function*() {
        // Straight to the primary, past the router: no barrier.
        yield* cluster.query(cluster.primary, "CREATE TABLE made_elsewhere (id int)")
        yield* cluster.query(cluster.primary, "INSERT INTO made_elsewhere VALUES (3)")
        const before = yield* served
        const [row] = yield* sql<{ id: number; node: string }>`
          SELECT id, current_setting('cluster_name') AS node FROM made_elsewhere`
        expect(row).toEqual({ id: 3, node: "primary" })
        const after = yield* served
        // The replica was tried first and answered 42P01; the primary answered the read.
        expect(after.replicaReads).toBe(before.replicaReads + 1)
        expect(after.primaryReads).toBe(before.primaryReads + 1)
        expect(after.primaryWrites).toBe(before.primaryWrites)
      }))
    }))

  it.effect("a table that exists nowhere still fails, once more on the primary, with 42P01", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const error = yield* Effect.flip(sql`SELECT * FROM no_such_table`)
      expect(error._tag).toBe("SqlError")
      // The driver files 42xxx under SqlSyntaxError, the SQLSTATE on its cause.
      expect(error.reason._tag).toBe("SqlSyntaxError")
      expect((error.reason.cause as { code?: string }).code).toBe("42P01")
    }))

  it.effect("sideEffectFunctions: \"catalog\": volatile functions found at start and after a routed CREATE FUNCTION are writes", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* untilReplicaServes
      const start = yield* served
      // Found at start: on the primary as a write, no replica tried first.
      const [early] = yield* sql<{ id: number }>`SELECT audit_early() AS id`
      expect(early!.id).toBeGreaterThan(0)
      const afterEarly = yield* served
      expect(afterEarly.replicaReads).toBe(start.replicaReads)
      expect(afterEarly.primaryWrites).toBe(start.primaryWrites + 1)

      yield* sql`CREATE FUNCTION audit_late() RETURNS int LANGUAGE sql AS $$ INSERT INTO audit (what) VALUES ('late') RETURNING id $$`
      yield* Effect.flatMap(PgCluster.PgCluster, (c) => c.awaitReplication())
      const beforeLate = yield* served
      const [late] = yield* sql<{ id: number }>`SELECT audit_late() AS id`
      expect(late!.id).toBeGreaterThan(early!.id)
      const afterLate = yield* served
      expect(afterLate.replicaReads).toBe(beforeLate.replicaReads)
      expect(afterLate.primaryWrites).toBe(beforeLate.primaryWrites + 1)

      // A STABLE function stays a read.
      yield* sql`CREATE FUNCTION audit_count() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM audit $$`
      yield* Effect.flatMap(PgCluster.PgCluster, (c) => c.awaitReplication())
      yield* untilReplicaServes
      const [counted] = yield* sql<{ n: string; node: string }>`
        SELECT audit_count() AS n, current_setting('cluster_name') AS node`
      expect(counted!.node).toMatch(/^replica-/)
    }))
})
