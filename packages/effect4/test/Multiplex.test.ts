import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Latch from "effect/Latch"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import { errorCode } from "@effect-sql-router/core/PgErrors"
import * as RoutedClient from "@effect-sql-router/effect4/RoutedClient"
import type * as RouterConfig from "@effect-sql-router/effect4/RouterConfig"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { activeStatements, configFor, eventually as poll } from "./utils.js"

// Pipelining is safe (issue 22, item 4): with `multiplex: true` on the
// primary and the replicas, statements of many fibers share each pooled
// connection. The router must still send every write to the primary, keep a
// causal session's reads behind its writes, keep one statement's failure or
// interruption from touching the statements pipelined with it, and give
// transactions, streams and LISTEN a connection of their own. Two
// connections per pool, so that the tests can tell which statements shared
// one.

const multiplexed: Partial<RouterConfig.RouterConfig> = {
  primaryMaxSize: 2,
  replicaMaxSizeEach: 2,
  primaryPool: { multiplex: true },
  replicaPool: { multiplex: true },
  // A session's read waits for a replica to replay its write rather than
  // going to the primary at once: the session test wants replicas to answer.
  consistency: { maxWait: "5 seconds" }
}

const Multiplexed = Layer.unwrap(
  Effect.map(PgCluster.PgCluster, (cluster) => RoutedClient.layer(configFor(cluster, multiplexed)))
).pipe(Layer.provideMerge(PgCluster.layer({ replicas: 2 })))

/** Polls (live clock) until `check` holds; fails after a bounded number of tries. */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>) => poll(check, 400)

/** A statement's answer: its own tag back, the server and the backend that ran it. */
interface Answer {
  readonly tag: string
  readonly node: string
  readonly pid: number
}

const lockKey = 4242

/**
 * An advisory lock held on a leased primary connection: statements that ask
 * for it wait on the server, and everything pipelined behind them on the
 * pool's other (shared) connection waits with them.
 */
const holdLock = Effect.gen(function*() {
  const scope = yield* Scope.make()
  const lease = yield* Scope.provide(SqlRouter.acquireWrite, scope)
  const [row] = yield* lease.client<{ pid: number }>`SELECT pg_advisory_lock(${lockKey}), pg_backend_pid() AS pid`
  return {
    pid: row!.pid,
    release: Effect.andThen(
      lease.client`SELECT pg_advisory_unlock(${lockKey})`,
      Scope.close(scope, Exit.void)
    )
  }
})

/** A write that waits for the lock, then inserts `tag`; `failing` makes it divide by zero instead. */
const gatedWrite = (tag: string, failing = false) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<Answer>`INSERT INTO mux_t (tag)
        SELECT ${tag} || CASE WHEN ${failing} THEN (1 / (count(*) - count(*)))::text ELSE '' END
        FROM (SELECT pg_advisory_xact_lock_shared(${lockKey})) AS gate
        RETURNING tag, current_setting('cluster_name') AS node, pg_backend_pid() AS pid, 'mux_gate_marker' AS marker`,
      (rows) => rows[0]!
    ))

const primaryNode = Effect.map(PgCluster.PgCluster, (cluster) => cluster.primary)

/** Rows with one of `tags` on the primary. */
const rowsWith = (tags: ReadonlyArray<string>) =>
  Effect.flatMap(PgCluster.PgCluster, (cluster) =>
    Effect.map(
      cluster.query<{ tag: string }>(cluster.primary, "SELECT tag FROM mux_t WHERE tag = ANY($1::text[]) ORDER BY tag", [
        `{${tags.join(",")}}`
      ]),
      (rows) => rows.map((row) => row.tag)
    ))

/** Transactions on `node` that ended in a rollback, as the server counts them (a refused write is one). */
const rollbacks = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode) =>
  Effect.map(
    cluster.query<{ n: number }>(
      node,
      "SELECT xact_rollback::int AS n FROM pg_stat_database WHERE datname = current_database()"
    ),
    (rows) => rows[0]!.n
  )

