import { describe, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as SqlRouter from "effect-sql-router/SqlRouter"
import * as PgErrors from "@effect-sql-router/core/PgErrors"
import { PgCluster } from "effect-sql-router/testing"
import { clusterWithRouter, configFor, silentServer, whoAmI } from "./utils.js"

const makeRouter = (extra: Parameters<typeof configFor>[1] = {}) =>
  Effect.flatMap(PgCluster.PgCluster, (cluster) => SqlRouter.make(configFor(cluster, extra)))

const countRows = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql(table)}`, (rows) => rows[0]!.n))

const ourConnections = (cluster: PgCluster.PgCluster, applicationName: string) =>
  Effect.forEach(cluster.nodes, (node) =>
    Effect.map(
      cluster.query<{ n: number }>(
        node,
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1",
        [applicationName]
      ),
      (rows) => rows[0]!.n
    ))

layer(clusterWithRouter({ replicas: 2 }), { timeout: "120 seconds", excludeTestServices: true })("SqlRouter", (it) => {
  it.effect("setup: a table on the primary, replicated", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      yield* cluster.query(cluster.primary, "CREATE TABLE items (id serial PRIMARY KEY, label text NOT NULL)")
      yield* cluster.query(cluster.primary, "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0))")
      yield* cluster.query(cluster.primary, "INSERT INTO accounts VALUES (1, 100), (2, 0)")
      yield* cluster.awaitReplication()
      expect(yield* SqlRouter.hasReplicas).toBe(true)
      expect(yield* SqlRouter.countHealthyReplicas).toBe(2)
    }))

  describe("routing", () => {
    it.effect("withWrite and withPrimary run on the primary", () =>
      Effect.gen(function*() {
        expect(yield* SqlRouter.withWrite(whoAmI)).toBe("primary")
        expect(yield* SqlRouter.withPrimary(whoAmI)).toBe("primary")
      }))

    it.effect("withRead and withReplica run on replicas, round-robin in configuration order", () =>
      Effect.gen(function*() {
        const reads = yield* Effect.forEach([1, 2, 3, 4], () => SqlRouter.withRead(whoAmI))
        const first = reads[0] === "replica-0" ? ["replica-0", "replica-1"] : ["replica-1", "replica-0"]
        expect(reads).toEqual([...first, ...first])
        const replicas = yield* Effect.forEach([1, 2], () => SqlRouter.withReplica(whoAmI))
        expect(new Set(replicas)).toEqual(new Set(["replica-0", "replica-1"]))
      }))

    it.effect("round-robin is exact over the healthy replicas only", () =>
      Effect.gen(function*() {
        yield* SqlRouter.markReplicaUnhealthy("replica-0")
        expect(yield* SqlRouter.countHealthyReplicas).toBe(1)
        const reads = yield* Effect.forEach([1, 2, 3], () => SqlRouter.withRead(whoAmI))
        expect(reads).toEqual(["replica-1", "replica-1", "replica-1"])
        yield* SqlRouter.markReplicaHealthy(0)
        const after = yield* Effect.forEach([1, 2, 3, 4], () => SqlRouter.withRead(whoAmI))
        expect(after.filter((n) => n === "replica-0")).toHaveLength(2)
        expect(after.filter((n) => n === "replica-1")).toHaveLength(2)
      }))

    it.effect("with every replica unhealthy, withRead falls back to the primary and withReplica fails typed", () =>
      Effect.gen(function*() {
        yield* SqlRouter.markReplicaUnhealthy(0)
        yield* SqlRouter.markReplicaUnhealthy(1)
        expect(yield* SqlRouter.withRead(whoAmI)).toBe("primary")
        const error = yield* Effect.flip(SqlRouter.withReplica(whoAmI))
        expect(error._tag).toBe("NoReplicaAvailable")
        expect(error.message).toContain("0 of 2 healthy")
        expect(yield* SqlRouter.readTransaction(whoAmI)).toBe("primary")
        yield* SqlRouter.markReplicaHealthy(0)
        yield* SqlRouter.markReplicaHealthy(1)
        expect(yield* SqlRouter.withReplica(whoAmI)).not.toBe("primary")
      }))

    it.effect("an unknown replica is a typed error", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(SqlRouter.markReplicaUnhealthy("replica-9"))
        expect(error._tag).toBe("UnknownReplica")
        expect((yield* Effect.flip(SqlRouter.markReplicaHealthy(7)))._tag).toBe("UnknownReplica")
      }))

    it.effect("with no replicas configured, everything goes to the primary", () =>
      Effect.gen(function*() {
        const router = yield* makeRouter({ replicas: [] })
        expect(yield* router.hasReplicas).toBe(false)
        expect(yield* router.withRead(whoAmI)).toBe("primary")
        expect(yield* router.readTransaction(whoAmI)).toBe("primary")
        expect((yield* Effect.flip(router.withReplica(whoAmI))).message).toBe("No replica is configured")
      }).pipe(Effect.scoped))

    it.effect("random with a seeded Random is reproducible", () =>
      Effect.gen(function*() {
        const router = yield* makeRouter({ selection: "random" })
        const run = Effect.suspend(() =>
          Effect.forEach(Array.from({ length: 12 }), () => router.withRead(whoAmI)).pipe(
            Effect.withRandom(Random.make("seed-42"))
          )
        )
        const first = yield* run
        const second = yield* run
        expect(second).toEqual(first)
        expect(new Set(first)).toEqual(new Set(["replica-0", "replica-1"]))
      }).pipe(Effect.scoped))

    it.effect("least-connections picks the replica with fewer connections held", () =>
      Effect.gen(function*() {
        const router = yield* makeRouter({ selection: "least-connections" })
        const scope = yield* Scope.make()
        const held = yield* router.acquireRead.pipe(Scope.extend(scope))
        expect(held.origin._tag).toBe("Replica")
        const other = held.node.id === "replica-0" ? "replica-1" : "replica-0"
        // While one replica holds a lease, every read goes to the other.
        const reads = yield* Effect.forEach([1, 2, 3], () => router.withRead(whoAmI))
        expect(reads).toEqual([other, other, other])
        // A read in flight on `other` and a second lease: whichever replica now
        // holds fewer gets the next read.
        const latch = yield* Effect.makeLatch(false)
        const busy = yield* Effect.fork(router.withRead(latch.await))
        yield* Effect.repeat(router.stats, {
          until: (s) => s.replicas.find((r) => r.id === other)!.inFlight === 1,
          schedule: Schedule.spaced("5 millis")
        })
        yield* router.acquireRead.pipe(Scope.extend(scope))
        const stats = yield* router.stats
        const [a, b] = stats.replicas
        expect(a!.inFlight + b!.inFlight).toBe(3)
        const fewer = a!.inFlight < b!.inFlight ? a!.id : b!.id
        expect(yield* router.withRead(whoAmI)).toBe(fewer)
        yield* latch.open
        yield* Fiber.join(busy)
        yield* Scope.close(scope, Exit.void)
      }).pipe(Effect.scoped))

    it.effect("primaryReads overflow: a read finding its replica's pool busy uses the primary's spare room", () =>
      Effect.gen(function*() {
        const router = yield* makeRouter({ replicaMaxSizeEach: 1, primaryReads: "overflow" })
        const scope = yield* Scope.make()
        const first = yield* router.acquireRead.pipe(Scope.extend(scope))
        const second = yield* router.acquireRead.pipe(Scope.extend(scope))
        // Each lease holds its replica's only connection.
        expect(new Set([first.node.id, second.node.id])).toEqual(new Set(["replica-0", "replica-1"]))
        expect(yield* router.withRead(whoAmI)).toBe("primary")
        yield* Scope.close(scope, Exit.void)
        expect(yield* router.withRead(whoAmI)).toMatch(/^replica-/)
      }).pipe(Effect.scoped))

    it.effect("leases record their origin and return to their own pool", () =>
      Effect.gen(function*() {
        const router = yield* makeRouter({ applicationName: "lease-test" })
        const scope = yield* Scope.make()
        const write = yield* router.acquireWrite.pipe(Scope.extend(scope))
        const read = yield* router.acquireRead.pipe(Scope.extend(scope))
        expect(write.origin).toEqual({ _tag: "Primary" })
        expect(read.origin._tag).toBe("Replica")
        expect(yield* whoAmI.pipe(Effect.provideService(SqlClient.SqlClient, write.client))).toBe("primary")
        expect(yield* whoAmI.pipe(Effect.provideService(SqlClient.SqlClient, read.client))).toBe(read.node.id)
        const stats = yield* router.stats
        expect(stats.primary.pool.inUse).toBe(1)
        expect(stats.replicas.find((r) => r.id === read.node.id)!.pool.inUse).toBe(1)
        expect(stats.replicas.find((r) => r.id === read.node.id)!.inFlight).toBe(1)
        yield* Scope.close(scope, Exit.void)
        const after = yield* router.stats
        expect(after.primary.pool.inUse).toBe(0)
        expect(after.replicas.map((r) => [r.pool.inUse, r.inFlight])).toEqual([[0, 0], [0, 0]])
        // Returned, not destroyed: the connections wait idle in their own pools.
        expect(after.primary.pool.idle).toBe(after.primary.pool.total)
        expect(after.replicas.find((r) => r.id === read.node.id)!.pool.idle).toBeGreaterThanOrEqual(1)
      }).pipe(Effect.scoped))
  })

  describe("transactions", () => {
    it.effect("run on one pinned primary connection and commit", () =>
      Effect.gen(function*() {
        const result = yield* SqlRouter.transaction(Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const [a] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
          yield* sql`INSERT INTO items (label) VALUES ('tx-1')`
          const [b] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
          return { same: a!.pid === b!.pid, where: yield* whoAmI }
        }))
        expect(result).toEqual({ same: true, where: "primary" })
        expect(yield* SqlRouter.withPrimary(countRows("items"))).toBe(1)
      }))

    it.effect("a failure rolls back every statement", () =>
      Effect.gen(function*() {
        const before = yield* SqlRouter.withPrimary(countRows("items"))
        const exit = yield* Effect.exit(SqlRouter.transaction(Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`INSERT INTO items (label) VALUES ('rolled-back-1')`
          yield* sql`INSERT INTO items (label) VALUES ('rolled-back-2')`
          return yield* Effect.fail("boom" as const)
        })))
        expect(exit).toEqual(Exit.fail("boom"))
        expect(yield* SqlRouter.withPrimary(countRows("items"))).toBe(before)
      }))

    it.effect("a defect and an interruption roll back too", () =>
      Effect.gen(function*() {
        const before = yield* SqlRouter.withPrimary(countRows("items"))
        const insert = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO items (label) VALUES ('x')`)
        const defect = yield* Effect.exit(SqlRouter.transaction(Effect.zipRight(insert, Effect.die("defect"))))
        expect(Exit.isFailure(defect)).toBe(true)
        const latch = yield* Effect.makeLatch(false)
        const fiber = yield* Effect.fork(SqlRouter.transaction(Effect.zipRight(insert, Effect.zipRight(latch.open, Effect.never))))
        yield* latch.await
        yield* Fiber.interrupt(fiber)
        expect(yield* SqlRouter.withPrimary(countRows("items"))).toBe(before)
        expect((yield* SqlRouter.stats).primary.pool.inUse).toBe(0)
      }))

    it.effect("a transaction whose session the server ends fails with a typed SqlError, not a defect, in every client kind", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const router = yield* SqlRouter.SqlRouter
        const scope = yield* Scope.make()
        const lease = yield* router.acquireWrite.pipe(Scope.extend(scope))
        // The body ends its own session, as a restart or a failover does, then runs a statement.
        const body = (label: string) =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            yield* sql`INSERT INTO items (label) VALUES (${label})`
            const [row] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
            yield* cluster.query(cluster.primary, "SELECT pg_terminate_backend($1)", [row!.pid])
            yield* sql`SELECT 1`
          })
        const kinds = {
          "SqlRouter.transaction": SqlRouter.transaction(body("ended-in-region")),
          "a lease's withTransaction": lease.client.withTransaction(
            Effect.provideService(body("ended-in-lease"), SqlClient.SqlClient, lease.client)
          )
        }
        for (const [kind, transaction] of Object.entries(kinds)) {
          const exit = yield* Effect.exit(transaction)
          const outcome = Exit.isFailure(exit)
            ? { defect: Cause.isDie(exit.cause), error: Option.getOrUndefined(Cause.failureOption(exit.cause)) }
            : { defect: false, error: undefined }
          expect({ kind, defect: outcome.defect, error: (outcome.error as { _tag?: string } | undefined)?._tag })
            .toEqual({ kind, defect: false, error: "SqlError" })
        }
        yield* Scope.close(scope, Exit.void)
        const sql = yield* SqlRouter.withPrimary(SqlClient.SqlClient)
        const labels = yield* SqlRouter.withPrimary(sql<{ n: number }>`SELECT count(*)::int AS n FROM items WHERE label LIKE 'ended-in-%'`)
        expect(labels[0]!.n).toBe(0)
        // The pool replaced the ended sessions: the next transaction commits.
        yield* SqlRouter.transaction(sql`INSERT INTO items (label) VALUES ('after-ended')`)
        expect((yield* SqlRouter.stats).primary.pool.inUse).toBe(0)
      }))

    it.effect("nested transactions use savepoints", () =>
      Effect.gen(function*() {
        const before = yield* SqlRouter.withPrimary(countRows("items"))
        yield* SqlRouter.transaction(Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`INSERT INTO items (label) VALUES ('outer')`
          const inner = yield* Effect.exit(SqlRouter.transaction(Effect.zipRight(
            sql`INSERT INTO items (label) VALUES ('inner')`,
            Effect.fail("inner fails")
          )))
          expect(Exit.isFailure(inner)).toBe(true)
          // The stock nested form joins the same transaction.
          yield* sql.withTransaction(sql`INSERT INTO items (label) VALUES ('stock-nested')`)
        }))
        const sql = yield* SqlRouter.withPrimary(SqlClient.SqlClient)
        const labels = yield* SqlRouter.withPrimary(
          sql<{ label: string }>`SELECT label FROM items WHERE label IN ('outer', 'inner', 'stock-nested') ORDER BY label`
        )
        expect(labels.map((r) => r.label)).toEqual(["outer", "stock-nested"])
        expect(yield* SqlRouter.withPrimary(countRows("items"))).toBe(before + 2)
      }))

    it.effect("a refused COMMIT is a typed, catchable CommitFailed", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(
          cluster.primary,
          "CREATE TABLE IF NOT EXISTS deferred_t (id int PRIMARY KEY, parent int REFERENCES deferred_t(id) DEFERRABLE INITIALLY DEFERRED)"
        )
        const error = yield* Effect.flip(SqlRouter.transaction(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          // The foreign key is checked only at COMMIT, which therefore fails.
          sql`INSERT INTO deferred_t VALUES (1, 999)`)))
        expect(error._tag).toBe("CommitFailed")
        if (error._tag !== "CommitFailed") return
        expect(error.sqlState).toBe("23503")
        expect(error.retryable).toBe(false)
        expect(error.node).toBe("primary")
        const rows = yield* cluster.query<{ n: number }>(cluster.primary, "SELECT count(*)::int AS n FROM deferred_t")
        expect(rows[0]!.n).toBe(0)
      }))

    it.effect("a serialization failure at COMMIT is CommitFailed and retryable", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE IF NOT EXISTS ssi (k int, v int)")
        yield* cluster.query(cluster.primary, "INSERT INTO ssi VALUES (1, 0), (2, 0)")
        // Classic write skew: each reads what the other writes; the second COMMIT is refused.
        const t1Read = yield* Effect.makeLatch(false)
        const t2Read = yield* Effect.makeLatch(false)
        const t1Committed = yield* Effect.makeLatch(false)
        const body = (mine: number, other: number, myRead: Effect.Latch, theirRead: Effect.Latch) =>
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            Effect.gen(function*() {
              yield* sql`SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`
              yield* sql`SELECT sum(v) FROM ssi WHERE k = ${other}`
              yield* myRead.open
              yield* theirRead.await
              yield* sql`UPDATE ssi SET v = v + 1 WHERE k = ${mine}`
            }))
        const t1 = yield* Effect.fork(
          SqlRouter.transaction(body(1, 2, t1Read, t2Read)).pipe(Effect.ensuring(t1Committed.open))
        )
        const t2 = SqlRouter.transaction(
          Effect.zipRight(body(2, 1, t2Read, t1Read), t1Committed.await)
        )
        const second = yield* Effect.either(t2)
        const first = yield* Effect.either(Fiber.join(t1))
        const failures = [first, second].filter((e) => e._tag === "Left").map((e) => e.left)
        expect(failures).toHaveLength(1)
        const failure = failures[0]!
        // PostgreSQL may refuse either at the UPDATE or at COMMIT; at COMMIT it must be typed.
        if (failure._tag === "CommitFailed") {
          expect(failure.sqlState).toBe("40001")
          expect(failure.retryable).toBe(true)
        } else {
          expect(failure._tag).toBe("SqlError")
        }
      }))

    it.effect("readTransaction runs BEGIN READ ONLY on a replica and rejects writes", () =>
      Effect.gen(function*() {
        const where = yield* SqlRouter.readTransaction(whoAmI)
        expect(where).toMatch(/^replica-/)
        const error = yield* Effect.flip(SqlRouter.readTransaction(
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO items (label) VALUES ('nope')`)
        ))
        expect(error._tag).toBe("SqlError")
        expect(JSON.stringify(error.cause)).toContain("25006")
        // Also when it falls back to the primary.
        yield* SqlRouter.markReplicaUnhealthy(0)
        yield* SqlRouter.markReplicaUnhealthy(1)
        const onPrimary = yield* Effect.flip(SqlRouter.readTransaction(
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO items (label) VALUES ('nope')`)
        ))
        expect(JSON.stringify(onPrimary.cause)).toContain("25006")
        yield* SqlRouter.markReplicaHealthy(0)
        yield* SqlRouter.markReplicaHealthy(1)
      }))

    it.effect("a replica client's own withTransaction is read-only", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(SqlRouter.withReplica(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql.withTransaction(sql`SELECT 1`.pipe(Effect.zipRight(sql`INSERT INTO items (label) VALUES ('no')`))))))
        expect(JSON.stringify(error)).toContain("25006")
      }))

    it.effect("a node's own client runs the router's transactions: one backend, rolled back whole, a refused COMMIT typed", () =>
      Effect.gen(function*() {
        const router = yield* SqlRouter.SqlRouter
        const sql = (yield* router.primary).client
        const before = yield* SqlRouter.withPrimary(countRows("items"))
        const pids: Array<number> = []
        const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
          pids.push((yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)[0]!.pid)
          yield* sql`INSERT INTO items (label) VALUES ('node-client')`
          pids.push((yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)[0]!.pid)
          return yield* Effect.fail("boom" as const)
        })))
        expect(exit).toEqual(Exit.fail("boom"))
        expect(pids).toHaveLength(2)
        expect(pids[0]).toBe(pids[1])
        expect(yield* SqlRouter.withPrimary(countRows("items"))).toBe(before)
        // The deferred foreign key of the test above fails at COMMIT: a SqlError
        // (SqlClient's type) whose cause is the router's CommitFailed, naming the node.
        const refused = yield* Effect.flip(sql.withTransaction(sql`INSERT INTO deferred_t VALUES (2, 999)`))
        expect(refused._tag).toBe("SqlError")
        const cause = refused.cause as { readonly _tag?: string; readonly node?: string; readonly sqlState?: string }
        expect(cause).toMatchObject({ _tag: "CommitFailed", node: "primary", sqlState: "23503" })
      }))
  })

  describe("validate", () => {
    it.effect("a connection that fails validation at checkout is discarded and another taken", () =>
      Effect.gen(function*() {
        const offered: Array<number> = []
        let calls = 0
        const router = yield* makeRouter({
          replicas: [],
          primaryMaxSize: 2,
          // Rejects every other checkout.
          validate: async (connection) => {
            const [row] = await connection.query("SELECT pg_backend_pid() AS pid")
            offered.push(Number(row!["pid"]))
            return calls++ % 2 === 1
          }
        })
        const served = yield* Effect.forEach([1, 2, 3], () =>
          router.withWrite(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`)))
        expect(served.flat()).toHaveLength(3)
        expect(calls).toBeGreaterThanOrEqual(2 * 3)
        // A connection that failed is destroyed, not returned: it is never offered again.
        offered.forEach((pid, i) => {
          if (i % 2 === 0) expect(offered.slice(i + 1)).not.toContain(pid)
        })
        expect((yield* router.stats).primary.pool.total).toBeLessThanOrEqual(2)
      }).pipe(Effect.scoped))

    it.effect("a primary on which no connection passes validation is unavailable at build", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(makeRouter({ replicas: [], validate: async () => false }).pipe(Effect.scoped))
        expect(error._tag).toBe("PrimaryUnavailable")
        expect(error.message).toContain("validation")
      }))
  })

  describe("stats and shutdown", () => {
    it.effect("stats count connections held and the healthy replicas", () =>
      Effect.gen(function*() {
        const router = yield* makeRouter({ primaryMaxSize: 4, replicaMaxSizeEach: 3 })
        const scope = yield* Scope.make()
        yield* Effect.forEach([1, 2], () => router.acquireWrite.pipe(Scope.extend(scope)))
        const stats = yield* router.stats
        expect(stats.primary.pool).toMatchObject({ total: 2, inUse: 2, idle: 0, waiting: 0, max: 4 })
        expect(stats.healthyReplicaCount).toBe(2)
        expect(stats.replicas.map((r) => r.pool.max)).toEqual([3, 3])
        yield* Scope.close(scope, Exit.void)
        expect((yield* router.stats).primary.pool).toMatchObject({ total: 2, inUse: 0, idle: 2 })
      }).pipe(Effect.scoped))

    it.effect("after the router's scope closes no connection of ours remains", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const scope = yield* Scope.make()
        const router = yield* makeRouter({ applicationName: "shutdown-test" }).pipe(Scope.extend(scope))
        yield* Effect.forEach([1, 2, 3, 4], () => router.withRead(whoAmI), { concurrency: 4 })
        yield* router.withWrite(whoAmI)
        const open = yield* ourConnections(cluster, "shutdown-test")
        expect(open.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(3)
        yield* Scope.close(scope, Exit.void)
        // Backends end asynchronously after the client disconnects: wait for it, then assert.
        const after = yield* ourConnections(cluster, "shutdown-test").pipe(
          Effect.filterOrFail((counts) => counts.every((n) => n === 0)),
          Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 250 }),
          Effect.orElse(() => ourConnections(cluster, "shutdown-test"))
        )
        expect(after).toEqual([0, 0, 0])
      }))
  })

  describe("configuration", () => {
    const secret = "s3cr3t-pa55"
    const url = (s: string) => Redacted.make(s)
    const invalid = [
      { name: "no primary", config: { replicas: [] }, field: "primary" },
      { name: "malformed primary URL", config: { primary: url(`mysql://u:${secret}@h/db`) }, field: "primary" },
      { name: "primary not redacted", config: { primary: `postgres://u:${secret}@h/db` }, field: "primary" },
      {
        name: "malformed replica URL",
        config: { primary: url(`postgres://u:${secret}@h/db`), replicas: [url("postgres://ok@h/db"), url(`:${secret}@`)] },
        field: "replicas[1]"
      },
      { name: "negative pool size", config: { primary: url("postgres://h/db"), primaryMaxSize: -1 }, field: "primaryMaxSize" },
      { name: "zero pool size", config: { primary: url("postgres://h/db"), replicaMaxSizeEach: 0 }, field: "replicaMaxSizeEach" },
      { name: "fractional pool size", config: { primary: url("postgres://h/db"), primaryMaxSize: 2.5 }, field: "primaryMaxSize" },
      { name: "unknown strategy", config: { primary: url("postgres://h/db"), selection: "fastest" }, field: "selection" },
      { name: "bad timeout", config: { primary: url("postgres://h/db"), connectTimeout: "soon" }, field: "connectTimeout" },
      { name: "negative timeout", config: { primary: url("postgres://h/db"), connectTimeout: -5 }, field: "connectTimeout" },
      { name: "unknown option", config: { primary: url("postgres://h/db"), replica: [] }, field: "replica" },
      { name: "bad health threshold", config: { primary: url("postgres://h/db"), health: { failureThreshold: 0 } }, field: "health.failureThreshold" }
    ] as const

    for (const { config, field, name } of invalid) {
      it.effect(`${name}: fails at build with InvalidConfig naming ${field}`, () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(SqlRouter.make(config as never).pipe(Effect.scoped))
          expect(error._tag).toBe("InvalidConfig")
          if (error._tag !== "InvalidConfig") return
          expect(error.field).toBe(field)
          expect(error.message).toContain(field)
          expect(error.message).not.toContain(secret)
          expect(JSON.stringify(error)).not.toContain(secret)
        }))
    }

    it.effect("an unreachable primary fails with PrimaryUnavailable, without the password", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          SqlRouter.make({ primary: url(`postgres://app:${secret}@127.0.0.1:1/db`), connectTimeout: "500 millis" }).pipe(
            Effect.scoped
          )
        )
        expect(error._tag).toBe("PrimaryUnavailable")
        expect(error.message).toContain("127.0.0.1:1")
        expect(error.message).not.toContain(secret)
      }))

    it.effect("a statement waits past connectTimeout for a full pool's connection; opening one is what connectTimeout bounds", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const silent = yield* silentServer
        const router = yield* SqlRouter.make({
          primary: cluster.primary.url,
          primaryMaxSize: 1,
          replicas: [url(`postgres://app:${secret}@127.0.0.1:${silent.port}/db`)],
          connectTimeout: "1 second",
          health: { enabled: false }
        })
        // The primary's only connection is held: a write waits for it.
        const scope = yield* Scope.make()
        yield* router.acquireWrite.pipe(Scope.extend(scope))
        const write = yield* Effect.fork(router.withWrite(whoAmI))
        yield* router.stats.pipe(
          Effect.repeat({ until: (stats) => stats.primary.pool.waiting >= 1, schedule: Schedule.spaced("10 millis") })
        )
        // Twice connectTimeout goes by with the write waiting: the time under test, not a condition to await.
        yield* Effect.sleep("2 seconds")
        yield* Scope.close(scope, Exit.void)
        expect(yield* Fiber.join(write)).toBe("primary")
        // A server that accepts the connection and never answers: opening fails at connectTimeout, typed.
        const replica = (yield* router.replicas)[0]!
        const error = yield* Effect.flip(replica.client`SELECT 1`)
        expect(error._tag).toBe("SqlError")
        expect(PgErrors.isConnectTimeout(error)).toBe(true)
        expect(silent.accepted()).toBeGreaterThanOrEqual(1)
      }).pipe(Effect.scoped))

    it.effect("a replica that is down at start does not fail the layer: it starts unhealthy", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const router = yield* SqlRouter.make({
          primary: cluster.primary.url,
          replicas: [cluster.replicas[0]!.url, url(`postgres://app:${secret}@127.0.0.1:1/db`)],
          connectTimeout: "500 millis",
          health: { enabled: false }
        })
        expect(yield* router.countHealthyReplicas).toBe(1)
        const stats = yield* router.stats
        expect(stats.replicas.map((r) => r.healthy)).toEqual([true, false])
        expect(JSON.stringify(stats)).not.toContain(secret)
        expect(yield* router.withRead(whoAmI)).toBe("replica-0")
      }).pipe(Effect.scoped))
  })
})
