import * as Reactivity from "@effect/experimental/Reactivity"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Cdc from "effect-sql-router/Cdc"
import { PgCluster } from "effect-sql-router/testing"
import { sqliteTarget, urlOf } from "./fixtures/cdcTargets.js"

// The type mapping end to end: intervals, enums, domains (over numeric with a
// check, and over another domain), arrays of them with NULL elements and
// nesting, and types that are not mapped (composite, range, tsvector, point)
// under "fail" and "text", into a PostgreSQL and a SQLite target, by snapshot
// and by stream. The decoders themselves are the core's (packages/core/test/cdc).

/** Rows as JSON text ordered by id, `columns` being SQL expressions over `t`. */
const rowsAsJson = (columns: string, table: string) =>
  `SELECT coalesce(jsonb_agg(jsonb_build_object(${columns}) ORDER BY id), '[]')::text AS rows FROM ${table} t`

const typedSetup = [
  "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
  "CREATE DOMAIN price AS numeric(12,2) CHECK (VALUE >= 0)",
  "CREATE DOMAIN dear AS price CHECK (VALUE > 100)",
  "CREATE TYPE pair AS (a int, b text)",
  `CREATE TABLE typed (id int PRIMARY KEY, span interval, spans interval[], m mood, ms mood[], p price, d dear,
     ps price[], ints int[], texts text[], stamps timestamptz[])`,
  "CREATE TABLE odd (id int PRIMARY KEY, pr pair, r int4range, tv tsvector, pt point)"
]