/** Backends of `applicationName` still connected to `node`. */
const backendsOf = (cluster: PgCluster.PgCluster, node: PgCluster.ClusterNode, applicationName: string) =>
  Effect.map(
    cluster.query<{ n: number }>(
      node,
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1",
      [applicationName]
    ),
    (rows) => rows[0]!.n
  )

/** Which backend of the primary a routed statement forced there runs on, and what it sees of `statement_timeout`. */
const onPrimary = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    SqlRouter.primary(sql<{ pid: number; timeout: string }>`
      SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS timeout`),
    (rows) => rows[0]!
  ))

layer(Multiplexed, { timeout: "180 seconds", excludeTestServices: true })("multiplex: pipelining is safe", (it) => {
  it.effect("setup", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.PgCluster
      yield* cluster.query(cluster.primary, "CREATE TABLE mux_t (id bigserial PRIMARY KEY, tag text NOT NULL)")
      yield* cluster.awaitReplication()
    }))

  describe("the precondition", () => {
    it.effect("statements of many fibers share one connection: none waits for a connection of its own", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const lock = yield* holdLock
        const tags = Array.from({ length: 10 }, (_, i) => `share-${i}`)
        const fibers = yield* Effect.forEach(tags, (tag) => Effect.forkChild(gatedWrite(tag)))
        // One statement runs (waiting for the lock) on the one connection the lease left.
        yield* eventually(Effect.map(activeStatements(cluster, cluster.primary, "mux_gate_marker"), (n) => n === 1))
        const pool = (yield* SqlRouter.stats).primary.pool
        // Ten statements in flight on a pool of two whose other connection is leased:
        // without pipelining nine of them would be waiting for a connection.
        expect(pool).toMatchObject({ inUse: 2, waiting: 0, max: 2 })
        yield* lock.release
        const answers = yield* Effect.forEach(fibers, Fiber.join)
        expect(answers.map((a) => a.tag)).toEqual(tags)
        expect(new Set(answers.map((a) => a.pid)).size).toBe(1)
        expect(answers[0]!.pid).not.toBe(lock.pid)
      }))
  })

  describe("writes", () => {
    it.effect("under concurrent pipelined load no write reaches a replica, and every statement gets its own answer", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        // A router of its own, closed before the replicas' counters are read: a
        // backend's statistics are flushed at the latest when it exits.
        const applicationName = "mux-write-test"
        const before = yield* Effect.forEach(cluster.replicas, (node) => rollbacks(cluster, node))
        const scope = yield* Scope.make()
        const { client: sql, router } = yield* Scope.provide(
          RoutedClient.make(configFor(cluster, { ...multiplexed, applicationName })),
          scope
        )
        const operations = Array.from({ length: 300 }, (_, i) => i)
        const answers = yield* Effect.forEach(
          operations,
          (i): Effect.Effect<Answer & { readonly i: number; readonly kind: "write" | "read" }, SqlError> =>
            i % 2 === 0
              // txid_current() cannot run on a standby: a write answered at all ran on a writable server.
              ? Effect.map(
                sql<Answer & { xid: string }>`INSERT INTO mux_t (tag) VALUES (${`w-${i}`})
                  RETURNING tag, current_setting('cluster_name') AS node, pg_backend_pid() AS pid, txid_current()::text AS xid`,
                (rows) => ({ i, kind: "write" as const, ...rows[0]! })
              )
              : Effect.map(
                sql<Answer>`SELECT ${`r-${i}`}::text AS tag, current_setting('cluster_name') AS node, pg_backend_pid() AS pid`,
                (rows) => ({ i, kind: "read" as const, ...rows[0]! })
              ),
          { concurrency: 64 }
        )
        // Every statement got its own answer back, not a neighbour's in the pipeline.
        for (const answer of answers) expect(answer.tag).toBe(`${answer.kind === "write" ? "w" : "r"}-${answer.i}`)
        const writes = answers.filter((a) => a.kind === "write")
        const reads = answers.filter((a) => a.kind === "read")
        expect(new Set(writes.map((w) => w.node))).toEqual(new Set(["primary"]))
        expect(new Set(reads.map((r) => r.node))).toEqual(new Set(["replica-0", "replica-1"]))
        // Pipelined: 150 writes at a concurrency of 64 on at most two backends of the primary.
        expect(new Set(writes.map((w) => w.pid)).size).toBeLessThanOrEqual(2)
        const stats = yield* router.stats
        expect(stats.replicas.map((r) => r.served.writes)).toEqual([0, 0])
        expect(yield* rowsWith(writes.map((w) => w.tag))).toHaveLength(150)
        yield* Scope.close(scope, Exit.void)
        // On the replicas: no refused write (a write that reached a standby fails there and rolls back).
        for (const node of cluster.replicas) {
          yield* eventually(Effect.map(backendsOf(cluster, node, applicationName), (n) => n === 0))
        }
        const after = yield* Effect.forEach(cluster.replicas, (node) => rollbacks(cluster, node))
        expect(after).toEqual(before)
        // The counter does count a refused write: one sent straight to a replica shows up.
        const refused = yield* Effect.flip(cluster.query(cluster.replicas[0]!, "INSERT INTO mux_t (tag) VALUES ('control')"))
        expect(`${errorCode(refused)} ${refused.message}`).toMatch(/25006|read-only/)
        yield* eventually(Effect.map(rollbacks(cluster, cluster.replicas[0]!), (n) => n === before[0]! + 1))
      }))

    it.effect("read-your-writes: a causal session's next read sees its pipelined write", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const sql = yield* SqlClient.SqlClient
        const behind = cluster.replicas.find((r) => r.name === "replica-1")!
        const sessions = Array.from({ length: 32 }, (_, i) => `s-${i}`)
        const seen = yield* Effect.acquireUseRelease(
          cluster.pauseReplay(behind),
          () =>
            Effect.forEach(
              sessions,
              (tag) =>
                SqlRouter.session(Effect.gen(function*() {
                  yield* sql`INSERT INTO mux_t (tag) VALUES (${tag})`
                  const [row] = yield* sql<{ n: number; node: string }>`
                    SELECT count(*)::int AS n, current_setting('cluster_name') AS node FROM mux_t WHERE tag = ${tag}`
                  return { tag, ...row! }
                })),
              { concurrency: "unbounded" }
            ),
          () => Effect.orDie(Effect.andThen(cluster.resumeReplay(behind), cluster.awaitReplication()))
        )
        // Each session saw its own write, never from the replica that had not replayed it.
        expect(seen.map((s) => [s.tag, s.n])).toEqual(sessions.map((tag) => [tag, 1]))
        expect(seen.filter((s) => s.node === "replica-1")).toEqual([])
      }))
  })

  describe("failures in a pipeline", () => {
    it.effect("a failed and an interrupted statement do not fail the statements pipelined with them", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const lock = yield* holdLock
        const tags = ["p-a", "p-b", "p-c", "p-d", "p-e"] as const
        const a = yield* Effect.forkChild(gatedWrite("p-a"))
        const b = yield* Effect.forkChild(gatedWrite("p-b", true))
        const c = yield* Effect.forkChild(gatedWrite("p-c"))
        const d = yield* Effect.forkChild(gatedWrite("p-d"))
        const e = yield* Effect.forkChild(gatedWrite("p-e"))
        yield* eventually(Effect.map(activeStatements(cluster, cluster.primary, "mux_gate_marker"), (n) => n === 1))
        // All five are in flight on one connection (none waits for a connection).
        expect((yield* SqlRouter.stats).primary.pool.waiting).toBe(0)
        yield* Fiber.interrupt(d)
        yield* lock.release
        const answers = yield* Effect.forEach([a, c, e], Fiber.join)
        expect(answers.map((x) => x.tag)).toEqual(["p-a", "p-c", "p-e"])
        expect(new Set(answers.map((x) => x.pid)).size).toBe(1)
        const failed = yield* Effect.flip(Fiber.join(b))
        expect(errorCode(failed)).toBe("22012")
        expect(Exit.hasInterrupts(yield* Fiber.await(d))).toBe(true)
        // The failed statement wrote nothing; the others did. (Whether the
        // interrupted one ran is not asserted: on a shared connection it was
        // already sent, and a cancel there would hit its neighbours, so the
        // driver does not cancel it.)
        expect((yield* rowsWith(tags)).filter((tag) => tag !== "p-d")).toEqual(["p-a", "p-c", "p-e"])
        // The pool still pairs answers with statements (the lease's connection is back in
        // it, so the next statement may run on either connection).
        const next = yield* Effect.forEach(["p-next-0", "p-next-1", "p-next-2"], (tag) => gatedWrite(tag), {
          concurrency: "unbounded"
        })
        expect(next.map((x) => x.tag)).toEqual(["p-next-0", "p-next-1", "p-next-2"])
      }))

    it.effect("on the replicas too: failing and interrupted reads leave the others' answers intact", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 120 }, (_, i) => i),
          (i): Effect.Effect<{ readonly i: number; readonly outcome: string }, SqlError> =>
            i % 10 === 3
              ? Effect.match(sql`SELECT 1 / (count(*) - count(*))::int AS n FROM generate_series(1, ${i})`, {
                onFailure: (error) => ({ i, outcome: `failed ${errorCode(error)}` }),
                onSuccess: () => ({ i, outcome: "answered" })
              })
              : i % 10 === 7
              ? Effect.map(
                Effect.timeoutOption(sql`SELECT pg_sleep(0.2), ${i}::int AS i`, "20 millis"),
                (answer) => ({ i, outcome: answer._tag === "None" ? "interrupted" : "answered late" })
              )
              : Effect.map(sql<{ i: number }>`SELECT ${i}::int AS i`, (rows) => ({ i, outcome: `got ${rows[0]!.i}` })),
          { concurrency: 48 }
        )
        for (const { i, outcome } of outcomes) {
          if (i % 10 === 3) expect(outcome).toBe("failed 22012")
          else if (i % 10 !== 7) expect(outcome).toBe(`got ${i}`)
        }
        expect(outcomes.filter((o) => o.outcome === "interrupted").length).toBeGreaterThan(0)
        // A division by zero is the statement's fault, not the replica's: both stay in rotation.
        expect((yield* SqlRouter.stats).replicas.map((r) => r.healthy)).toEqual([true, true])
      }))
  })

  describe("a connection of their own", () => {
    it.effect("a transaction's statements are not interleaved with others: SET LOCAL is seen only inside", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const inside = yield* Latch.make(false)
        const finish = yield* Latch.make(false)
        const transaction = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
          yield* sql`SET LOCAL statement_timeout = '12345ms'`
          const first = yield* onPrimary
          yield* inside.open
          yield* finish.await
          const last = yield* onPrimary
          return { first, last }
        })))
        yield* inside.await
        const others = yield* Effect.forEach(Array.from({ length: 40 }), () => onPrimary, { concurrency: "unbounded" })
        yield* finish.open
        const { first, last } = yield* Fiber.join(transaction)
        expect([first.timeout, last.timeout]).toEqual(["12345ms", "12345ms"])
        expect(last.pid).toBe(first.pid)
        expect(others.filter((o) => o.pid === first.pid || o.timeout === "12345ms")).toEqual([])
        // Over with the transaction.
        expect((yield* onPrimary).timeout).not.toBe("12345ms")
      }))

    it.effect("a stream holds its connection: reads meanwhile run on the replica's other one", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const during: Array<{ pid: number; node: string }> = []
        const rows = yield* Stream.runCollect(
          sql<{ i: number; pid: number; node: string }>`
            SELECT i, pg_backend_pid() AS pid, current_setting('cluster_name') AS node FROM generate_series(1, 2000) i`
            .stream.pipe(
              Stream.tap((row) =>
                row.i === 1
                  ? Effect.map(
                    Effect.forEach(
                      Array.from({ length: 20 }),
                      () => sql<{ pid: number; node: string }>`
                        SELECT pg_backend_pid() AS pid, current_setting('cluster_name') AS node`,
                      { concurrency: "unbounded" }
                    ),
                    (answers) => void during.push(...answers.flat())
                  )
                  : Effect.void
              )
            )
        )
        expect(rows.map((row) => row.i)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1))
        const stream = rows[0]!
        expect(new Set(rows.map((row) => `${row.node}/${row.pid}`))).toEqual(new Set([`${stream.node}/${stream.pid}`]))
        expect(during).toHaveLength(20)
        // Some of the reads went to the stream's replica, none to the stream's connection.
        expect(during.filter((d) => d.node === stream.node).length).toBeGreaterThan(0)
        expect(during.filter((d) => d.node === stream.node && d.pid === stream.pid)).toEqual([])
      }))

    it.effect("LISTEN holds its connection: notifications arrive while pipelined statements run elsewhere", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const primary = yield* primaryNode
        const pg = yield* PgClient.PgClient
        const notifications = yield* pg.listen("mux_events")
        const [listener] = yield* cluster.query<{ pid: number }>(
          primary,
          "SELECT pid FROM pg_stat_activity WHERE query ILIKE 'LISTEN%mux_events%'"
        )
        const others = yield* Effect.forEach(Array.from({ length: 40 }), () => onPrimary, { concurrency: "unbounded" })
        expect(others.filter((o) => o.pid === listener!.pid)).toEqual([])
        yield* Effect.forEach(["one", "two", "three"], (payload) => pg.notify("mux_events", payload), {
          concurrency: "unbounded",
          discard: true
        })
        const received = [
          yield* Queue.take(notifications),
          yield* Queue.take(notifications),
          yield* Queue.take(notifications)
        ]
        expect(received.map((n) => n.payload).sort()).toEqual(["one", "three", "two"])
      }))
  })

  describe("session-level SET", () => {
    it.effect("a plain SET on a shared connection is seen by every statement pipelined there (use SET LOCAL in a transaction)", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        // One shared primary connection, so that where the SET lands is certain.
        const { client: sql } = yield* RoutedClient.make(
          configFor(cluster, { ...multiplexed, primaryMaxSize: 1, applicationName: "mux-set-test" })
        )
        const primaryTimeout = SqlRouter.primary(sql<{ timeout: string; pid: number }>`
          SELECT current_setting('statement_timeout') AS timeout, pg_backend_pid() AS pid`)
        const [before] = yield* primaryTimeout
        expect(before!.timeout).not.toBe("54321ms")
        // A SET is not a read: it goes to the primary, on the shared connection.
        yield* sql`SET statement_timeout = '54321ms'`
        // Other fibers' statements on that connection now run under it: the
        // setting belongs to the server session, which pipelining shares.
        const seen = yield* Effect.forEach(Array.from({ length: 8 }), () => primaryTimeout, { concurrency: "unbounded" })
        expect(seen.flat().map((row) => [row.timeout, row.pid])).toEqual(
          Array.from({ length: 8 }, () => ["54321ms", before!.pid])
        )
        // Reads on replicas do not see it: they run in other sessions.
        const [onReplica] = yield* sql<{ timeout: string; node: string }>`
          SELECT current_setting('statement_timeout') AS timeout, current_setting('cluster_name') AS node`
        expect(onReplica!.node).toMatch(/^replica-/)
        expect(onReplica!.timeout).not.toBe("54321ms")
        yield* sql`RESET statement_timeout`
        const [after] = yield* primaryTimeout
        expect(after!.timeout).toBe(before!.timeout)
      }))
  })
})
