import type * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Sink from "effect/Sink"
import * as Cdc from "effect-sql-router/Cdc"
import { PgCluster } from "effect-sql-router/testing"
import { pgTarget, provided, sqliteTarget } from "./fixtures/cdcTargets.js"

// Source transactions larger than the rule's batchSize (100 here): streamed
// into the target batch by batch, whole (`atomicity: "transaction"`) or
// committed per batch (`"batch"`), a target failure in the middle, and
// multi-row statements that keep the order of changes to one key.

const select = (table: string) => `SELECT id, v, note FROM ${table} ORDER BY id`

/** The rows as the target has them, in the source's shape (SQLite has no int4: its integers come back as numbers too). */
const targetRows = (sql: SqlClient.SqlClient, table: string) => sql.unsafe<{ id: number; v: number; note: string | null }>(select(table))

const sourceRows = (cluster: PgCluster.PgCluster, table: string) =>
  cluster.query<{ id: number; v: number; note: string | null }>(cluster.primary, select(table))

const create = (cluster: PgCluster.PgCluster, table: string) =>
  cluster.query(cluster.primary, `CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL, note text)`)

/** One source transaction (a DO block: one statement) of 3 000 inserts and 1 000 updates (4 000 changes: 40 batches of 100). */
const bigTransaction = (table: string) =>
  `DO $$ BEGIN
     INSERT INTO ${table} SELECT g, g, md5(g::text) FROM generate_series(1, 3000) g;
     UPDATE ${table} SET v = v + 1 WHERE id <= 1000;
   END $$`

/** The rule's record in the target's state table (rule names here are plain identifiers). */
const stateOf = (sql: SqlClient.SqlClient, rule: string) =>
  Effect.map(sql.unsafe<{ lsn: string }>(`SELECT lsn FROM effect_sql_router_cdc WHERE rule = '${rule}'`), (rows) => rows[0]?.lsn)

/**
 * A trigger on the PostgreSQL target that fails the first write of row
 * `id` (a sequence counts, outside any transaction, so the failure happens once).
 */
