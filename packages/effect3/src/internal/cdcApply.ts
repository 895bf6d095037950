/** @internal */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Sink from "effect/Sink"
import * as Stream from "effect/Stream"
import type { Relation, Row, RowChange, SqlTargetOptions, Target, Transaction } from "../Cdc.js"
import { TargetError, UnsupportedType } from "../Cdc.js"
import type { TableInfo } from "./cdcReplication.js"
import { formatLsn, parseLsn, quoteIdent } from "./cdcReplication.js"
import * as Types from "@effect-sql-router/core/cdc/Types"
import { describe } from "./errors.js"

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
}

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
      apply: (transaction) =>
        Stream.run(Stream.succeed(transaction), sink).pipe(
          Effect.asVoid,
          Effect.mapError(targetError("sink")),
          Effect.catchAllDefect((defect) => Effect.fail(targetError("sink")(defect)))
        )
    })
})

/** The SQL a target dialect needs. @internal */
interface Dialect {
  readonly name: Types.Dialect
  readonly placeholder: (index: number) => string
  readonly encode: (type: Types.ColumnType) => (value: unknown) => unknown
  readonly columnType: (column: TableInfo["columns"][number], type: Types.ColumnType) => string
}

const dialects: Record<Types.Dialect, Dialect> = {
  pg: {
    name: "pg",
    placeholder: (i) => `$${i}`,
    encode: (type) => type.toPg,
    // The source's own type, typmod included (numeric(12,2), varchar(20), int4[]).
    columnType: (column) => column.formatted
  },
  sqlite: {
    name: "sqlite",
    placeholder: () => "?",
    encode: (type) => type.toSqlite,
    columnType: (_, type) => type.sqliteType
  }
}

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
      const dialect = dialects[name]
      const stateTable = quoteIdent(options.stateTable ?? "effect_sql_router_cdc")
      const run = (text: string, params: ReadonlyArray<unknown> = []) => sql.unsafe(text, params as Array<unknown>)

      if (options.createTables ?? true) {
        for (const table of tables) {
          const columns = table.columns.map((c) => `${quoteIdent(c.name)} ${dialect.columnType(c, Types.columnType(c.typeOid)!)}`)
          yield* run(
            `CREATE TABLE IF NOT EXISTS ${quoteIdent(table.table)} (${columns.join(", ")}, PRIMARY KEY (${
              table.key.map(quoteIdent).join(", ")
            }))`
          ).pipe(Effect.mapError(targetError("create table")))
        }
      }
      yield* run(`CREATE TABLE IF NOT EXISTS ${stateTable} (rule TEXT PRIMARY KEY, lsn TEXT NOT NULL)`).pipe(
        Effect.mapError(targetError("create state table"))
      )
      const [state] = yield* run(`SELECT lsn FROM ${stateTable} WHERE rule = ${dialect.placeholder(1)}`, [rule]).pipe(
        Effect.mapError(targetError("read state"))
      )
      const byName = new Map(tables.map((t) => [`${t.schema}.${t.table}`, t]))
      const tableOf = (relation: Relation) => byName.get(`${relation.schema}.${relation.table}`)

      const applyChange = (change: RowChange) => {
        if (change._tag === "Truncate") {
          return Effect.forEach(change.relations, (relation) => {
            const table = tableOf(relation)
            return table ? run(`DELETE FROM ${quoteIdent(table.table)}`) : Effect.void
          }, { discard: true })
        }
        const table = tableOf(change.relation)
        if (!table) return Effect.void
        switch (change._tag) {
          case "Insert":
            return upsert(table, change.relation, change.row)
          case "Update":
            return keyChanged(table, change.key, change.row)
              ? Effect.zipRight(remove(table, change.relation, change.key), upsert(table, change.relation, change.row))
              : upsert(table, change.relation, change.row)
          case "Delete":
            return remove(table, change.relation, change.key)
        }
      }

      const encoderOf = (relation: Relation, column: string) => {
        const type = relation.columns.find((c) => c.name === column)
        return dialect.encode(Types.columnType(type?.typeOid ?? 25)!)
      }

      const upsert = (table: TableInfo, relation: Relation, row: Row) => upsertMany(table, relation, presentColumns(row), [row])

      /** One `INSERT … VALUES (…), (…) ON CONFLICT` for rows with the same columns and distinct keys. */
      const upsertMany = (table: TableInfo, relation: Relation, columns: ReadonlyArray<string>, rows: ReadonlyArray<Row>) => {
        const encoders = columns.map((c) => encoderOf(relation, c))
        const params: Array<unknown> = []
        const tuples = rows.map((row) =>
          `(${
            columns.map((c, i) => {
              params.push(encoders[i]!(row[c]))
              return dialect.placeholder(params.length)
            }).join(", ")
          })`
        )
        const updates = columns.filter((c) => !table.key.includes(c)).map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`)
        return run(
          `INSERT INTO ${quoteIdent(table.table)} (${columns.map(quoteIdent).join(", ")}) VALUES ${tuples.join(", ")} ON CONFLICT (${
            table.key.map(quoteIdent).join(", ")
          }) ${updates.length === 0 ? "DO NOTHING" : `DO UPDATE SET ${updates.join(", ")}`}`,
          params
        )
      }

      /**
       * Runs of upserts into one table become multi-row statements (one
       * round trip instead of one per row). A run ends at any other change,
       * another table or column set, a key already in the run (one statement
       * cannot upsert a row twice), or the size cap. Only keys whose text is
       * their identity (integers, text, uuid) are batched: for numeric or
       * timestamp keys two spellings of one value could meet in one statement.
       */
      const applyChanges = (changes: ReadonlyArray<RowChange>) => {
        const statements: Array<Effect.Effect<unknown, unknown>> = []
        let pending: { table: TableInfo; relation: Relation; columns: ReadonlyArray<string>; rows: Array<Row>; keys: Set<string> } | undefined
        const flush = () => {
          if (pending) statements.push(upsertMany(pending.table, pending.relation, pending.columns, pending.rows))
          pending = undefined
        }
        for (const change of changes) {
          const table = change._tag === "Truncate" ? undefined : tableOf(change.relation)
          const batchable = table !== undefined && batchableKeys.has(table) &&
            (change._tag === "Insert" || (change._tag === "Update" && !keyChanged(table, change.key, change.row)))
          if (!batchable) {
            flush()
            statements.push(applyChange(change))
            continue
          }
          const row = (change as { row: Row }).row
          const columns = presentColumns(row)
          const key = table.key.map((c) => String(row[c])).join("\u0000")
          if (
            pending && (pending.relation !== (change as { relation: Relation }).relation || pending.table !== table ||
              !sameColumns(pending.columns, columns) || pending.keys.has(key) ||
              (pending.rows.length + 1) * columns.length > maxParameters)
          ) flush()
          if (!pending) pending = { table, relation: (change as { relation: Relation }).relation, columns, rows: [], keys: new Set() }
          pending.rows.push(row)
          pending.keys.add(key)
        }
        flush()
        return Effect.forEach(statements, (statement) => statement, { discard: true })
      }
      const batchableKeys = new Set(
        tables.filter((t) => t.key.every((k) => textIsIdentity.has(t.columns.find((c) => c.name === k)!.typeOid)))
      )

      const remove = (table: TableInfo, relation: Relation, key: Row) =>
        run(
          `DELETE FROM ${quoteIdent(table.table)} WHERE ${
            table.key.map((c, i) => `${quoteIdent(c)} = ${dialect.placeholder(i + 1)}`).join(" AND ")
          }`,
          table.key.map((c) => encoderOf(relation, c)(key[c]))
        )

      const recordState = (lsn: string) =>
        run(
          `INSERT INTO ${stateTable} (rule, lsn) VALUES (${dialect.placeholder(1)}, ${dialect.placeholder(2)})
           ON CONFLICT (rule) DO UPDATE SET lsn = excluded.lsn`,
          [rule, lsn]
        )

      return {
        appliedLsn: state ? parseLsn(String((state as { lsn: unknown }).lsn)) : undefined,
        durableState: true,
        apply: (transaction) =>
          applyChanges(transaction.changes).pipe(
            Effect.zipRight(recordState(formatLsn(parseLsn(transaction.endLsn)))),
            sql.withTransaction,
            Effect.mapError(targetError("apply")),
            // @effect/sql turns a failed COMMIT into a defect: it is a target failure.
            Effect.catchAllDefect((defect) => Effect.fail(targetError("commit")(defect)))
          )
      } satisfies Applier
    })
})

// An unchanged TOAST value is absent: leave the target's value alone.
const presentColumns = (row: Row): ReadonlyArray<string> => Object.keys(row).filter((c) => row[c] !== undefined)

const sameColumns = (a: ReadonlyArray<string>, b: ReadonlyArray<string>) =>
  a.length === b.length && a.every((c, i) => c === b[i])

// int2, int4, int8, text, varchar, uuid (the server prints uuids one way).
const textIsIdentity = new Set([21, 23, 20, 25, 1043, 2950])

// Below SQLite's default limit of bound parameters (32 766), far below PostgreSQL's (65 535).
const maxParameters = 30_000

const keyChanged = (table: TableInfo, key: Row, row: Row): boolean =>
  table.key.some((c) => key[c] !== undefined && !sameValue(key[c], row[c]))

const sameValue = (a: unknown, b: unknown): boolean =>
  a instanceof Uint8Array && b instanceof Uint8Array ? Buffer.compare(a, b) === 0 : a === b
