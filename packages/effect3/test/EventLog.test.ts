import { describe, expect, it, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Consistency from "effect-sql-router/Consistency"
import * as EventLog from "effect-sql-router/EventLog"
import * as SqlRouter from "effect-sql-router/SqlRouter"
import { PgCluster } from "effect-sql-router/testing"
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"
import { whoAmI } from "./utils.js"

// One cluster for the file: a primary and two streaming replicas, a router
// that discovers the primary (so the listener test can fail over at the end).
// Each test has its own log table, so tests do not see each other's events.
const Cluster = Layer.unwrapScoped(
  Effect.map(PgCluster.PgCluster, (cluster) =>
    SqlRouter.layer({
      discovery: "auto",
      hosts: cluster.nodes.map((node) => node.url),
      connectTimeout: "2 seconds",
      health: { interval: "200 millis", timeout: "500 millis" },
      // Each test migrates its log, then expects reads outside a session to be
      // stale after its appends: no read-your-writes window after DDL.
      consistency: { afterSchemaChange: 0 }
    }))
).pipe(Layer.provideMerge(PgCluster.layer({ replicas: 2 })))

/** Builds a log on its own table, replicated before `body` runs. */
const withLog = <A, E, R>(options: EventLog.Options, body: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const log = yield* EventLog.make(options)
    const cluster = yield* PgCluster.PgCluster
    yield* cluster.awaitReplication()
    // Every replica in rotation (a test before may have restarted the
    // primary): reads outside a session go to replicas, as the tests expect.
    yield* awaitCondition(SqlRouter.countHealthyReplicas, (n) => n === cluster.replicas.length)
    // The replicas replayed the migration: a read lowers the DDL barrier once
    // the router's probes have seen that (they may be one interval behind),
    // so that appends right after it do not move it (reads outside a session
    // stay on the replicas, as the tests expect).
    yield* awaitCondition(
      Effect.andThen(SqlRouter.withRead(Effect.void), SqlRouter.stats),
      (stats) => stats.schemaBarrier === undefined
    )
    return yield* Effect.provideService(body, EventLog.EventLog, log)
  })

/** Appends one event at the version the transaction reads. */
const append = (typeName = "Noted", payload: unknown = {}) =>
  EventLog.readWrite((tx) => Effect.flatMap(tx.systemVersion, (version) => tx.appendEvent(version, { typeName, payload })))

/** Every version in the log, as the primary has it. */
const versionsOnPrimary = (table: string) =>
  Effect.flatMap(PgCluster.PgCluster, (cluster) =>
    Effect.map(
      cluster.query<{ version: string }>(cluster.primary, `SELECT version FROM ${table} ORDER BY version`),
      (rows) => rows.map((row) => Number(row.version))
    ))

const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

/** Polls (live clock) until `predicate` holds; after `timeout`, fails with the error `why` gives. */
const awaitCondition = <A, E, R, R2 = never>(
  effect: Effect.Effect<A, E, R>,
  predicate: (a: A) => boolean,
  timeout: Duration.DurationInput = "30 seconds",
  why: Effect.Effect<Error, never, R2> = Effect.sync(() => new Error("condition not reached in time"))
) =>
  effect.pipe(
    Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: predicate }),
    Effect.timeout(timeout),
    Effect.catchIf(Cause.isTimeoutException, () => Effect.flatMap(why, Effect.fail))
  )

const pauseAll = Effect.flatMap(PgCluster.PgCluster, (c) => Effect.forEach(c.replicas, c.pauseReplay))
const resumeAll = Effect.flatMap(PgCluster.PgCluster, (c) =>
  Effect.zipRight(Effect.forEach(c.replicas, c.resumeReplay), c.awaitReplication()))

/** With every replica paused, runs `body` and resumes them whatever happens. */
const whilePaused = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(pauseAll, () => body, () => Effect.orDie(resumeAll))

