import type * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import Pg from "pg"
import * as Cdc from "effect-sql-router/Cdc"
import { PgCluster } from "effect-sql-router/testing"
import { pgTarget, provided, sqliteTarget, urlOf } from "./fixtures/cdcTargets.js"

// Incremental snapshots (issue 24): chunks by primary key between
// watermarks while writes flow, resumed from the target's record, repaired
// on demand. One primary with wal_level = logical; targets: a database on it
// and SQLite files.

/** Rows as text, in key order, the same on every side (numbers and text only). */
const rowsText = (rows: ReadonlyArray<Record<string, unknown>>) => JSON.stringify(rows.map((r) => Object.values(r).map(String)))

const targetRows = (sql: SqlClient.SqlClient, select: string) => Effect.map(sql.unsafe<Record<string, unknown>>(select), rowsText)
const sourceRows = (cluster: PgCluster.PgCluster, select: string) =>
  Effect.map(cluster.query<Record<string, unknown>>(cluster.primary, select), rowsText)

/** Random inserts, updates and deletes over keys 1..span (inside and outside the chunk being copied), `count` of them. */
const writes = (cluster: PgCluster.PgCluster, table: string, span: number, count: number, seed: number) => {
  let x = seed
  const next = () => (x = (x * 1103515245 + 12345) % 2147483648) % span + 1
  return Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) => {
    const id = next()
    const sql = i % 3 === 0
      ? `INSERT INTO ${table} VALUES ($1, 'i${i}') ON CONFLICT (id) DO UPDATE SET v = excluded.v`
      : i % 3 === 1
      ? `UPDATE ${table} SET v = 'u${i}' WHERE id = $1`
      : `DELETE FROM ${table} WHERE id = $1`
    return cluster.query(cluster.primary, sql, [id])
  }, { discard: true })
}

