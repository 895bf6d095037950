import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type * as HealthMonitor from "@effect-sql-router/effect4/HealthMonitor"
import type * as RouterConfig from "@effect-sql-router/effect4/RouterConfig"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"

// Admission by timeline, with a split brain made by hand: a replica is
// promoted while the old primary runs and takes a write the new primary never
// sees; then the old primary is restarted as a standby of the new one without
// a rewind (as an HA manager does before pg_rewind). Every test makes its own
// cluster: these tests break clusters.

const pollEvery = Schedule.spaced("25 millis")

const discovered = (cluster: PgCluster.PgCluster, extra: Partial<RouterConfig.RouterConfig> = {}): RouterConfig.RouterConfig => ({
  discovery: "auto",
  hosts: cluster.nodes.map((n) => n.url),
  connectTimeout: "1 second",
  health: { interval: "200 millis", timeout: "500 millis", successThreshold: 2 },
  ...extra
})

/** Which server answers a read, by its cluster_name. */
const readServedBy = SqlRouter.withRead(Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ name: string; lost: number }>`SELECT current_setting('cluster_name') AS name,
      (SELECT count(*)::int FROM t WHERE v = 'lost') AS lost`,
    (rows) => rows[0]!
  )))

/** Runs `effect` until `until` holds of its value (bounded); gives that value. */
const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, until: (a: A) => boolean) =>
  effect.pipe(
    Effect.filterOrFail(until, () => "not yet" as const),
    Effect.retry({ schedule: pollEvery, while: (e) => e === "not yet" }),
    Effect.timeout("30 seconds")
  )

const statusOf = (id: string) =>
  Effect.map(SqlRouter.replicaStatus, (all) => all.find((s) => s.id === id))

/** Waits until `id`'s status satisfies `ok`. */
const awaitStatus = (id: string, ok: (status: HealthMonitor.NodeStatus) => boolean) =>
  Effect.map(waitFor(statusOf(id), (s) => s !== undefined && ok(s)), (s) => s!)

/** Waits until `id` has been probed `n` more times. */
const awaitProbes = (id: string, n: number) =>
  Effect.gen(function*() {
    const seen = new Set<number>()
    yield* statusOf(id).pipe(
      Effect.tap((s) => Effect.sync(() => s?.lastProbeAt !== undefined && seen.add(s.lastProbeAt))),
      Effect.repeat({ until: () => seen.size > n, schedule: pollEvery }),
      Effect.timeout("30 seconds")
    )
  })

const withRouter = <A, E>(
  config: RouterConfig.RouterConfig,
  body: Effect.Effect<A, E, SqlRouter.SqlRouter | Scope.Scope>
) => Effect.flatMap(SqlRouter.make(config), (router) => Effect.provideService(body, SqlRouter.SqlRouter, router))

/** Promote replica-0 while the old primary runs, write to the old primary, restart it as a standby. */
const splitBrainThenRestart = (cluster: PgCluster.PgCluster) =>
  Effect.gen(function*() {
    const oldPrimary = cluster.primary
    const [promoted, follower] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
    yield* cluster.promote(promoted)
    yield* cluster.query(oldPrimary, "INSERT INTO t (v) VALUES ('lost')")
    // The standby still following the old primary replays the lost write too.
    yield* cluster.query<{ n: number }>(follower, "SELECT count(*)::int AS n FROM t WHERE v = 'lost'").pipe(
      Effect.repeat({ until: (rows) => rows[0]!.n === 1, schedule: pollEvery }),
      Effect.timeout("30 seconds")
    )
    yield* cluster.restartAsStandby(oldPrimary)
    return { oldPrimary, promoted, follower }
  })

const setup = Effect.gen(function*() {
  const cluster = yield* PgCluster.make({ replicas: 2 })
  yield* cluster.query(cluster.primary, "CREATE TABLE t (id serial PRIMARY KEY, v text)")
  yield* cluster.awaitReplication()
  return cluster
})

