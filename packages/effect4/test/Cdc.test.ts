import * as PgClient from "@effect/sql-pg/PgClient"
import { expect, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FileSystem from "effect/FileSystem"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as PlatformError from "effect/PlatformError"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Sink from "effect/Sink"
import type * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { createHash } from "node:crypto"
import { inspect } from "node:util"
import * as Cdc from "@effect-sql-router/effect4/Cdc"
import * as RouterConfig from "@effect-sql-router/effect4/RouterConfig"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { pgTarget, provided, sqliteTarget } from "./fixtures/cdcTargets.js"

// One primary with wal_level = logical. Targets: a second database on it
// (PostgreSQL target, @effect/sql-pg's native client) and SQLite files
// (test/fixtures/sqlite.ts).

/** A fresh database on the primary and a PgClient over it. */
/** The table as JSON text, ordered by key: equal text means equal rows and types. */
const pgRows = (sql: SqlClient.SqlClient, table: string) =>
  Effect.map(
    sql.unsafe<{ rows: string }>(`SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY id), '[]')::text AS rows FROM ${table} t`),
    (rows) => rows[0]!.rows
  )

const sourceRows = (cluster: PgCluster.PgCluster, table: string) =>
  Effect.map(
    cluster.query<{ rows: string }>(
      cluster.primary,
      `SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY id), '[]')::text AS rows FROM ${table} t`
    ),
    (rows) => rows[0]!.rows
  )

const awaitSlotActive = (cluster: PgCluster.PgCluster, slot: string) =>
  cluster.query<{ active: boolean }>(cluster.primary, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", [slot]).pipe(
    Effect.flatMap((rows) => rows[0]?.active ? Effect.void : Effect.fail("not yet" as const)),
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeout("20 seconds")
  )

const slotExists = (cluster: PgCluster.PgCluster, slot: string) =>
  Effect.map(
    cluster.query(cluster.primary, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [slot]),
    (rows) => rows.length > 0
  )

// effect 4.1 ships no Node FileSystem (and the line depends on no platform
// package): node:fs behind the service, for the calls RouterConfig's save and load make.
const nodeCall = <A>(method: string, path: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (cause) =>
      PlatformError.systemError({
        _tag: (cause as NodeJS.ErrnoException).code === "ENOENT" ? "NotFound" : "Unknown",
        module: "FileSystem",
        method,
        pathOrDescriptor: path,
        cause
      })
  })
const NodeFileSystem = FileSystem.layerNoop({
  readFileString: (path) => nodeCall("readFileString", path, () => FsP.readFile(path, "utf8")),
  writeFileString: (path, data, options) =>
    nodeCall("writeFileString", path, () => FsP.writeFile(path, data, { mode: options?.mode })),
  rename: (from, to) => nodeCall("rename", from, () => FsP.rename(from, to)),
  remove: (path) => nodeCall("remove", path, () => FsP.rm(path, { recursive: true, force: true }))
})

/** The fiber ended by interruption alone (no failure, no defect). */
const interruptedOnly = <A, E>(exit: Exit.Exit<A, E>): boolean => Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)