const typedRows = [
  `INSERT INTO typed VALUES
     (1, '1 year 2 months -3 days 04:05:06.000001', '{"1 day",NULL,"-1 mons"}', 'happy', '{happy,NULL,sad}', 12.5, 100.01,
      '{1.5,NULL}', '{{1,NULL},{3,4}}', '{"a b",NULL,"c\\"d","NULL",""}', '{"2026-01-01 00:00:00.123456+00",NULL}'),
     (2, '-1 day +2 hours', '{}', 'sad', '{}', 0, NULL, '{}', '{}', '{}', '{}'),
     (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
  "INSERT INTO odd VALUES (1, ROW(1, 'x y'), '[1,5)', 'a fat cat', '(1.5,2)'), (2, NULL, 'empty', '', NULL)"
]

const typedChanges = [
  `INSERT INTO typed VALUES (4, '-00:00:00.5', '{{"1 day","2 hours"},{NULL,"0"}}', 'ok', '{ok}', 99999.99, 250,
     '{{1,2},{NULL,3}}', '{NULL}', '{"{}","\\\\"}', '{{"2026-06-01 12:00:00+00"}}')`,
  "UPDATE typed SET span = span + interval '1 microsecond', ms = ms || 'ok'::mood, ints = '{7}' WHERE id = 1",
  "DELETE FROM typed WHERE id = 2",
  "INSERT INTO odd VALUES (3, ROW(NULL, 'q\"'), '(,)', 'b:1 c:2', '(0,0)')",
  "UPDATE odd SET r = '[2,3]' WHERE id = 1"
]

const typedColumns = ["id", "span", "spans", "m", "ms", "p", "d", "ps", "ints", "texts", "stamps"]
const oddColumns = ["id", "pr", "r", "tv", "pt"]

layer(PgCluster.layer({ replicas: 0, walLevel: "logical" }), { timeout: "180 seconds", excludeTestServices: true })(
  "Cdc types against PostgreSQL",
  (it) => {
    it.effect("intervals, enums, domains and arrays of them reach PostgreSQL and SQLite targets row by row; unsupported types fail or pass as text", () =>
      Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        for (const statement of typedSetup) yield* cluster.query(cluster.primary, statement)
        for (const statement of typedRows) yield* cluster.query(cluster.primary, statement)
        yield* cluster.query(cluster.primary, "CREATE DATABASE types_target")
        const pg = yield* PgClient.make({ url: urlOf(cluster, "types_target") })
        const sqlite = yield* sqliteTarget
        const cdc = yield* Cdc.make({
          primary: cluster.primary.url,
          targets: { pg: Cdc.sqlTarget(pg), sqlite: Cdc.sqlTarget(sqlite) }
        })
        yield* cdc.addRule({ name: "typed_pg", tables: ["typed"], target: "pg" })
        yield* cdc.addRule({ name: "typed_sqlite", tables: ["typed"], target: "sqlite" })
        yield* cdc.addRule({ name: "odd_fail", tables: ["odd"], target: "pg" })
        yield* cdc.addRule({ name: "odd_pg", tables: ["odd"], target: "pg", unsupportedTypes: "text" })
        yield* cdc.addRule({ name: "odd_sqlite", tables: ["odd"], target: "sqlite", unsupportedTypes: "text" })

        // "fail": refused before anything is applied, naming table, column and type.
        const refused = yield* Effect.flip(cdc.sync("odd_fail"))
        expect(refused).toMatchObject({ _tag: "UnsupportedType", table: "public.odd", column: "pr", type: "pair" })

        for (const name of ["typed_pg", "typed_sqlite", "odd_pg", "odd_sqlite"]) {
          expect((yield* cdc.sync(name)).snapshot).toBe(true)
        }
        // The enum and the domains became text and their base types on the PostgreSQL target.
        const created = yield* pg.unsafe<{ column_name: string; type: string }>(
          `SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
           WHERE a.attrelid = 'typed'::regclass AND a.attnum > 0 ORDER BY a.attnum`
        )
        expect(created.map((c) => c.type)).toEqual([
          "integer",
          "interval",
          "interval[]",
          "text",
          "text[]",
          "numeric(12,2)",
          "numeric(12,2)",
          "numeric(12,2)[]",
          "integer[]",
          "text[]",
          "timestamp with time zone[]"
        ])
        yield* expectConverged(cluster, pg, sqlite, [
          [1, "P1Y2M-3DT4H5M6.000001S", ["P1D", null, "P-1M"], "happy", ["happy", null, "sad"], "12.50", "100.01", ["1.50", null], [
            [1, null],
            [3, 4]
          ], ["a b", null, "c\"d", "NULL", ""], ["2026-01-01T00:00:00.123456Z", null]],
          [2, "P-1DT2H", [], "sad", [], "0.00", null, [], [], [], []],
          [3, null, null, null, null, null, null, null, null, null, null]
        ])

        // The stream: inserts, updates and deletes of the same types.
        for (const statement of typedChanges) yield* cluster.query(cluster.primary, statement)
        for (const name of ["typed_pg", "typed_sqlite", "odd_pg", "odd_sqlite"]) {
          expect((yield* cdc.sync(name)).snapshot).toBe(false)
        }
        yield* expectConverged(cluster, pg, sqlite, [
          [1, "P1Y2M-3DT4H5M6.000002S", ["P1D", null, "P-1M"], "happy", ["happy", null, "sad", "ok"], "12.50", "100.01", [
            "1.50",
            null
          ], [7], ["a b", null, "c\"d", "NULL", ""], ["2026-01-01T00:00:00.123456Z", null]],
          [3, null, null, null, null, null, null, null, null, null, null],
          [4, "PT-0.5S", [["P1D", "PT2H"], [null, "PT0S"]], "ok", ["ok"], "99999.99", "250.00", [["1.00", "2.00"], [null, "3.00"]], [
            null
          ], ["{}", "\\"], [["2026-06-01T12:00:00Z"]]]
        ])
        // A domain's check holds on the source: the target got only values it allowed.
        expect(yield* Effect.flip(cluster.query(cluster.primary, "INSERT INTO typed (id, p) VALUES (9, -1)"))).toBeDefined()
      }).pipe(Effect.provide(Reactivity.layer), Effect.scoped))
  }
)

/** The PostgreSQL target equals the source as JSON; the SQLite target holds exactly the documented forms. */
const expectConverged = (
  cluster: PgCluster.PgCluster,
  pg: SqlClient.SqlClient,
  sqlite: SqlClient.SqlClient,
  expected: ReadonlyArray<ReadonlyArray<unknown>>
) =>
  Effect.gen(function*() {
    const typedJson = rowsAsJson(typedColumns.map((c) => `'${c}', t.${c}`).join(", "), "typed")
    // Composite, range, tsvector and point as their text forms.
    const oddJson = rowsAsJson(oddColumns.map((c) => `'${c}', t.${c}::text`).join(", "), "odd")
    const [source] = yield* cluster.query<{ rows: string }>(cluster.primary, typedJson)
    const [target] = yield* pg.unsafe<{ rows: string }>(typedJson)
    expect(target!.rows).toBe(source!.rows)
    const [oddSource] = yield* cluster.query<{ rows: string }>(cluster.primary, oddJson)
    const [oddTarget] = yield* pg.unsafe<{ rows: string }>(oddJson)
    expect(oddTarget!.rows).toBe(oddSource!.rows)

    // SQLite: the documented forms: intervals in ISO 8601, arrays as JSON
    // (numeric elements as strings, timestamptz in ISO 8601 UTC), enums and
    // numerics as text; "odd" as PostgreSQL's text forms.
    const lite = yield* sqlite.unsafe<Record<string, unknown>>(`SELECT ${typedColumns.join(", ")} FROM typed ORDER BY id`)
    expect(lite.map((r) => typedColumns.map((c) => parseJsonArray(c, r[c])))).toEqual(expected)
    const oddLite = yield* sqlite.unsafe<Record<string, unknown>>(`SELECT ${oddColumns.join(", ")} FROM odd ORDER BY id`)
    const oddRows = yield* cluster.query<Record<string, unknown>>(
      cluster.primary,
      `SELECT id, pr::text AS pr, r::text AS r, tv::text AS tv, pt::text AS pt FROM odd ORDER BY id`
    )
    expect(oddLite).toEqual(oddRows)
  })

const arrayColumns = new Set(["spans", "ms", "ps", "ints", "texts", "stamps"])
const parseJsonArray = (column: string, value: unknown) =>
  arrayColumns.has(column) && typeof value === "string" ? JSON.parse(value) : value