describe("admission by timeline", () => {
  it.live("a diverged old primary and a standby still following it get no reads; re-cloned, the old primary is taken back", () =>
    Effect.gen(function*() {
      const cluster = yield* setup
      yield* withRouter(discovered(cluster), Effect.gen(function*() {
        // node-0 = primary, node-1 = replica-0, node-2 = replica-1.
        expect(yield* SqlRouter.countHealthyReplicas).toBe(2)
        const { oldPrimary, promoted } = yield* splitBrainThenRestart(cluster)
        expect(yield* cluster.isInRecovery(oldPrimary)).toBe(true)
        // Discovery follows: node-1 is the only writable node.
        yield* SqlRouter.SqlRouter.pipe(
          Effect.flatMap((router) => router.primary),
          Effect.repeat({ until: (node) => node.id === "node-1", schedule: pollEvery }),
          Effect.timeout("30 seconds")
        )
        // Long enough for the old rule (a standby that answers, twice) to have let them in.
        yield* awaitProbes("node-0", 4)
        yield* awaitProbes("node-2", 4)
        const old = (yield* statusOf("node-0"))!
        const follower = (yield* statusOf("node-2"))!
        expect(old.healthy).toBe(false)
        expect(["Detached", "Diverged"]).toContain(old.state)
        expect(follower.healthy).toBe(false)
        expect(follower.state).toBe("Diverged")
        const reads = yield* Effect.forEach(Array.from({ length: 100 }), () => readServedBy)
        expect(new Set(reads.map((r) => r.name))).toEqual(new Set([promoted.name]))
        expect(reads.every((r) => r.lost === 0)).toBe(true)

        // The old primary rejoins as a re-cloned standby of node-1: it follows, and is taken back.
        yield* cluster.rejoinAsStandby(oldPrimary)
        const back = yield* awaitStatus("node-0", (s) => s.healthy)
        expect(back.state).toBe("Following")
        const served = yield* waitFor(readServedBy, (r) => r.name === oldPrimary.name)
        expect(served.lost).toBe(0)
        // The follower of the old timeline still cannot follow: it stays out.
        yield* awaitProbes("node-2", 2)
        expect((yield* statusOf("node-2"))!.healthy).toBe(false)
      }))
    }))

  it.live("manual topology: a replica on another timeline is out from the first probe", () =>
    Effect.gen(function*() {
      const cluster = yield* setup
      const [promoted, follower] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
      const oldPrimary = cluster.primary
      yield* cluster.promote(promoted)
      yield* cluster.query(oldPrimary, "INSERT INTO t (v) VALUES ('lost')")
      // The router is told the promoted node is the primary, and both others are replicas.
      const config: RouterConfig.RouterConfig = {
        primary: promoted.url,
        replicas: [follower.url],
        connectTimeout: "1 second",
        health: { interval: "200 millis", timeout: "500 millis" }
      }
      yield* withRouter(config, Effect.gen(function*() {
        // replica-0 of the router is `follower`: it streams from the old primary, on timeline 1.
        const status = (yield* statusOf("replica-0"))!
        expect(status.healthy).toBe(false)
        expect(status.state).toBe("Diverged")
        expect(status.lastError).toMatch(/timeline|follows/)
        expect((yield* readServedBy).name).toBe(promoted.name)
        // Added by hand, the old primary (writable) is not admitted either.
        yield* SqlRouter.addReplica(oldPrimary.url)
        expect((yield* statusOf("replica-1"))!.state).toBe("Writable")
        expect(yield* SqlRouter.countHealthyReplicas).toBe(0)
      }))
    }))
})

describe("discovery and pools follow roles", () => {
  it.live("with discovery, the primary's pool is primaryMaxSize; after a failover the pools swap sizes", () =>
    Effect.gen(function*() {
      const cluster = yield* setup
      yield* withRouter(
        discovered(cluster, { primaryMaxSize: 7, replicaMaxSizeEach: 3 }),
        Effect.gen(function*() {
          const before = yield* SqlRouter.stats
          expect(before.primary.id).toBe("node-0")
          expect(before.primary.pool.max).toBe(7)
          expect(before.replicas.map((r) => r.pool.max)).toEqual([3, 3])
          yield* SqlRouter.promote("node-1")
          const after = yield* SqlRouter.stats
          expect(after.primary.id).toBe("node-1")
          expect(after.primary.pool.max).toBe(7)
          expect(after.replicas.find((r) => r.id === "node-0")!.pool.max).toBe(3)
          // The promoted pool really holds 7 connections at once: 7
          // transactions each keep theirs until all 7 have one (with a
          // smaller pool the 7th never would, and this times out).
          const arrived = yield* Ref.make(0)
          const allIn = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const hold = SqlRouter.transaction(Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* sql`SELECT 1`
            if ((yield* Ref.updateAndGet(arrived, (n) => n + 1)) === 7) yield* Deferred.succeed(allIn, undefined)
            yield* Deferred.await(release)
          }))
          const held = yield* Effect.forEach(Array.from({ length: 7 }), () => hold, { concurrency: "unbounded" }).pipe(
            Effect.forkChild
          )
          yield* Deferred.await(allIn).pipe(Effect.timeout("30 seconds"))
          expect((yield* SqlRouter.stats).primary.pool.inUse).toBe(7)
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(held)
        })
      )
    }))

  it.live("writers that meet a read-only primary wait for one discovery round: the next write lands on the new primary", () =>
    Effect.gen(function*() {
      const cluster = yield* setup
      // Probes so rare that only the writers' round can find the new primary.
      const config = discovered(cluster, { health: { interval: "1 hour", timeout: "1 second" } })
      yield* withRouter(config, Effect.gen(function*() {
        yield* splitBrainThenRestart(cluster)
        const write = SqlRouter.withWrite(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.map(
            sql<{ name: string }>`INSERT INTO t (v) VALUES ('w') RETURNING current_setting('cluster_name') AS name`,
            (rows) => rows[0]!.name
          )))
        const failed = yield* Effect.forEach(Array.from({ length: 8 }), () => Effect.flip(write), {
          concurrency: "unbounded"
        })
        expect(failed.map((e) => e._tag)).toEqual(Array(8).fill("PrimaryUnavailable"))
        expect(failed[0]!.message).toContain("not retried")
        // No wait, no retry: the round those writers waited for has switched the primary.
        expect(yield* write).toBe("replica-0")
      }))
    }))
})
