import { describe, expect, it, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as RoutedClient from "effect-sql-router/RoutedClient"
import * as RouterConfig from "effect-sql-router/RouterConfig"
import * as SqlRouter from "effect-sql-router/SqlRouter"
import { PgCluster } from "effect-sql-router/testing"
import { callsOf, configFor, replicaProbes, waitFor } from "./utils.js"

// Health from traffic first (issue 23): an idle router asks the primary one
// statement per look (its role and pg_stat_replication), sends replicas the
// primary reports streaming no statement at all, and holds no connection
// once idleTimeout has passed. What reaches each server is counted on the
// server: pg_stat_statements (each node counts its own statements) and
// pg_stat_activity by application_name.

const app = "cadence"
const settings = { shared_preload_libraries: "pg_stat_statements" }

/** The primary's look (`Catalog.primaryReport`). */
const primaryLooks = (cluster: PgCluster.PgCluster) => callsOf(cluster, cluster.primary, "pg_stat_replication")

/** The router's pooled connections to `node` (one-off probe connections are named `<app>:probe`). */
const pooledConnections = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode) =>
  Effect.map(
    cluster.query<{ n: number }>(
      node,
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = '${app}'`
    ),
    (rows) => rows[0]!.n
  )

const statusOf = (id: string) => Effect.map(SqlRouter.replicaStatus, (all) => all.find((s) => s.id === id)!)

const cluster = PgCluster.layer({ replicas: 2, settings })

const routerOver = (extra: Partial<RouterConfig.RouterConfig>) =>
  Layer.unwrapEffect(Effect.map(PgCluster.PgCluster, (cluster) => RoutedClient.layer(configFor(cluster, extra))))

const setup = Effect.gen(function*() {
  const cluster = yield* PgCluster.PgCluster
  yield* cluster.query(cluster.primary, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
  yield* cluster.awaitReplication()
  for (const node of cluster.nodes) yield* cluster.query(node, "SELECT pg_stat_statements_reset()")
  return cluster
})

describe("health from traffic", () => {
  layer(cluster, { timeout: "120 seconds", excludeTestServices: true })(
    "an idle router (default health, idleTimeout 1 second)",
    (it) => {
      it.effect(
        "(a) asks the primary only, with no probe of a replica it reports streaming; (b) drains every pool to 0 connections",
        () =>
          Effect.gen(function*() {
            const cluster = yield* setup
            const started = Date.now()
            yield* Effect.gen(function*() {
              // Both replicas take the primary's report as their look.
              for (const replica of cluster.replicas) {
                const status = yield* waitFor(statusOf(replica.name), (s) => (s.lastProbeAt ?? 0) > started)
                expect(status.healthy).toBe(true)
                expect(status.state).toBe("Following")
              }
              const probes = yield* Effect.forEach(cluster.replicas, (replica) => replicaProbes(cluster, replica))
              const looks = yield* primaryLooks(cluster)
              // Three more looks at the primary, each a report...
              yield* waitFor(primaryLooks(cluster), (n) => n >= looks + 3)
              // ...and still no probe statement on either replica, both in rotation on the report.
              for (const [i, replica] of cluster.replicas.entries()) {
                expect(yield* replicaProbes(cluster, replica)).toBe(probes[i])
                const status = yield* statusOf(replica.name)
                expect(status.healthy).toBe(true)
                expect(status.lagBytes).toBeDefined()
              }
              // (b) idleTimeout passes: no pooled connection left on any node (minConnections 0).
              for (const node of cluster.nodes) {
                expect(yield* waitFor(pooledConnections(cluster, node), (n) => n === 0)).toBe(0)
              }
              const stats = yield* SqlRouter.stats
              expect(stats.primary.pool.total).toBe(0)
              expect(stats.replicas.map((r) => r.pool.total)).toEqual([0, 0])
            }).pipe(
              Effect.provide(routerOver({ applicationName: app, idleTimeout: "1 second", health: { enabled: true } }))
            )
          })
      )

      it.effect("(b) with replicaPool.minConnections 1, idleTimeout drains each replica's pool to 1 connection and the primary's to 0", () =>
        Effect.gen(function*() {
          const cluster = yield* setup
          yield* Effect.gen(function*() {
            // Two reads at once on each replica: each replica's pool opens two connections.
            const read = SqlRouter.withReplica(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT pg_sleep(0.5)`))
            const reads = yield* Effect.fork(Effect.all(Array.from({ length: 4 }, () => read), { concurrency: "unbounded" }))
            for (const replica of cluster.replicas) {
              yield* waitFor(pooledConnections(cluster, replica), (n) => n === 2)
            }
            yield* Fiber.join(reads)
            for (const replica of cluster.replicas) {
              expect(yield* waitFor(pooledConnections(cluster, replica), (n) => n === 1)).toBe(1)
            }
            expect(yield* waitFor(pooledConnections(cluster, cluster.primary), (n) => n === 0)).toBe(0)
            // Another idleTimeout, measured by the primary's pool: one statement opens a connection there, and
            // once idleTimeout has closed it the replicas' minimum still stands (pg-pool arms no idle timer at it).
            yield* SqlRouter.withWrite(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`))
            expect(yield* waitFor(pooledConnections(cluster, cluster.primary), (n) => n === 0)).toBe(0)
            for (const replica of cluster.replicas) expect(yield* pooledConnections(cluster, replica)).toBe(1)
            const stats = yield* SqlRouter.stats
            expect(stats.replicas.map((r) => r.pool.total)).toEqual([1, 1])
          }).pipe(
            Effect.provide(routerOver({
              applicationName: app,
              idleTimeout: "1 second",
              replicaPool: { minConnections: 1 },
              health: { enabled: true }
            }))
          )
        }))

      it.effect("(d) a replica whose reads fail on the connection is probed at once and comes back", () =>
        Effect.gen(function*() {
          const cluster = yield* setup
          yield* Effect.gen(function*() {
            const started = Date.now()
            for (const replica of cluster.replicas) {
              yield* waitFor(statusOf(replica.name), (s) => (s.lastProbeAt ?? 0) > started && s.healthy)
            }
            const sql = yield* SqlClient.SqlClient
            const read = yield* Effect.fork(
              Effect.exit(SqlRouter.withRead(sql`SELECT pg_sleep(2), 'cadence-d' AS marker`))
            )
            const running = (node: PgCluster.ClusterNode) =>
              Effect.map(
                cluster.query<{ n: number }>(
                  node,
                  "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%cadence-d%' AND pid <> pg_backend_pid()"
                ),
                (rows) => rows[0]!.n > 0
              )
            const victim = yield* waitFor(
              Effect.map(Effect.forEach(cluster.replicas, running), (on) => cluster.replicas.find((_, i) => on[i])),
              (found) => found !== undefined
            )
            const before = yield* replicaProbes(cluster, victim!)
            // The read's backend is terminated: a connection error there.
            yield* cluster.query(
              victim!,
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%cadence-d%' AND pid <> pg_backend_pid()"
            )
            yield* Fiber.join(read)
            // No report ever stopped naming it: only the failed traffic gets it probed, and back in rotation.
            yield* waitFor(replicaProbes(cluster, victim!), (n) => n > before)
            const back = yield* waitFor(statusOf(victim!.name), (s) => s.healthy)
            expect(back.state).toBe("Following")
          }).pipe(Effect.provide(routerOver({ applicationName: app, health: { enabled: true } })))
        }))
    }
  )

  it.live("(c) a killed replica leaves rotation while the router is idle: the primary's report lost it", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 2 })
      yield* Effect.gen(function*() {
        const started = Date.now()
        for (const replica of cluster.replicas) {
          yield* waitFor(statusOf(replica.name), (s) => (s.lastProbeAt ?? 0) > started && s.healthy)
        }
        const victim = cluster.replicas[0]!
        yield* cluster.kill(victim)
        const out = yield* waitFor(statusOf(victim.name), (s) => !s.healthy)
        expect(out.lastError).toBeDefined()
        expect((yield* statusOf(cluster.replicas[1]!.name)).healthy).toBe(true)
      }).pipe(
        Effect.provide(SqlRouter.layer(configFor(cluster, {
          connectTimeout: "1 second",
          health: { enabled: true, interval: "250 millis", maxInterval: "2 seconds", timeout: "1 second" }
        })))
      )
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.effect("(e) health.maxInterval below health.interval is an InvalidConfig naming it; unset, it is 15 seconds or interval", () =>
    Effect.gen(function*() {
      const base = { primary: Redacted.make("postgres://app@db:5432/app") }
      const error = yield* Effect.flip(
        RouterConfig.resolve({ ...base, health: { interval: "2 seconds", maxInterval: "1 second" } })
      )
      expect(error._tag).toBe("InvalidConfig")
      expect(error.field).toBe("health.maxInterval")
      const defaults = yield* RouterConfig.resolve(base)
      expect(Duration.toMillis(defaults.health.maxInterval)).toBe(15_000)
      expect(Duration.toMillis(defaults.health.replyTimeout)).toBe(25_000)
      const slow = yield* RouterConfig.resolve({ ...base, health: { interval: "30 seconds" } })
      expect(Duration.toMillis(slow.health.maxInterval)).toBe(30_000)
      const fixed = yield* RouterConfig.resolve({ ...base, health: { interval: "1 second", maxInterval: "1 second" } })
      expect(Duration.toMillis(fixed.health.maxInterval)).toBe(1000)
    }))
})
