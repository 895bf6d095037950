import * as Reactivity from "@effect/experimental/Reactivity"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Sink from "effect/Sink"
import * as Cdc from "effect-sql-router/Cdc"
import { PgCluster } from "effect-sql-router/testing"

// Slots: WAL retention while the rule's tables are idle, the retention bound
// enforced on its schedule, and removal leaving nothing behind. Its own
// cluster: these tests write WAL on purpose and watch the slots.

const urlOf = (cluster: PgCluster.PgCluster, database: string) =>
  Redacted.make(`postgres://${cluster.primary.user}@${cluster.primary.host}:${cluster.primary.port}/${database}`)

const provided = <A, E>(effect: Effect.Effect<A, E, Scope.Scope | Reactivity.Reactivity | PgCluster.PgCluster>) =>
  effect.pipe(Effect.provide(Reactivity.layer), Effect.scoped)

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

const slotPast = (cluster: PgCluster.PgCluster, slot: string, lsn: string) =>
  Effect.map(
    cluster.query<SlotRow>(
      cluster.primary,
      `SELECT active, confirmed_flush_lsn >= $2::pg_lsn AS "confirmedPast", restart_lsn >= $2::pg_lsn AS "restartPast",
              pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained
       FROM pg_replication_slots WHERE slot_name = $1`,
      [slot, lsn]
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
          const writer = yield* Effect.fork(Effect.forever(writeWal(sql, table)))
          const mark = yield* eventually(
            Effect.map(
              cluster.query<{ written: number }>(cluster.primary, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::float8 AS written", [start]),
              (rows) => rows[0]!.written > 8 * 1024 * 1024
            )
          ).pipe(Effect.zipRight(lsnNow(cluster)))
          yield* eventually(Effect.map(slotPast(cluster, "cdc_quiet", mark), (slot) => slot!.confirmedPast && slot!.restartPast))
          yield* Fiber.interrupt(writer)
          const slot = yield* slotPast(cluster, "cdc_quiet", mark)
          expect(slot, label).toMatchObject({ active: true, confirmedPast: true, restartPast: true })
        }
      })))
  }
)
