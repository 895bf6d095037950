/**
 * Schema changes and TRUNCATE in CDC rules: `schemaChanges: "apply"` brings
 * added, dropped and retyped columns to PostgreSQL and SQLite targets in the
 * transaction of the rows after them; `"fail"` (the default) stops the rule
 * with `SchemaChanged`; `truncate` applies (also CASCADE, RESTART IDENTITY)
 * or refuses with `TruncateRefused`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Sink from "effect/Sink"
import * as Cdc from "effect-sql-router/Cdc"
import { PgCluster } from "effect-sql-router/testing"
import { pgTarget, provided, sqliteTarget } from "./fixtures/cdcTargets.js"

/** The table as JSON text, ordered by key: equal text means equal rows, columns and types. */
const rowsSql = (table: string) => `SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY id), '[]')::text AS rows FROM ${table} t`
const pgRows = (sql: SqlClient.SqlClient, table: string) =>
  Effect.map(sql.unsafe<{ rows: string }>(rowsSql(table)), (rows) => rows[0]!.rows)
const sourceRows = (cluster: PgCluster.PgCluster, table: string) =>
  Effect.map(cluster.query<{ rows: string }>(cluster.primary, rowsSql(table)), (rows) => rows[0]!.rows)

const columnsSql = `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
  WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`
const liteColumns = (lite: SqlClient.SqlClient, table: string) =>
  lite.unsafe<{ name: string; type: string }>("SELECT name, type FROM pragma_table_info(?) ORDER BY cid", [table])

