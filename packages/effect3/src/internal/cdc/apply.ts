/** @internal */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import * as ApplyPlan from "@effect-sql-router/core/cdc/ApplyPlan"
import type { Begin, Commit } from "@effect-sql-router/core/cdc/Changes"
import { formatLsn, parseLsn } from "@effect-sql-router/core/cdc/Changes"
import * as Snapshot from "@effect-sql-router/core/cdc/Snapshot"
import * as Schema from "@effect-sql-router/core/cdc/Schema"
import * as Types from "@effect-sql-router/core/cdc/Types"
import type { Relation, RowChange, SqlTargetOptions, Target, Transaction } from "../../Cdc.js"
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
  /** `resnapshot` requests the target kept, no session having taken them (tables as the rule names them). */
  readonly resnapshotRequested: ReadonlyArray<string>
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

/** A table's snapshot moved on (`after`: its last copied key), is done, or a request was taken. @internal */
export type ProgressUpdate = Snapshot.ProgressUpdate

/** @internal */
export type Open = (rule: string, tables: ReadonlyArray<TableInfo>) => Effect.Effect<Applier, TargetError, Scope.Scope>

/**
 * Keeps `resnapshot` requests of a rule (tables as the rule names them) on
 * the target until a session takes them; nothing for a sink, which keeps no
 * state of its own.
 * @internal
 */
export type Request = (rule: string, tables: ReadonlyArray<string>) => Effect.Effect<void, TargetError>

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
          Effect.catchAllDefect((defect) => Effect.fail(targetError("sink")(defect)))
        )
      return {
        appliedLsn: undefined,
        durableState: false,
        snapshotPending: undefined,
        resnapshotRequested: [],
        recordProgress: () => Effect.void,
        dialect: undefined,
        columns: new Map(),
        owned: false,
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
    }),
  request: () => Effect.void
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

/** The target's dialect: PostgreSQL or SQLite, else a typed failure naming `operation`. */
const dialectOf = (sql: SqlClient.SqlClient, operation: string) => {
  const name = sql.onDialectOrElse({
    pg: () => "pg" as const,
    sqlite: () => "sqlite" as const,
    orElse: () => undefined
  })
  return name === undefined
    ? Effect.fail(new TargetError({ operation, reason: "only PostgreSQL and SQLite clients are supported as targets" }))
    : Effect.succeed(name)
}

/** `resnapshot` requests kept on a SQL target: every request of the call, or none, in one target transaction. */
const requestOn = (sql: SqlClient.SqlClient, options: SqlTargetOptions): Request => (rule, tables) =>
  Effect.gen(function*() {
    const dialect = ApplyPlan.dialects[yield* dialectOf(sql, "resnapshot")]
    const plan = Snapshot.progressPlan(dialect, rule, options.stateTable)
    const run = (statement: ApplyPlan.Statement) => sql.unsafe(statement.sql, statement.params as Array<unknown>)
    yield* sql.withTransaction(
      Effect.zipRight(run(plan.createRequests), Effect.forEach(tables, (table) => run(plan.request(table)), { discard: true }))
    ).pipe(
      Effect.mapError(targetError("resnapshot")),
      Effect.catchAllDefect((defect) => Effect.fail(targetError("resnapshot")(defect)))
    )
  })

/** What a named statement needs of pg's own client. */
interface PgQueryable {
  readonly query: (
    config: { readonly name: string | undefined; readonly text: string; readonly values: Array<unknown> },
    callback: (error: Error | null) => void
  ) => unknown
}

// One namer per pg connection, shared by every rule whose target runs on it:
// a name must not stand for two texts on one connection.
const namesByConnection = new WeakMap<object, (sql: string) => string | undefined>()

/** pg's own client under the current transaction, when @effect/sql-pg opened it (its connection keeps it as `pg`). */
const pgOfTransaction: Effect.Effect<PgQueryable | undefined> = Effect.map(
  Effect.serviceOption(SqlClient.TransactionConnection),
  (found) => {
    const pg = found._tag === "Some" ? (found.value[0] as { readonly pg?: unknown }).pg : undefined
    return typeof pg === "object" && pg !== null && typeof (pg as Partial<PgQueryable>).query === "function"
      ? pg as PgQueryable
      : undefined
  }
)

/**
 * Runs a change statement of a target transaction as a named statement of
 * pg's own client: @effect/sql-pg sends every statement unnamed, so the
 * server parsed and planned each multi-row upsert again (half the Effect 4
 * line's rate, whose native driver names them). Other clients, and
 * connections that are not pg's, go through `unnamed`. Not interruptible
 * mid-statement: the transaction's ROLLBACK queues behind it.
 */
const runPrepared = (unnamed: (statement: ApplyPlan.Statement) => Effect.Effect<unknown, SqlError>) =>
(statement: ApplyPlan.Statement): Effect.Effect<unknown, SqlError> =>
  Effect.flatMap(pgOfTransaction, (pg) => {
    if (pg === undefined) return unnamed(statement)
    let names = namesByConnection.get(pg)
    if (names === undefined) namesByConnection.set(pg, names = ApplyPlan.makeStatementNames())
    const config = { name: names(statement.sql), text: statement.sql, values: statement.params as Array<unknown> }
    return Effect.async<unknown, SqlError>((resume) => {
      pg.query(config, (error) => {
        resume(error ? Effect.fail(new SqlError({ cause: error, message: "Failed to execute statement" })) : Effect.void)
      })
    })
  })