layer(PgCluster.layer({ replicas: 0, walLevel: "logical" }), { timeout: "240 seconds", excludeTestServices: true })(
  "Cdc snapshots",
  (it) => {
    it.effect("a chunked snapshot converges on PostgreSQL and SQLite while inserts, updates and deletes flow", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE flowing (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO flowing SELECT g, 'v' || g FROM generate_series(1, 3000, 2) g")
        yield* cluster.query(cluster.primary, "ANALYZE flowing")
        const pg = yield* pgTarget(cluster, "flowing_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "flowing_pg", tables: ["flowing"], target: "pg", snapshotChunkSize: 5 })
        yield* cdc.addRule({ name: "flowing_lite", tables: ["flowing"], target: "lite", snapshotChunkSize: 7 })
        const writer = yield* Effect.fork(writes(cluster, "flowing", 3200, 400, 7))
        const [first, firstLite] = yield* Effect.all([cdc.sync("flowing_pg"), cdc.sync("flowing_lite")], { concurrency: 2 })
        expect(first.snapshot).toBe(true)
        expect(firstLite.snapshot).toBe(true)
        yield* Fiber.join(writer)
        const second = yield* cdc.sync("flowing_pg")
        yield* cdc.sync("flowing_lite")
        expect(second.snapshot).toBe(false)
        const select = "SELECT id, v FROM flowing ORDER BY id"
        const source = yield* sourceRows(cluster, select)
        expect(yield* targetRows(pg, select)).toBe(source)
        expect(yield* targetRows(lite, select)).toBe(source)
        const stats = yield* cdc.stats("flowing_pg")
        expect(stats.snapshot).toMatchObject({ running: false, table: undefined, tablesDone: 1, tablesTotal: 1, rowsTotal: 1500, secondsLeft: 0 })
        // Every chunk was read once: the rows present at each read, at least the 1500 minus those deleted meanwhile.
        expect(stats.snapshot!.rowsCopied).toBeGreaterThan(1000)
        expect(stats.snapshot!.rowsPerSecond).toBeGreaterThan(0)
        // The watermarks' own transactions are not applied: no empty transaction reached the target.
        expect(stats.transactionsApplied).toBeLessThan(400 + Math.ceil(3200 / 5) + 10)
      })))

    it.effect("an interrupted snapshot resumes from the target's record: applied chunks are not read again", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE resumed (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO resumed SELECT g, 'v' || g FROM generate_series(1, 1000) g")
        const pg = yield* pgTarget(cluster, "resumed_target")
        yield* pg.unsafe("CREATE TABLE resumed (id int PRIMARY KEY, v text)")
        // The target refuses rows above 500 until told otherwise: the session stalls after five chunks.
        yield* pg.unsafe(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN IF NEW.id > 500 THEN RAISE EXCEPTION 'not yet'; END IF; RETURN NEW; END $$`)
        yield* pg.unsafe("CREATE TRIGGER refuse BEFORE INSERT ON resumed FOR EACH ROW EXECUTE FUNCTION refuse()")
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg) }, maxRetryDelay: "200 millis" })
        yield* cdc.addRule({ name: "resumed", tables: ["resumed"], target: "pg", snapshotChunkSize: 100 })
        const fiber = yield* cdc.run("resumed")
        yield* cdc.stats("resumed").pipe(
          Effect.flatMap((stats) => stats.errors > 0 ? Effect.void : Effect.fail("not yet" as const)),
          Effect.retry(Schedule.spaced("20 millis")),
          Effect.timeout("60 seconds")
        )
        yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(yield* Fiber.await(fiber))).toBe(true)
        expect(yield* pg.unsafe("SELECT tbl, after FROM effect_sql_router_cdc_snapshot WHERE rule = 'resumed'"))
          .toEqual([{ tbl: "public.resumed", after: "[\"500\"]" }])
        expect(yield* pg.unsafe("SELECT count(*)::int AS n, max(id) AS top FROM resumed")).toEqual([{ n: 500, top: 500 }])
        // Meanwhile the source moves, behind and ahead of the copy.
        yield* cluster.query(cluster.primary, "UPDATE resumed SET v = 'changed' WHERE id IN (10, 700)")
        yield* cluster.query(cluster.primary, "DELETE FROM resumed WHERE id IN (20, 800)")
        yield* pg.unsafe("DROP TRIGGER refuse ON resumed")
        const resumed = yield* cdc.sync("resumed")
        expect(resumed.snapshot).toBe(true)
        // Only rows 501..1000 were read (less the deleted one), in 5 chunks and an empty last one.
        expect((yield* cdc.stats("resumed")).snapshot).toMatchObject({ running: false, rowsCopied: 499, tablesDone: 1 })
        const select = "SELECT id, v FROM resumed ORDER BY id"
        expect(yield* targetRows(pg, select)).toBe(yield* sourceRows(cluster, select))
        expect(yield* pg.unsafe("SELECT count(*)::int AS n FROM effect_sql_router_cdc_snapshot")).toEqual([{ n: 0 }])
      })))

    it.effect("resnapshot repairs rows changed behind the rule's back, on a stopped and on a running rule; unknown names are typed errors", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE repaired (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "CREATE TABLE untouched (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO repaired SELECT g, 'v' || g FROM generate_series(1, 300) g")
        yield* cluster.query(cluster.primary, "INSERT INTO untouched SELECT g, 'v' || g FROM generate_series(1, 30) g")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "repaired", tables: ["repaired", "public.untouched"], target: "lite", snapshotChunkSize: 40 })
        yield* cdc.sync("repaired")
        const select = (table: string) => `SELECT id, v FROM ${table} ORDER BY id`
        const spoil = Effect.gen(function*() {
          yield* lite.unsafe("UPDATE repaired SET v = 'spoiled' WHERE id = 5")
          yield* lite.unsafe("DELETE FROM repaired WHERE id = 250")
          yield* lite.unsafe("INSERT INTO repaired VALUES (999, 'stray')")
          yield* lite.unsafe("UPDATE untouched SET v = 'left alone' WHERE id = 1")
        })
        yield* spoil
        expect(yield* Effect.flip(cdc.resnapshot("repaired", ["nope"]))).toMatchObject({ _tag: "UnknownTable", table: "nope" })
        expect(yield* Effect.flip(cdc.resnapshot("missing"))).toMatchObject({ _tag: "UnknownRule", name: "missing" })
        yield* cdc.resnapshot("repaired", ["public.repaired"])
        const synced = yield* cdc.sync("repaired")
        expect(synced.snapshot).toBe(true)
        expect(yield* targetRows(lite, select("repaired"))).toBe(yield* sourceRows(cluster, select("repaired")))
        expect(yield* lite.unsafe("SELECT v FROM untouched WHERE id = 1")).toEqual([{ v: "left alone" }])
        expect((yield* cdc.stats("repaired")).snapshot).toMatchObject({ running: false, tablesTotal: 1, tablesDone: 1, rowsCopied: 300 })

        // On a running rule, with writes flowing: both tables this time.
        yield* spoil
        const fiber = yield* cdc.run("repaired")
        yield* cdc.resnapshot("repaired")
        yield* writes(cluster, "repaired", 320, 200, 3)
        const converged = Effect.gen(function*() {
          for (const table of ["repaired", "untouched"]) {
            if ((yield* targetRows(lite, select(table))) !== (yield* sourceRows(cluster, select(table)))) return yield* Effect.fail("not yet")
          }
          const stats = yield* cdc.stats("repaired")
          if (stats.snapshot?.running !== false || stats.snapshot.tablesDone !== 2) return yield* Effect.fail("not yet")
        })
        yield* converged.pipe(Effect.retry(Schedule.spaced("50 millis")), Effect.timeout("60 seconds"))
        yield* Fiber.interrupt(fiber)
      })))

    it.effect("a resnapshot asked while no session runs is kept by the target: the next process's session takes it", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE kept (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO kept SELECT g, 'v' || g FROM generate_series(1, 200) g")
        const lite = yield* sqliteTarget
        const rule = { name: "kept", tables: ["kept"], target: "lite", snapshotChunkSize: 50 } as const
        const process = <A, E, R>(body: (cdc: Cdc.Cdc) => Effect.Effect<A, E, R>) =>
          Effect.scoped(Effect.flatMap(
            Cdc.make({ primary: cluster.primary.url, targets: { lite: Cdc.sqlTarget(lite) } }),
            (cdc) => Effect.zipRight(cdc.addRule(rule), body(cdc))
          ))
        const requests = lite.unsafe("SELECT tbl FROM effect_sql_router_cdc_resnapshot WHERE rule = 'kept'")
        yield* process((cdc) => cdc.sync("kept"))
        yield* lite.unsafe("UPDATE kept SET v = 'spoiled' WHERE id = 7")
        yield* lite.unsafe("DELETE FROM kept WHERE id = 150")
        // Asked, then the process ends before any session of the rule runs.
        yield* process((cdc) => cdc.resnapshot("kept"))
        expect(yield* requests).toEqual([{ tbl: "kept" }])
        const synced = yield* process((cdc) => cdc.sync("kept"))
        expect(synced.snapshot).toBe(true)
        const select = "SELECT id, v FROM kept ORDER BY id"
        expect(yield* targetRows(lite, select)).toBe(yield* sourceRows(cluster, select))
        // Taken with the table's restart: asked once, copied once.
        expect(yield* requests).toEqual([])
        expect((yield* process((cdc) => cdc.sync("kept"))).snapshot).toBe(false)
      })))

    it.effect("a composite primary key: chunks by the whole key, text and integer parts, while writes flow", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE pairs (a text, b int8, v text, PRIMARY KEY (a, b))")
        yield* cluster.query(
          cluster.primary,
          "INSERT INTO pairs SELECT k, g, k || g FROM generate_series(1, 60) g, unnest(ARRAY['a', 'B', 'b', 'é', 'z z']) k"
        )
        const pg = yield* pgTarget(cluster, "pairs_target")
        const lite = yield* sqliteTarget
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg), lite: Cdc.sqlTarget(lite) } })
        yield* cdc.addRule({ name: "pairs_pg", tables: ["pairs"], target: "pg", snapshotChunkSize: 7 })
        yield* cdc.addRule({ name: "pairs_lite", tables: ["pairs"], target: "lite", snapshotChunkSize: 11 })
        const writer = yield* Effect.fork(Effect.forEach(Array.from({ length: 150 }, (_, i) => i), (i) => {
          const k = ["a", "B", "b", "é", "z z"][i % 5]!
          const b = (i * 7) % 70 + 1
          return cluster.query(
            cluster.primary,
            i % 2 === 0
              ? "INSERT INTO pairs VALUES ($1, $2, $3) ON CONFLICT (a, b) DO UPDATE SET v = excluded.v"
              : "DELETE FROM pairs WHERE a = $1 AND b = $2",
            i % 2 === 0 ? [k, b, `w${i}`] : [k, b]
          )
        }, { discard: true }))
        yield* Effect.all([cdc.sync("pairs_pg"), cdc.sync("pairs_lite")], { concurrency: 2 })
        yield* Fiber.join(writer)
        yield* cdc.sync("pairs_pg")
        yield* cdc.sync("pairs_lite")
        const source = yield* sourceRows(cluster, "SELECT a, b, v FROM pairs ORDER BY a COLLATE \"C\", b")
        expect(yield* targetRows(pg, "SELECT a, b, v FROM pairs ORDER BY a COLLATE \"C\", b")).toBe(source)
        expect(yield* targetRows(lite, "SELECT a, b, v FROM pairs ORDER BY a, b")).toBe(source)
        expect((yield* cdc.stats("pairs_pg")).snapshot).toMatchObject({ running: false, tablesDone: 1 })
      })))

    it.effect("a column added to a table before its chunks are read: its chunks carry the new column", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE first_t (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO first_t SELECT g, 'v' || g FROM generate_series(1, 300) g")
        yield* cluster.query(cluster.primary, "CREATE TABLE later_t (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO later_t SELECT g, 'v' || g FROM generate_series(1, 300) g")
        const pg = yield* pgTarget(cluster, "reshaped_target")
        yield* pg.unsafe("CREATE TABLE first_t (id int PRIMARY KEY, v text)")
        // The first table's row 150 waits on a lock the test holds: the
        // session is inside its snapshot, before the second table's chunks.
        yield* pg.unsafe(`CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN IF NEW.id = 150 THEN PERFORM pg_advisory_lock(24); PERFORM pg_advisory_unlock(24); END IF; RETURN NEW; END $$`)
        yield* pg.unsafe("CREATE TRIGGER hold BEFORE INSERT ON first_t FOR EACH ROW EXECUTE FUNCTION hold()")
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg) } })
        yield* cdc.addRule({
          name: "reshaped",
          tables: ["first_t", "later_t"],
          target: "pg",
          snapshotChunkSize: 100,
          schemaChanges: "apply"
        })
        // A plain connection holds the lock (not the Effect client: a fiber
        // forked in its transaction would share the transaction's connection).
        const locker = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const client = new Pg.Client({ connectionString: Redacted.value(urlOf(cluster, "reshaped_target")) })
            await client.connect()
            await client.query("SELECT pg_advisory_lock(24)")
            return client
          }),
          (client) => Effect.promise(() => client.end())
        )
        const synced = yield* Effect.fork(cdc.sync("reshaped"))
        yield* cluster.query(cluster.primary, "SELECT 1 FROM pg_stat_activity WHERE datname = 'reshaped_target' AND wait_event = 'advisory'").pipe(
          Effect.flatMap((rows) => rows.length > 0 ? Effect.void : Effect.fail("not waiting yet" as const)),
          Effect.retry(Schedule.spaced("20 millis")),
          Effect.timeout("60 seconds")
        )
        // The second table gains a column (existing rows read 'fresh'), and
        // one of its rows changes: the stream carries the new shape.
        yield* cluster.query(cluster.primary, "ALTER TABLE later_t ADD COLUMN extra text DEFAULT 'fresh'")
        yield* cluster.query(cluster.primary, "UPDATE later_t SET extra = 'changed' WHERE id = 7")
        yield* Effect.promise(() => locker.query("SELECT pg_advisory_unlock(24)"))
        const result = yield* Fiber.join(synced)
        expect(result.snapshot).toBe(true)
        const select = "SELECT id, v, extra FROM later_t ORDER BY id"
        const source = yield* sourceRows(cluster, select)
        expect(yield* targetRows(pg, select)).toBe(source)
        expect(source).toContain("\"changed\"")
        expect(source).toContain("\"fresh\"")
      })))
  }
)
