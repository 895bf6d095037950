import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import * as RoutedClient from "@effect-sql-router/effect4/RoutedClient"
import type * as RouterConfig from "@effect-sql-router/effect4/RouterConfig"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { type Load, loadTable, missingWrites, startLoad } from "./load.js"
import { configFor } from "./utils.js"

// Fault injection on the live clock: every scenario gets its own cluster, a
// router with fast probes, and a concurrent mixed read/write load.

const interval = Duration.millis(300)
// Generous enough that a healthy replica on a loaded 2-core machine never misses it.
const probeTimeout = Duration.millis(1000)
/** One interval plus the probe timeout, with room for a loaded 2-core machine. */
const detectionBound = Duration.sum(Duration.sum(interval, probeTimeout), Duration.seconds(3))

const pollEvery = Schedule.spaced("20 millis")

const faultConfig: Partial<RouterConfig.RouterConfig> = {
  connectTimeout: "1 second",
  readTimeout: "2 seconds",
  health: { interval, timeout: probeTimeout, failureThreshold: 1, successThreshold: 2 }
}

const scenario = <A, E>(
  extra: Partial<RouterConfig.RouterConfig>,
  body: Effect.Effect<A, E, PgCluster.PgCluster | SqlRouter.SqlRouter | SqlClient.SqlClient | Scope.Scope>
) =>
  Effect.gen(function*() {
    const cluster = yield* PgCluster.make({ replicas: 2 })
    yield* cluster.query(cluster.primary, loadTable)
    yield* cluster.awaitReplication()
    // The router lives while the body runs, and closes before the cluster does.
    return yield* body.pipe(
      Effect.provide(RoutedClient.layer(configFor(cluster, { ...faultConfig, ...extra }))),
      Effect.provideService(PgCluster.PgCluster, cluster)
    )
  }).pipe(Effect.scoped)

/** Waits (bounded) until the replica is in or out of rotation. */
const inRotation = (id: string, expected: boolean, bound: Duration.Input = detectionBound) =>
  SqlRouter.replicaStatus.pipe(
    Effect.repeat({ until: (all) => all.find((s) => s.id === id)?.healthy === expected, schedule: pollEvery }),
    Effect.timeoutOrElse({
      duration: bound,
      orElse: () => Effect.fail(new Error(`${id} did not ${expected ? "return to" : "leave"} rotation in time`))
    })
  )


const readsOf = (load: Load, node: string) =>
  Effect.map(load.snapshot, (s) => s.readsBy[node] ?? 0)

/** Waits (bounded) until the node serves reads again. */
const servesAgain = (load: Load, node: string) =>
  Effect.flatMap(readsOf(load, node), (before) =>
    readsOf(load, node).pipe(
      Effect.repeat({ until: (n) => n > before, schedule: pollEvery }),
      Effect.timeoutOrElse({ duration: "20 seconds", orElse: () => Effect.fail(new Error(`${node} never served again`)) })
    ))

/** While 200 more reads succeed elsewhere, none reaches `node`. */
const receivesNoReads = (load: Load, node: string) =>
  Effect.gen(function*() {
    const before = yield* readsOf(load, node)
    yield* load.awaitReads(200)
    expect(yield* readsOf(load, node)).toBe(before)
  })

/** Stops the load: no read failed, no write failed, every committed write is on the primary. */
const stopWithoutLoss = (load: Load) =>
  Effect.gen(function*() {
    const report = yield* load.stop
    expect(report.readFailures).toEqual([])
    expect(report.writeFailures).toEqual([])
    expect(yield* missingWrites(report)).toBe(0)
    return report
  })

