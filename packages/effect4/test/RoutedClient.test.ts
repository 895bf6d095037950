import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Model from "effect/schema/Model"
import * as SqlClient from "effect/sql/SqlClient"
import * as SqlModel from "effect/sql/SqlModel"
import * as SqlResolver from "effect/sql/SqlResolver"
import * as SqlSchema from "effect/sql/SqlSchema"
import * as Stream from "effect/Stream"
import * as RoutedClient from "@effect-sql-router/effect4/RoutedClient"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { configFor, recordingTracer } from "./utils.js"

const Routed = Layer.unwrap(
  Effect.map(PgCluster.PgCluster, (cluster) =>
    RoutedClient.layer(configFor(cluster, {
      sideEffectFunctions: ["audit_touch"],
      // The tests write right after the setup's DDL and expect reads to reach
      // replicas that lack those writes: no read-your-writes window after DDL.
      consistency: { afterSchemaChange: 0 }
    })))
).pipe(Layer.provideMerge(PgCluster.layer({ replicas: 2 })))

const who = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(sql<{ name: string }>`SELECT current_setting('cluster_name') AS name`, (rows) => rows[0]!.name))

const served = Effect.map(SqlRouter.stats, (s) => ({
  primary: s.primary.served,
  replicaReads: s.replicas.reduce((n, r) => n + r.served.reads, 0),
  replicaWrites: s.replicas.reduce((n, r) => n + r.served.writes, 0)
}))

class Person extends Model.Class<Person>("Person")({
  id: Schema.Int.pipe(Model.FieldExcept(["insert"])),
  name: Schema.String
}) {}

const pauseReplicas = Effect.flatMap(PgCluster.PgCluster, (c) => Effect.forEach(c.replicas, c.pauseReplay))
const resumeReplicas = Effect.flatMap(PgCluster.PgCluster, (c) =>
  Effect.andThen(Effect.forEach(c.replicas, c.resumeReplay), c.awaitReplication()))

/** `findById` of a repository, as an Option (Effect 4's fails with NoSuchElementError when absent). */
const findOption = <A, E, R>(found: Effect.Effect<A, E, R>) => Effect.catchNoSuchElement(found)

