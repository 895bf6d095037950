/**
 * Schema changes of a replicated table: the difference between the columns a
 * target has and the columns a pgoutput Relation message announces (added,
 * dropped, retyped), whether a target dialect can follow it, and the DDL a
 * SQL target runs to follow it, in the same transaction as the rows after it.
 *
 * A rename reaches the stream as a drop of the old name and an add of the
 * new one (the Relation message carries names, not column numbers), and is
 * planned that way.
 *
 * @since 0.1.0
 */
import * as ApplyPlan from "./ApplyPlan.js"
import * as Types from "./Types.js"

/**
 * A column as a target has it: its name and its type, in the target's terms
 * (PostgreSQL: `format_type`'s text, `character varying(10)`; SQLite: the
 * declared type, `INTEGER`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ColumnShape {
  readonly name: string
  readonly type: string
}

/**
 * One column's change: added (with its new type), dropped (with its old
 * type), or retyped (old and new type). Types are in the target's terms (see
 * {@link ColumnShape}). An added column may carry `backfill`: the value the
 * source's existing rows have for it (a constant `DEFAULT` given to
 * `ADD COLUMN`), which a SQL target writes into its existing rows.
 *
 * @since 0.1.0
 * @category models
 */
export interface ColumnChange {
  readonly kind: "add" | "drop" | "type"
  readonly column: string
  readonly oldType: string | undefined
  readonly newType: string | undefined
  /** The new type's OID (add, type). */
  readonly typeOid: number | undefined
  readonly backfill?: { readonly value: unknown } | undefined
}

/**
 * A table's definition changed at this point of a transaction: the new
 * relation and its column changes. Rows after it carry the new shape.
 *
 * @since 0.1.0
 * @category models
 */
export interface SchemaChange<R extends ApplyPlan.Relation = ApplyPlan.Relation> {
  readonly _tag: "SchemaChange"
  readonly relation: R
  readonly columns: ReadonlyArray<ColumnChange>
}

const sameType = (dialect: Types.Dialect | undefined) =>
  dialect === "sqlite"
    ? (a: string, b: string) => a.toUpperCase() === b.toUpperCase()
    : (a: string, b: string) => a === b

const sqliteStorage = new Set(["INTEGER", "REAL", "TEXT", "BLOB"])

/**
 * What a diff may take as the source's doing: `dialect` (SQLite types
 * compare without case); `owned` (the rule created the target's tables, so
 * every target column and type is the source's); otherwise `source` (each
 * column the source is known to have had, with the target types it had): a
 * target column outside it is the target's own and never reported dropped,
 * and only a type the source had is reported changed. In SQLite only the
 * storage types (`INTEGER`, `REAL`, `TEXT`, `BLOB`) are taken as the source's.
 *
 * @since 0.1.0
 * @category models
 */
export interface DiffOptions {
  readonly dialect?: Types.Dialect | undefined
  readonly source?: ReadonlyMap<string, ReadonlySet<string>> | undefined
  readonly owned?: boolean | undefined
}

/**
 * The column changes from `before` (the target's columns) to `after` (the
 * source's, in the target's terms): drops first (in `before`'s order), then
 * type changes and adds (in `after`'s order). See {@link DiffOptions} for
 * the target columns and types that are left alone.
 *
 * @since 0.1.0
 * @category diff
 */
export const diff = (
  before: ReadonlyArray<ColumnShape>,
  after: ReadonlyArray<ColumnShape & { readonly typeOid: number }>,
  options: DiffOptions = {}
): ReadonlyArray<ColumnChange> => {
  const { dialect, source } = options
  const same = sameType(dialect)
  const fromSource = (column: ColumnShape) =>
    (dialect !== "sqlite" || sqliteStorage.has(column.type.toUpperCase())) &&
    (options.owned === true || source === undefined ||
      [...(source.get(column.name) ?? [])].some((type) => same(type, column.type)))
  const old = new Map(before.map((c) => [c.name, c]))
  const kept = new Set(after.map((c) => c.name))
  const changes: Array<ColumnChange> = []
  for (const column of before) {
    if (!kept.has(column.name) && (options.owned === true || source === undefined || source.has(column.name))) {
      changes.push({ kind: "drop", column: column.name, oldType: column.type, newType: undefined, typeOid: undefined })
    }
  }
  for (const column of after) {
    const was = old.get(column.name)
    if (!was) {
      changes.push({ kind: "add", column: column.name, oldType: undefined, newType: column.type, typeOid: column.typeOid })
    } else if (!same(was.type, column.type) && fromSource(was)) {
      changes.push({ kind: "type", column: column.name, oldType: was.type, newType: column.type, typeOid: column.typeOid })
    }
  }
  return changes
}

/**
 * Why a target dialect cannot follow a change, or undefined when it can:
 * SQLite cannot change a column's type (a change within one SQLite type, such
 * as `int4` to `int8` or `varchar(10)` to `text`, is no change there), and no
 * dialect drops a primary key column (upserts and deletes go by key).
 *
 * @since 0.1.0
 * @category diff
 */
