import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as RoutedClient from "effect-sql-router/RoutedClient"
import * as SqlRouter from "effect-sql-router/SqlRouter"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { PgCluster } from "effect-sql-router/testing"

// Probes run over each node's own pool when it has traffic, else on a
// connection of their own: no connection is held for probes alone, a hung
// probe does not block the pool, and a pool saturated by long statements is
// not mistaken for a dead server.

const pollEvery = Schedule.spaced("25 millis")

const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, until: (a: A) => boolean) =>
  effect.pipe(
    Effect.filterOrFail(until, () => "not yet" as const),
    Effect.retry({ schedule: pollEvery, while: (e) => e === "not yet" }),
    Effect.timeout("30 seconds")
  )

const statusOf = (router: SqlRouter.SqlRouter, id: string) =>
  Effect.map(router.replicaStatus, (all) => all.find((s) => s.id === id)!)

/** Waits until `id` has been probed `n` more times. */
const awaitProbes = (router: SqlRouter.SqlRouter, id: string, n: number) =>
  Effect.gen(function*() {
    const seen = new Set<number>()
    yield* waitFor(
      Effect.tap(statusOf(router, id), (s) => Effect.sync(() => s.lastProbeAt !== undefined && seen.add(s.lastProbeAt))),
      () => seen.size > n
    )
  })

const connectionsOf = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode, app: string) =>
  Effect.map(
    cluster.query<{ name: string }>(node, `SELECT application_name AS name FROM pg_stat_activity WHERE application_name LIKE '${app}%'`),
    (rows) => rows.map((r) => r.name)
  )

/** A signal to the postmaster of `node` alone (not its backends), by the pid its postmaster.pid names. */
const signalPostmaster = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode, signal: "SIGSTOP" | "SIGCONT") =>
  Effect.sync(() => {
    const pid = Number(Fs.readFileSync(Path.join(cluster.directory!, node.name, "postmaster.pid"), "utf8").split("\n")[0])
    process.kill(pid, signal)
  })

describe("probes over the pool", () => {
  it.live("an idle router holds no connection for probes alone; a frozen replica that a read hangs on is probed, and the probe times out without blocking", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 1 })
      const app = "probe-pool"
      const { client, router } = yield* RoutedClient.make({
        primary: cluster.primary.url,
        replicas: cluster.replicas.map((r) => r.url),
        applicationName: app,
        connectTimeout: "1 second",
        health: { interval: "100 millis", timeout: "400 millis" }
      })
      yield* awaitProbes(router, "replica-0", 3)
      // The pooled connection the start-up question opened (until idleTimeout); an idle
      // node's probe runs on a one-off connection (`<app>:probe`), closed at once.
      for (const node of cluster.nodes) {
        expect(yield* waitFor(connectionsOf(cluster, node, app), (names) => names.every((name) => name === app)))
          .toEqual([app])
      }

      const replica = cluster.replicas[0]!
      yield* cluster.freeze(replica)
      // The primary still reports it streaming (until its reply is older than replyTimeout):
      // a routed read that hangs on it is what gets it probed.
      const hung = yield* Effect.fork(client`SELECT 2 AS two`)
      const out = yield* waitFor(statusOf(router, "replica-0"), (s) => !s.healthy)
      expect(out.lastError).toContain("timed out")
      // The hung read was given up there when the replica left, and ran on the primary.
      expect(yield* Fiber.join(hung)).toEqual([{ two: 2 }])
      // Reads go on from the primary; timed-out probes leave nothing queued on the frozen node's pool.
      const sql = router.withRead(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1 AS one`))
      expect(yield* sql).toEqual([{ one: 1 }])
      const replicaNode = (yield* router.replicas)[0]!
      yield* awaitProbes(router, "replica-0", 3)
      expect(replicaNode.stats().waiting).toBe(0)
      expect(replicaNode.stats().total).toBeLessThan(replicaNode.stats().max)
      yield* cluster.thaw(replica)
      yield* waitFor(statusOf(router, "replica-0"), (s) => s.healthy)
    }).pipe(Effect.scoped))

  it.live("a replica whose pool is saturated by long statements stays in rotation: the probe does not queue behind them", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 1 })
      const router = yield* SqlRouter.make({
        primary: cluster.primary.url,
        replicas: cluster.replicas.map((r) => r.url),
        replicaMaxSizeEach: 2,
        connectTimeout: "1 second",
        health: { interval: "100 millis", timeout: "300 millis" }
      })
      const long = router.withReplica(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT pg_sleep(3)`))
      const fiber = yield* Effect.fork(Effect.all([long, long], { concurrency: "unbounded" }))
      const node = (yield* router.replicas)[0]!
      yield* waitFor(Effect.sync(() => node.stats()), (s) => s.inUse === 2 && s.idle === 0)
      // Several probes, each bounded by 300 ms, while both connections are busy for 3 s.
      yield* awaitProbes(router, "replica-0", 4)
      expect(node.stats().inUse).toBe(2)
      const status = yield* statusOf(router, "replica-0")
      expect(status.healthy).toBe(true)
      expect(status.state).toBe("Following")
      yield* Fiber.join(fiber)
    }).pipe(Effect.scoped))

  it.live("a replica that keeps answering its sessions while new logins stall (a crowded host) stays in rotation when its probes time out", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 1 })
      const router = yield* SqlRouter.make({
        primary: cluster.primary.url,
        replicas: cluster.replicas.map((r) => r.url),
        applicationName: "probe-crowded",
        connectTimeout: "1 second",
        health: { interval: "100 millis", timeout: "300 millis", failureThreshold: 1 }
      })
      yield* awaitProbes(router, "replica-0", 1)
      // A read that gets a 10 kB row every 50 ms for 6 s: the replica keeps answering its
      // session, and no statement completes meanwhile, so its watcher suspects it and probes it.
      const streaming = yield* Effect.fork(router.withReplica(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql`SELECT pg_sleep(0.05) IS NULL AS slept, repeat('x', 10000) AS pad FROM generate_series(1, 120)`
      )))
      // New logins stall, as on a host too crowded to start backends in time: the replica's
      // postmaster is stopped (its backends run on, so the read's session keeps getting rows).
      yield* Effect.acquireRelease(
        signalPostmaster(cluster, cluster.replicas[0]!, "SIGSTOP"),
        () => signalPostmaster(cluster, cluster.replicas[0]!, "SIGCONT")
      )
      // A probe timed out on its own connection while the read's session got rows: no verdict (Busy).
      const busy = yield* waitFor(statusOf(router, "replica-0"), (s) => s.state === "Busy")
      expect(busy.healthy).toBe(true)
      yield* awaitProbes(router, "replica-0", 3)
      expect((yield* statusOf(router, "replica-0")).healthy).toBe(true)
      expect(yield* Fiber.join(streaming)).toHaveLength(120)
      yield* signalPostmaster(cluster, cluster.replicas[0]!, "SIGCONT")
      yield* waitFor(statusOf(router, "replica-0"), (s) => s.healthy && s.state === "Following")
    }).pipe(Effect.scoped))
})