layer(Routed, { timeout: "120 seconds", excludeTestServices: true })("RoutedClient", (it) => {
  it.effect("setup", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE person (id serial PRIMARY KEY, name text NOT NULL)`
      yield* sql`CREATE TABLE audit (id serial PRIMARY KEY, what text)`
      yield* sql`CREATE FUNCTION f_write(what text) RETURNS int LANGUAGE sql AS $$ INSERT INTO audit (what) VALUES (what) RETURNING id $$`
      yield* sql`CREATE FUNCTION audit_touch() RETURNS int LANGUAGE sql AS $$ INSERT INTO audit (what) VALUES ('touch') RETURNING id $$`
      yield* Effect.flatMap(PgCluster.PgCluster, (c) => c.awaitReplication())
    }))

  describe("plain sql", () => {
    it.effect("reads go to replicas, writes to the primary, by server identity", () =>
      Effect.gen(function*() {
        const reads = yield* Effect.forEach([1, 2, 3, 4], () => who)
        expect(new Set(reads)).toEqual(new Set(["replica-0", "replica-1"]))
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ name: string }>`
          INSERT INTO person (name) VALUES ('w') RETURNING current_setting('cluster_name') AS name`
        expect(row!.name).toBe("primary")
        const [locked] = yield* sql<{ name: string }>`
          SELECT current_setting('cluster_name') AS name FROM person LIMIT 1 FOR UPDATE`
        expect(locked!.name).toBe("primary")
      }))

    it.effect(".values, .raw, .unprepared and .stream are routed too", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const q = () => sql`SELECT current_setting('cluster_name') AS name`
        const values = yield* q().values
        expect(values[0]![0]).toMatch(/^replica-/)
        const raw = (yield* q().raw) as { rows: Array<{ name: string }> }
        expect(raw.rows[0]!.name).toMatch(/^replica-/)
        const unprepared = yield* q().unprepared
        expect(unprepared[0]!["name"]).toMatch(/^replica-/)
        const streamed = yield* Stream.runCollect(q().stream)
        expect((streamed[0] as { name: string }).name).toMatch(/^replica-/)
        const written = yield* Stream.runCollect(
          sql`INSERT INTO person (name) VALUES ('s') RETURNING current_setting('cluster_name') AS name`.stream
        )
        expect((written[0] as { name: string }).name).toBe("primary")
        // @effect/sql-pg 4 has no simple-query protocol: one statement per text, unprepared or not.
        const unpreparedWrite = yield* sql.unsafe(
          "UPDATE person SET name = name WHERE id = (SELECT min(id) FROM person) RETURNING current_setting('cluster_name') AS name"
        ).unprepared
        expect(unpreparedWrite).toEqual([{ name: "primary" }])
      }))

    it.effect("SqlRouter.primary forces the primary for a region; SqlRouter.replica re-enables replicas", () =>
      Effect.gen(function*() {
        expect(yield* SqlRouter.primary(who)).toBe("primary")
        expect(yield* SqlRouter.primary(SqlRouter.replica(who))).toMatch(/^replica-/)
        expect(yield* SqlRouter.primary(SqlRouter.withRead(who))).toBe("primary")
        expect(yield* who.pipe(Effect.provide(SqlRouter.setRoute("primary")))).toBe("primary")
      }))

    it.effect("inside withTransaction a write then a read see each other on one primary connection", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const result = yield* sql.withTransaction(Effect.gen(function*() {
          const [{ id }] = (yield* sql<{ id: number }>`INSERT INTO person (name) VALUES ('in-tx') RETURNING id`) as [
            { id: number }
          ]
          const rows = yield* sql<{ name: string; node: string; pid: number }>`
            SELECT name, current_setting('cluster_name') AS node, pg_backend_pid() AS pid FROM person WHERE id = ${id}`
          const [again] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
          return { rows, pid: again!.pid }
        }))
        expect(result.rows).toHaveLength(1)
        expect(result.rows[0]).toMatchObject({ name: "in-tx", node: "primary" })
        expect(result.rows[0]!.pid).toBe(result.pid)
      }))

    it.effect("the routed client, taken before SqlRouter.transaction, runs in its transaction: one connection, rolled back whole", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [backend] = yield* SqlRouter.transaction(Effect.gen(function*() {
          yield* sql`INSERT INTO person (name) VALUES ('region-tx')`
          const [inside] = yield* sql<{ n: number; node: string; pid: number }>`
            SELECT count(*)::int AS n, current_setting('cluster_name') AS node, pg_backend_pid() AS pid
            FROM person WHERE name = 'region-tx'`
          const [region] = yield* Effect.flatMap(SqlClient.SqlClient, (own) => own<{ pid: number }>`SELECT pg_backend_pid() AS pid`)
          expect(inside).toMatchObject({ n: 1, node: "primary", pid: region!.pid })
          return yield* Effect.fail("roll back" as const)
        })).pipe(Effect.flip, Effect.map((error) => [error]))
        expect(backend).toBe("roll back")
        const [after] = yield* SqlRouter.primary(sql<{ n: number }>`SELECT count(*)::int AS n FROM person WHERE name = 'region-tx'`)
        expect(after!.n).toBe(0)
      }))

    it.effect("a SELECT of a user function that writes succeeds and its row is on the primary", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const cluster = yield* PgCluster.PgCluster
        const before = yield* served
        // Classified as a read (the function is unknown); the replica refuses
        // it with 25006 and the safety net runs it on the primary.
        const [row] = yield* sql<{ id: number }>`SELECT f_write('via-select') AS id`
        expect(row!.id).toBeGreaterThan(0)
        const onPrimary = yield* cluster.query(cluster.primary, "SELECT count(*)::int AS n FROM audit WHERE what = 'via-select'")
        expect(onPrimary).toEqual([{ n: 1 }])
        const after = yield* served
        expect(after.primary.writes).toBe(before.primary.writes + 1)
        // A configured side-effecting function goes straight to the primary.
        const [touched] = yield* sql<{ id: number; node: string }>`
          SELECT audit_touch() AS id, current_setting('cluster_name') AS node`
        expect(touched!.node).toBe("primary")
      }))

    it.effect("LISTEN/NOTIFY round trip through the routed client", () =>
      Effect.gen(function*() {
        const pg = yield* PgClient.PgClient
        // Effect 4's listen returns once the server confirmed LISTEN: no polling for it.
        const received = yield* pg.listen("router_events")
        const cluster = yield* PgCluster.PgCluster
        const listening = yield* cluster.query<{ n: number }>(
          cluster.primary,
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query ILIKE 'LISTEN%router_events%'"
        )
        expect(listening).toEqual([{ n: 1 }])
        yield* pg.notify("router_events", "one")
        yield* pg.notify("router_events", "two")
        const messages = [yield* Queue.take(received), yield* Queue.take(received)]
        expect(messages.map((m) => [m.channel, m.payload])).toEqual([["router_events", "one"], ["router_events", "two"]])
      }))
  })

  describe("unchanged @effect/sql programs", () => {
    it.effect("Model.makeRepository: insert on the primary, findById on a replica", () =>
      Effect.gen(function*() {
        const repo = yield* SqlModel.makeRepository(Person, { tableName: "person", spanPrefix: "PersonRepo", idColumn: "id" })
        yield* pauseReplicas
        const before = yield* served
        const ada = yield* repo.insert(Person.insert.make({ name: "ada" }))
        // Replay is paused: a replica does not have the row yet, the primary does.
        expect(yield* findOption(repo.findById(ada.id))).toEqual(Option.none())
        expect(Option.map(yield* SqlRouter.primary(findOption(repo.findById(ada.id))), (p) => p.name)).toEqual(
          Option.some("ada")
        )
        const after = yield* served
        expect(after.primary.writes).toBe(before.primary.writes + 1)
        expect(after.replicaReads).toBe(before.replicaReads + 1)
        expect(after.replicaWrites).toBe(0)
        yield* resumeReplicas
        expect(Option.map(yield* findOption(repo.findById(ada.id)), (p) => p.name)).toEqual(Option.some("ada"))
        yield* repo.update(Person.update.make({ id: ada.id, name: "ada lovelace" }))
        expect((yield* served).primary.writes).toBe(after.primary.writes + 1)
      }))

    it.effect("SqlSchema and SqlResolver run their reads on replicas", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const byName = SqlSchema.findAll({
          Request: Schema.String,
          Result: Schema.Struct({ name: Schema.String, node: Schema.String }),
          execute: (name) =>
            sql`SELECT name, current_setting('cluster_name') AS node FROM person WHERE name = ${name}`
        })
        const rows = yield* byName("ada lovelace").pipe(
          Effect.repeat({ until: (rows) => rows.length > 0, times: 100 })
        )
        expect(rows[0]!.node).toMatch(/^replica-/)
        const resolver = SqlResolver.findById({
          Id: Schema.Int,
          Result: Schema.Struct({ id: Schema.Int, name: Schema.String, node: Schema.String }),
          ResultId: (row) => row.id,
          execute: (ids) =>
            sql`SELECT id, name, current_setting('cluster_name') AS node FROM person WHERE ${sql.in("id", ids)}`
        })
        const [first] = yield* sql<{ id: number }>`SELECT min(id)::int AS id FROM person`
        const found = yield* SqlResolver.request(first!.id, resolver)
        expect(found.node).toMatch(/^replica-/)
      }))
  })

  describe("observability", () => {
    it.effect("the sql.execute span carries the intent; counters count per node and intent", () =>
      Effect.gen(function*() {
        const { spans, tracer } = recordingTracer()
        const sql = yield* SqlClient.SqlClient
        const readCounter = Metric.withAttributes(SqlRouter.metrics.statements, { node: "replica-0", intent: "read" })
        const before = yield* Metric.value(readCounter)
        yield* Effect.withTracer(
          Effect.all([sql`SELECT 1`, sql`UPDATE person SET name = name WHERE false`, sql`SELECT 2`, sql`SELECT 3`]),
          tracer
        )
        // Statement spans are the ones with a query text (BEGIN/COMMIT have spans of their own without one).
        const executes = spans.filter((s) => s.attributes.has("db.query.text"))
        expect(executes.map((s) => s.attributes.get("effect_sql_router.intent"))).toEqual(["read", "write", "read", "read"])
        const after = yield* Metric.value(readCounter)
        expect(after.count).toBeGreaterThan(before.count)
      }))
  })
})
