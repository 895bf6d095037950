import { describe, expect, layer } from "@effect/vitest"
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Statement from "effect/sql/Statement"
import { errorCode } from "@effect-sql-router/core/PgErrors"
import * as Consistency from "@effect-sql-router/effect4/Consistency"
import * as RoutedClient from "@effect-sql-router/effect4/RoutedClient"
import type * as RouterConfig from "@effect-sql-router/effect4/RouterConfig"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { activeStatements, configFor, eventually as poll, recordingTracer } from "./utils.js"

// Hedged reads (issue 16, item 4): with `hedgeAfter`, a read its replica has
// not answered in that time also starts on another replica; the first answer
// wins and the other statement is cancelled on the server. No health probes
// and no read timeout here (unless a test says so), so that nothing but the
// hedge can rescue a read from a frozen or slow replica.

const Cluster = PgCluster.layer({ replicas: 2 })

/** A fresh router and routed client on the test cluster, in the test's scope. */
const routed = (extra: Partial<RouterConfig.RouterConfig> = {}) =>
  Effect.flatMap(PgCluster.PgCluster, (cluster) => RoutedClient.make(configFor(cluster, extra)))

const hedged = (hedgeAfter: RouterConfig.RouterConfig["hedgeAfter"], extra: Partial<RouterConfig.RouterConfig> = {}) =>
  routed({ hedgeAfter, ...extra })

/** Polls (live clock) until `check` holds; fails after a bounded number of tries. */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>) => poll(check, 400)

const replica = (router: SqlRouter.SqlRouter, id: string) =>
  Effect.map(router.stats, (stats) => stats.replicas.find((r) => r.id === id)!)

const served = (router: SqlRouter.SqlRouter) =>
  Effect.map(router.stats, (stats) => ({
    primary: stats.primary.served,
    "replica-0": stats.replicas.find((r) => r.id === "replica-0")!.served.reads,
    "replica-1": stats.replicas.find((r) => r.id === "replica-1")!.served.reads
  }))

const allIdle = (router: SqlRouter.SqlRouter) =>
  eventually(Effect.map(router.stats, (stats) => stats.replicas.every((r) => r.inFlight === 0)))

/** Hedges started on `node` so far (the counter is process-wide: compare before and after). */
const hedgesOn = (node: string) =>
  Effect.map(Metric.value(Metric.withAttributes(SqlRouter.metrics.hedgedReads, { node })), (c) => c.count)

const whoAnswers = (client: PgClient.PgClient, sql: string) =>
  Effect.map(client.unsafe<{ name: string }>(sql), (rows) => rows[0]!.name)

