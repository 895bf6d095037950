import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Path from "node:path"
import * as RoutedClient from "effect-sql-router/RoutedClient"
import * as RouterConfig from "effect-sql-router/RouterConfig"
import * as SqlRouter from "effect-sql-router/SqlRouter"
import { PgCluster } from "effect-sql-router/testing"
import { loadTable, missingWrites, startLoad, strayWorker } from "./load.js"

const interval = Duration.millis(300)
const connectTimeout = Duration.seconds(1)
const pollEvery = Schedule.spaced("20 millis")

const baseConfig: Partial<RouterConfig.RouterConfig> = {
  connectTimeout,
  readTimeout: "1 second",
  health: { interval, timeout: "300 millis" }
}

const scenario = <A, E>(
  options: { readonly replicas: number; readonly config: (cluster: PgCluster.PgCluster) => RouterConfig.RouterConfig },
  body: Effect.Effect<A, E, PgCluster.PgCluster | SqlRouter.SqlRouter | SqlClient.SqlClient | Scope.Scope>
) =>
  Effect.gen(function*() {
    const cluster = yield* PgCluster.make({ replicas: options.replicas })
    yield* cluster.query(cluster.primary, loadTable)
    yield* cluster.awaitReplication()
    const { client, router } = yield* RoutedClient.make(options.config(cluster))
    return yield* body.pipe(
      Effect.provideService(PgCluster.PgCluster, cluster),
      Effect.provideService(SqlRouter.SqlRouter, router),
      Effect.provideService(SqlClient.SqlClient, client)
    )
  }).pipe(Effect.scoped)

const discovered = (cluster: PgCluster.PgCluster): RouterConfig.RouterConfig => ({
  ...baseConfig,
  discovery: "auto",
  hosts: cluster.nodes.map((n) => n.url)
})

const manual = (cluster: PgCluster.PgCluster): RouterConfig.RouterConfig => ({
  ...baseConfig,
  primary: cluster.primary.url,
  replicas: cluster.replicas.map((r) => r.url)
})

/** Which server a write lands on. */
const writeLandsOn = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ name: string }>`INSERT INTO load_t (worker) VALUES (-1) RETURNING current_setting('cluster_name') AS name`,
    (rows) => rows[0]!.name
  ))

/** The error of the first write refused once the router has seen two writable nodes. */
const splitBrainSeen = SqlRouter.withWrite(Effect.void).pipe(
  Effect.flip,
  Effect.retry({ schedule: pollEvery }),
  Effect.timeout("20 seconds")
)

