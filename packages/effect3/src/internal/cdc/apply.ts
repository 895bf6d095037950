/** @internal */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as ApplyPlan from "@effect-sql-router/core/cdc/ApplyPlan"
import { formatLsn, parseLsn } from "@effect-sql-router/core/cdc/Changes"
import * as Snapshot from "@effect-sql-router/core/cdc/Snapshot"
import * as Schema from "@effect-sql-router/core/cdc/Schema"
import * as Types from "@effect-sql-router/core/cdc/Types"
import type { Relation, SqlTargetOptions, Target, Transaction } from "../../Cdc.js"
import { ReplicationError, TargetError, UnsupportedType } from "./errors.js"
import type { TableInfo } from "./replication.js"
import { describe } from "../errors.js"

// Targets: how a source transaction becomes a target transaction.

/** @internal */
export interface Applier {
  /** The last LSN the target recorded as applied for this rule (SQL targets). */
  readonly appliedLsn: bigint | undefined
  /**
   * True when the target keeps its own position: a slot found while the
   * target has none means the snapshot never landed, and is taken again.
   */
  readonly durableState: boolean
  /**
   * Applies a transaction; `progress` (snapshot chunks) is recorded in the
   * same target transaction where the target keeps state.
   */
  readonly apply: (transaction: Transaction, progress?: ReadonlyArray<ProgressUpdate>) => Effect.Effect<void, TargetError>
  /** Tables whose snapshot the target recorded as unfinished (SQL targets; undefined for sinks). */
  readonly snapshotPending: ReadonlyArray<Snapshot.TableProgress> | undefined
  /** Records snapshot progress (and `lsn` as applied, if given) on its own; nothing for sinks. */
  readonly recordProgress: (progress: ReadonlyArray<ProgressUpdate>, lsn?: bigint) => Effect.Effect<void, TargetError>
  /** The target's dialect (undefined for a sink): the terms its column types are compared in. */
  readonly dialect: Types.Dialect | undefined
  /**
   * Each table's columns as the target has them at open, by `schema.table`
   * (none for a sink or a table the target does not have): what a
   * Relation message is compared with.
   */
  readonly columns: ReadonlyMap<string, ReadonlyArray<Schema.ColumnShape>>
  /**
   * The rule creates the target's tables (`createTables`, the default): every
   * column and type difference is the source's. Otherwise only columns and
   * types the source is known to have had count (see `Schema.DiffOptions`).
   */
  readonly owned: boolean
}

/** A table's snapshot moved on (`after`: its last copied key), or is done. @internal */
export type ProgressUpdate =
  | Snapshot.TableProgress
  | { readonly table: string; readonly after: "done" }

/** @internal */
export type Open = (rule: string, tables: ReadonlyArray<TableInfo>) => Effect.Effect<Applier, TargetError, Scope.Scope>

const targetError = (operation: string) => (cause: unknown) =>
  new TargetError({ operation, reason: describe(cause), cause })

/** @internal */
export const sinkTarget = <E>(sink: Sink.Sink<unknown, Transaction, unknown, E>): Target => ({
  _tag: "SinkTarget",
  open: () =>
    Effect.succeed({
      appliedLsn: undefined,
      durableState: false,
      snapshotPending: undefined,
      recordProgress: () => Effect.void,
      dialect: undefined,
      columns: new Map(),
      owned: false,
      apply: (transaction) =>
        Stream.run(Stream.succeed(transaction), sink).pipe(
          Effect.asVoid,
          Effect.mapError(targetError("sink")),
          Effect.catchAllDefect((defect) => Effect.fail(targetError("sink")(defect)))
        )
    })
})

/**
 * Checks a relation as it arrives in the stream: a new column may have a type
 * we cannot take, or one the session never read from the catalog (an enum or
 * domain created since): the session restarts to read it.
 * @internal
 */