const failOnce = (sql: SqlClient.SqlClient, table: string, id: number) =>
  Effect.gen(function*() {
    yield* sql.unsafe(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL, note text)`)
    yield* sql.unsafe(`CREATE SEQUENCE ${table}_fault`)
    yield* sql.unsafe(`CREATE FUNCTION ${table}_fault() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.id = ${id} AND nextval('${table}_fault') = 1 THEN RAISE EXCEPTION 'injected target failure'; END IF;
        RETURN NEW;
      END $$`)
    yield* sql.unsafe(`CREATE TRIGGER ${table}_fault BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION ${table}_fault()`)
  })

layer(PgCluster.layer({ replicas: 0, walLevel: "logical" }), { timeout: "180 seconds", excludeTestServices: true })(
  "Cdc large source transactions",
  (it) => {
    it.effect("atomicity transaction: 4 000 changes in batches of 100 land in one target transaction, never seen in part", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* create(cluster, "whole")
        const pg = yield* pgTarget(cluster, "whole_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "whole_pg", tables: ["whole"], target: "pg", batchSize: 100 })
        yield* cdc.addRule({ name: "whole_lite", tables: ["whole"], target: "lite", batchSize: 100, atomicity: "transaction" })
        yield* cdc.sync("whole_pg")
        yield* cdc.sync("whole_lite")
        yield* cluster.query(cluster.primary, bigTransaction("whole"))

        // A reader on the target counts rows while the transaction is applied.
        const seen = yield* Ref.make(new Set<number>())
        const reader = yield* Effect.fork(
          pg.unsafe<{ n: number }>("SELECT count(*)::int AS n FROM whole").pipe(
            Effect.flatMap(([row]) => Ref.update(seen, (s) => new Set(s).add(row!.n)).pipe(Effect.as(row!.n))),
            Effect.repeat({ schedule: Schedule.spaced("2 millis"), until: (n) => n === 3000 })
          )
        )
        const synced = yield* cdc.sync("whole_pg")
        yield* Fiber.join(reader)
        expect(synced).toMatchObject({ transactions: 1, changes: 4000 })
        expect([...(yield* Ref.get(seen))].every((n) => n === 0 || n === 3000)).toBe(true)
        // Every row was written by one target transaction.
        const [xmins] = yield* pg.unsafe<{ n: number }>("SELECT count(DISTINCT xmin::text)::int AS n FROM whole")
        expect(xmins!.n).toBe(1)
        expect(yield* targetRows(pg, "whole")).toEqual(yield* sourceRows(cluster, "whole"))

        expect(yield* cdc.sync("whole_lite")).toMatchObject({ transactions: 1, changes: 4000 })
        expect(yield* targetRows(lite, "whole")).toEqual(yield* sourceRows(cluster, "whole"))
        const stats = yield* cdc.stats("whole_lite")
        // The (empty) snapshot, one truncate, then the large transaction.
        expect(stats).toMatchObject({ transactionsApplied: 2, changesApplied: 4001, errors: 0 })
        // The record is whole: no partial marker.
        expect(yield* stateOf(pg, "whole_pg")).toBe(stats.lastAppliedLsn)
      })))

    it.effect("atomicity batch: each batch of 100 is its own target transaction; the result is the same", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* create(cluster, "batched")
        const pg = yield* pgTarget(cluster, "batched_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "batched_pg", tables: ["batched"], target: "pg", batchSize: 100, atomicity: "batch" })
        yield* cdc.addRule({ name: "batched_lite", tables: ["batched"], target: "lite", batchSize: 100, atomicity: "batch" })
        yield* cdc.sync("batched_pg")
        yield* cdc.sync("batched_lite")
        yield* cluster.query(cluster.primary, "INSERT INTO batched SELECT g, g, 'x' FROM generate_series(1, 3000) g")

        expect(yield* cdc.sync("batched_pg")).toMatchObject({ transactions: 1, changes: 3000 })
        // 30 batches, each committed on its own.
        const [xmins] = yield* pg.unsafe<{ n: number }>("SELECT count(DISTINCT xmin::text)::int AS n FROM batched")
        expect(xmins!.n).toBe(30)
        expect(yield* targetRows(pg, "batched")).toEqual(yield* sourceRows(cluster, "batched"))
        expect(yield* cdc.sync("batched_lite")).toMatchObject({ transactions: 1, changes: 3000 })
        expect(yield* targetRows(lite, "batched")).toEqual(yield* sourceRows(cluster, "batched"))
        expect(yield* stateOf(lite, "batched_lite")).toBe((yield* cdc.stats("batched_lite")).lastAppliedLsn)
      })))

    it.effect("atomicity batch, the target failing mid-way: the part applied is recorded as partial, the next sync applies it again whole", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* create(cluster, "broken")
        const pg = yield* pgTarget(cluster, "broken_target")
        yield* failOnce(pg, "broken", 1550)
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg) } })
        yield* cdc.addRule({ name: "broken", tables: ["broken"], target: "pg", batchSize: 100, atomicity: "batch" })
        yield* cdc.sync("broken")
        const before = yield* stateOf(pg, "broken")
        yield* cluster.query(cluster.primary, bigTransaction("broken"))
        const [after] = yield* cluster.query<{ lsn: string }>(cluster.primary, "SELECT pg_current_wal_lsn()::text AS lsn")

        const failed = yield* Effect.flip(cdc.sync("broken"))
        expect(failed._tag).toBe("TargetError")
        expect(failed.message).toMatch(/injected target failure/)
        // 15 batches committed (rows 1 to 1 500), and the record says the transaction is partial.
        const [count] = yield* pg.unsafe<{ n: number }>("SELECT count(*)::int AS n FROM broken")
        expect(count!.n).toBe(1500)
        const state = (yield* stateOf(pg, "broken"))!
        expect(state.startsWith(`${before} partial `)).toBe(true)
        // The partial one is the source transaction's commit: after the last whole one, before the position now.
        const partial = Cdc.parseLsn(state.split(" partial ")[1]!)
        expect(partial).toBeGreaterThan(Cdc.parseLsn(before!))
        expect(partial).toBeLessThan(Cdc.parseLsn(after!.lsn))
        // The slot was not acknowledged past the last whole transaction: it comes again from its start.
        expect(yield* cdc.sync("broken")).toMatchObject({ transactions: 1, changes: 4000 })
        expect(yield* targetRows(pg, "broken")).toEqual(yield* sourceRows(cluster, "broken"))
        expect(yield* stateOf(pg, "broken")).toBe((yield* cdc.stats("broken")).lastAppliedLsn)
      })))

    it.effect("atomicity transaction, the target failing mid-way under run: nothing committed, the restart converges", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* create(cluster, "restarted")
        const pg = yield* pgTarget(cluster, "restarted_target")
        yield* failOnce(pg, "restarted", 2500)
        const cdc = yield* Cdc.make({
          primary: cluster.primary.url,
          targets: { pg: Cdc.sqlTarget(pg) },
          retryDelay: "50 millis",
          maxRetryDelay: "200 millis"
        })
        yield* cdc.addRule({ name: "restarted", tables: ["restarted"], target: "pg", batchSize: 100 })
        yield* cdc.sync("restarted")
        yield* cluster.query(cluster.primary, bigTransaction("restarted"))
        yield* cluster.query(cluster.primary, "INSERT INTO restarted VALUES (5000, 1, 'after')")
        yield* cdc.run("restarted")
        const expected = yield* sourceRows(cluster, "restarted")
        yield* targetRows(pg, "restarted").pipe(
          Effect.flatMap((rows) => rows.length === expected.length ? Effect.void : Effect.fail("not yet" as const)),
          Effect.retry(Schedule.spaced("50 millis")),
          Effect.timeout("60 seconds")
        )
        expect(yield* targetRows(pg, "restarted")).toEqual(expected)
        const stats = yield* cdc.stats("restarted")
        expect(stats.restarts).toBeGreaterThan(0)
        expect(stats.lastError).toMatch(/injected target failure/)
        // One target transaction for the 4 000 changes.
        const [xmins] = yield* pg.unsafe<{ n: number }>("SELECT count(DISTINCT xmin::text)::int AS n FROM restarted WHERE id <= 3000")
        expect(xmins!.n).toBe(1)
      })))

    it.effect("a sink receives a large source transaction in numbered parts", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* create(cluster, "parts")
        const received = yield* Ref.make<Array<Cdc.Transaction>>([])
        const cdc = yield* Cdc.make({
          primary: cluster.primary.url,
          targets: { sink: Cdc.sinkTarget(Sink.forEach((t: Cdc.Transaction) => Ref.update(received, (all) => [...all, t]))) }
        })
        yield* cdc.addRule({ name: "parts", tables: ["parts"], target: "sink", batchSize: 100 })
        yield* cdc.sync("parts")
        yield* Ref.set(received, [])
        yield* cluster.query(cluster.primary, "INSERT INTO parts SELECT g, g, NULL FROM generate_series(1, 250) g")
        yield* cluster.query(cluster.primary, "INSERT INTO parts VALUES (251, 1, NULL)")
        expect(yield* cdc.sync("parts")).toMatchObject({ transactions: 2, changes: 251 })
        const all = yield* Ref.get(received)
        expect(all.map((t) => [t.changes.length, t.part])).toEqual([
          [100, { index: 0, last: false }],
          [100, { index: 1, last: false }],
          [50, { index: 2, last: true }],
          [1, undefined]
        ])
        expect(new Set(all.slice(0, 3).map((t) => t.xid)).size).toBe(1)
        expect(all[0]!.endLsn).toBe(all[0]!.lsn)
        expect(Cdc.parseLsn(all[2]!.endLsn)).toBeGreaterThan(Cdc.parseLsn(all[2]!.lsn))
      })))

    it.effect("multi-row statements keep the order of inserts, updates, key moves and deletes of the same keys in one transaction", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* create(cluster, "ordered")
        const pg = yield* pgTarget(cluster, "ordered_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        // Below and above the batch size: held whole, and streamed.
        for (const [name, batchSize] of [["ordered_pg", 10_000], ["ordered_lite", 7]] as const) {
          yield* cdc.addRule({ name, tables: ["ordered"], target: name === "ordered_pg" ? "pg" : "lite", batchSize })
          yield* cdc.sync(name)
        }
        yield* cluster.query(
          cluster.primary,
          `DO $$ BEGIN
           INSERT INTO ordered SELECT g, 0, 'a' FROM generate_series(1, 50) g;
           UPDATE ordered SET v = 1, note = 'b' WHERE id <= 30;
           DELETE FROM ordered WHERE id <= 25;
           INSERT INTO ordered SELECT g, 2, 'c' FROM generate_series(1, 10) g;
           UPDATE ordered SET id = 500 WHERE id = 5;
           INSERT INTO ordered VALUES (5, 3, 'd');
           DELETE FROM ordered WHERE id BETWEEN 40 AND 45;
           UPDATE ordered SET note = NULL WHERE id = 500;
           INSERT INTO ordered VALUES (40, 4, 'e');
           END $$`
        )
        yield* cdc.sync("ordered_pg")
        yield* cdc.sync("ordered_lite")
        const expected = yield* sourceRows(cluster, "ordered")
        expect(expected.length).toBe(31)
        expect(yield* targetRows(pg, "ordered")).toEqual(expected)
        expect(yield* targetRows(lite, "ordered")).toEqual(expected)
      })))
  }
)
