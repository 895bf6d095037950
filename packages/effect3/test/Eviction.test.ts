import { describe, expect, it } from "@effect/vitest"
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as RoutedClient from "effect-sql-router/RoutedClient"
import type * as RouterConfig from "effect-sql-router/RouterConfig"
import type * as SqlRouter from "effect-sql-router/SqlRouter"
import { PgCluster } from "effect-sql-router/testing"
import { configFor } from "./utils.js"

// Evict means release: reads waiting on a replica that leaves rotation run
// elsewhere at once, not at their read timeout. The read timeout is long
// (10 s) so that it cannot be what rescues them; the proof that eviction did
// is the frozen replica's in-flight count falling to 0 while it is still
// frozen (a frozen server never answers, so only eviction gives the count back).

const sleepy = (onReplica0 = 30) =>
  "SELECT current_setting('cluster_name') AS name, " +
  `pg_sleep(CASE WHEN current_setting('cluster_name') = 'replica-0' THEN ${onReplica0} ELSE 0.5 END) IS NULL AS slept`

const pollEvery = Schedule.spaced("20 millis")

const config = (cluster: PgCluster.PgCluster, extra: Partial<RouterConfig.RouterConfig> = {}) =>
  configFor(cluster, {
    connectTimeout: "1 second",
    readTimeout: "10 seconds",
    health: { interval: "200 millis", timeout: "500 millis", failureThreshold: 1, successThreshold: 2 },
    ...extra
  })

/** Reads served by every node, counted when a node starts one (a read run twice counts twice). */
const totalReads = (stats: SqlRouter.Stats) =>
  stats.primary.served.reads + stats.replicas.reduce((sum, r) => sum + r.served.reads, 0)

const replicaStats = (router: SqlRouter.SqlRouter, id: string) =>
  Effect.map(router.stats, (stats) => stats.replicas.find((r) => r.id === id))

/** Waits (bounded, by a condition) until `id` has at least `n` reads in flight. */
const awaitInFlight = (router: SqlRouter.SqlRouter, id: string, n: number) =>
  replicaStats(router, id).pipe(
    Effect.repeat({ until: (r) => (r?.inFlight ?? 0) >= n, schedule: pollEvery }),
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`${id} never had ${n} reads in flight`) })
  )

/** Waits (5 s at most) until `id` holds no read: a replica marked out gives its reads up at once. */
const awaitReleased = (router: SqlRouter.SqlRouter, id: string) =>
  replicaStats(router, id).pipe(
    Effect.repeat({ until: (r) => r?.inFlight === 0, schedule: pollEvery }),
    Effect.timeoutFail({
      duration: "5 seconds",
      onTimeout: () => new Error(`${id} still holds reads after it was marked unhealthy`)
    })
  )

/**
 * Eight concurrent reads through the routed client; each says which server
 * answered. On replica-0 a read sleeps `onReplica0` seconds (by default 30 s,
 * longer than the read timeout and than any wait below), elsewhere half a second.
 */
const slowReads = (client: PgClient.PgClient, onReplica0?: number) =>
  Effect.forEach(
    Array.from({ length: 8 }, (_, i) => i),
    () =>
      Effect.either(
        client.unsafe<{ name: string }>(
          sleepy(onReplica0)
        ).pipe(Effect.map((rows) => rows[0]!.name))
      ),
    { concurrency: "unbounded" }
  )

