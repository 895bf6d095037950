import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { describe } from "@effect-sql-router/core/PgErrors"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"

/** A failure as the report keeps it: the driver's message and SQLSTATE (password-free). */
const describeFailure = (error: SqlError): string => `${error.reason._tag}: ${describe(error)}`

/** What a mixed load saw: reads and writes that succeeded or failed, and the ids of committed writes. */
export interface LoadReport {
  readonly reads: number
  readonly readFailures: ReadonlyArray<string>
  readonly writes: ReadonlyArray<number>
  readonly writeFailures: ReadonlyArray<string>
  readonly readsBy: Readonly<Record<string, number>>
  /** Per server, reads that saw rows of `strayWorker` (written behind the router's back). */
  readonly strayReadsBy: Readonly<Record<string, number>>
}

/**
 * The `worker` of rows that a test writes straight to one server, behind the
 * router's back (e.g. to an old primary after a failover): every read of the
 * load reports whether it saw any.
 */
export const strayWorker = -99

/** The table the load writes; create it (and let it replicate) before `startLoad`. */
export const loadTable = "CREATE TABLE load_t (id bigserial PRIMARY KEY, worker int NOT NULL)"

/**
 * A concurrent mixed read/write load through the routed `SqlClient` until
 * stopped. Reads report which server answered; writes insert into `load_t`
 * and keep the ids the server confirmed as committed.
 */
export const startLoad = (options: { readonly readers: number; readonly writers: number }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const state = yield* Ref.make({
      reads: 0,
      readFailures: [] as Array<string>,
      writes: [] as Array<number>,
      writeFailures: [] as Array<string>,
      readsBy: {} as Record<string, number>,
      strayReadsBy: {} as Record<string, number>
    })
    const reader = Effect.forever(
      sql<{ name: string; stray: number }>`SELECT current_setting('cluster_name') AS name,
        count(*) FILTER (WHERE worker = ${strayWorker})::int AS stray FROM load_t`.pipe(
        Effect.matchEffect({
          onFailure: (error) =>
            Ref.update(state, (s) => ({ ...s, readFailures: [...s.readFailures, describeFailure(error)] })).pipe(
              // Never spin: a read that fails at once must not starve the event loop.
              Effect.andThen(Effect.sleep("10 millis"))
            ),
          onSuccess: ([row]) =>
            Ref.update(state, (s) => ({
              ...s,
              reads: s.reads + 1,
              readsBy: { ...s.readsBy, [row!.name]: (s.readsBy[row!.name] ?? 0) + 1 },
              strayReadsBy: row!.stray > 0
                ? { ...s.strayReadsBy, [row!.name]: (s.strayReadsBy[row!.name] ?? 0) + 1 }
                : s.strayReadsBy
            }))
        })
      )
    )
    const writer = (worker: number) =>
      Effect.forever(
        sql<{ id: string }>`INSERT INTO load_t (worker) VALUES (${worker}) RETURNING id`.pipe(
          Effect.matchEffect({
            onFailure: (error) =>
              Ref.update(state, (s) => ({ ...s, writeFailures: [...s.writeFailures, describeFailure(error)] })).pipe(
                // A failing primary answers at once; do not spin.
                Effect.andThen(Effect.sleep("20 millis"))
              ),
            onSuccess: ([row]) => Ref.update(state, (s) => ({ ...s, writes: [...s.writes, Number(row!.id)] }))
          }),
          Effect.andThen(Effect.sleep("5 millis"))
        )
      )
    // Forked into the scope: interrupted when it closes, before the router's pools end.
    const fibers = yield* Effect.all([
      ...Array.from({ length: options.readers }, () => Effect.forkScoped(reader)),
      ...Array.from({ length: options.writers }, (_, i) => Effect.forkScoped(writer(i)))
    ])
    return {
      /** The load so far. */
      snapshot: Ref.get(state) as Effect.Effect<LoadReport>,
      /** Waits until `n` more reads have succeeded (progress, not time). */
      awaitReads: (n: number) =>
        Effect.flatMap(Ref.get(state), (start) =>
          // Poll, never spin: a tight loop would starve the load's I/O.
          Ref.get(state).pipe(Effect.repeat({ until: (s) => s.reads >= start.reads + n, schedule: Schedule.spaced("10 millis") }))),
      stop: Effect.andThen(Effect.forEach(fibers, Fiber.interrupt, { discard: true }), Ref.get(state)) as Effect.Effect<
        LoadReport
      >
    }
  })

/** How many writes the load saw committed are not on the primary (must be 0). */
export const missingWrites = (report: LoadReport) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      // Count on the primary: replicas may still be replaying.
      // The ids as one array literal: the parameter is text, cast on the server.
      SqlRouter.primary(
        sql<{ n: number }>`SELECT count(*)::int AS n FROM load_t WHERE id = ANY(${`{${report.writes.join(",")}}`}::bigint[])`
      ),
      (rows) => report.writes.length - rows[0]!.n
    ))

/** A running load, as `startLoad` gives it. */
export type Load = Effect.Success<ReturnType<typeof startLoad>>
