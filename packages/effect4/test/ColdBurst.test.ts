import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { configFor, replicaProbes, waitFor } from "./utils.js"

// Many instances starting load after an idle spell (issue 23, R = 50): every
// pool is cold, and a burst of statements waits for the connections the pool
// opens. Waiting for a connection is no stall: the watcher must not probe the
// replica for it (a probe then opens one more connection, on a host already
// busy opening them). Connections are made slow to open here by a login event
// trigger that sleeps for the router's pooled connections (not its probes);
// the pool opens them one at a time, and borrowers wait meanwhile.

const app = "cold-burst"
const settings = { shared_preload_libraries: "pg_stat_statements" }

/** Connections to `node` that completed their login, by application_name (`<app>` pooled, `<app>:probe` one-off). */
const logins = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode, name: string) =>
  Effect.map(
    cluster.query<{ n: number }>(node, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = '${name}'`),
    (rows) => rows[0]!.n
  )

describe("a cold pool under a burst", () => {
  it.live("waits for its connections without a probe of the replica: the reads run there, no probe statement", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 1, settings })
      yield* cluster.query(cluster.primary, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
      const replica = cluster.replicas[0]!
      const maxSize = 4
      const router = yield* SqlRouter.make(configFor(cluster, {
        applicationName: app,
        replicaMaxSizeEach: maxSize,
        idleTimeout: "1 second",
        connectTimeout: "10 seconds",
        health: { enabled: true, interval: "100 millis" }
      }))
      const node = (yield* router.replicas)[0]!
      // The replica is judged (a first probe teaches the watcher its name in the primary's report)...
      yield* waitFor(Effect.map(router.replicaStatus, (all) => all[0]!), (s) => s.healthy && s.lagBytes !== undefined)
      // ...and its pool is cold.
      yield* waitFor(node.stats, (s) => s.total === 0)
      // From now on each of the router's pooled connections takes 1.5 s to log in.
      yield* cluster.query(
        cluster.primary,
        `CREATE FUNCTION slow_login() RETURNS event_trigger LANGUAGE plpgsql AS $$
         BEGIN IF current_setting('application_name') = '${app}' THEN PERFORM pg_sleep(1.5); END IF; END $$`
      )
      yield* cluster.query(cluster.primary, "CREATE EVENT TRIGGER slow_login ON login EXECUTE FUNCTION slow_login()")
      yield* cluster.awaitReplication()
      const probesBefore = yield* replicaProbes(cluster, replica)
      const burst = 3 * maxSize * 2
      const read = router.withReplica(
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ standby: boolean }>`SELECT pg_is_in_recovery() AS standby`)
      )
      const rows = yield* Effect.all(Array.from({ length: burst }, () => read), { concurrency: "unbounded" })
      // Every read ran on the replica: it never left rotation.
      expect(rows.map((r) => r[0]!.standby)).toEqual(Array.from({ length: burst }, () => true))
      // The pool opened at most its size, and the replica saw at most one probe statement in all that wait
      // (many watcher ticks saw statements in flight and none completed).
      expect(yield* logins(cluster, replica, app)).toBeLessThanOrEqual(maxSize)
      expect((yield* replicaProbes(cluster, replica)) - probesBefore).toBeLessThanOrEqual(1)
      const status = (yield* router.replicaStatus)[0]!
      expect(status.healthy).toBe(true)
      yield* cluster.query(cluster.primary, "DROP EVENT TRIGGER slow_login")
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