export const refusal = (
  dialect: Types.Dialect | undefined,
  change: ColumnChange,
  key: ReadonlyArray<string>
): string | undefined => {
  if (change.kind === "drop" && key.includes(change.column)) return "a primary key column cannot be dropped on the target"
  if (change.kind === "type" && dialect === "sqlite") {
    return `SQLite cannot change a column's type (${change.oldType} to ${change.newType})`
  }
  return undefined
}

/**
 * The statements that make a SQL target's table (`table`, unqualified, as
 * the target created it) follow one column change: `ALTER TABLE … ADD
 * COLUMN` (then an `UPDATE` of the existing rows with the backfill value),
 * `DROP COLUMN`, or, in PostgreSQL, `ALTER COLUMN … TYPE … USING` a cast.
 *
 * @since 0.1.0
 * @category sql
 */
export const alter = (
  dialect: ApplyPlan.Dialect,
  table: string,
  change: ColumnChange
): ReadonlyArray<ApplyPlan.Statement> => {
  const target = ApplyPlan.quoteIdent(table)
  const column = ApplyPlan.quoteIdent(change.column)
  switch (change.kind) {
    case "add": {
      const add = { sql: `ALTER TABLE ${target} ADD COLUMN ${column} ${change.newType}`, params: [] }
      if (!change.backfill || change.backfill.value === null) return [add]
      const encode = dialect.encode(Types.columnType(change.typeOid ?? 25) ?? Types.columnType(25)!)
      return [add, {
        sql: `UPDATE ${target} SET ${column} = ${dialect.placeholder(1)}`,
        params: [encode(change.backfill.value)]
      }]
    }
    case "drop":
      return [{ sql: `ALTER TABLE ${target} DROP COLUMN ${column}`, params: [] }]
    case "type":
      // SQLite keeps its storage type (a type change there is refused or no change).
      return dialect.name === "pg"
        ? [{ sql: `ALTER TABLE ${target} ALTER COLUMN ${column} TYPE ${change.newType} USING ${column}::${change.newType}`, params: [] }]
        : []
  }
}

/**
 * The statement that reads a target table's columns in order (a row per
 * column with `name` and `type`; none when the table does not exist).
 *
 * @since 0.1.0
 * @category sql
 */
export const readColumns = (dialect: ApplyPlan.Dialect, table: string): ApplyPlan.Statement =>
  dialect.name === "pg"
    ? {
      sql: `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      params: [ApplyPlan.quoteIdent(table)]
    }
    : { sql: "SELECT name, type FROM pragma_table_info(?) ORDER BY cid", params: [table] }

/**
 * A target's type for a source column: PostgreSQL takes the source's own
 * type (`formatted`) unless the rule's type registry resolves it to another
 * (an enum's `text`, a domain's base type), SQLite the mapped storage type
 * (see `Types`). Without a registry, the built-in types only.
 *
 * @since 0.1.0
 * @category diff
 */
export const targetType = (
  dialect: Types.Dialect | undefined,
  column: { readonly typeOid: number; readonly formatted: string },
  registry: Types.Registry = Types.builtins
): string => {
  if (dialect === undefined) return column.formatted
  const type = registry.columnType(column.typeOid) ?? Types.builtins.columnType(25)!
  return ApplyPlan.dialects[dialect].columnType({ name: "", ...column }, type)
}

/** The table after a schema change: the relation's columns, each with its target type. */
const nextTable = (table: ApplyPlan.Table, change: SchemaChange): ApplyPlan.Table => ({
  ...table,
  columns: change.relation.columns.map((c) => ({
    name: c.name,
    typeOid: c.typeOid,
    formatted: change.columns.find((x) => x.column === c.name)?.newType ??
      table.columns.find((x) => x.name === c.name)?.formatted ?? "text"
  }))
})

/**
 * The statements of a transaction's changes where schema changes may stand
 * between the rows: each run of row changes is planned by `plan`, each schema
 * change becomes its DDL, and `plan` learns the table's new columns before the
 * rows that follow it.
 *
 * @since 0.1.0
 * @category sql
 */
export const statements = (
  plan: ApplyPlan.Plan,
  dialect: ApplyPlan.Dialect,
  changes: ReadonlyArray<ApplyPlan.RowChange | SchemaChange>
): Array<ApplyPlan.Statement> => {
  if (!changes.some((c) => c._tag === "SchemaChange")) return plan.changes(changes as ReadonlyArray<ApplyPlan.RowChange>)
  const out: Array<ApplyPlan.Statement> = []
  let run: Array<ApplyPlan.RowChange> = []
  for (const change of changes) {
    if (change._tag !== "SchemaChange") {
      run.push(change)
      continue
    }
    out.push(...plan.changes(run))
    run = []
    const table = plan.table(change.relation)
    if (!table) continue
    for (const column of change.columns) out.push(...alter(dialect, table.table, column))
    plan.alter(nextTable(table, change))
  }
  out.push(...plan.changes(run))
  return out
}