layer(PgCluster.layer({ replicas: 0, walLevel: "logical" }), { timeout: "180 seconds", excludeTestServices: true })(
  "CdcSchema",
  (it) => {
    it.effect("apply: columns added mid-stream reach PostgreSQL and SQLite in order, existing rows get the source's default", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE grow (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO grow VALUES (1, 'a'), (2, 'b')")
        const pg = yield* pgTarget(cluster, "grow_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "grow_pg", tables: ["grow"], target: "pg", schemaChanges: "apply" })
        yield* cdc.addRule({ name: "grow_lite", tables: ["grow"], target: "lite", schemaChanges: "apply" })
        yield* cdc.sync("grow_pg")
        yield* cdc.sync("grow_lite")

        // One transaction with a row of the old shape, the ALTER, a row of the new shape.
        yield* cluster.query(
          cluster.primary,
          "BEGIN; INSERT INTO grow VALUES (3, 'c'); ALTER TABLE grow ADD COLUMN n int NOT NULL DEFAULT 5; INSERT INTO grow VALUES (4, 'd', 6); COMMIT"
        )
        yield* cluster.query(cluster.primary, "ALTER TABLE grow ADD COLUMN \"No\"\"te\" varchar(20)")
        yield* cluster.query(cluster.primary, "UPDATE grow SET \"No\"\"te\" = 'x' WHERE id = 1")
        yield* cdc.sync("grow_pg")
        yield* cdc.sync("grow_lite")

        // Row by row, types included: rows 1 and 2 got no change event for n, yet have the source's 5.
        expect(yield* pgRows(pg, "grow")).toBe(yield* sourceRows(cluster, "grow"))
        expect(yield* pg.unsafe(columnsSql, ["grow"])).toEqual(yield* cluster.query(cluster.primary, columnsSql, ["grow"]))
        expect(yield* lite.unsafe("SELECT id, v, n, \"No\"\"te\" AS note FROM grow ORDER BY id")).toEqual([
          { id: 1, v: "a", n: 5, note: "x" },
          { id: 2, v: "b", n: 5, note: null },
          { id: 3, v: "c", n: 5, note: null },
          { id: 4, v: "d", n: 6, note: null }
        ])
        expect((yield* liteColumns(lite, "grow")).map((c) => [c.name, c.type])).toEqual([
          ["id", "INTEGER"],
          ["v", "TEXT"],
          ["n", "INTEGER"],
          ["No\"te", "TEXT"]
        ])
        // A later session finds the target in step: nothing to change again.
        yield* cluster.query(cluster.primary, "INSERT INTO grow VALUES (5, 'e', 7, 'y')")
        yield* cdc.sync("grow_pg")
        yield* cdc.sync("grow_lite")
        expect(yield* pgRows(pg, "grow")).toBe(yield* sourceRows(cluster, "grow"))
        expect(yield* lite.unsafe("SELECT count(*) AS n FROM grow")).toEqual([{ n: 5 }])
      })))

    it.effect("apply: a dropped column and type changes (int4 key to int8, int4 to int8, varchar(10) to text) converge", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE shaped (id int PRIMARY KEY, code varchar(10), n int, gone text)")
        yield* cluster.query(cluster.primary, "INSERT INTO shaped VALUES (1, 'a', 1, 'g'), (2, 'b', 2, 'h')")
        const pg = yield* pgTarget(cluster, "shaped_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "shaped_pg", tables: ["shaped"], target: "pg", schemaChanges: "apply" })
        yield* cdc.addRule({ name: "shaped_lite", tables: ["shaped"], target: "lite", schemaChanges: "apply" })
        yield* cdc.sync("shaped_pg")
        yield* cdc.sync("shaped_lite")

        yield* cluster.query(cluster.primary, "ALTER TABLE shaped DROP COLUMN gone")
        yield* cluster.query(cluster.primary, "ALTER TABLE shaped ALTER COLUMN id TYPE bigint, ALTER COLUMN n TYPE bigint")
        yield* cluster.query(cluster.primary, "ALTER TABLE shaped ALTER COLUMN code TYPE text")
        yield* cluster.query(cluster.primary, "INSERT INTO shaped VALUES (5000000000, 'a code longer than ten', 6000000000)")
        yield* cluster.query(cluster.primary, "UPDATE shaped SET n = n + 1 WHERE id = 1")
        yield* cluster.query(cluster.primary, "DELETE FROM shaped WHERE id = 2")
        yield* cdc.sync("shaped_pg")
        yield* cdc.sync("shaped_lite")

        expect(yield* pgRows(pg, "shaped")).toBe(yield* sourceRows(cluster, "shaped"))
        expect(yield* pg.unsafe(columnsSql, ["shaped"])).toEqual([
          { name: "id", type: "bigint" },
          { name: "code", type: "text" },
          { name: "n", type: "bigint" }
        ])
        // SQLite: the drop happens; the type changes stay within INTEGER and TEXT, so nothing to alter.
        expect((yield* liteColumns(lite, "shaped")).map((c) => c.name)).toEqual(["id", "code", "n"])
        expect(yield* lite.unsafe("SELECT id, code, n FROM shaped ORDER BY id")).toEqual([
          { id: 1, code: "a", n: 2 },
          { id: 5000000000, code: "a code longer than ten", n: 6000000000 }
        ])
      })))

    it.effect("fail (the default): SchemaChanged names table and column, stops sync and run, and the target is untouched", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE strict (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "CREATE TABLE lite_typed (id int PRIMARY KEY, n int)")
        const pg = yield* pgTarget(cluster, "strict_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "strict", tables: ["strict"], target: "pg" })
        yield* cdc.sync("strict")
        yield* cluster.query(cluster.primary, "INSERT INTO strict VALUES (1, 'a')")
        yield* cdc.sync("strict")
        yield* cluster.query(cluster.primary, "ALTER TABLE strict ADD COLUMN extra integer")
        yield* cluster.query(cluster.primary, "INSERT INTO strict VALUES (2, 'b', 7)")

        const error = yield* Effect.flip(cdc.sync("strict"))
        expect(error).toMatchObject({ _tag: "SchemaChanged", table: "public.strict", column: "extra", change: "add", newType: "integer" })
        expect(error).toBeInstanceOf(Cdc.SchemaChanged)
        expect(error.message).toContain("public.strict: column extra was added (integer)")

        // run: not retried; the fiber fails with it and stats say so.
        const exit = yield* Effect.scoped(Effect.flatMap(cdc.run("strict"), Fiber.await))
        expect(Exit.isFailure(exit) && Option.getOrUndefined(Cause.failureOption(exit.cause))).toMatchObject({
          _tag: "SchemaChanged",
          column: "extra"
        })
        const stats = yield* cdc.stats("strict")
        expect(stats).toMatchObject({ running: false, restarts: 0, retries: 0, lastError: error.message })
        expect(yield* pg.unsafe("SELECT id, v FROM strict ORDER BY id")).toEqual([{ id: 1, v: "a" }])

        // The way out: the target altered by hand (or the rule set to "apply").
        yield* pg.unsafe("ALTER TABLE strict ADD COLUMN extra integer")
        expect(yield* cdc.sync("strict")).toMatchObject({ transactions: 1, changes: 1 })
        expect(yield* pgRows(pg, "strict")).toBe(yield* sourceRows(cluster, "strict"))

        // The rule taken again with "apply": its new slot's snapshot brings the target in step first.
        yield* cluster.query(cluster.primary, "ALTER TABLE strict ADD COLUMN later text DEFAULT 'l'")
        yield* cdc.removeRule("strict")
        yield* cdc.addRule({ name: "strict", tables: ["strict"], target: "pg", schemaChanges: "apply" })
        expect(yield* cdc.sync("strict")).toMatchObject({ snapshot: true })
        expect(yield* pgRows(pg, "strict")).toBe(yield* sourceRows(cluster, "strict"))

        // SQLite cannot follow a change of storage type (INTEGER to TEXT), even with "apply".
        yield* cdc.addRule({ name: "lite_typed", tables: ["lite_typed"], target: "lite", schemaChanges: "apply" })
        yield* cdc.sync("lite_typed")
        yield* cluster.query(cluster.primary, "ALTER TABLE lite_typed ALTER COLUMN n TYPE text")
        yield* cluster.query(cluster.primary, "INSERT INTO lite_typed VALUES (1, '007')")
        const typed = yield* Effect.flip(cdc.sync("lite_typed"))
        expect(typed).toMatchObject({ _tag: "SchemaChanged", table: "public.lite_typed", column: "n", change: "type", oldType: "INTEGER", newType: "TEXT" })
        expect(typed.message).toContain("SQLite cannot change a column's type")
        expect(yield* lite.unsafe("SELECT count(*) AS n FROM lite_typed")).toEqual([{ n: 0 }])
      })))

    it.effect("a Sink target gets the SchemaChange in its transaction, and the rows after it carry the new relation", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE sunk_shape (id int PRIMARY KEY, v text)")
        const received = yield* Ref.make<ReadonlyArray<Cdc.Transaction>>([])
        const sink = Sink.forEach((tx: Cdc.Transaction) => Ref.update(received, (all) => [...all, tx]))
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { sink: Cdc.sinkTarget(sink) } })
        yield* cdc.addRule({ name: "sunk_shape", tables: ["sunk_shape"], target: "sink", schemaChanges: "apply" })
        yield* cdc.sync("sunk_shape")
        yield* cluster.query(
          cluster.primary,
          "BEGIN; INSERT INTO sunk_shape VALUES (1, 'a'); ALTER TABLE sunk_shape ADD COLUMN c numeric(12,2) DEFAULT 1.5; INSERT INTO sunk_shape VALUES (2, 'b', 2.25); COMMIT"
        )
        yield* cdc.sync("sunk_shape")
        const last = (yield* Ref.get(received)).at(-1)!
        expect(last.changes.map((c) => c._tag)).toEqual(["Insert", "SchemaChange", "Insert"])
        const [, change, insert] = last.changes as [Cdc.Insert, Cdc.SchemaChange, Cdc.Insert]
        expect(change.columns).toEqual([
          { kind: "add", column: "c", oldType: undefined, newType: "numeric(12,2)", typeOid: 1700, backfill: { value: "1.50" } }
        ])
        expect(insert.relation).toBe(change.relation)
        expect(insert.relation.columns.map((c) => c.name)).toEqual(["id", "v", "c"])
        expect(insert.row).toEqual({ id: 2, v: "b", c: "2.25" })
      })))

    it.effect("truncate: applied by default (CASCADE over two tables, RESTART IDENTITY), refused with TruncateRefused on \"fail\"", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE parent (id serial PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id))")
        yield* cluster.query(cluster.primary, "CREATE TABLE kept (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO parent (v) VALUES ('a'), ('b')")
        yield* cluster.query(cluster.primary, "INSERT INTO child VALUES (1, 1), (2, 2)")
        yield* cluster.query(cluster.primary, "INSERT INTO kept VALUES (1, 'a')")
        const pg = yield* pgTarget(cluster, "trunc_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "trunc_pg", tables: ["parent", "child"], target: "pg" })
        yield* cdc.addRule({ name: "trunc_lite", tables: ["parent", "child"], target: "lite", truncate: "apply" })
        yield* cdc.addRule({ name: "kept", tables: ["kept"], target: "pg", truncate: "fail" })
        yield* cdc.sync("trunc_pg")
        yield* cdc.sync("trunc_lite")
        yield* cdc.sync("kept")

        // The truncate names parent only; CASCADE takes child with it, and the stream lists both.
        yield* cluster.query(cluster.primary, "TRUNCATE parent RESTART IDENTITY CASCADE")
        yield* cluster.query(cluster.primary, "INSERT INTO parent (v) VALUES ('after')")
        yield* cluster.query(cluster.primary, "INSERT INTO child VALUES (9, 1)")
        yield* cdc.sync("trunc_pg")
        yield* cdc.sync("trunc_lite")
        for (const table of ["parent", "child"]) expect(yield* pgRows(pg, table)).toBe(yield* sourceRows(cluster, table))
        // The identity restarted on the source: the new row is id 1 there and on the targets.
        expect(yield* lite.unsafe("SELECT id, v FROM parent")).toEqual([{ id: 1, v: "after" }])
        expect(yield* lite.unsafe("SELECT id, parent_id FROM child")).toEqual([{ id: 9, parent_id: 1 }])

        yield* cluster.query(cluster.primary, "TRUNCATE kept")
        const refused = yield* Effect.flip(cdc.sync("kept"))
        expect(refused).toMatchObject({ _tag: "TruncateRefused", tables: ["public.kept"] })
        expect(refused.message).toContain("TRUNCATE of public.kept")
        expect((yield* cdc.stats("kept")).lastError).toBe(refused.message)
        expect(yield* pg.unsafe("SELECT id, v FROM kept")).toEqual([{ id: 1, v: "a" }])
      })))
  }
)