describe("failover and live topology", () => {
  it.live("discovery follows an external failover; reads never fail and no write reaches a read-only node", () =>
    scenario({ replicas: 2, config: discovered }, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      expect((yield* SqlRouter.SqlRouter.pipe(Effect.flatMap((r) => r.primary))).id).toBe("node-0")
      const load = yield* startLoad({ readers: 4, writers: 2 })
      yield* load.awaitReads(50)
      const [newPrimary, leftBehind] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
      yield* cluster.stop(cluster.primary)
      yield* cluster.promote(newPrimary)
      // Within one probe interval plus the connect timeout (and slack for a
      // loaded machine), writes land on the promoted node.
      const landed = yield* writeLandsOn.pipe(
        Effect.retry({ schedule: pollEvery }),
        Effect.timeout(Duration.sum(Duration.sum(interval, connectTimeout), Duration.seconds(3)))
      )
      expect(landed).toBe(newPrimary.name)
      const committed = (yield* load.snapshot).writes.length
      yield* load.snapshot.pipe(
        Effect.repeat({ until: (s) => s.writes.length > committed + 10, schedule: pollEvery }),
        Effect.timeout("20 seconds")
      )
      yield* load.awaitReads(100)
      const report = yield* load.stop
      expect(report.readFailures).toEqual([])
      expect(report.writeFailures.filter((f) => /read-only|25006/.test(f))).toEqual([])
      const stats = yield* SqlRouter.stats
      expect(stats.primary.id).toBe("node-1")
      const stale = stats.replicas.find((r) => r.address.endsWith(`:${leftBehind.port}`))!
      expect(stale.served.writes).toBe(0)
      expect(yield* missingWrites(report)).toBe(0)
    })))

  it.live("two writable nodes (split brain): writes fail with a typed error naming both", () =>
    scenario({ replicas: 1, config: discovered }, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      expect(yield* writeLandsOn).toBe("primary")
      yield* cluster.promote(cluster.replicas[0]!) // the old primary keeps running
      // Discovery notices within a probe interval; until then writes still go to node-0.
      const error = yield* splitBrainSeen
      expect(error._tag).toBe("PrimaryUnavailable")
      expect(error.conflicting).toEqual(["node-0", "node-1"])
      expect(error.message).toContain("split brain")
      const routed = yield* Effect.flip(writeLandsOn)
      expect(JSON.stringify(routed.cause)).toContain("split brain")
      // Reads still work.
      const sql = yield* SqlClient.SqlClient
      expect(yield* sql`SELECT 1 AS one`).toEqual([{ one: 1 }])
    })))

  it.live("split brain with an unfenced old primary: reads follow the newest timeline; none sees the old primary's rows, none fails", () =>
    scenario({ replicas: 2, config: discovered }, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const oldPrimary = cluster.primary
      const [leader, follower] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
      // As an HA manager re-points the other standbys: the follower streams
      // from the node about to be promoted, and moves to its timeline with it.
      yield* cluster.follow(follower, leader)
      const load = yield* startLoad({ readers: 4, writers: 0 })
      yield* load.awaitReads(50)
      yield* cluster.promote(leader) // nothing fences the old primary: it keeps accepting writes
      const error = yield* splitBrainSeen
      expect(error._tag).toBe("PrimaryUnavailable")
      expect(error.conflicting).toEqual(["node-0", "node-1"])
      // Reads follow the newest timeline: the promoted node is the router's primary now.
      const router = yield* SqlRouter.SqlRouter
      yield* router.primary.pipe(
        Effect.repeat({ until: (primary) => primary.id === "node-1", schedule: pollEvery }),
        Effect.timeout("20 seconds")
      )
      // Rows the cluster will lose: written straight to the old primary. From
      // here on, any read the old primary serves sees them (and is counted in
      // strayReadsBy); a read sent there before the switch was cut at the
      // switch and ran again where the router decided then.
      yield* cluster.query(oldPrimary, `INSERT INTO load_t (worker) SELECT ${strayWorker} FROM generate_series(1, 200)`)
      // The standby on the new timeline serves again; the old primary serves nothing.
      // The old primary may not have been probed since the switch, or its last probe may have
      // given no verdict (Busy, on a loaded host): the status is awaited until a probe has judged it.
      const status = yield* SqlRouter.replicaStatus.pipe(
        Effect.filterOrFail(
          (nodes) =>
            nodes.some((node) => node.id === "node-2" && node.healthy) &&
            nodes.some((node) => node.id === "node-0" && node.state !== undefined && node.state !== "Busy"),
          () => "not yet" as const
        ),
        Effect.retry({ schedule: pollEvery, while: (e) => e === "not yet" }),
        Effect.timeout("20 seconds")
      )
      expect(status.find((node) => node.id === "node-0")).toMatchObject({ healthy: false, state: "Writable" })
      const served = (yield* load.snapshot).readsBy[follower.name] ?? 0
      yield* load.snapshot.pipe(
        Effect.repeat({ until: (s) => (s.readsBy[follower.name] ?? 0) > served + 50, schedule: pollEvery }),
        Effect.timeout("20 seconds")
      )
      // The old primary goes down mid-load: no read was on it, so none fails.
      yield* cluster.stop(oldPrimary)
      yield* load.awaitReads(100)
      const report = yield* load.stop
      expect(report.readFailures).toEqual([])
      expect(report.strayReadsBy).toEqual({})
      // With the old primary gone, the split brain is over: writes go to the new leader.
      const landed = yield* writeLandsOn.pipe(Effect.retry({ schedule: pollEvery }), Effect.timeout("20 seconds"))
      expect(landed).toBe(leader.name)
    })))

  it.live("promote refuses while the replica is behind, succeeds once it caught up; writes then go to it", () =>
    scenario({ replicas: 1, config: manual }, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const replica = cluster.replicas[0]!
      yield* cluster.pauseReplay(replica)
      yield* writeLandsOn
      const refused = yield* Effect.flip(SqlRouter.promote("replica-0"))
      expect(refused._tag).toBe("PromotionRefused")
      if (refused._tag === "PromotionRefused") expect(refused.behindBytes).toBeGreaterThan(0)
      expect(yield* cluster.isInRecovery(replica)).toBe(true)
      const tolerant = yield* Effect.flip(SqlRouter.promote("replica-0", { maxLag: 0 }))
      expect(tolerant._tag).toBe("PromotionRefused")
      yield* cluster.resumeReplay(replica)
      yield* cluster.awaitReplication()
      const promoted = yield* SqlRouter.promote("replica-0")
      expect(promoted.id).toBe("replica-0")
      expect(promoted.role).toBe("primary")
      expect(yield* cluster.isInRecovery(replica)).toBe(false)
      expect(yield* writeLandsOn).toBe("replica-0")
      const stats = yield* SqlRouter.stats
      expect(stats.primary.id).toBe("replica-0")
      expect(stats.replicas.map((r) => [r.id, r.role])).toEqual([["primary", "replica"]])
      expect((yield* Effect.flip(SqlRouter.promote("nope")))._tag).toBe("UnknownReplica")
    })))

  it.live("a switch of primary cuts what still runs on the old one: its reads (sent, or still waiting for a connection) run again on the new primary, its write fails and is not run again", () =>
    scenario({ replicas: 1, config: (c) => ({ ...manual(c), primaryMaxSize: 4, health: { enabled: false } }) }, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const sql = yield* SqlClient.SqlClient
      const oldPrimary = cluster.primary.name
      // The replica out of rotation: routed reads fall back to the primary.
      yield* SqlRouter.markReplicaUnhealthy("replica-0")
      // On the old primary each statement sleeps far longer than the test waits; elsewhere it answers at once.
      const nap = `pg_sleep(CASE WHEN current_setting('cluster_name') = '${oldPrimary}' THEN 60 ELSE 0 END)`
      const read = Effect.either(Effect.map(
        sql.unsafe<{ name: string }>(`SELECT current_setting('cluster_name') AS name, ${nap} IS NULL AS slept`),
        (rows) => rows[0]!.name
      ))
      const reads = yield* Effect.fork(Effect.all([read, read, read], { concurrency: "unbounded" }))
      const write = yield* Effect.fork(Effect.either(sql.unsafe(`INSERT INTO load_t (worker) SELECT -2 FROM ${nap}`)))
      yield* cluster.query<{ n: number }>(
        cluster.primary,
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(CASE%' AND pid <> pg_backend_pid()"
      ).pipe(
        Effect.repeat({ until: (rows) => rows[0]!.n >= 4, schedule: pollEvery }),
        Effect.timeout("20 seconds")
      )
      // The pool's 4 connections are taken: one more read waits for one, decided before the switch.
      const late = yield* Effect.fork(read)
      yield* SqlRouter.stats.pipe(
        Effect.repeat({ until: (stats) => stats.primary.pool.waiting >= 1, schedule: pollEvery }),
        Effect.timeout("20 seconds")
      )
      // Nothing is committed meanwhile; the bound only spares the test a refusal for WAL the server writes on its own.
      yield* SqlRouter.promote("replica-0", { maxLag: 1024 * 1024 })
      // The reads given up on the old primary ran again on the new one; so did the one that
      // got its connection there only after the switch.
      const results = [...(yield* Fiber.join(reads)), yield* Fiber.join(late)]
      expect(results.map((r) => r._tag === "Right" ? r.right : String(r.left))).toEqual([
        "replica-0",
        "replica-0",
        "replica-0",
        "replica-0"
      ])
      // The write's outcome on the old primary is unknown: it fails, and is not run again on the new one.
      const written = yield* Fiber.join(write)
      expect(written._tag).toBe("Left")
      const landed = yield* cluster.query<{ n: number }>(
        cluster.replicas[0]!,
        "SELECT count(*)::int AS n FROM load_t WHERE worker = -2"
      )
      expect(landed).toEqual([{ n: 0 }])
    })))

  it.live("addReplica and removeReplica under load: the new node serves reads, the removed one leaves cleanly", () =>
    scenario({ replicas: 1, config: (c) => ({ ...manual(c), applicationName: "membership-test" }) }, Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const load = yield* startLoad({ readers: 4, writers: 1 })
      yield* load.awaitReads(50)
      const server = yield* cluster.addReplica()
      const added = yield* SqlRouter.addReplica(server.url)
      expect(added.id).toBe("replica-1")
      expect(yield* SqlRouter.countHealthyReplicas).toBe(2)
      const before = (yield* load.snapshot).readsBy[server.name] ?? 0
      yield* load.snapshot.pipe(
        Effect.repeat({ until: (s) => (s.readsBy[server.name] ?? 0) > before + 10, schedule: pollEvery }),
        Effect.timeout("20 seconds")
      )
      const duplicate = yield* Effect.flip(SqlRouter.addReplica(server.url, { id: "replica-1" }))
      expect(duplicate.field).toBe("id")
      const bad = yield* Effect.flip(SqlRouter.addReplica(Redacted.make("not a url")))
      expect(bad.field).toBe("url")

      yield* SqlRouter.removeReplica("replica-0")
      expect((yield* SqlRouter.stats).replicas.map((r) => r.id)).toEqual(["replica-1"])
      const leaving = cluster.nodes.find((n) => n.name === "replica-0")!
      const stuck = (yield* load.snapshot).readsBy["replica-0"] ?? 0
      yield* load.awaitReads(100)
      expect((yield* load.snapshot).readsBy["replica-0"] ?? 0).toBe(stuck)
      const connections = yield* cluster.query<{ n: number }>(
        leaving,
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'membership-test'"
      ).pipe(
        Effect.map((rows) => rows[0]!.n),
        Effect.repeat({ until: (n) => n === 0, schedule: pollEvery }),
        Effect.zipRight(cluster.query<{ n: number }>(
          leaving,
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'membership-test'"
        )),
        Effect.timeout("20 seconds")
      )
      expect(connections).toEqual([{ n: 0 }])
      const report = yield* load.stop
      expect(report.readFailures).toEqual([])
      expect(yield* missingWrites(report)).toBe(0)
      expect((yield* Effect.flip(SqlRouter.removeReplica("replica-0")))._tag).toBe("UnknownReplica")
    })))
})

describe("configuration as JSON", () => {
  it.live("the live topology saves and restores", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 1 })
      const router = yield* SqlRouter.make({ ...manual(cluster), health: { enabled: false } })
      yield* router.removeReplica("replica-0")
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "router-config-" })
      const file = Path.join(dir, "live.json")
      yield* RouterConfig.save(yield* router.currentConfig, file)
      const restored = yield* RouterConfig.load(file)
      expect(restored.replicas).toEqual([])
      const again = yield* SqlRouter.make(restored)
      expect((yield* again.primary).address).toBe(`127.0.0.1:${cluster.primary.port}`)
    }).pipe(Effect.scoped, Effect.provide(NodeFileSystem.layer)))
})