describe("evict means release", () => {
  it.live("reads waiting on a frozen replica run elsewhere once the probe takes it out; none fails", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 2 })
      const { client, router } = yield* RoutedClient.make(config(cluster))
      const victim = cluster.replicas[0]!
      const baseline = totalReads(yield* router.stats)
      const reads = yield* Effect.fork(slowReads(client))
      yield* awaitInFlight(router, "replica-0", 2)
      yield* cluster.freeze(victim)
      const results = yield* Fiber.join(reads)
      // Every read finished, none failed, and the frozen replica holds none of them any more.
      expect(results.filter((r) => r._tag === "Left")).toEqual([])
      expect(results).toHaveLength(8)
      const frozen = (yield* replicaStats(router, "replica-0"))!
      expect(frozen.healthy).toBe(false)
      expect(frozen.inFlight).toBe(0)
      // The reads given up by replica-0 (at least the two seen in flight there) ran once more elsewhere.
      expect(totalReads(yield* router.stats) - baseline - 8).toBeGreaterThanOrEqual(2)
      yield* cluster.thaw(victim)
    }).pipe(Effect.scoped), 120_000)

  it.live("marking a replica unhealthy by hand cancels its reads there and runs them elsewhere", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 2 })
      const { client, router } = yield* RoutedClient.make(config(cluster, { health: { enabled: false } }))
      const reads = yield* Effect.fork(slowReads(client))
      yield* awaitInFlight(router, "replica-0", 2)
      yield* router.markReplicaUnhealthy("replica-0")
      expect((yield* replicaStats(router, "replica-0"))!.inFlight).toBe(0)
      const results = yield* Fiber.join(reads)
      expect(results.filter((r) => r._tag === "Left")).toEqual([])
      // Every answer came from a node still in rotation.
      const names = results.map((r) => r._tag === "Right" ? r.right : "failed")
      expect(names.filter((name) => name === "replica-0")).toEqual([])
      // The server was asked to cancel the given-up statements: none is left running on replica-0.
      const stillRunning = yield* cluster.query<{ n: number }>(
        victim(cluster),
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(CASE%' AND pid <> pg_backend_pid()"
      ).pipe(
        Effect.map((rows) => rows[0]!.n),
        Effect.filterOrFail((n) => n === 0, (n) => new Error(`${n} statements still run on replica-0`)),
        Effect.retry(pollEvery),
        Effect.timeout(Duration.seconds(20))
      )
      expect(stillRunning).toBe(0)
    }).pipe(Effect.scoped), 120_000)

  it.live("a read still waiting for a session when its replica is marked unhealthy runs elsewhere too", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 2 })
      // One session per replica: replica-0's second read waits in its pool while the first sleeps.
      const { client, router } = yield* RoutedClient.make(
        config(cluster, { replicaMaxSizeEach: 1, health: { enabled: false } })
      )
      const reads = yield* Effect.fork(slowReads(client))
      yield* replicaStats(router, "replica-0").pipe(
        Effect.repeat({ until: (r) => r !== undefined && r.pool.inUse >= 1 && r.pool.waiting >= 1, schedule: pollEvery }),
        Effect.timeoutFail({
          duration: "20 seconds",
          onTimeout: () => new Error("replica-0 never had a read waiting for its session")
        })
      )
      yield* router.markReplicaUnhealthy("replica-0")
      // The waiting read gives up as the running one does, instead of taking
      // the released session and sleeping there until its read timeout.
      yield* awaitReleased(router, "replica-0")
      const results = yield* Fiber.join(reads)
      expect(results.filter((r) => r._tag === "Left")).toEqual([])
      expect(results.map((r) => r._tag === "Right" ? r.right : "failed").filter((n) => n === "replica-0")).toEqual([])
    }).pipe(Effect.scoped), 120_000)

  it.live("a replica marked unhealthy and at once healthy again stays in rotation: its severed reads run elsewhere, none fails", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 2 })
      const { client, router } = yield* RoutedClient.make(config(cluster, { health: { enabled: false } }))
      const reads = yield* Effect.fork(slowReads(client, 2))
      yield* awaitInFlight(router, "replica-0", 2)
      // Back before its reads have seen their sessions cut: the cut is the router's own doing,
      // not a failure of the replica, so it does not take the replica out again. (Reads sleep
      // 2 s there: one cut that runs there again ends well within the read timeout.)
      yield* router.markReplicaUnhealthy("replica-0")
      yield* router.markReplicaHealthy("replica-0")
      const results = yield* Fiber.join(reads)
      expect(results.filter((r) => r._tag === "Left")).toEqual([])
      expect(results).toHaveLength(8)
      expect((yield* replicaStats(router, "replica-0"))?.healthy).toBe(true)
      // The reads cut on replica-0 ran once more: more reads started than were asked for.
      expect(totalReads(yield* router.stats)).toBeGreaterThan(8)
    }).pipe(Effect.scoped), 120_000)

  it.live("removing a replica runs its waiting reads elsewhere and completes the removal", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 2 })
      // No read timeout: only eviction keeps the reads from waiting out their 30 s sleep on replica-0.
      const { client, router } = yield* RoutedClient.make(
        config(cluster, { readTimeout: undefined, health: { enabled: false } })
      )
      const reads = yield* Effect.fork(slowReads(client))
      yield* awaitInFlight(router, "replica-0", 2)
      yield* router.removeReplica("replica-0")
      const results = yield* Fiber.join(reads)
      expect(results.filter((r) => r._tag === "Left")).toEqual([])
      expect(results.map((r) => r._tag === "Right" ? r.right : "failed").filter((n) => n === "replica-0")).toEqual([])
      expect((yield* router.stats).replicas.map((r) => r.id)).toEqual(["replica-1"])
    }).pipe(Effect.scoped), 120_000)
})

const victim = (cluster: PgCluster.PgCluster) => cluster.replicas[0]!
