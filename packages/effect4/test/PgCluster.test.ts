import * as PgConnection from "@effect/sql-pg/PgConnection"
import { describe, expect, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as PgErrors from "@effect-sql-router/core/PgErrors"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { eventually, postgresProcessesUnder, segmentsListed, segmentsUnder } from "./utils.js"

const countRows = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode) =>
  cluster.query<{ n: number }>(node, "SELECT count(*)::int AS n FROM harness_t").pipe(Effect.map((rows) => rows[0]!.n))

/** The SQLSTATE or socket error code under the driver's `SqlError`. */
const errorCode = (error: PgCluster.ClusterError): unknown => PgErrors.errorCode(error.cause)

describe("PgCluster", () => {
  it.live("stops every server and removes its directory when the scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const cluster = yield* PgCluster.make({ replicas: 1 }).pipe(Scope.provide(scope))
      const directory = cluster.directory!
      expect(Fs.existsSync(directory)).toBe(true)
      expect(postgresProcessesUnder(directory).length).toBeGreaterThanOrEqual(2)
      const segments = segmentsUnder(directory)
      expect(segments.length).toBe(2)
      yield* cluster.freeze(cluster.replicas[0]!) // a frozen server must not survive either
      yield* Scope.close(scope, Exit.void)
      expect(postgresProcessesUnder(directory)).toEqual([])
      expect(Fs.existsSync(directory)).toBe(false)
      // The servers were killed, not stopped: their shared memory went with the directory.
      expect(segmentsListed(segments)).toEqual([])
      const refused = yield* Effect.flip(cluster.query(cluster.primary, "SELECT 1"))
      expect(errorCode(refused)).toBe("ECONNREFUSED")
    }))

  it.live("servers left by a process killed with SIGKILL are swept by the next cluster", () =>
    Effect.gen(function*() {
      const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", "test/fixtures/orphan.ts"], {
        stdio: ["ignore", "pipe", "inherit"]
      })
      const directory = yield* Effect.callback<string>((resume) => {
        child.stdout.once("data", (chunk) => resume(Effect.succeed(String(chunk).trim())))
      })
      expect(postgresProcessesUnder(directory).length).toBeGreaterThanOrEqual(2)
      child.kill("SIGKILL")
      yield* Effect.callback<void>((resume) => void child.once("exit", () => resume(Effect.void)))
      // The owner is gone without cleaning up: its servers still run.
      expect(postgresProcessesUnder(directory).length).toBeGreaterThanOrEqual(2)
      const segments = segmentsUnder(directory)
      expect(segments.length).toBeGreaterThanOrEqual(2)
      yield* PgCluster.make({ replicas: 0 }).pipe(Effect.scoped)
      expect(postgresProcessesUnder(directory)).toEqual([])
      expect(Fs.existsSync(directory)).toBe(false)
      expect(segmentsListed(segments)).toEqual([])
    }), 60_000)

  it.live("promote turns a replica into a writable primary", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 1 })
      const replica = cluster.replicas[0]!
      expect(yield* cluster.isInRecovery(replica)).toBe(true)
      yield* cluster.promote(replica)
      expect(yield* cluster.isInRecovery(replica)).toBe(false)
      expect(cluster.primary).toBe(replica)
      expect(cluster.replicas).toEqual([])
      yield* cluster.query(replica, "CREATE TABLE promoted (id int)")
      yield* cluster.query(replica, "INSERT INTO promoted VALUES (1)")
      expect(yield* cluster.query(replica, "SELECT id FROM promoted")).toEqual([{ id: 1 }])
    }).pipe(Effect.scoped))

  it.live("an old primary restarted as a standby cannot follow the new primary, as its log says; re-cloned with rejoinAsStandby it follows", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 1 })
      const [old, next] = [cluster.primary, cluster.replicas[0]!]
      yield* cluster.query(old, "CREATE TABLE harness_t (v text)")
      yield* cluster.awaitReplication()
      yield* cluster.promote(next)
      yield* cluster.query(old, "INSERT INTO harness_t VALUES ('lost')") // split brain: next never sees it
      yield* cluster.query(next, "INSERT INTO harness_t VALUES ('kept')")
      const receiver = (node: PgCluster.ClusterNode) =>
        cluster.query<{ n: number }>(node, "SELECT count(*)::int AS n FROM pg_stat_wal_receiver WHERE status = 'streaming'")
          .pipe(Effect.map((rows) => rows[0]!.n))

      yield* cluster.restartAsStandby(old)
      expect(cluster.replicas).toEqual([old])
      expect(yield* cluster.isInRecovery(old)).toBe(true)
      // In recovery, serving its diverged data, and unable to follow the new
      // primary, as its log says. (Its WAL receiver may still stream for
      // moments: it asks from the start of a WAL segment, which can lie before
      // the fork, and stops at the fork.)
      expect(yield* cluster.query(old, "SELECT v FROM harness_t ORDER BY v")).toEqual([{ v: "lost" }])
      const log = Path.join(cluster.directory!, `${old.name}.log`)
      yield* eventually(Effect.sync(() => Fs.readFileSync(log, "utf8").includes("forked off current database system timeline")), 600)
      expect(yield* cluster.query(old, "SELECT v FROM harness_t ORDER BY v")).toEqual([{ v: "lost" }])

      yield* cluster.rejoinAsStandby(old)
      yield* cluster.query(next, "INSERT INTO harness_t VALUES ('after')")
      yield* cluster.awaitReplication({ replicas: [old] })
      expect(yield* cluster.query(old, "SELECT v FROM harness_t ORDER BY v")).toEqual([{ v: "after" }, { v: "kept" }])
      expect(yield* receiver(old)).toBe(1)
      expect(yield* cluster.isInRecovery(old)).toBe(true)
      const refused = yield* Effect.flip(cluster.rejoinAsStandby(next))
      expect(refused.reason).toContain("current primary")
    }).pipe(Effect.scoped))

  it.live("settings a standby must match apply to every node: max_connections 30 on the primary, its replicas, an added and a rejoined one", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 1, settings: { max_connections: "30" } })
      const maxConnections = (node: PgCluster.ClusterNode) =>
        cluster.query<{ max_connections: string }>(node, "SHOW max_connections").pipe(Effect.map((rows) => rows[0]!.max_connections))
      const values = (node: PgCluster.ClusterNode) => cluster.query(node, "SELECT v FROM harness_t ORDER BY v")
      yield* cluster.query(cluster.primary, "CREATE TABLE harness_t (v text)")
      yield* cluster.query(cluster.primary, "INSERT INTO harness_t VALUES ('a')")
      const added = yield* cluster.addReplica()
      yield* cluster.awaitReplication()
      expect(cluster.replicas.map((n) => n.name)).toEqual(["replica-0", "replica-1"])
      for (const node of cluster.nodes) expect([node.name, yield* maxConnections(node)]).toEqual([node.name, "30"])
      for (const replica of cluster.replicas) {
        expect(yield* cluster.isInRecovery(replica)).toBe(true)
        expect(yield* values(replica)).toEqual([{ v: "a" }])
      }

      // The old primary, re-cloned from the promoted replica, keeps the setting and follows it.
      const [old, next] = [cluster.primary, cluster.replicas[0]!]
      yield* cluster.promote(next)
      yield* cluster.rejoinAsStandby(old)
      yield* cluster.query(next, "INSERT INTO harness_t VALUES ('b')")
      yield* cluster.awaitReplication({ replicas: [old] })
      expect(yield* maxConnections(old)).toBe("30")
      expect(yield* maxConnections(added)).toBe("30")
      expect(yield* values(old)).toEqual([{ v: "a" }, { v: "b" }])
    }).pipe(Effect.scoped))

  it.live("a setting the harness can tell is wrong fails make with a ClusterError naming it", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Record<string, string>, string]> = [
        [{ max_connections: "thirty" }, "max_connections"],
        [{ max_connections: "-5" }, "max_connections"],
        [{ max_connections: "3" }, "max_connections"], // not more than the 3 reserved for superusers
        [{ max_locks_per_transaction: "5" }, "max_locks_per_transaction"],
        [{ max_wal_senders: "1" }, "max_wal_senders"], // two replicas
        [{ port: "5432" }, "port"],
        [{ work_mem: "'4MB'\nfsync = on" }, "work_mem"],
        [{ "work_mem = 4MB #": "x" }, "work_mem = 4MB #"]
      ]
      for (const [settings, setting] of cases) {
        const error = yield* Effect.flip(PgCluster.make({ replicas: 2, settings }).pipe(Effect.scoped))
        expect(error).toMatchObject({ _tag: "ClusterError", operation: "setup", setting })
        expect(error.message).toContain(setting)
      }
      // Quoted integers are what postgresql.conf accepts too.
      const cluster = yield* PgCluster.make({ replicas: 0, settings: { max_connections: "'25'" } })
      expect(yield* cluster.query(cluster.primary, "SHOW max_connections")).toEqual([{ max_connections: "25" }])
    }).pipe(Effect.scoped))
})

