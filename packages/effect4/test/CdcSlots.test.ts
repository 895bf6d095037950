import * as PgClient from "@effect/sql-pg/PgClient"
import { expect, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Sink from "effect/Sink"
import type * as SqlClient from "effect/sql/SqlClient"
import * as Cdc from "@effect-sql-router/effect4/Cdc"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import { provided, urlOf } from "./fixtures/cdcTargets.js"

// Slots: WAL retention while the rule's tables are idle, the retention bound
// enforced on its schedule, and removal leaving nothing behind. Its own
// cluster: these tests write WAL on purpose and watch the slots.

const interruptedOnly = <A, E>(exit: Exit.Exit<A, E>): boolean => Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)

/** Retries `check` until it holds: the awaited condition, never a sleep. */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, within: `${number} seconds` = "60 seconds") =>
  check.pipe(
    Effect.flatMap((ok) => ok ? Effect.void : Effect.fail("not yet" as const)),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeout(within)
  )

const lsnNow = (cluster: PgCluster.PgCluster) =>
  Effect.map(
    cluster.query<{ lsn: string }>(cluster.primary, "SELECT pg_current_wal_lsn()::text AS lsn"),
    (rows) => rows[0]!.lsn
  )

interface SlotRow {
  readonly active: boolean
  readonly confirmedPast: boolean
  readonly restartPast: boolean
  readonly retained: number
}

// restart_lsn moves at the next running-transactions record, which the server
// writes every 15 s while WAL flows; each look asks for one at once
// (pg_log_standby_snapshot, PostgreSQL 16+) so the test need not wait for it.
const slotPast = (cluster: PgCluster.PgCluster, slot: string, lsn: string) =>
  Effect.map(
    Effect.andThen(
      cluster.query(cluster.primary, "SELECT pg_log_standby_snapshot()"),
      cluster.query<SlotRow>(
      cluster.primary,
      `SELECT active, confirmed_flush_lsn >= $2::pg_lsn AS "confirmedPast", restart_lsn >= $2::pg_lsn AS "restartPast",
              pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained
       FROM pg_replication_slots WHERE slot_name = $1`,
        [slot, lsn]
      )
    ),
    (rows) => rows[0]
  )

const slotExists = (cluster: PgCluster.PgCluster, slot: string) =>
  Effect.map(
    cluster.query(cluster.primary, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [slot]),
    (rows) => rows.length > 0
  )

const publicationExists = (cluster: PgCluster.PgCluster, publication: string) =>
  Effect.map(
    cluster.query(cluster.primary, "SELECT 1 FROM pg_publication WHERE pubname = $1", [publication]),
    (rows) => rows.length > 0
  )

const rowsOf = (query: (sql: string) => Effect.Effect<ReadonlyArray<{ rows: string }>, unknown>, table: string) =>
  Effect.map(
    query(`SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY id), '[]')::text AS rows FROM ${table} t`),
    (rows) => rows[0]!.rows
  )

/** About 1 MB of WAL per call, in whatever database `sql` is connected to. */
const writeWal = (sql: SqlClient.SqlClient, table: string) =>
  sql.unsafe(`INSERT INTO ${table} (v) SELECT repeat(md5(g::text), 8) FROM generate_series(1, 3000) g`)