layer(Cluster, { timeout: "180 seconds", excludeTestServices: true })("EventLog", (it) => {
  describe("schema", () => {
    it.effect("migrate creates the tables on the primary (replicated), runs twice, and the log is append-only", () =>
      withLog({ table: "schema_log" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* EventLog.migrate
        const columns = yield* cluster.query<{ column_name: string; data_type: string }>(
          cluster.replicas[0]!,
          "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'schema_log' ORDER BY ordinal_position"
        )
        expect(columns).toEqual([
          { column_name: "version", data_type: "bigint" },
          { column_name: "type_name", data_type: "text" },
          { column_name: "payload", data_type: "jsonb" },
          { column_name: "time", data_type: "timestamp with time zone" },
          { column_name: "revision_vcs", data_type: "text" }
        ])
        const projections = yield* cluster.query<{ n: number }>(
          cluster.replicas[1]!,
          "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'schema_log_projection'"
        )
        expect(projections).toEqual([{ n: 1 }])
        expect(yield* append()).toBe(1)
        const update = yield* Effect.flip(cluster.query(cluster.primary, "UPDATE schema_log SET type_name = 'x'"))
        expect(update.message).toContain("append-only")
        const remove = yield* Effect.flip(cluster.query(cluster.primary, "DELETE FROM schema_log"))
        expect(remove.message).toContain("append-only")
        expect(yield* versionsOnPrimary("schema_log")).toEqual([1])
      })))

    it.effect("a table name that is not a plain identifier fails with InvalidConfig naming the option", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(EventLog.make({ table: "log; DROP TABLE x" }))
        expect(error._tag).toBe("InvalidConfig")
        expect(error.message).toContain("table")
      }))
  })

  describe("typed transactions", () => {
    it.effect("readOnly runs on a replica, in one snapshot; the Reader is also in its context", () =>
      withLog({ table: "snapshot_log" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* append()
        yield* cluster.awaitReplication()
        const [node, before, after] = yield* EventLog.readOnly((reader) =>
          Effect.gen(function*() {
            const before = yield* reader.systemVersion
            // Appended and replayed everywhere while this transaction is open.
            yield* cluster.query(
              cluster.primary,
              "INSERT INTO snapshot_log (version, type_name, payload) VALUES (2, 'Noted', '{}')"
            )
            yield* cluster.awaitReplication()
            return [yield* whoAmI, before, yield* EventLog.systemVersion] as const
          })
        )
        expect(node).toMatch(/^replica-/)
        expect([before, after]).toEqual([1, 1])
        expect(yield* EventLog.readOnly((reader) => reader.systemVersion)).toBe(2)
      })))

    it.effect("readOnly falls back to the primary when no replica is eligible", () =>
      withLog({ table: "fallback_log" }, Effect.gen(function*() {
        yield* append()
        const onPrimary = yield* Effect.acquireUseRelease(
          Effect.zipRight(SqlRouter.markReplicaUnhealthy(0), SqlRouter.markReplicaUnhealthy(1)),
          () => EventLog.readOnly((reader) => Effect.all([reader.systemVersion, whoAmI])),
          () => Effect.orDie(Effect.zipRight(SqlRouter.markReplicaHealthy(0), SqlRouter.markReplicaHealthy(1)))
        )
        expect(onPrimary).toEqual([1, "primary"])
      })))

    it.effect("readWrite runs on the primary; readOnly inside it reads the same transaction", () =>
      withLog({ table: "rw_log" }, Effect.gen(function*() {
        const [node, seen] = yield* EventLog.readWrite((tx) =>
          Effect.gen(function*() {
            yield* tx.appendEvent(0, { typeName: "Noted", payload: { n: 1 } })
            return [yield* whoAmI, yield* EventLog.readOnly((reader) => reader.systemVersion)] as const
          })
        )
        expect([node, seen]).toEqual(["primary", 1])
      })))
  })

  describe("events", () => {
    const Deposited = Schema.Struct({ account: Schema.String, amount: Schema.NumberFromString })

    it.effect("an event round-trips: version, type, payload through its Schema, time, VCS revision", () =>
      withLog({ table: "shape_log", revisionVcs: "abc123", payloads: { Deposited } }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const start = new Date()
        expect(yield* append("Deposited", { account: "a", amount: 5 })).toBe(1)
        const second = yield* EventLog.readWrite((tx) =>
          tx.appendEvent(1, { typeName: "Noted", payload: ["free", "form"], revisionVcs: "def456" }))
        expect(second).toBe(2)
        // Stored as the Schema encodes it.
        const raw = yield* cluster.query<{ amount: unknown }>(cluster.primary, "SELECT payload->'amount' AS amount FROM shape_log WHERE version = 1")
        expect(raw).toEqual([{ amount: "5" }])
        yield* cluster.awaitReplication()
        const [first, after0, after2, missing, version] = yield* EventLog.readOnly((reader) =>
          Effect.all([
            reader.eventAtVersion(1),
            reader.eventAfterVersion(0),
            reader.eventAfterVersion(2),
            reader.eventAtVersion(99),
            reader.systemVersion
          ]))
        const event = Option.getOrThrow(first)
        expect(event).toMatchObject({
          version: 1,
          typeName: "Deposited",
          payload: { account: "a", amount: 5 },
          revisionVcs: "abc123"
        })
        expect(event.time.getTime()).toBeGreaterThanOrEqual(start.getTime() - 60_000)
        expect(Option.map(after0, (e) => e.version)).toEqual(Option.some(1))
        expect(Option.isNone(after2)).toBe(true)
        expect(Option.isNone(missing)).toBe(true)
        expect(version).toBe(2)
        const free = Option.getOrThrow(yield* EventLog.readOnly((reader) => reader.eventAtVersion(2)))
        expect(free).toMatchObject({ payload: ["free", "form"], revisionVcs: "def456" })
      })))

    it.effect("a payload its Schema rejects fails with InvalidEvent on append, and nothing is written", () =>
      withLog({ table: "invalid_log", payloads: { Deposited } }, Effect.gen(function*() {
        const error = yield* Effect.flip(append("Deposited", { account: 1 }))
        expect(error._tag).toBe("InvalidEvent")
        expect(yield* versionsOnPrimary("invalid_log")).toEqual([])
        // Written behind the log's back: reading it names the event.
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(
          cluster.primary,
          `INSERT INTO invalid_log (version, type_name, payload) VALUES (1, 'Deposited', '{"account": 1}')`
        )
        const read = yield* Effect.flip(EventLog.readOnly((reader) => reader.eventAtVersion(1)).pipe(SqlRouter.primary))
        expect(read).toMatchObject({ _tag: "InvalidEvent", typeName: "Deposited", version: 1 })
      })))

    it.effect("events pages forward and in reverse; stream reads a long range page by page", () =>
      withLog({ table: "range_log" }, Effect.gen(function*() {
        yield* Effect.forEach(oneTo(7), (n) => append("Noted", { n }), { discard: true })
        yield* Effect.flatMap(PgCluster.PgCluster, (cluster) => cluster.awaitReplication())
        const [forward, reverse] = yield* EventLog.readOnly((reader) =>
          Effect.all([
            reader.events({ atVersion: 3, limit: 3 }),
            reader.events({ atVersion: 3, reverse: true, limit: 5 })
          ]))
        expect(forward.map((e) => e.version)).toEqual([3, 4, 5])
        expect(reverse.map((e) => e.version)).toEqual([3, 2, 1])
        const all = yield* Stream.runCollect(EventLog.stream({ pageSize: 2 }))
        expect(Array.from(all, (e) => e.version)).toEqual(oneTo(7))
        expect(Array.from(all, (e) => e.payload)).toEqual(oneTo(7).map((n) => ({ n })))
        const backwards = yield* Stream.runCollect(EventLog.stream({ reverse: true, pageSize: 3 }))
        expect(Array.from(backwards, (e) => e.version)).toEqual(oneTo(7).reverse())
        const tail = yield* Stream.runCollect(EventLog.stream({ atVersion: 6, pageSize: 2 }))
        expect(Array.from(tail, (e) => e.version)).toEqual([6, 7])
      })))
  })

  describe("optimistic appends", () => {
    it.effect("VersionMismatch names the assumed and the actual version; the losing transaction rolls back", () =>
      withLog({ table: "mismatch_log" }, Effect.gen(function*() {
        expect(yield* EventLog.readWrite((tx) => tx.appendEvent(0, { typeName: "Noted", payload: {} }))).toBe(1)
        const stale = yield* Effect.flip(EventLog.readWrite((tx) => tx.appendEvent(0, { typeName: "Noted", payload: {} })))
        expect(stale).toEqual(new EventLog.VersionMismatch({ assumed: 0, actual: 1 }))
        expect(stale.message).toContain("version 0")
        const ahead = yield* Effect.flip(EventLog.readWrite((tx) => tx.appendEvent(5, { typeName: "Noted", payload: {} })))
        expect(ahead).toEqual(new EventLog.VersionMismatch({ assumed: 5, actual: 1 }))
        // Two appends in one transaction, the second one refused: neither stays.
        const both = yield* Effect.flip(EventLog.readWrite((tx) =>
          Effect.zipRight(
            tx.appendEvent(1, { typeName: "Noted", payload: {} }),
            tx.appendEvent(1, { typeName: "Noted", payload: {} })
          )))
        expect(both).toEqual(new EventLog.VersionMismatch({ assumed: 1, actual: 2 }))
        expect(yield* versionsOnPrimary("mismatch_log")).toEqual([1])
      })))

    it.effect("16 appenders racing on one assumed version: exactly one wins, the 15 others see who did", () =>
      withLog({ table: "race_log" }, Effect.gen(function*() {
        for (const assumed of [0, 1, 2]) {
          const results = yield* Effect.forEach(oneTo(16), (racer) =>
            Effect.either(EventLog.readWrite((tx) => tx.appendEvent(assumed, { typeName: "Raced", payload: { racer } }))), {
            concurrency: "unbounded"
          })
          const wins = results.filter(Either.isRight).map((r) => r.right)
          const losses = results.filter(Either.isLeft).map((r) => r.left)
          expect(wins).toEqual([assumed + 1])
          expect(losses).toHaveLength(15)
          for (const loss of losses) expect(loss).toEqual(new EventLog.VersionMismatch({ assumed, actual: assumed + 1 }))
        }
        expect(yield* versionsOnPrimary("race_log")).toEqual([1, 2, 3])
      })))

    it.effect("16 appenders each retrying until it has appended 5: one winner per version, gapless, each event once", () =>
      withLog({ table: "gapless_log" }, Effect.gen(function*() {
        const conflicts = yield* Ref.make(0)
        const appendOnce = (racer: number, n: number) =>
          append("Raced", { racer, n }).pipe(
            Effect.tapError((error) => error._tag === "VersionMismatch" ? Ref.update(conflicts, (c) => c + 1) : Effect.void),
            Effect.retry({ while: (error) => error._tag === "VersionMismatch" })
          )
        const won = yield* Effect.forEach(oneTo(16), (racer) =>
          Effect.forEach(oneTo(5), (n) => appendOnce(racer, n)), { concurrency: "unbounded" })
        const versions = won.flat().sort((a, b) => a - b)
        expect(versions).toEqual(oneTo(80))
        expect(yield* versionsOnPrimary("gapless_log")).toEqual(oneTo(80))
        // They did race: some appends lost and were decided again.
        expect(yield* Ref.get(conflicts)).toBeGreaterThan(0)
        const payloads = yield* Effect.flatMap(PgCluster.PgCluster, (cluster) =>
          cluster.query<{ n: number }>(cluster.primary, "SELECT count(DISTINCT payload)::int AS n FROM gapless_log"))
        expect(payloads).toEqual([{ n: 80 }])
      })))

    it.effect("rolled-back appends (failure, defect, interruption) leave no hole", () =>
      withLog({ table: "rollback_log" }, Effect.gen(function*() {
        expect(yield* append()).toBe(1)
        const failed = yield* Effect.flip(EventLog.readWrite((tx) =>
          Effect.zipRight(tx.appendEvent(1, { typeName: "Noted", payload: {} }), Effect.fail("changed my mind" as const))))
        expect(failed).toBe("changed my mind")
        const died = yield* Effect.exit(EventLog.readWrite((tx) =>
          Effect.zipRight(tx.appendEvent(1, { typeName: "Noted", payload: {} }), Effect.die("boom"))))
        expect(died._tag).toBe("Failure")
        const appended = yield* Deferred.make<number>()
        const hanging = yield* Effect.fork(EventLog.readWrite((tx) =>
          Effect.flatMap(tx.appendEvent(1, { typeName: "Noted", payload: {} }), (v) =>
            Effect.zipRight(Deferred.succeed(appended, v), Effect.never))))
        expect(yield* Deferred.await(appended)).toBe(2)
        yield* Fiber.interrupt(hanging)
        expect(yield* versionsOnPrimary("rollback_log")).toEqual([1])
        expect(yield* append()).toBe(2)
        expect(yield* append()).toBe(3)
        expect(yield* versionsOnPrimary("rollback_log")).toEqual([1, 2, 3])
      })))
  })

  describe("projection versions", () => {
    it.effect("init creates at 0 once, set moves it, a rolled-back set does not; unknown ids fail typed", () =>
      withLog({ table: "projection_log" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* Effect.forEach(oneTo(3), () => append(), { discard: true })
        expect(yield* EventLog.readWrite((tx) => tx.initProjectionVersion(7))).toBe(0)
        yield* EventLog.readWrite((tx) => tx.setProjectionVersion(7, 3))
        expect(yield* EventLog.readWrite((tx) => tx.initProjectionVersion(7))).toBe(3)
        yield* Effect.flip(EventLog.readWrite((tx) => Effect.zipRight(tx.setProjectionVersion(7, 2), Effect.fail("no"))))
        yield* cluster.awaitReplication()
        expect(yield* EventLog.readOnly((reader) => reader.projectionVersion(7))).toBe(3)
        const unknown = yield* Effect.flip(EventLog.readOnly((reader) => reader.projectionVersion(8)))
        expect(unknown).toEqual(new EventLog.ProjectionNotFound({ id: 8 }))
        const unset = yield* Effect.flip(EventLog.readWrite((tx) => tx.setProjectionVersion(8, 1)))
        expect(unset._tag).toBe("ProjectionNotFound")
      })))
  })

  describe("table names", () => {
    it.effect("reserved words work as table, projection table and channel names: identifiers are quoted", () =>
      Effect.gen(function*() {
        for (const [table, projectionTable, channel] of [["order", "user", "select"], ["table", undefined, undefined]] as const) {
          yield* withLog({ table, projectionTable, channel }, Effect.gen(function*() {
            const log = yield* EventLog.EventLog
            expect([log.table, log.projectionTable, log.channel]).toEqual([
              table,
              projectionTable ?? `${table}_projection`,
              channel ?? table
            ])
            const listened = yield* Effect.fork(Stream.runCollect(Stream.take(EventLog.listen({ from: 0 }), 2)))
            expect(yield* append("Noted", { n: 1 })).toBe(1)
            yield* EventLog.readWrite((tx) => Effect.zipRight(tx.initProjectionVersion(1), tx.setProjectionVersion(1, 1)))
            expect(yield* EventLog.readOnly((reader) => Effect.all([reader.systemVersion, reader.projectionVersion(1)])).pipe(
              SqlRouter.primary
            )).toEqual([1, 1])
            expect(Array.from(yield* Fiber.join(listened))).toEqual([EventLog.ready, EventLog.inserted(1)])
            expect(yield* versionsOnPrimary(`"${table}"`)).toEqual([1])
          }))
        }
      }))

    it.effect("names and derived names are checked against PostgreSQL's 63-byte limit when the log is made", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const tables = () =>
          Effect.map(
            cluster.query<{ n: number }>(
              cluster.primary,
              "SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'long\\_%' AND relkind = 'r'"
            ),
            (rows) => rows[0]!.n
          )
        const before = yield* tables()
        const name = (bytes: number) => `long_${"x".repeat(bytes - 5)}`
        // The default projection table, `<table>_projection`, would be 64 bytes.
        const derived = yield* Effect.flip(EventLog.make({ table: name(53) }))
        expect(derived).toMatchObject({ _tag: "InvalidConfig", field: "table" })
        expect(derived.message).toContain("projectionTable")
        // The table's triggers, `<table>_immutable`, would be 64 bytes.
        const triggers = yield* Effect.flip(EventLog.make({ table: name(54), projectionTable: "long_projection" }))
        expect(triggers).toMatchObject({ _tag: "InvalidConfig", field: "table" })
        const projection = yield* Effect.flip(EventLog.make({ table: "long_ok", projectionTable: name(64) }))
        expect(projection).toMatchObject({ _tag: "InvalidConfig", field: "projectionTable" })
        const channel = yield* Effect.flip(EventLog.make({ table: "long_ok", channel: name(64) }))
        expect(channel).toMatchObject({ _tag: "InvalidConfig", field: "channel" })
        const same = yield* Effect.flip(EventLog.make({ table: "long_ok", projectionTable: "long_ok" }))
        expect(same).toMatchObject({ _tag: "InvalidConfig", field: "projectionTable" })
        const upper = yield* Effect.flip(EventLog.make({ table: "Long_ok" }))
        expect(upper).toMatchObject({ _tag: "InvalidConfig", field: "table" })
        const revision = yield* Effect.flip(EventLog.make({ table: "long_ok", revisionVcs: "a\u0000b" }))
        expect(revision).toMatchObject({ _tag: "InvalidConfig", field: "revisionVcs" })
        expect(yield* tables()).toBe(before)
        // At the limits, everything is created and works.
        yield* withLog({ table: name(52) }, Effect.gen(function*() {
          expect((yield* EventLog.EventLog).projectionTable).toHaveLength(63)
          expect(yield* append()).toBe(1)
        }))
        yield* withLog({ table: name(53), projectionTable: name(63) }, Effect.map(append(), (v) => expect(v).toBe(1)))
        expect(yield* tables()).toBe(before + 4)
      }))
  })

  describe("bad input: typed errors, nothing written", () => {
    const Deposited = Schema.Struct({ account: Schema.String, amount: Schema.NumberFromString })

    const circular: Record<string, unknown> = { a: { b: 1 } }
    ;(circular["a"] as Record<string, unknown>)["self"] = circular
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [1, , 3]
    const deep = (levels: number): unknown => levels === 0 ? 1 : [deep(levels - 1)]

    const notJson: ReadonlyArray<readonly [string, unknown, string, string]> = [
      ["a bigint", { n: 1n }, "$.n", "bigint"],
      ["a circular object", circular, "$.a.self", "circular reference (to $)"],
      ["an undefined property", { kept: 1, dropped: undefined }, "$.dropped", "undefined"],
      ["undefined in an array", [1, undefined], "$[1]", "undefined"],
      ["undefined itself", undefined, "$", "undefined"],
      ["a function", { f: () => 1 }, "$.f", "function"],
      ["NaN deep inside", { a: [{ b: [0, NaN] }] }, "$.a[0].b[1]", "not finite"],
      ["Infinity", { "odd key": -Infinity }, `$["odd key"]`, "not finite"],
      ["a symbol", [Symbol("s")], "$[0]", "symbol"],
      ["a symbol key", { [Symbol("k")]: 1 }, "$", "symbol keys"],
      ["a Date", { at: new Date(0) }, "$.at", "a Date"],
      ["a Map", new Map([["a", 1]]), "$", "a Map"],
      ["an empty array slot", sparse, "$[1]", "empty array slot"],
      ["U+0000 in a string", { s: "a\u0000b" }, "$.s", "U+0000"],
      ["U+0000 in a key", { "a\u0000": 1 }, `$["a\\u0000"]`, "U+0000"],
      ["a lone surrogate", { s: "\uD800x" }, "$.s", "lone UTF-16 surrogate"],
      ["nesting deeper than 1000 levels", deep(1001), `$${"[0]".repeat(1000)}`, "deeper than 1000"]
    ]

    it.effect("a payload that cannot become JSON unchanged fails with InvalidEvent naming the path and the problem", () =>
      withLog({ table: "json_log" }, Effect.gen(function*() {
        for (const [what, payload, path, reason] of notJson) {
          // Not through `append`, whose default payload would replace undefined.
          const error = yield* Effect.flip(EventLog.readWrite((tx) => tx.appendEvent(0, { typeName: "Noted", payload })))
          expect(error, what).toMatchObject({ _tag: "InvalidEvent", typeName: "Noted", path })
          expect((error as EventLog.InvalidEvent).reason, what).toContain(reason)
          expect(error.message, what).toContain(path)
        }
        expect(yield* versionsOnPrimary("json_log")).toEqual([])
        // The deepest payload allowed, and a shared (not circular) object, are stored and read back equal.
        const shared = { x: 1 }
        const fine = { deep: deep(999), twice: [shared, shared], nothing: null, negative: -1.5e300 }
        expect(yield* append("Noted", fine)).toBe(1)
        const read = yield* EventLog.readOnly((reader) => reader.eventAtVersion(1)).pipe(SqlRouter.primary)
        expect(Option.map(read, (event) => event.payload)).toEqual(Option.some(fine))
      })))

    it.effect("a refused event leaves the transaction usable; reasons never quote the payload's values", () =>
      withLog({ table: "refused_log", payloads: { Deposited } }, Effect.gen(function*() {
        const [refused, schemaRefused, version] = yield* EventLog.readWrite((tx) =>
          Effect.gen(function*() {
            const refused = yield* Effect.flip(tx.appendEvent(0, { typeName: "Noted", payload: { password: "hunter2", n: 1n } }))
            const schemaRefused = yield* Effect.flip(
              tx.appendEvent(0, { typeName: "Deposited", payload: { account: "a", amount: "hunter2" } })
            )
            return [refused, schemaRefused, yield* tx.appendEvent(0, { typeName: "Noted", payload: { ok: true } })] as const
          }))
        expect(refused).toMatchObject({ _tag: "InvalidEvent", path: "$.n" })
        expect(schemaRefused).toMatchObject({ _tag: "InvalidEvent", typeName: "Deposited", path: "$.amount" })
        for (const error of [refused, schemaRefused]) expect(error.message).not.toContain("hunter2")
        expect(version).toBe(1)
        expect(yield* versionsOnPrimary("refused_log")).toEqual([1])
      })))

    it.effect("rawJson stores JSON text as the JSON it holds; a plain string stays a JSON string; bad text is InvalidEvent", () =>
      withLog({ table: "raw_log", payloads: { Deposited } }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const text = `{"account": "ada", "amount": "10"}`
        expect(yield* append("Deposited", EventLog.rawJson(text))).toBe(1)
        expect(yield* append("Noted", text)).toBe(2)
        expect(yield* append("Noted", EventLog.rawJson("12.50"))).toBe(3)
        expect(yield* append("Noted", EventLog.rawJson(`[ "a", {"b": null, "\\u00fc": "\\ud83d\\ude00"} ]`))).toBe(4)
        const stored = yield* cluster.query<{ kind: string; amount: string | null }>(
          cluster.primary,
          "SELECT jsonb_typeof(payload) AS kind, payload->>'amount' AS amount FROM raw_log ORDER BY version"
        )
        expect(stored).toEqual([
          { kind: "object", amount: "10" },
          { kind: "string", amount: null },
          { kind: "number", amount: null },
          { kind: "array", amount: null }
        ])
        const events = yield* EventLog.readOnly((reader) => reader.events({ atVersion: 1, limit: 4 })).pipe(SqlRouter.primary)
        expect(events.map((event) => event.payload)).toEqual([
          { account: "ada", amount: 10 },
          text,
          12.5,
          ["a", { b: null, "ü": "\u{1F600}" }]
        ])
        const bad: ReadonlyArray<readonly [string, string, unknown, string]> = [
          ["not JSON", "Noted", EventLog.rawJson("{ secret-token }"), "not valid JSON"],
          ["U+0000 escaped", "Noted", EventLog.rawJson(`{"s": "\\u0000"}`), "U+0000"],
          ["beyond the double range", "Noted", EventLog.rawJson(`{"big": 1e400}`), "not finite"],
          ["refused by its Schema", "Deposited", EventLog.rawJson(`{"account": "ada", "amount": 10}`), "payload Schema"]
        ]
        for (const [what, typeName, payload, reason] of bad) {
          const error = yield* Effect.flip(append(typeName, payload))
          expect(error, what).toMatchObject({ _tag: "InvalidEvent", typeName })
          expect((error as EventLog.InvalidEvent).reason, what).toContain(reason)
          expect(error.message, what).not.toContain("secret-token")
        }
        expect(yield* versionsOnPrimary("raw_log")).toEqual([1, 2, 3, 4])
      })))

    it.effect("a Reader or Writer used after its transaction fails with TransactionClosed and runs nothing", () =>
      withLog({ table: "closed_log" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const writer = yield* EventLog.readWrite((tx) => Effect.as(tx.initProjectionVersion(1), tx))
        const reader = yield* EventLog.readOnly((reader) => Effect.succeed(reader))
        const afterwards = yield* Effect.all([
          Effect.flip(writer.appendEvent(0, { typeName: "Noted", payload: {} })),
          Effect.flip(writer.setProjectionVersion(1, 0)),
          Effect.flip(writer.initProjectionVersion(2)),
          Effect.flip(writer.systemVersion),
          Effect.flip(reader.eventAtVersion(1)),
          Effect.flip(reader.events({ atVersion: 1, limit: 1 })),
          // Through the accessors, with the captured service provided again.
          Effect.flip(EventLog.appendEvent(0, { typeName: "Noted", payload: {} }).pipe(
            Effect.provideService(EventLog.Writer, writer)
          )),
          // Inside another transaction: still not the one that gave it.
          Effect.flip(EventLog.readWrite(() => writer.appendEvent(0, { typeName: "Noted", payload: {} })))
        ])
        expect(afterwards.map((error) => [error._tag, (error as EventLog.TransactionClosed).operation])).toEqual([
          ["TransactionClosed", "appendEvent"],
          ["TransactionClosed", "setProjectionVersion"],
          ["TransactionClosed", "initProjectionVersion"],
          ["TransactionClosed", "systemVersion"],
          ["TransactionClosed", "eventAtVersion"],
          ["TransactionClosed", "events"],
          ["TransactionClosed", "appendEvent"],
          ["TransactionClosed", "appendEvent"]
        ])
        expect(yield* versionsOnPrimary("closed_log")).toEqual([])
        const projections = yield* cluster.query<{ id: number }>(cluster.primary, "SELECT id FROM closed_log_projection")
        expect(projections).toEqual([{ id: 1 }])
        // A readOnly nested in readWrite closes its reader; the outer writer goes on.
        const [inner, appended] = yield* EventLog.readWrite((tx) =>
          Effect.gen(function*() {
            const inner = yield* EventLog.readOnly((reader) => Effect.succeed(reader))
            return [yield* Effect.flip(inner.systemVersion), yield* tx.appendEvent(0, { typeName: "Noted", payload: {} })] as const
          }))
        expect([inner._tag, appended]).toEqual(["TransactionClosed", 1])
      })))

    it.effect("bad arguments fail with InvalidInput naming the operation and the argument, before any statement", () =>
      withLog({ table: "input_log" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const longName = "T".repeat(10_000)
        const noted = (typeName: string, revisionVcs?: string) => ({ typeName, payload: {}, revisionVcs })
        yield* EventLog.readWrite((tx) => tx.initProjectionVersion(7))
        const refusals = yield* EventLog.readWrite((tx) =>
          Effect.gen(function*() {
            const refusals = yield* Effect.all([
              Effect.flip(tx.eventAtVersion(1.5)),
              Effect.flip(tx.eventAfterVersion(-1)),
              Effect.flip(tx.events({ atVersion: 1, limit: -1 })),
              Effect.flip(tx.events({ atVersion: Number.NaN, limit: 1 })),
              Effect.flip(tx.projectionVersion(2 ** 31)),
              Effect.flip(tx.initProjectionVersion(-(2 ** 31) - 1)),
              Effect.flip(tx.setProjectionVersion(7.5, 0)),
              Effect.flip(tx.setProjectionVersion(7, -2)),
              Effect.flip(tx.setProjectionVersion(7, 1)),
              Effect.flip(tx.appendEvent(-1, noted("Noted"))),
              Effect.flip(tx.appendEvent(0.5, noted("Noted"))),
              Effect.flip(tx.appendEvent(2 ** 53, noted("Noted"))),
              Effect.flip(tx.appendEvent(0, noted(""))),
              Effect.flip(tx.appendEvent(0, noted(longName))),
              Effect.flip(tx.appendEvent(0, noted("Noted\u0000"))),
              Effect.flip(tx.appendEvent(0, noted("Noted", "rev\u0000"))),
              Effect.flip(tx.appendEvent(0, noted("Noted", "r".repeat(257))))
            ])
            // The transaction goes on: nothing failed on the server.
            yield* tx.appendEvent(0, noted("N".repeat(256), "r".repeat(256)))
            return refusals
          }))
        expect(refusals.map((error) => [error._tag, (error as EventLog.InvalidInput).operation, (error as EventLog.InvalidInput).argument])).toEqual([
          ["InvalidInput", "eventAtVersion", "version"],
          ["InvalidInput", "eventAfterVersion", "version"],
          ["InvalidInput", "events", "options.limit"],
          ["InvalidInput", "events", "options.atVersion"],
          ["InvalidInput", "projectionVersion", "id"],
          ["InvalidInput", "initProjectionVersion", "id"],
          ["InvalidInput", "setProjectionVersion", "id"],
          ["InvalidInput", "setProjectionVersion", "version"],
          ["InvalidInput", "setProjectionVersion", "version"],
          ["InvalidInput", "appendEvent", "assumedVersion"],
          ["InvalidInput", "appendEvent", "assumedVersion"],
          ["InvalidInput", "appendEvent", "assumedVersion"],
          ["InvalidInput", "appendEvent", "event.typeName"],
          ["InvalidInput", "appendEvent", "event.typeName"],
          ["InvalidInput", "appendEvent", "event.typeName"],
          ["InvalidInput", "appendEvent", "event.revisionVcs"],
          ["InvalidInput", "appendEvent", "event.revisionVcs"]
        ])
        expect(refusals[8]!.message).toContain("system version (0)")
        expect(refusals[13]!.message.length).toBeLessThan(200)
        for (const error of refusals) expect(error.message).not.toMatch(/SqlError|Failed to execute/)
        // Streams and the listener check their options before they read.
        const streamed = yield* Effect.flip(Stream.runCollect(EventLog.stream({ pageSize: 0 })))
        expect(streamed).toMatchObject({ _tag: "InvalidInput", operation: "stream", argument: "options.pageSize" })
        const listened = yield* Effect.flip(Stream.runCollect(EventLog.listen({ from: -1 })))
        expect(listened).toMatchObject({ _tag: "InvalidInput", operation: "listen", argument: "options.from" })
        expect(yield* versionsOnPrimary("input_log")).toEqual([1])
        const projection = yield* cluster.query<{ version: string }>(
          cluster.primary,
          "SELECT version FROM input_log_projection WHERE id = 7"
        )
        expect(projection).toEqual([{ version: "0" }])
      })))

    it.effect("a primary outage during appends and migrations is PrimaryUnavailable; nothing is written", () =>
      withLog({ table: "outage_log" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const [appended, migrated] = yield* Effect.acquireUseRelease(
          cluster.stop(cluster.primary),
          () => Effect.all([Effect.flip(append()), Effect.flip(EventLog.migrate)]),
          () => Effect.orDie(cluster.start(cluster.primary))
        )
        for (const error of [appended, migrated]) {
          expect(error._tag).toBe("PrimaryUnavailable")
          expect(error.message).toContain("not committed")
        }
        // Back: the router writes again once its pool reconnects.
        yield* awaitCondition(Effect.either(EventLog.readWrite((tx) => tx.systemVersion)), Either.isRight)
        expect(yield* versionsOnPrimary("outage_log")).toEqual([])
        expect(yield* append()).toBe(1)
      })))
  })

  describe("consistency", () => {
    it.effect("read-your-writes: with replay paused, a session's readOnly sees its append (on the primary); outside it does not", () =>
      withLog({ table: "ryw_log" }, whilePaused(Effect.gen(function*() {
        const [version, seen, node] = yield* Consistency.session(Effect.gen(function*() {
          const version = yield* append("Noted", { mine: true })
          const [seen, node] = yield* EventLog.readOnly((reader) => Effect.all([reader.eventAtVersion(version), whoAmI]))
          return [version, seen, node] as const
        }))
        expect(Option.map(seen, (e) => e.payload)).toEqual(Option.some({ mine: true }))
        expect(node).toBe("primary")
        const [outside, outsideNode] = yield* EventLog.readOnly((reader) => Effect.all([reader.eventAtVersion(version), whoAmI]))
        expect(Option.isNone(outside)).toBe(true)
        expect(outsideNode).toMatch(/^replica-/)
      }))))

    it.effect("read-your-writes across processes: a token from the appender's session gives the same guarantee", () =>
      withLog({ table: "token_log" }, whilePaused(Effect.gen(function*() {
        const [version, token] = yield* Consistency.session(Effect.all([append(), Consistency.currentToken]))
        const seen = yield* EventLog.readOnly((reader) => reader.eventAtVersion(version)).pipe(Consistency.withToken(token))
        expect(Option.isSome(seen)).toBe(true)
      }))))

    it.effect("read-your-writes on a replica: with one replica paused, the session's read waits for the other", () =>
      withLog({ table: "wait_log" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const [paused, live] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
        yield* cluster.pauseReplay(paused)
        const [seen, node] = yield* Consistency.session(Effect.zipRight(
          append(),
          EventLog.readOnly((reader) => Effect.all([reader.systemVersion, whoAmI])).pipe(
            Consistency.withReadPolicy({ maxWait: "20 seconds", onNotCaughtUp: "fail" })
          )
        ))
        expect([seen, node]).toEqual([1, live.name])
        yield* cluster.resumeReplay(paused)
        yield* cluster.awaitReplication()
      })))

    it.effect("monotonic reads: in a session the system version never goes back as reads move between replicas", () =>
      withLog({ table: "monotonic_log" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const [paused, live] = cluster.replicas as [PgCluster.ClusterNode, PgCluster.ClusterNode]
        yield* append()
        yield* cluster.awaitReplication()
        yield* cluster.pauseReplay(paused)
        yield* append()
        yield* cluster.awaitReplication({ replicas: [live] })
        const read = EventLog.readOnly((reader) => Effect.all([reader.systemVersion, whoAmI]))
        // Outside a session, reads alternate between a replica at 1 and one at 2.
        const unordered = yield* Effect.forEach(oneTo(6), () => read)
        expect(new Set(unordered.map(([, node]) => node))).toEqual(new Set([paused.name, live.name]))
        expect(new Set(unordered.map(([version]) => version))).toEqual(new Set([1, 2]))
        // In a session, once it has seen 2 it reads only where 2 is replayed.
        const ordered = yield* Consistency.session(Effect.forEach(oneTo(8), () => read))
        const versions = ordered.map(([version]) => version)
        expect(versions).toEqual([...versions].sort((a, b) => a - b))
        expect(versions).toContain(2)
        const firstTwo = versions.indexOf(2)
        expect(ordered.slice(firstTwo).map(([, node]) => node)).not.toContain(paused.name)
        yield* cluster.resumeReplay(paused)
        yield* cluster.awaitReplication()
      })))
  })

  describe("listener", () => {
    /** Runs the listener in a fiber; what it emits goes to a Ref. */
    const follow = (options: EventLog.ListenOptions) =>
      Effect.gen(function*() {
        const seen = yield* Ref.make<ReadonlyArray<EventLog.ListenEvent>>([])
        const fiber = yield* Effect.fork(
          Stream.runForEach(EventLog.listen(options), (event) => Ref.update(seen, (all) => [...all, event]))
        )
        return { seen, fiber }
      })

    const insertedOf = (events: ReadonlyArray<EventLog.ListenEvent>) =>
      events.flatMap((event) => event._tag === "Inserted" ? [event.version] : [])

    it.effect("signals Ready once listening, then reports each appended version once, in order", () =>
      withLog({ table: "listen_log" }, Effect.gen(function*() {
        yield* append()
        const { seen, fiber } = yield* follow({ resubscribeDelay: "100 millis" })
        yield* awaitCondition(Ref.get(seen), (events) => events.length > 0)
        expect(yield* Ref.get(seen)).toEqual([EventLog.ready])
        // Appended in one transaction: both are reported.
        yield* EventLog.readWrite((tx) =>
          Effect.zipRight(tx.appendEvent(1, { typeName: "Noted", payload: {} }), tx.appendEvent(2, { typeName: "Noted", payload: {} })))
        yield* append()
        yield* awaitCondition(Ref.get(seen), (events) => events.length === 4)
        expect(yield* Ref.get(seen)).toEqual([EventLog.ready, EventLog.inserted(2), EventLog.inserted(3), EventLog.inserted(4)])
        // `from` reports what came after it, those before Ready included.
        const replay = yield* follow({ from: 1, resubscribeDelay: "100 millis" })
        yield* awaitCondition(Ref.get(replay.seen), (events) => events.length === 4)
        expect(yield* Ref.get(replay.seen)).toEqual([EventLog.ready, EventLog.inserted(2), EventLog.inserted(3), EventLog.inserted(4)])
        yield* Fiber.interrupt(fiber)
        yield* Fiber.interrupt(replay.fiber)
      })))

    it.effect("survives a lost LISTEN connection: versions appended while disconnected are reported from the log", () =>
      withLog({ table: "lost_log", channel: "lost_log_channel" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { seen, fiber } = yield* follow({ from: 0, resubscribeDelay: "300 millis", applicationName: "event-log-lost" })
        yield* awaitCondition(Ref.get(seen), (events) => events.length > 0)
        yield* append()
        yield* awaitCondition(Ref.get(seen), (events) => events.length === 2)
        const terminated = yield* cluster.query<{ ok: boolean }>(
          cluster.primary,
          "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'event-log-lost'"
        )
        expect(terminated).toEqual([{ ok: true }])
        yield* append()
        yield* append()
        yield* awaitCondition(Ref.get(seen), (events) => insertedOf(events).length === 3)
        expect(yield* Ref.get(seen)).toEqual([EventLog.ready, ...oneTo(3).map(EventLog.inserted)])
        yield* Fiber.interrupt(fiber)
      })))

    it.effect("poll mode: Ready, then every version, without LISTEN", () =>
      withLog({ table: "poll_log" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { seen, fiber } = yield* follow({ mode: "poll", pollInterval: "50 millis", from: 0, applicationName: "event-log-poll" })
        yield* awaitCondition(Ref.get(seen), (events) => events.length > 0)
        yield* Effect.forEach(oneTo(3), () => append(), { discard: true })
        yield* awaitCondition(Ref.get(seen), (events) => insertedOf(events).length === 3)
        expect(yield* Ref.get(seen)).toEqual([EventLog.ready, ...oneTo(3).map(EventLog.inserted)])
        const listening = yield* cluster.query(
          cluster.primary,
          "SELECT 1 FROM pg_stat_activity WHERE application_name = 'event-log-poll'"
        )
        expect(listening).toEqual([])
        yield* Fiber.interrupt(fiber)
      })))

    it.effect("notify mode with pollInterval: versions are reported even when no notification arrives", () =>
      withLog({ table: "quiet_log", channel: "quiet_log_trigger" }, Effect.gen(function*() {
        // The same table, listened to on a channel its trigger never signals.
        const deaf = yield* EventLog.make({ table: "quiet_log", channel: "quiet_log_nobody", migrate: false })
        const { seen, fiber } = yield* follow({ from: 0, pollInterval: "100 millis" }).pipe(
          Effect.provideService(EventLog.EventLog, deaf)
        )
        yield* awaitCondition(Ref.get(seen), (events) => events.length > 0)
        yield* Effect.forEach(oneTo(2), () => append(), { discard: true })
        yield* awaitCondition(Ref.get(seen), (events) => insertedOf(events).length === 2)
        expect(yield* Ref.get(seen)).toEqual([EventLog.ready, EventLog.inserted(1), EventLog.inserted(2)])
        yield* Fiber.interrupt(fiber)
      })))

    // Last in the file: it fails the cluster over.
    it.effect("every version exactly once, in order, across three primary restarts and a failover, with a producer every 50 ms", () =>
      withLog({ table: "durable_log" }, Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const { seen, fiber } = yield* follow({ from: 0, resubscribeDelay: "100 millis" })
        yield* awaitCondition(Ref.get(seen), (events) => events.length > 0)
        const committed = yield* Ref.make<ReadonlyArray<number>>([])
        // What the producer's last append did, for the message of a stall.
        const lastAppend = yield* Ref.make("none yet")
        const at = () => new Date().toISOString().slice(11, 23)
        // Appends fail while the primary is down; the producer just goes on
        // (a defect would end it: the stall message says "died").
        const producer = yield* Effect.fork(
          append().pipe(
            Effect.flatMap((version) => Ref.update(committed, (all) => [...all, version])),
            Effect.tap(() => Ref.set(lastAppend, `committed at ${at()}`)),
            Effect.tapErrorCause((cause) =>
              Ref.set(lastAppend, `${Cause.isDie(cause) ? "died" : "failed"} at ${at()}: ${Cause.pretty(cause).split("\n")[0]}`)
            ),
            Effect.ignore,
            Effect.repeat(Schedule.spaced("50 millis"))
          )
        )
        const reported = Effect.map(Ref.get(seen), (events) => insertedOf(events).length)
        // A stall says which side stopped: the producer's last append, the
        // listener's last events, and the primary's pool.
        const stalled = (step: string) =>
          Effect.map(
            Effect.all([Ref.get(lastAppend), Ref.get(seen), SqlRouter.stats]),
            ([last, events, stats]) =>
              new Error(
                `no progress for 60 s after ${step} (now ${at()}): last append ${last}; ` +
                  `listener saw ${events.length} events, last ${JSON.stringify(events.slice(-2))}; ` +
                  `primary pool ${JSON.stringify(stats.primary.pool)}`
              )
          )
        const progress = (more: number, step: string) =>
          Effect.flatMap(reported, (now) => awaitCondition(reported, (n) => n >= now + more, "60 seconds", stalled(step)))
        yield* progress(5, "the start")
        for (const restart of [1, 2, 3]) {
          yield* cluster.stop(cluster.primary)
          yield* cluster.start(cluster.primary)
          yield* progress(5, `restart ${restart}`)
        }
        const [next] = cluster.replicas
        yield* cluster.stop(cluster.primary)
        yield* cluster.promote(next!)
        yield* progress(5, "the failover")
        expect(yield* whoAmI.pipe(SqlRouter.withPrimary)).toBe(next!.name)
        yield* Fiber.interrupt(producer)
        const final = yield* versionsOnPrimary("durable_log")
        expect(final).toEqual(oneTo(final.length))
        yield* awaitCondition(reported, (n) => n >= final.length, "60 seconds")
        const events = yield* Ref.get(seen)
        expect(events[0]).toEqual(EventLog.ready)
        expect(events.filter((event) => event._tag === "Ready")).toHaveLength(1)
        expect(insertedOf(events)).toEqual(final)
        for (const version of yield* Ref.get(committed)) expect(final).toContain(version)
        yield* Fiber.interrupt(fiber)
      })), { timeout: 180_000 })
  })
})