layer(PgCluster.layer({ replicas: 0, walLevel: "logical" }), { timeout: "180 seconds", excludeTestServices: true })(
  "Cdc",
  (it) => {
    it.effect("the change stream: Begin, Insert, Update, Delete, Truncate, Commit with relation, LSN, xid and commit time", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE stream_t (id int PRIMARY KEY, name text, big int8, span interval)")
        const options: Cdc.StreamOptions = {
          primary: cluster.primary.url,
          slot: "stream_t",
          publication: "stream_t",
          tables: ["stream_t"]
        }
        const commits = (n: number) =>
          Cdc.changes(options).pipe(
            Stream.mapAccum(() => 0, (seen, change) => {
              const count = seen + (change._tag === "Commit" ? 1 : 0)
              return [count, [[count, change] as const]]
            }),
            Stream.takeUntil(([count, change]) => change._tag === "Commit" && count === n),
            Stream.map(([, change]) => change),
            Stream.runCollect
          )
        const first = yield* Effect.forkChild(commits(5))
        yield* awaitSlotActive(cluster, "stream_t")
        const before = Date.now()
        yield* cluster.query(cluster.primary, "INSERT INTO stream_t VALUES (1, 'ada', 9223372036854775807, '1 day')")
        yield* cluster.query(cluster.primary, "UPDATE stream_t SET name = 'grace' WHERE id = 1")
        yield* cluster.query(cluster.primary, "UPDATE stream_t SET id = 2 WHERE id = 1")
        yield* cluster.query(cluster.primary, "DELETE FROM stream_t WHERE id = 2")
        yield* cluster.query(cluster.primary, "TRUNCATE stream_t")
        const changes = yield* Fiber.join(first)

        expect(changes.map((c) => c._tag)).toEqual([
          ...["Begin", "Insert", "Commit"],
          ...["Begin", "Update", "Commit"],
          ...["Begin", "Update", "Commit"],
          ...["Begin", "Delete", "Commit"],
          ...["Begin", "Truncate", "Commit"]
        ])
        const [begin, insert, commit] = changes as [Cdc.Begin, Cdc.Insert, Cdc.Commit]
        expect(insert.relation).toMatchObject({ schema: "public", table: "stream_t", keyColumns: ["id"] })
        expect(insert.relation.columns.map((c) => [c.name, c.typeOid, c.isKey])).toEqual([
          ["id", 23, true],
          ["name", 25, false],
          ["big", 20, false],
          ["span", 1186, false]
        ])
        // An interval comes as its ISO 8601 text.
        expect(insert.row).toEqual({ id: 1, name: "ada", big: 9223372036854775807n, span: "P1D" })
        expect(begin.xid).toBeGreaterThan(0)
        expect(commit.xid).toBe(begin.xid)
        expect(commit.lsn).toBe(begin.lsn)
        expect(Cdc.parseLsn(commit.endLsn)).toBeGreaterThan(Cdc.parseLsn(commit.lsn))
        expect(commit.commitTime.getTime()).toBeGreaterThanOrEqual(before - 1_000)
        const update = changes[7] as Cdc.Update
        expect(update.key).toMatchObject({ id: 1 })
        expect(update.row).toMatchObject({ id: 2, name: "grace" })
        expect((changes[10] as Cdc.Delete).key).toMatchObject({ id: 2 })
        expect((changes[13] as Cdc.Truncate).relations.map((r) => r.table)).toEqual(["stream_t"])
        const commitLsns = changes.filter((c): c is Cdc.Commit => c._tag === "Commit").map((c) => Cdc.parseLsn(c.lsn))
        expect([...commitLsns].sort((a, b) => (a < b ? -1 : 1))).toEqual(commitLsns)

        // The last commit was never followed by a pull: it was not acknowledged,
        // so the slot gives it again (at least once); the four before it are gone.
        const again = yield* commits(1)
        expect(again.map((c) => c._tag)).toEqual(["Begin", "Truncate", "Commit"])
        expect((again[0] as Cdc.Begin).xid).toBe((changes[12] as Cdc.Begin).xid)

        yield* Cdc.drop({ primary: cluster.primary.url, slot: "stream_t", publication: "stream_t" })
        expect(yield* slotExists(cluster, "stream_t")).toBe(false)
      })))

    it.effect("the change stream reads a publication whose name has quotes in it", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE quoted_pub (id int PRIMARY KEY)")
        const options: Cdc.StreamOptions = {
          primary: cluster.primary.url,
          slot: "quoted_pub",
          publication: `it's a "pub"`,
          tables: ["quoted_pub"]
        }
        const first = yield* Effect.forkChild(
          Cdc.changes(options).pipe(
            Stream.takeUntil((change) => change._tag === "Commit"),
            Stream.runCollect
          )
        )
        yield* awaitSlotActive(cluster, "quoted_pub")
        yield* cluster.query(cluster.primary, "INSERT INTO quoted_pub VALUES (7)")
        const changes = yield* Fiber.join(first)
        expect(changes.map((c) => c._tag)).toEqual(["Begin", "Insert", "Commit"])
        expect((changes[1] as Cdc.Insert).row).toEqual({ id: 7 })
        const publications = yield* cluster.query<{ pubname: string }>(
          cluster.primary,
          "SELECT pubname FROM pg_publication WHERE pubname = $1",
          [`it's a "pub"`]
        )
        expect(publications.length).toBe(1)
        yield* Cdc.drop({ primary: cluster.primary.url, slot: "quoted_pub", publication: `it's a "pub"` })
      })))

    it.effect("types: int8, numeric, jsonb, timestamptz, bytea, arrays, uuid reach PostgreSQL and SQLite exactly", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(
          cluster.primary,
          `CREATE TABLE typed (
             id int8 PRIMARY KEY, n numeric(20,6), j jsonb, js json, ts timestamptz, t timestamp, d date,
             b bytea, ints int4[], texts text[], u uuid, flag bool, f float8, small int2, v varchar(10), c char(3)
           )`
        )
        const insertRows = `INSERT INTO typed VALUES
          (9223372036854775807, 12345678901234.123456, '[1, {"a": "b"}, null]', '{"k": [1,2]}',
           '2026-12-01 20:51:00.123456+02', '2026-12-01 20:51:00.654321', '2026-12-01',
           '\\x00ff10', '{1,NULL,3}', '{"a b","c\\"d",NULL,"{}"}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, 0.1, -32768, 'abc', 'xy'),
          (-1, NULL, 'null', NULL, NULL, NULL, NULL, NULL, '{}', NULL, NULL, false, 'NaN', NULL, NULL, NULL)`
        const pg = yield* pgTarget(cluster, "typed_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({
          primary: cluster.primary.url,
          targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) }
        })
        yield* cdc.addRule({ name: "typed_pg", tables: ["typed"], target: "pg" })
        yield* cdc.addRule({ name: "typed_lite", tables: ["typed"], target: "lite" })
        // The first sync takes the (empty) snapshot; the rows then come through the stream.
        yield* cdc.sync("typed_pg")
        yield* cdc.sync("typed_lite")
        yield* cluster.query(cluster.primary, insertRows)
        const synced = yield* cdc.sync("typed_pg")
        expect(synced).toMatchObject({ transactions: 1, changes: 2, snapshot: false })
        yield* cdc.sync("typed_lite")

        expect(yield* pgRows(pg, "typed")).toBe(yield* sourceRows(cluster, "typed"))
        const columnTypes = yield* pg.unsafe<{ column_name: string; data_type: string }>(
          "SELECT column_name, format_type(atttypid, atttypmod) AS data_type FROM information_schema.columns c JOIN pg_attribute a ON a.attrelid = 'typed'::regclass AND a.attname = c.column_name WHERE table_name = 'typed' AND column_name IN ('n', 'ints', 'v') ORDER BY column_name"
        )
        expect(columnTypes.map((c) => c.data_type)).toEqual(["integer[]", "numeric(20,6)", "character varying(10)"])

        const rows = yield* lite.unsafe<Record<string, unknown>>(
          "SELECT CAST(id AS TEXT) AS id, n, j, js, ts, t, d, hex(b) AS b, ints, texts, u, flag, f, small, v, c, typeof(n) AS n_type FROM typed ORDER BY id"
        )
        expect(rows).toEqual([
          {
            id: "-1",
            n: null,
            j: "null",
            js: null,
            ts: null,
            t: null,
            d: null,
            b: "", // hex(NULL)
            ints: "[]",
            texts: null,
            u: null,
            flag: 0,
            f: null, // SQLite has no NaN: it stores NULL
            small: null,
            v: null,
            c: null,
            n_type: "null"
          },
          {
            id: "9223372036854775807",
            n: "12345678901234.123456",
            j: "[1, {\"a\": \"b\"}, null]",
            js: "{\"k\": [1,2]}",
            ts: "2026-12-01T18:51:00.123456Z",
            t: "2026-12-01T20:51:00.654321",
            d: "2026-12-01",
            b: "00FF10",
            ints: "[1,null,3]",
            texts: "[\"a b\",\"c\\\"d\",null,\"{}\"]",
            u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            flag: 1,
            f: 0.1,
            small: -32768,
            v: "abc",
            c: "xy ",
            n_type: "text"
          }
        ])
      })))

    it.effect("text is byte-exact on PostgreSQL and SQLite: byte-order marks, lone combining marks, 4-byte characters, 1 MB values, '' apart from NULL", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        const bom = "\uFEFF"
        const edges: ReadonlyArray<string | null> = [
          `${bom}x`, // a leading byte-order mark (the issue: it arrived as 'x')
          bom,
          `${bom}${bom}x`,
          `a${bom}b`,
          `x${bom}`,
          "\u0301", // a lone combining mark
          "\u0301\u0308e",
          "e\u0301", // decomposed, not normalized
          "\u{1F600}", // 4-byte characters: emoji, a ZWJ sequence, astral CJK
          "\u{1F469}\u200D\u{1F469}\u200D\u{1F467}",
          "\u{20000}\u{2A6D6}",
          "\u{10FFFF}",
          "",
          null,
          `${bom}${"\u00e9\u{1F600}\u{20000}x".repeat(95_325)}` // 1 MiB of UTF-8, TOASTed
        ]
        // Long strings compared by length and the SHA-256 of their UTF-8 bytes (readable failures).
        const fingerprint = (value: unknown): unknown =>
          typeof value === "string" && value.length > 100
            ? { length: value.length, sha256: createHash("sha256").update(value, "utf8").digest("hex") }
            : Array.isArray(value)
            ? value.map(fingerprint)
            : value
        const expected = (n: number) =>
          [0, 100].flatMap((offset) =>
            edges.map((text, i) => ({ id: offset + i + 1, s: text, v: text, a: text === null ? null : [text, ""], n }))
          ).map((row) => ({ ...row, s: fingerprint(row.s), v: fingerprint(row.v), a: fingerprint(row.a) }))
        const insert = (offset: number) =>
          Effect.forEach(edges, (text, i) =>
            cluster.query(
              cluster.primary,
              "INSERT INTO edge (id, s, v, a) VALUES ($1, $2, $3, $4)",
              [offset + i + 1, text, text, text === null ? null : [text, ""]]
            ), { discard: true })
        const select = "SELECT id, s, v, a, n FROM edge ORDER BY id"
        const pgSide = (rows: ReadonlyArray<Record<string, unknown>>) =>
          rows.map((r) => ({ id: r.id, s: fingerprint(r.s), v: fingerprint(r.v), a: fingerprint(r.a), n: r.n }))
        const liteSide = (rows: ReadonlyArray<Record<string, unknown>>) =>
          pgSide(rows.map((r) => ({ ...r, a: r.a === null ? null : JSON.parse(r.a as string) })))

        yield* cluster.query(cluster.primary, "CREATE TABLE edge (id int PRIMARY KEY, s text, v varchar, a text[], n int NOT NULL DEFAULT 0)")
        yield* insert(0) // these reach the targets in the snapshot, the next ones in the stream
        const pg = yield* pgTarget(cluster, "edge_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "edge_pg", tables: ["edge"], target: "pg" })
        yield* cdc.addRule({ name: "edge_lite", tables: ["edge"], target: "lite" })
        expect((yield* cdc.sync("edge_pg")).snapshot).toBe(true)
        expect((yield* cdc.sync("edge_lite")).snapshot).toBe(true)
        yield* insert(100)
        // An update that leaves the TOASTed values alone: they arrive as unchanged, the targets keep theirs.
        yield* cluster.query(cluster.primary, "UPDATE edge SET n = n + 1")
        expect((yield* cdc.sync("edge_pg")).changes).toBe(edges.length + 2 * edges.length) // the inserts, then every row updated
        yield* cdc.sync("edge_lite")

        expect(pgSide(yield* cluster.query(cluster.primary, select))).toEqual(expected(1))
        expect(pgSide(yield* pg.unsafe<Record<string, unknown>>(select))).toEqual(expected(1))
        expect(liteSide(yield* lite.unsafe<Record<string, unknown>>(select))).toEqual(expected(1))
        // Byte for byte as the servers store them, not only as JavaScript reads them back.
        const bytes = "SELECT id, md5(convert_to(coalesce(s, '-'), 'UTF8')) || octet_length(s) AS h FROM edge ORDER BY id"
        expect(yield* pg.unsafe(bytes)).toEqual(yield* cluster.query(cluster.primary, bytes))
        const liteBytes = yield* lite.unsafe<{ id: number; h: string | null }>("SELECT id, hex(CAST(s AS BLOB)) AS h FROM edge WHERE length(s) < 100 ORDER BY id")
        const sourceBytes = yield* cluster.query<{ id: number; h: string | null }>(
          cluster.primary,
          "SELECT id, upper(encode(convert_to(s, 'UTF8'), 'hex')) AS h FROM edge WHERE length(s) < 100 ORDER BY id"
        )
        expect(liteBytes).toEqual(sourceBytes)
        expect(sourceBytes.find((r) => r.id === 1)?.h).toBe("EFBBBF78")
      })))

    it.effect("a column added on the source: existing rows get no change event, so the target's new column stays NULL for them until they change", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE grown (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO grown VALUES (1, 'a'), (2, 'b')")
        const pg = yield* pgTarget(cluster, "grown_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "grown_pg", tables: ["grown"], target: "pg" })
        yield* cdc.addRule({ name: "grown_lite", tables: ["grown"], target: "lite" })
        yield* cdc.sync("grown_pg")
        yield* cdc.sync("grown_lite")
        // schemaChanges "fail" (the default) with the target altered by hand, without the default: the rule finds
        // the target in step and goes on (CdcSchema.test.ts: "apply", which also backfills the default).
        yield* cluster.query(cluster.primary, "ALTER TABLE grown ADD COLUMN c text NOT NULL DEFAULT 'dflt'")
        yield* pg.unsafe("ALTER TABLE grown ADD COLUMN c text")
        yield* lite.unsafe("ALTER TABLE grown ADD COLUMN c TEXT")
        yield* cluster.query(cluster.primary, "INSERT INTO grown (id, v) VALUES (3, 'c')")
        yield* cluster.query(cluster.primary, "UPDATE grown SET v = 'B' WHERE id = 2")
        // Two changes: the ALTER itself sent none for rows 1 and 2.
        expect(yield* cdc.sync("grown_pg")).toMatchObject({ transactions: 2, changes: 2 })
        expect(yield* cdc.sync("grown_lite")).toMatchObject({ transactions: 2, changes: 2 })
        const rows = [{ id: 1, v: "a", c: null }, { id: 2, v: "B", c: "dflt" }, { id: 3, v: "c", c: "dflt" }]
        expect(yield* pg.unsafe("SELECT id, v, c FROM grown ORDER BY id")).toEqual(rows)
        expect(yield* lite.unsafe("SELECT id, v, c FROM grown ORDER BY id")).toEqual(rows)
        expect(yield* cluster.query(cluster.primary, "SELECT id, v, c FROM grown ORDER BY id")).toEqual(
          rows.map((r) => ({ ...r, c: "dflt" }))
        )
      })))

    it.effect("snapshot: rows present before the rule are copied once, consistent with the slot", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE snap (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO snap SELECT g, 'v' || g FROM generate_series(1, 500) g")
        const pg = yield* pgTarget(cluster, "snap_target")
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg) } })
        yield* cdc.addRule({ name: "snap", tables: ["snap"], target: "pg" })
        // Writes race the slot's creation: each lands in the snapshot or in the stream, never both, never neither.
        const writer = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: 100 }, (_, i) => i),
            (i) => cluster.query(cluster.primary, "UPDATE snap SET v = $1 WHERE id = $2", [`w${i}`, (i % 500) + 1]),
            { discard: true }
          )
        )
        const first = yield* cdc.sync("snap")
        expect(first.snapshot).toBe(true)
        yield* Fiber.join(writer)
        yield* cluster.query(cluster.primary, "DELETE FROM snap WHERE id > 450")
        const second = yield* cdc.sync("snap")
        expect(second.snapshot).toBe(false)
        expect(yield* pgRows(pg, "snap")).toBe(yield* sourceRows(cluster, "snap"))
        const stats = yield* cdc.stats("snap")
        expect(stats.transactionsApplied).toBeGreaterThanOrEqual(2)
        expect(stats.lastAppliedLsn).toBe(second.lsn)
        expect(stats.lagBytes).toBeTypeOf("number")
        expect(stats.retainedWalBytes).toBeTypeOf("number")
        expect(stats.running).toBe(false)
      })))

    it.effect("stats reads the slot on one kept connection, replaces it when the server drops it, and closes it with the service", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE watched (id int PRIMARY KEY)")
        // The service's plain (not walsender) connections to the source.
        const controls = Effect.map(
          cluster.query<{ pid: number }>(
            cluster.primary,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'cdc-watched' AND backend_type = 'client backend'"
          ),
          (rows) => rows.map((row) => row.pid)
        )
        const awaitControls = (check: (pids: ReadonlyArray<number>) => boolean) =>
          controls.pipe(
            Effect.flatMap((pids) => check(pids) ? Effect.succeed(pids) : Effect.fail("not yet" as const)),
            Effect.retry(Schedule.spaced("20 millis")),
            Effect.timeout("20 seconds")
          )
        yield* Effect.scoped(Effect.gen(function*() {
          const cdc = yield* Cdc.make({
            primary: cluster.primary.url,
            applicationName: "cdc-watched",
            targets: { sink: Cdc.sinkTarget(Sink.drain) }
          })
          yield* cdc.addRule({ name: "watched", tables: ["watched"], target: "sink" })
          yield* cdc.sync("watched")
          expect((yield* cdc.stats("watched")).lagBytes).toBeTypeOf("number")
          // The sync's own connections end on their own; the one stats opened stays.
          const [kept] = yield* awaitControls((pids) => pids.length === 1)
          for (let i = 0; i < 5; i++) expect((yield* cdc.stats("watched")).lagBytes).toBeTypeOf("number")
          expect(yield* controls).toEqual([kept])
          // A lost connection (failover, restart, an administrator) costs no answer: the read is tried on a new one.
          yield* cluster.query(cluster.primary, "SELECT pg_terminate_backend($1)", [kept])
          yield* awaitControls((pids) => pids.length === 0)
          expect((yield* cdc.stats("watched")).lagBytes).toBeTypeOf("number")
          const [replaced] = yield* controls
          expect(replaced).toBeTypeOf("number")
          expect(replaced).not.toBe(kept)
        }))
        yield* awaitControls((pids) => pids.length === 0)
      })))

    it.effect("an unsupported type fails naming table and column, before anything is applied", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE bad (id int PRIMARY KEY, span tsvector)")
        yield* cluster.query(cluster.primary, "CREATE TABLE nokey (id int, v text)")
        yield* cluster.query(cluster.primary, "CREATE TABLE later (id int PRIMARY KEY, v text)")
        const pg = yield* pgTarget(cluster, "bad_target")
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg) } })
        yield* cdc.addRule({ name: "bad", tables: ["later", "bad"], target: "pg" })
        yield* cdc.addRule({ name: "nokey", tables: ["nokey"], target: "pg" })
        yield* cdc.addRule({ name: "missing", tables: ["no_such_table"], target: "pg" })

        const error = yield* Effect.flip(cdc.sync("bad"))
        expect(error).toMatchObject({ _tag: "UnsupportedType", table: "public.bad", column: "span", type: "tsvector" })
        expect(error.message).toContain("public.bad.span")
        // Nothing reached the target, not even the table that was fine.
        const tables = yield* pg.unsafe("SELECT 1 FROM pg_tables WHERE tablename IN ('later', 'bad')")
        expect(tables).toHaveLength(0)
        expect(yield* slotExists(cluster, "cdc_bad")).toBe(false)

        expect(yield* Effect.flip(cdc.sync("nokey"))).toMatchObject({ _tag: "MissingPrimaryKey", table: "public.nokey" })
        expect(yield* Effect.flip(cdc.sync("missing"))).toMatchObject({ _tag: "UnknownTable", table: "no_such_table" })

        // A column of an unsupported type added while the rule runs: its
        // transaction is refused whole, and the slot keeps it.
        yield* cdc.addRule({ name: "later", tables: ["later"], target: "pg" })
        yield* cdc.sync("later")
        yield* cluster.query(cluster.primary, "INSERT INTO later VALUES (1, 'kept')")
        yield* cdc.sync("later")
        yield* cluster.query(cluster.primary, "ALTER TABLE later ADD COLUMN span point")
        yield* cluster.query(cluster.primary, "INSERT INTO later VALUES (2, 'refused', '(1,2)')")
        expect(yield* Effect.flip(cdc.sync("later"))).toMatchObject({ _tag: "UnsupportedType", table: "public.later", column: "span" })
        expect(yield* pg.unsafe("SELECT id, v FROM later ORDER BY id")).toEqual([{ id: 1, v: "kept" }])
      })))

    it.effect("a Sink target gets each transaction; stats count changes, transactions and lag", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE sunk (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO sunk VALUES (1, 'before')")
        const received = yield* Ref.make<ReadonlyArray<Cdc.Transaction>>([])
        const sink = Sink.forEach((tx: Cdc.Transaction) => Ref.update(received, (all) => [...all, tx]))
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { sink: Cdc.sinkTarget(sink) } })
        yield* cdc.addRule({ name: "sunk", tables: ["sunk"], target: "sink" })
        yield* cdc.sync("sunk")
        // One source transaction of two changes (the harness runs one statement per call).
        const source = yield* PgClient.make({ url: cluster.primary.url })
        yield* source.withTransaction(
          Effect.andThen(source`INSERT INTO sunk VALUES (2, 'a')`, source`UPDATE sunk SET v = 'b' WHERE id = 1`)
        )
        yield* cluster.query(cluster.primary, "DELETE FROM sunk WHERE id = 1")
        yield* cdc.sync("sunk")
        const all = yield* Ref.get(received)
        expect(all.map((tx) => [tx.snapshot, tx.changes.map((c) => c._tag)])).toEqual([
          [true, ["Truncate", "Insert"]],
          [false, ["Insert", "Update"]],
          [false, ["Delete"]]
        ])
        const stats = yield* cdc.stats("sunk")
        expect(stats).toMatchObject({ rule: "sunk", transactionsApplied: 3, changesApplied: 5, errors: 0, restarts: 0 })
        expect(stats.lastAppliedLsn).toBe(all[2]!.endLsn)
        expect(stats.applyLagMillis).toBeGreaterThanOrEqual(0)
      })))

    it.effect("rules: validated, listed, removed with their slot and publication, saved and loaded with RouterConfig", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE ruled (id int PRIMARY KEY)")
        const received = yield* Ref.make(0)
        const cdc = yield* Cdc.make({
          primary: cluster.primary.url,
          targets: { sink: Cdc.sinkTarget(Sink.forEach(() => Ref.update(received, (n) => n + 1))) }
        })
        expect(yield* Effect.flip(cdc.addRule({ name: "x", tables: ["ruled"], target: "nowhere" }))).toMatchObject({
          _tag: "InvalidRule",
          field: "target"
        })
        expect(yield* Effect.flip(cdc.addRule({ name: "Bad-Name", tables: ["ruled"], target: "sink" }))).toMatchObject({
          _tag: "InvalidRule",
          field: "name"
        })
        expect(yield* Effect.flip(cdc.addRule({ name: "x", tables: [] as never, target: "sink" }))).toMatchObject({
          _tag: "InvalidRule",
          field: "tables"
        })
        const rule: Cdc.Rule = {
          name: "ruled",
          tables: ["public.ruled"],
          target: "sink",
          conflictResolution: "source-wins",
          slot: "my_slot",
          publication: "my_pub",
          maxRetainedWalBytes: 1_000_000_000
        }
        yield* cdc.addRule(rule)
        expect(yield* Effect.flip(cdc.addRule(rule))).toMatchObject({ _tag: "InvalidRule", field: "name" })
        expect(yield* cdc.listRules).toEqual([rule])
        yield* cdc.sync("ruled")
        expect(yield* slotExists(cluster, "my_slot")).toBe(true)

        const file = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "cdc-config-")), "router.json")
        yield* RouterConfig.save({ primary: cluster.primary.url, cdc: yield* cdc.config }, file).pipe(
          Effect.provide(NodeFileSystem)
        )
        const loaded = yield* RouterConfig.load(file).pipe(Effect.provide(NodeFileSystem))
        expect(loaded.cdc).toEqual({ rules: [rule] })
        const restored = yield* Cdc.make({
          primary: cluster.primary.url,
          targets: { sink: Cdc.sinkTarget(Sink.drain) },
          rules: loaded.cdc!.rules
        })
        expect(yield* restored.listRules).toEqual([rule])
        const badFile = `${file}.bad`
        Fs.writeFileSync(badFile, JSON.stringify({ primary: "postgres://u@h:5432/d", cdc: { rules: [{ name: "r", tables: [] }] } }))
        expect(yield* Effect.flip(RouterConfig.load(badFile).pipe(Effect.provide(NodeFileSystem)))).toMatchObject({ _tag: "InvalidConfig" })
        Fs.rmSync(Path.dirname(file), { recursive: true, force: true })

        yield* cdc.removeRule("ruled")
        expect(yield* cdc.listRules).toEqual([])
        expect(yield* slotExists(cluster, "my_slot")).toBe(false)
        const pubs = yield* cluster.query(cluster.primary, "SELECT 1 FROM pg_publication WHERE pubname = 'my_pub'")
        expect(pubs).toHaveLength(0)
        expect(yield* Effect.flip(cdc.stats("ruled"))).toMatchObject({ _tag: "UnknownRule", name: "ruled" })
      })))

    it.effect("a slot over its WAL bound is dropped; the next sync starts over and the target still converges", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE bounded (id int PRIMARY KEY, v text)")
        const pg = yield* pgTarget(cluster, "bounded_target")
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg) } })
        yield* cdc.addRule({ name: "bounded", tables: ["bounded"], target: "pg", maxRetainedWalBytes: 64 * 1024 })
        yield* cdc.sync("bounded")
        yield* cluster.query(cluster.primary, "INSERT INTO bounded SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g")
        yield* cluster.query(cluster.primary, "DELETE FROM bounded WHERE id <= 1000")
        expect((yield* cdc.stats("bounded")).retainedWalBytes).toBeGreaterThan(64 * 1024)
        expect(yield* cdc.enforceRetention).toEqual(["bounded"])
        expect(yield* slotExists(cluster, "cdc_bounded")).toBe(false)
        expect((yield* cdc.stats("bounded")).lastError).toContain("over the rule's bound")
        const resync = yield* cdc.sync("bounded")
        expect(resync.snapshot).toBe(true)
        expect(yield* pgRows(pg, "bounded")).toBe(yield* sourceRows(cluster, "bounded"))
      })))

    it.effect("layerRouter takes the router's primary; persist sees every rule change; removeRule stops a running rule", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE routed (id int PRIMARY KEY)")
        const saved = yield* Ref.make<ReadonlyArray<ReadonlyArray<string>>>([])
        const delivered = yield* Ref.make(0)
        const CdcLive = Cdc.layerRouter({
          targets: { sink: Cdc.sinkTarget(Sink.forEach(() => Ref.update(delivered, (n) => n + 1))) },
          persist: (config) => Ref.update(saved, (all) => [...all, config.rules.map((r) => r.name)])
        }).pipe(
          Layer.provide(SqlRouter.layer({ primary: cluster.primary.url, connectTimeout: "2 seconds", health: { enabled: false } }))
        )
        yield* Effect.gen(function*() {
          const cdc = yield* Cdc.Cdc
          yield* Cdc.addRule({ name: "routed", tables: ["routed"], target: "sink" })
          yield* Cdc.sync("routed")
          const fiber = yield* Cdc.run("routed")
          yield* cluster.query(cluster.primary, "INSERT INTO routed VALUES (1)")
          yield* Ref.get(delivered).pipe(
            Effect.flatMap((n) => n >= 2 ? Effect.void : Effect.fail("not yet" as const)),
            Effect.retry(Schedule.spaced("20 millis")),
            Effect.timeout("20 seconds")
          )
          yield* Cdc.removeRule("routed")
          expect(interruptedOnly(yield* Fiber.await(fiber))).toBe(true)
          expect(yield* cdc.listRules).toEqual([])
        }).pipe(Effect.provide(CdcLive))
        expect(yield* Ref.get(saved)).toEqual([["routed"], []])
        expect(yield* slotExists(cluster, "cdc_routed")).toBe(false)
      })))

    it.effect("a source that cannot be reached fails with ReplicationError, and the password appears nowhere", () =>
      provided(Effect.gen(function*() {
        const cdc = yield* Cdc.make({
          primary: Redacted.make("postgres://app:s3cret-pw@127.0.0.1:1/app"),
          targets: { sink: Cdc.sinkTarget(Sink.drain) }
        })
        yield* cdc.addRule({ name: "unreachable", tables: ["t"], target: "sink" })
        const error = yield* Effect.flip(cdc.sync("unreachable"))
        expect(error._tag).toBe("ReplicationError")
        const stats = yield* cdc.stats("unreachable")
        for (const text of [String(error), error.message, JSON.stringify(error), inspect(error, { depth: 10 }), JSON.stringify(stats)]) {
          expect(text).not.toContain("s3cret-pw")
        }
        expect(stats.lastError).toBe(error.message)
        expect(stats.lagBytes).toBeUndefined()
      })))

    it.effect("run follows the primary as a scoped fiber; interrupting it mid-stream loses nothing", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE followed (id int PRIMARY KEY, n int)")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "followed", tables: ["followed"], target: "lite" })
        const count = () => Effect.map(lite.unsafe<{ n: number }>("SELECT count(*) AS n FROM followed"), (r) => r[0]!.n)
        const awaitCount = (n: number) =>
          count().pipe(
            Effect.flatMap((c) => (c >= n ? Effect.void : Effect.fail("not yet" as const))),
            Effect.retry(Schedule.spaced("20 millis")),
            Effect.timeout("30 seconds")
          )
        const fiber = yield* Effect.scoped(Effect.gen(function*() {
          const fiber = yield* cdc.run("followed")
          expect(yield* Effect.flip(cdc.sync("followed"))).toMatchObject({ _tag: "InvalidRule", reason: "is already running" })
          for (let i = 1; i <= 200; i++) yield* cluster.query(cluster.primary, "INSERT INTO followed VALUES ($1, 0)", [i])
          yield* awaitCount(50)
          return fiber
        }))
        // The scope closed mid-stream: the fiber is interrupted.
        expect(interruptedOnly(yield* Fiber.await(fiber))).toBe(true)
        yield* cluster.query(cluster.primary, "UPDATE followed SET n = n + 1")
        yield* cdc.sync("followed")
        const rows = yield* lite.unsafe<{ id: number; n: number }>("SELECT id, n FROM followed ORDER BY id")
        expect(rows).toEqual(Array.from({ length: 200 }, (_, i) => ({ id: i + 1, n: 1 })))
        expect((yield* cdc.stats("followed")).running).toBe(false)
      })))
  }
)