layer(PgCluster.layer({ replicas: 0, walLevel: "logical" }), { timeout: "180 seconds", excludeTestServices: true })(
  "Cdc slots",
  (it) => {
    it.effect("an idle rule's slot moves on while another table and another database take writes: retained WAL stays bounded", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE quiet (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "CREATE TABLE noisy (id serial PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "CREATE DATABASE elsewhere")
        const elsewhere = yield* PgClient.make({ url: urlOf(cluster, "elsewhere") })
        yield* elsewhere.unsafe("CREATE TABLE busy (id serial PRIMARY KEY, v text)")
        const here = yield* PgClient.make({ url: cluster.primary.url })
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { sink: Cdc.sinkTarget(Sink.drain) } })
        yield* cdc.addRule({ name: "quiet", tables: ["quiet"], target: "sink" })
        yield* cdc.run("quiet")

        for (const [label, sql, table] of [["another database", elsewhere, "busy"], ["another table", here, "noisy"]] as const) {
          // Writes go on all along; the slot must pass the position reached
          // after the first 8 MB of them, and hold less than that.
          const start = yield* lsnNow(cluster)
          const writer = yield* Effect.forkChild(Effect.forever(writeWal(sql, table)))
          const mark = yield* eventually(
            Effect.map(
              cluster.query<{ written: number }>(cluster.primary, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::float8 AS written", [start]),
              (rows) => rows[0]!.written > 8 * 1024 * 1024
            )
          ).pipe(Effect.andThen(lsnNow(cluster)))
          yield* eventually(Effect.map(slotPast(cluster, "cdc_quiet", mark), (slot) => slot?.confirmedPast === true && slot.restartPast === true))
          yield* Fiber.interrupt(writer)
          const slot = yield* slotPast(cluster, "cdc_quiet", mark)
          expect(slot, label).toMatchObject({ active: true, confirmedPast: true, restartPast: true })
        }
      })))

    it.effect("a stopped rule whose slot holds more WAL than its bound loses the slot at the scheduled check; the next run snapshots again and converges", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE kept (id int PRIMARY KEY, v text)")
        yield* cluster.query(cluster.primary, "INSERT INTO kept SELECT g, 'first' FROM generate_series(1, 1000) g")
        yield* cluster.query(cluster.primary, "CREATE DATABASE kept_target")
        const pg = yield* PgClient.make({ url: urlOf(cluster, "kept_target") })
        const cdc = yield* Cdc.make({
          primary: cluster.primary.url,
          targets: { pg: Cdc.sqlTarget(pg) },
          retentionCheckInterval: "200 millis"
        })
        yield* cdc.addRule({ name: "kept", tables: ["kept"], target: "pg", maxRetainedWalBytes: 1024 * 1024 })
        expect((yield* cdc.sync("kept")).snapshot).toBe(true)

        // Stopped: rows the target holds are deleted at the source (only a
        // new snapshot can take them away), and the slot falls 3 MB behind.
        yield* cluster.query(cluster.primary, "DELETE FROM kept WHERE id <= 500")
        yield* cluster.query(cluster.primary, "INSERT INTO kept SELECT g, repeat(md5(g::text), 20) FROM generate_series(1001, 6000) g")
        // The check records the drop once the slot is gone: await the record.
        yield* eventually(Effect.map(cdc.stats("kept"), (stats) => stats.lastError !== undefined))
        expect(yield* slotExists(cluster, "cdc_kept")).toBe(false)
        const stats = yield* cdc.stats("kept")
        expect(stats.lastError).toContain("bytes behind, over the rule's bound of 1048576")
        expect(stats.errors).toBeGreaterThanOrEqual(1)
        expect(stats.retainedWalBytes).toBeUndefined()

        const fiber = yield* cdc.run("kept")
        const source = (sql: string) => cluster.query<{ rows: string }>(cluster.primary, sql)
        const target = (sql: string) => pg.unsafe<{ rows: string }>(sql)
        const expected = yield* rowsOf(source, "kept")
        yield* eventually(Effect.map(rowsOf(target, "kept"), (rows) => rows === expected))
        expect(yield* rowsOf(target, "kept")).toBe(expected)
        // The new snapshot's rows went into a database of the same server, so
        // the new slot may briefly hold more than the bound; caught up, it is
        // not over it and keeps running.
        yield* eventually(Effect.map(slotPast(cluster, "cdc_kept", yield* lsnNow(cluster)), (slot) => slot?.active === true && slot.confirmedPast))
        expect(yield* slotExists(cluster, "cdc_kept")).toBe(true)
        yield* Fiber.interrupt(fiber)
      })))

    it.effect("removeRule stops a running rule and leaves no slot and no publication; keepSlot keeps both", () =>
      provided(Effect.gen(function*() {
        const cluster = yield* PgCluster.PgCluster
        yield* cluster.query(cluster.primary, "CREATE TABLE gone (id int PRIMARY KEY)")
        yield* cluster.query(cluster.primary, "CREATE DATABASE gone_target")
        const pg = yield* PgClient.make({ url: urlOf(cluster, "gone_target") })
        const cdc = yield* Cdc.make({ primary: cluster.primary.url, targets: { pg: Cdc.sqlTarget(pg) } })
        for (const name of ["gone", "parked"]) {
          yield* cdc.addRule({ name, tables: ["gone"], target: "pg" })
        }
        const fibers = [yield* cdc.run("gone"), yield* cdc.run("parked")]
        yield* cluster.query(cluster.primary, "INSERT INTO gone VALUES (1)")
        yield* eventually(Effect.map(pg.unsafe("SELECT 1 FROM gone"), (rows) => rows.length === 1))
        // Both rules hold their slots before either is removed: `keepSlot`
        // keeps what exists, and a rule stopped before it made its slot has
        // none to keep.
        for (const slot of ["cdc_gone", "cdc_parked"]) {
          yield* eventually(Effect.map(slotPast(cluster, slot, "0/0"), (info) => info?.active === true))
        }

        yield* cdc.removeRule("gone")
        expect(interruptedOnly(yield* Fiber.await(fibers[0]!))).toBe(true)
        expect(yield* slotExists(cluster, "cdc_gone")).toBe(false)
        expect(yield* publicationExists(cluster, "cdc_gone")).toBe(false)

        yield* cdc.removeRule("parked", { keepSlot: true })
        expect(interruptedOnly(yield* Fiber.await(fibers[1]!))).toBe(true)
        expect(yield* slotExists(cluster, "cdc_parked")).toBe(true)
        expect(yield* publicationExists(cluster, "cdc_parked")).toBe(true)
        yield* Cdc.drop({ primary: cluster.primary.url, slot: "cdc_parked", publication: "cdc_parked" })
        expect(yield* slotExists(cluster, "cdc_parked")).toBe(false)
        expect(yield* cdc.listRules).toEqual([])
      })))
  }
)