export const checkRelation = (
  relation: Relation,
  types: Types.Registry = Types.builtins
): Effect.Effect<void, UnsupportedType | ReplicationError> => {
  for (const column of relation.columns) {
    if (!types.knows(column.typeOid)) {
      return Effect.fail(
        new ReplicationError({
          operation: "types",
          reason: `column ${column.name} of ${relation.schema}.${relation.table} has type ${
            column.typeName ?? `oid ${column.typeOid}`
          }, not read from the catalog when the session started: the session restarts to read it`
        })
      )
    }
    if (!types.columnType(column.typeOid)) {
      return Effect.fail(
        new UnsupportedType({
          table: `${relation.schema}.${relation.table}`,
          column: column.name,
          type: column.typeName ?? `oid ${column.typeOid}`
        })
      )
    }
  }
  return Effect.void
}

/** @internal */
export const sqlTarget = (sql: SqlClient.SqlClient, options: SqlTargetOptions = {}): Target => ({
  _tag: "SqlTarget",
  open: (rule, tables) =>
    Effect.gen(function*() {
      const name = sql.onDialectOrElse({
        pg: () => "pg" as const,
        sqlite: () => "sqlite" as const,
        orElse: () => undefined
      })
      if (!name) {
        return yield* new TargetError({ operation: "open", reason: "only PostgreSQL and SQLite clients are supported as targets" })
      }
      const dialect = ApplyPlan.dialects[name]
      const plan = ApplyPlan.makePlan(dialect, rule, tables, options.stateTable)
      const run = (statement: ApplyPlan.Statement) => sql.unsafe(statement.sql, statement.params as Array<unknown>)

      if (options.createTables ?? true) {
        for (const statement of plan.createTables()) {
          yield* run(statement).pipe(Effect.mapError(targetError("create table")))
        }
      }
      yield* run(plan.createStateTable).pipe(Effect.mapError(targetError("create state table")))
      const [state] = yield* run(plan.readState).pipe(Effect.mapError(targetError("read state")))
      const progressPlan = Snapshot.progressPlan(ApplyPlan.dialects[name], rule, options.stateTable ?? ApplyPlan.defaultStateTable)
      yield* run(progressPlan.create).pipe(Effect.mapError(targetError("create state table")))
      const pending = yield* run(progressPlan.read).pipe(Effect.mapError(targetError("read state")))
      const recordProgress = (progress: ReadonlyArray<ProgressUpdate>) =>
        Effect.forEach(
          progress,
          (update) => run(update.after === "done" ? progressPlan.done(update.table) : progressPlan.record(update as Snapshot.TableProgress)),
          { discard: true }
        )
      const columns = new Map<string, ReadonlyArray<Schema.ColumnShape>>()
      for (const table of tables) {
        const found = yield* run(Schema.readColumns(dialect, table.table)).pipe(Effect.mapError(targetError("read columns")))
        if (found.length > 0) columns.set(`${table.schema}.${table.table}`, found as ReadonlyArray<Schema.ColumnShape>)
      }

      return {
        appliedLsn: state ? parseLsn(String((state as { lsn: unknown }).lsn)) : undefined,
        durableState: true,
        snapshotPending: pending.map((row) => Snapshot.readProgress(row as { tbl: unknown; after: unknown })),
        recordProgress: (progress, lsn) =>
          recordProgress(progress).pipe(
            Effect.zipRight(lsn === undefined ? Effect.void : run(plan.recordState(formatLsn(lsn)))),
            sql.withTransaction,
            Effect.mapError(targetError("apply")),
            Effect.catchAllDefect((defect) => Effect.fail(targetError("commit")(defect)))
          ),
        dialect: name,
        columns,
        owned: options.createTables ?? true,
        apply: (transaction, progress = []) =>
          Effect.forEach(Schema.statements(plan, dialect, transaction.changes), run, { discard: true }).pipe(
            Effect.zipRight(recordProgress(progress)),
            Effect.zipRight(run(plan.recordState(formatLsn(parseLsn(transaction.endLsn))))),
            sql.withTransaction,
            Effect.mapError(targetError("apply")),
            // @effect/sql turns a failed COMMIT into a defect: it is a target failure.
            Effect.catchAllDefect((defect) => Effect.fail(targetError("commit")(defect)))
          )
      } satisfies Applier
    })
})