/** @internal */
export const sqlTarget = (sql: SqlClient.SqlClient, options: SqlTargetOptions = {}): Target => ({
  _tag: "SqlTarget",
  request: requestOn(sql, options),
  open: (rule, tables) =>
    Effect.gen(function*() {
      const name = yield* dialectOf(sql, "open")
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
      const progressPlan = Snapshot.progressPlan(dialect, rule, options.stateTable)
      yield* run(progressPlan.create).pipe(Effect.mapError(targetError("create state table")))
      yield* run(progressPlan.createRequests).pipe(Effect.mapError(targetError("create state table")))
      const pending = yield* run(progressPlan.read).pipe(Effect.mapError(targetError("read state")))
      const requested = yield* run(progressPlan.readRequests).pipe(Effect.mapError(targetError("read state")))
      const recordProgress = (progress: ReadonlyArray<ProgressUpdate>) =>
        Effect.forEach(progress, (update) => run(Snapshot.progressStatement(progressPlan, update)), { discard: true })
          .pipe(Effect.mapError(targetError("apply")))
      const columns = new Map<string, ReadonlyArray<Schema.ColumnShape>>()
      for (const table of tables) {
        const found = yield* run(Schema.readColumns(dialect, table.table)).pipe(Effect.mapError(targetError("read columns")))
        if (found.length > 0) columns.set(`${table.schema}.${table.table}`, found as ReadonlyArray<Schema.ColumnShape>)
      }

      const appliedLsn = state ? parseLsn(ApplyPlan.parseState(String((state as { lsn: unknown }).lsn)).lsn) : undefined
      // The last whole source transaction the target recorded (a partial record keeps it).
      let whole = appliedLsn === undefined ? undefined : formatLsn(appliedLsn)
      const runChange = name === "pg" && (options.prepare ?? true) ? runPrepared(run) : run
      const runAll = (changes: ReadonlyArray<RowChange>) =>
        Effect.forEach(Schema.statements(plan, dialect, changes), runChange, { discard: true }).pipe(Effect.mapError(targetError("apply")))
      const record = (endLsn: string) => Effect.mapError(run(plan.recordState(endLsn)), targetError("apply"))
      const recordPartial = (begin: Begin) =>
        Effect.mapError(run(plan.recordPartial(whole, formatLsn(parseLsn(begin.lsn)))), targetError("apply"))
      // BEGIN, COMMIT or ROLLBACK failed; a failed COMMIT may even be a defect: a target failure either way.
      const inTransaction = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E | TargetError> =>
        sql.withTransaction(effect).pipe(
          Effect.catchIf((error): error is SqlError => error instanceof SqlError, (error) => Effect.fail(targetError("commit")(error))),
          Effect.catchAllDefect((defect) => Effect.fail(targetError("commit")(defect)))
        )
      // Changes and the record of `endLsn` in one target transaction; `whole` moves once it committed.
      const applyWhole = <A, E>(effect: Effect.Effect<A, E>, endLsn: string) => {
        const lsn = formatLsn(parseLsn(endLsn))
        return inTransaction(Effect.zipLeft(effect, record(lsn))).pipe(Effect.tap(() => {
          whole = lsn
        }))
      }

      return {
        appliedLsn,
        durableState: true,
        snapshotPending: pending.map((row) => Snapshot.readProgress(row as { tbl: unknown; after: unknown })),
        resnapshotRequested: requested.map((row) => String((row as { tbl: unknown }).tbl)),
        recordProgress: (progress, lsn) =>
          inTransaction(
            Effect.zipRight(
              recordProgress(progress),
              lsn === undefined ? Effect.void : record(formatLsn(lsn))
            )
          ).pipe(Effect.tap(() =>
            Effect.sync(() => {
              if (lsn !== undefined) whole = formatLsn(lsn)
            })
          )),
        dialect: name,
        columns,
        owned: options.createTables ?? true,
        apply: (transaction, progress = []) =>
          applyWhole(
            Effect.zipRight(runAll(transaction.changes), recordProgress(progress)),
            transaction.endLsn
          ),
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
              .pipe(Effect.tap((commit) => {
                whole = formatLsn(parseLsn(commit.endLsn))
              }))
          }
          // Each batch commits with a record that the source transaction is partial:
          // a restart resumes after the last whole one and applies it again.
          return Effect.gen(function*() {
            yield* inTransaction(Effect.zipRight(runAll(first), recordPartial(begin)))
            for (;;) {
              const { changes, commit } = yield* next
              if (commit) return yield* Effect.as(applyWhole(runAll(changes), commit.endLsn), commit)
              yield* inTransaction(Effect.zipRight(runAll(changes), recordPartial(begin)))
            }
          })
        }
      } satisfies Applier
    })
})