layer(PgCluster.layer({ replicas: 2 }), { timeout: "120 seconds", excludeTestServices: true })("PgCluster (shared)", (it) => {
  it.effect("starts a primary and streaming replicas that replay its writes", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      expect(cluster.nodes.map((n) => [n.name, n.role])).toEqual([
        ["primary", "primary"],
        ["replica-0", "replica"],
        ["replica-1", "replica"]
      ])
      expect(yield* cluster.isInRecovery(cluster.primary)).toBe(false)
      yield* cluster.query(cluster.primary, "CREATE TABLE harness_t (id int)")
      yield* cluster.query(cluster.primary, "INSERT INTO harness_t SELECT generate_series(1, 10)")
      yield* cluster.awaitReplication()
      for (const replica of cluster.replicas) {
        expect(yield* cluster.isInRecovery(replica)).toBe(true)
        expect(yield* countRows(cluster, replica)).toBe(10)
      }
    }))

  it.effect("a write sent to a replica fails with SQLSTATE 25006", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const error = yield* Effect.flip(cluster.query(cluster.replicas[0]!, "INSERT INTO harness_t VALUES (0)"))
      expect(errorCode(error)).toBe("25006")
    }))

  it.effect("kill makes a node refuse connections; start brings it back", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const replica = cluster.replicas[0]!
      yield* cluster.kill(replica)
      const error = yield* Effect.flip(cluster.query(replica, "SELECT 1"))
      expect(errorCode(error)).toBe("ECONNREFUSED")
      yield* cluster.start(replica)
      yield* cluster.query(cluster.primary, "INSERT INTO harness_t VALUES (11)")
      yield* cluster.awaitReplication()
      expect(yield* countRows(cluster, replica)).toBe(11)
    }))

  it.effect("stop shuts a node down cleanly; start brings it back", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const replica = cluster.replicas[1]!
      yield* cluster.stop(replica)
      expect(errorCode(yield* Effect.flip(cluster.query(replica, "SELECT 1")))).toBe("ECONNREFUSED")
      yield* cluster.start(replica)
      expect(yield* cluster.query(replica, "SELECT 1 AS one")).toEqual([{ one: 1 }])
    }))

  it.effect("freeze makes a node time out, on new and existing connections; thaw brings it back", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const replica = cluster.replicas[0]!
      // A connection opened before the freeze: its backend must stop too
      // (PostgreSQL gives every backend a session of its own).
      const existing = yield* PgConnection.make({ url: replica.url })
      yield* cluster.freeze(replica)
      const frozen = yield* cluster.query(replica, "SELECT 1").pipe(Effect.timeout("1 second"), Effect.flip)
      expect(frozen._tag).toBe("TimeoutError")
      const onExisting = yield* Effect.forkChild(existing.query("SELECT 2 AS two"))
      expect(yield* Effect.timeoutOption(Fiber.await(onExisting), "1 second")).toEqual(Option.none())
      yield* cluster.thaw(replica)
      expect(yield* cluster.query(replica, "SELECT 1 AS one")).toEqual([{ one: 1 }])
      // The query sent while frozen is answered after the thaw.
      expect((yield* Fiber.join(onExisting)).rows).toEqual([{ two: 2 }])
    }).pipe(Effect.scoped))

  it.effect("paused replay keeps a replica behind while the primary moves on; resume catches up", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const [paused, other] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
      yield* cluster.awaitReplication()
      const before = yield* countRows(cluster, paused)
      yield* cluster.pauseReplay(paused)
      // pauseReplay returns once replay has stopped, not merely been asked to.
      expect(yield* cluster.query(paused, "SELECT pg_get_wal_replay_pause_state() AS state")).toEqual([{ state: "paused" }])
      yield* cluster.query(cluster.primary, "INSERT INTO harness_t VALUES (100), (101)")
      yield* cluster.awaitReplication() // waits for the replicas still replaying
      expect(yield* countRows(cluster, other)).toBe(before + 2)
      expect(yield* countRows(cluster, paused)).toBe(before)
      const behind = yield* cluster.awaitReplication({ replicas: [paused], timeout: "300 millis" }).pipe(Effect.flip)
      expect(behind.operation).toBe("awaitReplication")
      yield* cluster.resumeReplay(paused)
      yield* cluster.awaitReplication({ replicas: [paused] })
      expect(yield* countRows(cluster, paused)).toBe(before + 2)
    }))

  it.effect("a stopped primary refuses writes; after start the replicas follow it again", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      yield* cluster.stop(cluster.primary)
      expect(errorCode(yield* Effect.flip(cluster.query(cluster.primary, "SELECT 1")))).toBe("ECONNREFUSED")
      yield* cluster.start(cluster.primary)
      yield* cluster.query(cluster.primary, "INSERT INTO harness_t VALUES (200)")
      yield* cluster.awaitReplication()
      const counts = yield* Effect.forEach(cluster.nodes, (node) => countRows(cluster, node))
      expect(new Set(counts).size).toBe(1)
    }))

  it.effect("controls name the node they failed on", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      const error = yield* Effect.flip(cluster.pauseReplay(cluster.primary))
      expect(error.message).toContain("primary")
      expect(error.message).toContain("not a replica")
    }))
})
