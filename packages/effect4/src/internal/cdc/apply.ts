/** @internal */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Sink from "effect/Sink"
import type * as SqlClient from "effect/sql/SqlClient"
import * as SqlError from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import * as ApplyPlan from "@effect-sql-router/core/cdc/ApplyPlan"
import type { Begin, Commit } from "@effect-sql-router/core/cdc/Changes"
import { formatLsn, parseLsn } from "@effect-sql-router/core/cdc/Changes"
import * as Types from "@effect-sql-router/core/cdc/Types"
import type { Relation, RowChange, SqlTargetOptions, Target, Transaction } from "../../Cdc.js"
import { TargetError, UnsupportedType } from "./errors.js"
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
  readonly apply: (transaction: Transaction) => Effect.Effect<void, TargetError>
  /**
   * Applies a source transaction too large to hold: `first` is its first
   * batch, `next` reads the following ones until the part that carries the
   * commit. Never retried (the batches are gone): a failure ends the session.
   */
  readonly stream: <E>(
    begin: Begin,
    atomicity: Atomicity,
    first: ReadonlyArray<RowChange>,
    next: Effect.Effect<Part, E>
  ) => Effect.Effect<Commit, TargetError | E>
}

/** What the target sees of a streamed source transaction: whole (`transaction`) or batch by batch (`batch`). @internal */
export type Atomicity = "transaction" | "batch"

/** One batch of a streamed source transaction, the last with its commit. @internal */
export interface Part {
  readonly changes: ReadonlyArray<RowChange>
  readonly commit: Commit | undefined
}

/** @internal */
export type Open = (rule: string, tables: ReadonlyArray<TableInfo>) => Effect.Effect<Applier, TargetError, Scope.Scope>

// `describe` finds the driver's error under an effect/sql failure's reason.
const targetError = (operation: string) => (cause: unknown) =>
  new TargetError({ operation, reason: describe(cause), cause })

/** @internal */
export const sinkTarget = <E>(sink: Sink.Sink<unknown, Transaction, unknown, E>): Target => ({
  _tag: "SinkTarget",
  open: () =>
    Effect.sync(() => {
      const apply = (transaction: Transaction) =>
        Stream.run(Stream.succeed(transaction), sink).pipe(
          Effect.asVoid,
          Effect.mapError(targetError("sink")),
          Effect.catchDefect((defect) => Effect.fail(targetError("sink")(defect)))
        )
      return {
        appliedLsn: undefined,
        durableState: false,
        apply,
        // Each part goes through the sink as it is read: a sink has no transaction to hold them in.
        stream: <E2>(begin: Begin, _atomicity: Atomicity, first: ReadonlyArray<RowChange>, next: Effect.Effect<Part, E2>) =>
          Effect.gen(function*() {
            const { commitTime, lsn, xid } = begin
            const part = (index: number, changes: ReadonlyArray<RowChange>, commit: Commit | undefined): Transaction => ({
              xid,
              lsn,
              endLsn: commit?.endLsn ?? lsn,
              commitTime,
              changes,
              snapshot: false,
              part: { index, last: commit !== undefined }
            })
            yield* apply(part(0, first, undefined))
            for (let index = 1;; index++) {
              const { changes, commit } = yield* next
              yield* apply(part(index, changes, commit))
              if (commit) return commit
            }
          })
      } satisfies Applier
    })
})

/** Checks a relation as it arrives in the stream: a new column may have a type we cannot take. @internal */
export const checkRelation = (relation: Relation): Effect.Effect<void, UnsupportedType> => {
  for (const column of relation.columns) {
    if (!Types.isSupported(column.typeOid)) {
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
      const plan = ApplyPlan.makePlan(ApplyPlan.dialects[name], rule, tables, options.stateTable)
      const run = (statement: ApplyPlan.Statement) => sql.unsafe(statement.sql, statement.params as Array<unknown>)

      if (options.createTables ?? true) {
        for (const statement of plan.createTables()) {
          yield* run(statement).pipe(Effect.mapError(targetError("create table")))
        }
      }
      yield* run(plan.createStateTable).pipe(Effect.mapError(targetError("create state table")))
      const [state] = yield* run(plan.readState).pipe(Effect.mapError(targetError("read state")))

      const appliedLsn = state ? parseLsn(ApplyPlan.parseState(String((state as { lsn: unknown }).lsn)).lsn) : undefined
      // The last whole source transaction the target recorded (a partial record keeps it).
      let whole = appliedLsn === undefined ? undefined : formatLsn(appliedLsn)
      const runAll = (changes: ReadonlyArray<RowChange>) =>
        Effect.forEach(plan.changes(changes), run, { discard: true }).pipe(Effect.mapError(targetError("apply")))
      const record = (endLsn: string) => Effect.mapError(run(plan.recordState(endLsn)), targetError("apply"))
      const recordPartial = (begin: Begin) =>
        Effect.mapError(run(plan.recordPartial(whole, formatLsn(parseLsn(begin.lsn)))), targetError("apply"))
      // BEGIN, COMMIT or ROLLBACK failed; a failed COMMIT may even be a defect: a target failure either way.
      const inTransaction = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E | TargetError> =>
        sql.withTransaction(effect).pipe(
          Effect.catchIf((error): error is SqlError.SqlError => SqlError.isSqlError(error), (error) => Effect.fail(targetError("commit")(error))),
          Effect.catchDefect((defect) => Effect.fail(targetError("commit")(defect)))
        )
      // Changes and the record of `endLsn` in one target transaction; `whole` moves once it committed.
      const applyWhole = <A, E>(effect: Effect.Effect<A, E>, endLsn: string) => {
        const lsn = formatLsn(parseLsn(endLsn))
        return inTransaction(Effect.tap(effect, () => record(lsn))).pipe(Effect.tap(() =>
          Effect.sync(() => {
            whole = lsn
          })
        ))
      }

      return {
        appliedLsn,
        durableState: true,
        apply: (transaction) => applyWhole(runAll(transaction.changes), transaction.endLsn),
        stream: <E>(begin: Begin, atomicity: Atomicity, first: ReadonlyArray<RowChange>, next: Effect.Effect<Part, E>) => {
          if (atomicity === "transaction") {
            // Every batch in one target transaction, committed with the source commit.
            const batches = Effect.gen(function*() {
              yield* runAll(first)
              for (;;) {
                const { changes, commit } = yield* next
                yield* runAll(changes)
                if (commit) return commit
              }
            })
            return inTransaction(Effect.flatMap(batches, (commit) => Effect.as(record(formatLsn(parseLsn(commit.endLsn))), commit)))
              .pipe(Effect.tap((commit) =>
                Effect.sync(() => {
                  whole = formatLsn(parseLsn(commit.endLsn))
                })
              ))
          }
          // Each batch commits with a record that the source transaction is partial:
          // a restart resumes after the last whole one and applies it again.
          return Effect.gen(function*() {
            yield* inTransaction(Effect.andThen(runAll(first), recordPartial(begin)))
            for (;;) {
              const { changes, commit } = yield* next
              if (commit) return yield* Effect.as(applyWhole(runAll(changes), commit.endLsn), commit)
              yield* inTransaction(Effect.andThen(runAll(changes), recordPartial(begin)))
            }
          })
        }
      } satisfies Applier
    })
})