describe("EventLog types", () => {
  // test/EventLog.types.ts proves that a write inside readOnly does not
  // compile; this checks what the compiler says first, as a user sees it.
  it("a write inside readOnly is refused with a first error line that says to use EventLog.readWrite", () => {
    const root = Path.resolve(import.meta.dirname, "..")
    Fs.mkdirSync(Path.join(root, ".tmp"), { recursive: true })
    const scratch = Fs.mkdtempSync(Path.join(root, ".tmp", "event-log-types-"))
    try {
      const file = Path.join(scratch, "writeInReadOnly.ts")
      Fs.writeFileSync(
        file,
        `import * as Effect from "effect/Effect"
import * as EventLog from "effect-sql-router/EventLog"
const event = { typeName: "Deposited", payload: {} }
export const accessor = EventLog.readOnly(() => EventLog.appendEvent(0, event))
export const service = Effect.flatMap(EventLog.EventLog, (log) => log.readOnly(() => EventLog.setProjectionVersion(1, 1)))
export const deep = EventLog.readOnly(() => Effect.zipRight(EventLog.systemVersion, EventLog.initProjectionVersion(7)))
`
      )
      const configPath = Path.join(root, "tsconfig.json")
      const config = ts.parseJsonConfigFileContent(ts.readConfigFile(configPath, ts.sys.readFile).config, ts.sys, root)
      // The package's own paths: itself and the core from source.
      const program = ts.createProgram([file], { ...config.options, noEmit: true })
      const firstLines = ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((diagnostic) =>
        ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n").split("\n")[0]!
      )
      expect(firstLines).toHaveLength(3)
      for (const line of firstLines) {
        expect(line).toContain("use EventLog.readWrite")
        expect(line).not.toContain("Consider adding 'undefined'")
      }
    } finally {
      Fs.rmSync(scratch, { recursive: true, force: true })
    }
  }, 120_000)
})