describe("failure survival", () => {
  it.live("a region that fails on a dead replica takes it out of rotation at once (no probes needed)", () =>
    scenario({ health: { enabled: false } }, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const who = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT current_setting('cluster_name') AS name`)
      expect(yield* SqlRouter.withRead(who)).toEqual([{ name: "replica-0" }])
      yield* cluster.kill(cluster.replicas[0]!)
      // Round-robin sends the next region to replica-1, the one after to the dead replica-0.
      yield* SqlRouter.withRead(who)
      const failed = yield* Effect.flip(SqlRouter.withRead(who))
      expect(failed._tag).toBe("SqlError")
      expect(yield* SqlRouter.countHealthyReplicas).toBe(1)
      const after = yield* Effect.forEach([1, 2, 3], () => SqlRouter.withRead(who))
      expect(after.flat()).toEqual([{ name: "replica-1" }, { name: "replica-1" }, { name: "replica-1" }])
    })))


  it.live("a killed replica costs no reads, leaves rotation, and returns after restart", () =>
    scenario({}, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const load = yield* startLoad({ readers: 4, writers: 2 })
      yield* load.awaitReads(50)
      const victim = cluster.replicas[0]!
      yield* cluster.kill(victim)
      yield* inRotation("replica-0", false)
      const status = (yield* SqlRouter.replicaStatus).find((s) => s.id === "replica-0")!
      expect(status.healthy).toBe(false)
      const probeFailures = Metric.withAttributes(SqlRouter.metrics.probeFailures, { node: "replica-0" })
      const failures = yield* Metric.value(probeFailures).pipe(
        Effect.repeat({ until: (c) => c.count > 0, schedule: pollEvery }),
        Effect.andThen(Metric.value(probeFailures)),
        Effect.timeout("10 seconds")
      )
      expect(failures.count).toBeGreaterThan(0)
      const gauge = yield* Metric.value(SqlRouter.metrics.healthyReplicas).pipe(
        Effect.repeat({ until: (g) => g.value <= 1, schedule: pollEvery }),
        Effect.andThen(Metric.value(SqlRouter.metrics.healthyReplicas)),
        Effect.timeout("10 seconds")
      )
      expect(gauge.value).toBeLessThanOrEqual(1)
      // While it is down, no read reaches it.
      yield* receivesNoReads(load, "replica-0")
      yield* cluster.start(victim)
      yield* inRotation("replica-0", true, "20 seconds")
      yield* servesAgain(load, "replica-0")
      const report = yield* stopWithoutLoss(load)
      expect(report.writes.length).toBeGreaterThan(0)
    })))

  it.live("a frozen replica (SIGSTOP) costs no reads: timeouts route elsewhere and it leaves rotation", () =>
    scenario({}, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const load = yield* startLoad({ readers: 4, writers: 2 })
      yield* load.awaitReads(50)
      const victim = cluster.replicas[1]!
      yield* cluster.freeze(victim)
      yield* inRotation("replica-1", false)
      // A reply already in the socket buffer when SIGSTOP arrived still counts; then nothing more.
      yield* load.awaitReads(20)
      yield* receivesNoReads(load, "replica-1")
      yield* cluster.thaw(victim)
      yield* inRotation("replica-1", true, "20 seconds")
      yield* servesAgain(load, "replica-1")
      yield* stopWithoutLoss(load)
    })))

  it.live("a replica whose replay is paused gets no reads once its lag exceeds maxLag, and returns after resume", () =>
    scenario({ maxLag: { time: "1 second" } }, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const load = yield* startLoad({ readers: 4, writers: 2 })
      yield* load.awaitReads(50)
      const lagging = cluster.replicas[0]!
      yield* cluster.pauseReplay(lagging)
      // The monitor sees it fall behind the bound.
      yield* SqlRouter.replicaStatus.pipe(
        Effect.repeat({
          until: (all) => (all.find((s) => s.id === "replica-0")?.lagMillis ?? 0) > 1000,
          schedule: pollEvery
        }),
        Effect.timeout("20 seconds")
      )
      const status = (yield* SqlRouter.replicaStatus).find((s) => s.id === "replica-0")!
      expect(status.healthy).toBe(true) // alive, just too far behind
      expect(status.lagBytes).toBeGreaterThan(0)
      // Reads that picked it before the probe saw the lag may still finish; then nothing more.
      yield* load.awaitReads(20)
      yield* receivesNoReads(load, "replica-0")
      yield* cluster.resumeReplay(lagging)
      yield* servesAgain(load, "replica-0")
      const after = (yield* SqlRouter.replicaStatus).find((s) => s.id === "replica-0")!
      expect(after.lagMillis).toBeLessThanOrEqual(1000)
      yield* stopWithoutLoss(load)
    })))

  it.live("a stopped primary fails writes with a typed error within the connect timeout; reads go on; writes resume after restart", () =>
    scenario({}, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const sql = yield* SqlClient.SqlClient
      const load = yield* startLoad({ readers: 4, writers: 2 })
      yield* load.awaitReads(50)
      yield* cluster.stop(cluster.primary)
      const attempt = yield* sql`INSERT INTO load_t (worker) VALUES (-1)`.pipe(
        Effect.flip,
        Effect.timeoutOrElse({
          duration: "3 seconds",
          orElse: () => Effect.fail(new Error("write did not fail within the connect timeout"))
        })
      )
      expect(attempt._tag).toBe("SqlError")
      // Reads keep being served by the replicas while the primary is down.
      const readsBefore = (yield* load.snapshot).reads
      yield* load.awaitReads(200)
      expect((yield* load.snapshot).reads).toBeGreaterThan(readsBefore)
      yield* cluster.start(cluster.primary)
      yield* sql`INSERT INTO load_t (worker) VALUES (-2)`.pipe(
        Effect.retry({ times: 100, schedule: pollEvery }),
        Effect.timeout("20 seconds")
      )
      const committedBefore = (yield* load.snapshot).writes.length
      yield* Effect.map(load.snapshot, (s) => s.writes.length).pipe(
        Effect.repeat({ until: (n) => n > committedBefore + 5, schedule: pollEvery }),
        Effect.timeout("20 seconds")
      )
      const report = yield* load.stop
      expect(report.readFailures).toEqual([])
      expect(report.writeFailures.length).toBeGreaterThan(0) // writes did fail while it was down…
      expect(yield* missingWrites(report)).toBe(0) // …and none reported committed was lost
    })))
})