layer(Cluster, { timeout: "180 seconds", excludeTestServices: true })("hedged reads", (it) => {
  it.effect("setup", () =>
    Effect.gen(function*() {
      const { client: sql } = yield* routed()
      yield* sql`CREATE TABLE hedge_writes (id int NOT NULL)`
      yield* Effect.flatMap(PgCluster.PgCluster, (c) => c.awaitReplication())
    }))

  describe("a slow or frozen replica", () => {
    it.effect("reads waiting on a frozen replica are answered by the other one; none fails", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client, router } = yield* hedged("100 millis")
        const frozen = cluster.replicas.find((r) => r.name === "replica-0")!
        const read = "SELECT current_setting('cluster_name') AS name, 'hedge_frozen_marker' AS marker"
        const reads = Effect.forEach(Array.from({ length: 8 }), () => whoAnswers(client, read), {
          concurrency: "unbounded"
        })
        // Warm both pools: the reads on the frozen replica are then sent on open connections.
        yield* reads
        const before = yield* served(router)
        const hedgesBefore = yield* hedgesOn("replica-1")
        const answers = yield* Effect.acquireUseRelease(
          cluster.freeze(frozen),
          () => reads,
          () => Effect.orDie(cluster.thaw(frozen))
        )
        const after = yield* served(router)
        // Every read answered, all by the replica that is not frozen.
        expect(answers).toEqual(Array.from({ length: 8 }, () => "replica-1"))
        // Round robin sent some of them to the frozen replica; each of those was hedged.
        const sentToFrozen = after["replica-0"] - before["replica-0"]
        expect(sentToFrozen).toBeGreaterThan(0)
        expect(after["replica-1"] - before["replica-1"]).toBe(8)
        expect((yield* hedgesOn("replica-1")) - hedgesBefore).toBe(sentToFrozen)
        // Thawed, the given-up statements are gone and both counts are back to 0.
        yield* eventually(Effect.map(activeStatements(cluster, frozen, "hedge_frozen_marker"), (n) => n === 0))
        yield* allIdle(router)
        expect((yield* replica(router, "replica-0")).healthy).toBe(true)
      }))

    it.effect("the loser is cancelled on the server: a read sleeping on one replica is answered by the other", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client, router } = yield* hedged("100 millis")
        const slow = cluster.replicas.find((r) => r.name === "replica-0")!
        const read = "SELECT current_setting('cluster_name') AS name, " +
          "pg_sleep(CASE WHEN current_setting('cluster_name') = 'replica-0' THEN 60 ELSE 0 END) IS NULL AS slept, " +
          "'hedge_slow_marker' AS marker"
        const { spans, tracer } = recordingTracer()
        const answers = yield* Effect.withTracer(
          Effect.forEach(Array.from({ length: 4 }), () => whoAnswers(client, read), { concurrency: "unbounded" }),
          tracer
        ).pipe(Effect.provideService(Statement.SpanPropagationEnabled, true))
        expect(answers).toEqual(["replica-1", "replica-1", "replica-1", "replica-1"])
        // Each statement's span names the node that answered it.
        const nodes = spans.filter((s) => s.attributes.has("db.query.text")).map((s) => s.attributes.get("effect_sql_router.node"))
        expect(nodes).toEqual(["replica-1", "replica-1", "replica-1", "replica-1"])
        // The 60 s sleeps were cancelled, not left to run out.
        yield* eventually(Effect.map(activeStatements(cluster, slow, "hedge_slow_marker"), (n) => n === 0))
        yield* allIdle(router)
      }))
  })

  describe("only when needed", () => {
    it.effect("a read answered before hedgeAfter runs once", () =>
      Effect.gen(function*() {
        const { client, router } = yield* hedged("30 seconds")
        const before = yield* served(router)
        const hedgesBefore = (yield* hedgesOn("replica-0")) + (yield* hedgesOn("replica-1"))
        for (let i = 0; i < 20; i++) yield* whoAnswers(client, "SELECT current_setting('cluster_name') AS name")
        const after = yield* served(router)
        // 20 reads, 20 statements on the servers: no read reached a second replica.
        expect(after["replica-0"] - before["replica-0"] + after["replica-1"] - before["replica-1"]).toBe(20)
        expect(after.primary.reads).toBe(before.primary.reads)
        expect((yield* hedgesOn("replica-0")) + (yield* hedgesOn("replica-1"))).toBe(hedgesBefore)
        yield* allIdle(router)
      }))

    it.effect("a session's read is hedged only onto a replica that has its writes", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client, router } = yield* hedged("100 millis")
        const behind = cluster.replicas.find((r) => r.name === "replica-1")!
        const read = "SELECT current_setting('cluster_name') AS name, pg_sleep(0.5) IS NULL AS slept"
        const outcome = yield* Effect.acquireUseRelease(
          cluster.pauseReplay(behind),
          () =>
            Effect.gen(function*() {
              const before = yield* served(router)
              const inSession = yield* SqlRouter.session(
                Effect.andThen(
                  client`INSERT INTO hedge_writes VALUES (0)`,
                  whoAnswers(client, read).pipe(
                    Consistency.withReadPolicy({ maxWait: "20 seconds", onNotCaughtUp: "fail" })
                  )
                )
              )
              const afterSession = yield* served(router)
              // Outside a session the paused replica is as good as any: the slow read is hedged.
              const hedgesBefore = (yield* hedgesOn("replica-0")) + (yield* hedgesOn("replica-1"))
              yield* whoAnswers(client, read)
              const hedgesAfter = (yield* hedgesOn("replica-0")) + (yield* hedgesOn("replica-1"))
              return { inSession, before, afterSession, hedges: hedgesAfter - hedgesBefore }
            }),
          () => Effect.orDie(Effect.andThen(cluster.resumeReplay(behind), cluster.awaitReplication()))
        )
        expect(outcome.inSession).toBe("replica-0")
        // The replica behind the session's write never saw the read, although it was slower than hedgeAfter.
        expect(outcome.afterSession["replica-1"]).toBe(outcome.before["replica-1"])
        expect(outcome.hedges).toBe(1)
        yield* allIdle(router)
      }))
  })

  describe("failures", () => {
    it.effect("an attempt that fails while the other runs leaves the read to the other", () =>
      Effect.gen(function*() {
        const { client, router } = yield* hedged("100 millis")
        // On replica-0 the read fails after a second (division by zero, at run time: count(*) is not
        // folded by the planner); on replica-1 it answers after two.
        const read = "SELECT current_setting('cluster_name') AS name, CASE WHEN current_setting('cluster_name') = 'replica-0' " +
          "THEN (SELECT 1 / (count(*) - 1)::int FROM pg_sleep(1)) ELSE (SELECT 1 FROM pg_sleep(2)) END AS n"
        const before = yield* served(router)
        const answer = yield* whoAnswers(client, read)
        const after = yield* served(router)
        expect(answer).toBe("replica-1")
        // One statement on each replica, none more.
        expect(after["replica-0"] - before["replica-0"]).toBe(1)
        expect(after["replica-1"] - before["replica-1"]).toBe(1)
        yield* allIdle(router)
      }))

    it.effect("when both attempts fail the read fails as it would unhedged, and runs nowhere else", () =>
      Effect.gen(function*() {
        const { client, router } = yield* hedged("100 millis")
        const before = yield* served(router)
        const error = yield* Effect.flip(client.unsafe("SELECT 1 / (count(*) - 1)::int FROM pg_sleep(0.5)"))
        const after = yield* served(router)
        expect(errorCode(error)).toBe("22012")
        expect(after["replica-0"] - before["replica-0"]).toBe(1)
        expect(after["replica-1"] - before["replica-1"]).toBe(1)
        expect(after.primary.reads).toBe(before.primary.reads)
        yield* allIdle(router)
      }))

    it.effect("an attempt whose connection dies takes its replica out, and the other attempt answers", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client, router } = yield* hedged("100 millis")
        const [dying, other] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
        const fiber = yield* Effect.forkChild(
          whoAnswers(client, "SELECT current_setting('cluster_name') AS name, pg_sleep(3) IS NULL AS slept, 'hedge_kill_marker' AS m")
        )
        // The read and its hedge both run; then one of them loses its connection (57P01).
        yield* eventually(Effect.map(activeStatements(cluster, dying, "hedge_kill_marker"), (n) => n === 1))
        yield* eventually(Effect.map(activeStatements(cluster, other, "hedge_kill_marker"), (n) => n === 1))
        yield* cluster.query(
          dying,
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%hedge_kill_marker%' AND pid <> pg_backend_pid()"
        )
        expect(yield* Fiber.join(fiber)).toBe(other.name)
        // The failure was seen: the replica whose connection died left rotation (passive detection).
        expect((yield* replica(router, dying.name)).healthy).toBe(false)
        expect((yield* replica(router, other.name)).healthy).toBe(true)
        yield* allIdle(router)
      }))
  })

  describe("eviction", () => {
    const sleepy = "SELECT current_setting('cluster_name') AS name, pg_sleep(3) IS NULL AS slept, 'hedge_evict_marker' AS m"

    it.effect("a replica leaving rotation gives up its attempt at once; the other attempt answers", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client, router } = yield* hedged("100 millis")
        const [evicted, other] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
        const before = yield* served(router)
        // The evicted replica's statement sleeps 60 s, the other's 3 s.
        const sleepsLongOnEvicted =
          `SELECT current_setting('cluster_name') AS name, pg_sleep(CASE current_setting('cluster_name') WHEN '${evicted.name}' THEN 60 ELSE 3 END) IS NULL AS slept, 'hedge_evict_marker' AS m`
        const fiber = yield* Effect.forkChild(whoAnswers(client, sleepsLongOnEvicted))
        yield* eventually(Effect.map(activeStatements(cluster, evicted, "hedge_evict_marker"), (n) => n === 1))
        yield* eventually(Effect.map(activeStatements(cluster, other, "hedge_evict_marker"), (n) => n === 1))
        yield* router.markReplicaUnhealthy(evicted.name)
        // The count comes back with the eviction, not when the server answers: leaving
        // rotation severs the replica's sockets, which fails its attempt, and the
        // wait below gives up after 20 s, long before the 60 s statement could answer.
        // (Whether the server still runs it when the count is back depends on when
        // the abandoned statement's cancel lands: not asserted.)
        yield* eventually(Effect.map(replica(router, evicted.name), (r) => r.inFlight === 0))
        expect(yield* Fiber.join(fiber)).toBe(other.name)
        // The abandoned statement, if it still runs, cancelled rather than waited out.
        yield* cluster.query(
          evicted,
          "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%hedge_evict_marker%' AND pid <> pg_backend_pid()"
        )
        yield* eventually(Effect.map(activeStatements(cluster, evicted, "hedge_evict_marker"), (n) => n === 0))
        // Not run a third time: the other attempt was still running.
        const after = yield* served(router)
        expect(after["replica-0"] - before["replica-0"] + after["replica-1"] - before["replica-1"]).toBe(2)
        expect(after.primary.reads).toBe(before.primary.reads)
        yield* allIdle(router)
      }))

    it.effect("both replicas leaving rotation: the read runs once more on the node chosen now", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client, router } = yield* hedged("100 millis")
        const [first, second] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
        const fiber = yield* Effect.forkChild(whoAnswers(client, sleepy))
        yield* eventually(Effect.map(activeStatements(cluster, first, "hedge_evict_marker"), (n) => n === 1))
        yield* eventually(Effect.map(activeStatements(cluster, second, "hedge_evict_marker"), (n) => n === 1))
        yield* router.markReplicaUnhealthy(first.name)
        yield* router.markReplicaUnhealthy(second.name)
        expect(yield* Fiber.join(fiber)).toBe("primary")
        const stats = yield* router.stats
        expect(stats.replicas.map((r) => r.inFlight)).toEqual([0, 0])
        yield* eventually(Effect.map(activeStatements(cluster, first, "hedge_evict_marker"), (n) => n === 0))
        yield* eventually(Effect.map(activeStatements(cluster, second, "hedge_evict_marker"), (n) => n === 0))
      }))
  })

  describe("interruption", () => {
    it.effect("interrupting a hedged read cancels both statements on the servers", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client, router } = yield* hedged("100 millis")
        const [first, second] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
        const before = yield* served(router)
        const fiber = yield* Effect.forkChild(client.unsafe("SELECT pg_sleep(60), 'hedge_interrupt_marker' AS marker"))
        // Both attempts run: the read and its hedge.
        yield* eventually(Effect.map(activeStatements(cluster, first, "hedge_interrupt_marker"), (n) => n === 1))
        yield* eventually(Effect.map(activeStatements(cluster, second, "hedge_interrupt_marker"), (n) => n === 1))
        yield* Fiber.interrupt(fiber)
        yield* eventually(Effect.map(activeStatements(cluster, first, "hedge_interrupt_marker"), (n) => n === 0))
        yield* eventually(Effect.map(activeStatements(cluster, second, "hedge_interrupt_marker"), (n) => n === 0))
        yield* allIdle(router)
        const after = yield* served(router)
        expect(after["replica-0"] - before["replica-0"]).toBe(1)
        expect(after["replica-1"] - before["replica-1"]).toBe(1)
      }))
  })

  describe("bookkeeping", () => {
    it.effect("under a load of hedged, won, lost and interrupted reads, every count returns to zero", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { client, router } = yield* hedged("10 millis", { selection: "least-connections" })
        const hedgesBefore = (yield* hedgesOn("replica-0")) + (yield* hedgesOn("replica-1"))
        // Every cancelled statement is still sleeping when its cancel arrives: a losing attempt
        // sleeps 5 s on replica-1, and the interrupted reads sleep 5 s everywhere. (A statement
        // that ends just before its CancelRequest arrives goes back to the pool, and the cancel
        // then hits that connection's next statement: a matter of NodeInternal.abandon, for
        // every cancelled statement, hedged or not.)
        const raced = "SELECT pg_sleep(CASE WHEN current_setting('cluster_name') = 'replica-1' THEN 5 ELSE 0.3 END), " +
          "'hedge_load_marker' AS m"
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 240 }, (_, i) => i),
          (i) =>
            i % 3 === 0
              ? Effect.as(Effect.timeoutOption(client.unsafe("SELECT pg_sleep(5), 'hedge_load_marker' AS m"), "30 millis"), "interrupted")
              : i % 3 === 1
              ? Effect.as(client.unsafe(raced), "hedged")
              : Effect.as(client.unsafe(`SELECT ${i}::int AS i`), "fast"),
          { concurrency: 24 }
        )
        expect(outcomes.filter((o) => o === "hedged")).toHaveLength(80)
        expect(outcomes.filter((o) => o === "fast")).toHaveLength(80)
        // Every raced read was hedged or answered on replica-0 first; the interrupted ones were mostly hedged too.
        expect((yield* hedgesOn("replica-0")) + (yield* hedgesOn("replica-1")) - hedgesBefore).toBeGreaterThan(40)
        for (const node of cluster.replicas) {
          yield* eventually(Effect.map(activeStatements(cluster, node, "hedge_load_marker"), (n) => n === 0))
        }
        yield* allIdle(router)
        const stats = yield* router.stats
        for (const replica of stats.replicas) expect(replica.healthy).toBe(true)
        // Every connection went back to its pool (a cancelled statement's too).
        yield* eventually(Effect.map(router.stats, (s) => s.replicas.every((r) => r.pool.inUse === 0)))
      }))
  })

  describe("never hedged", () => {
    it.effect("a slow write runs once, on the primary", () =>
      Effect.gen(function*() {
        const { client, router } = yield* hedged("50 millis")
        const before = yield* served(router)
        yield* client`INSERT INTO hedge_writes SELECT 1 FROM pg_sleep(0.5)`
        const after = yield* served(router)
        const [row] = yield* SqlRouter.primary(client<{ n: number }>`SELECT count(*)::int AS n FROM hedge_writes WHERE id = 1`)
        expect(row!.n).toBe(1)
        expect(after.primary.writes - before.primary.writes).toBe(1)
        expect(after["replica-0"]).toBe(before["replica-0"])
        expect(after["replica-1"]).toBe(before["replica-1"])
      }))

    it.effect("a slow read inside a transaction runs once, on the transaction's connection", () =>
      Effect.gen(function*() {
        const { client, router } = yield* hedged("50 millis")
        const before = yield* served(router)
        const hedgesBefore = (yield* hedgesOn("replica-0")) + (yield* hedgesOn("replica-1"))
        const [row] = yield* client.withTransaction(
          client<{ name: string }>`SELECT current_setting('cluster_name') AS name, pg_sleep(0.5) IS NULL AS slept`
        )
        expect(row!.name).toBe("primary")
        const after = yield* served(router)
        expect(after["replica-0"]).toBe(before["replica-0"])
        expect(after["replica-1"]).toBe(before["replica-1"])
        expect((yield* hedgesOn("replica-0")) + (yield* hedgesOn("replica-1"))).toBe(hedgesBefore)
      }))
  })
})
