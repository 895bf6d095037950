/**
 * What a SQL target runs for a source transaction, as statement text and
 * bind parameters: the target tables and the state table, upserts on the
 * primary key (several rows in one statement where that is safe), deletes by
 * key (several keys in one statement), a truncate as a `DELETE`, and the
 * record of the last applied LSN (with the source transaction partly applied,
 * when a large one is committed in batches). Each Effect line runs the
 * statements of a source transaction, or of one of its batches, in one target
 * transaction.
 *
 * @since 0.1.0
 */
import * as Types from "./Types.js"

/**
 * A row, by column name; `undefined` is an unchanged TOAST value (the target
 * keeps what it has).
 *
 * @since 0.1.0
 * @category models
 */
export type Row = Readonly<Record<string, unknown>>

/**
 * A column as the change stream describes it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Column {
  readonly name: string
  readonly typeOid: number
}

/**
 * The table a change belongs to, as the change stream describes it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Relation {
  readonly schema: string
  readonly table: string
  readonly columns: ReadonlyArray<Column>
}

/**
 * A source table as the catalog describes it: its columns with their
 * formatted types (`numeric(12,2)`, `int4[]`) and its primary key, in key
 * order.
 *
 * @since 0.1.0
 * @category models
 */
export interface Table {
  readonly schema: string
  readonly table: string
  readonly columns: ReadonlyArray<Column & { readonly formatted: string }>
  readonly key: ReadonlyArray<string>
  /** How the columns' type OIDs resolve (enums, domains, text pass-through); the built-in types when absent. */
  readonly types?: Types.Registry | undefined
}

/**
 * A row change inside a source transaction, as far as a target needs it.
 *
 * @since 0.1.0
 * @category models
 */
export type RowChange<R extends Relation = Relation> =
  | { readonly _tag: "Insert"; readonly relation: R; readonly row: Row }
  | { readonly _tag: "Update"; readonly relation: R; readonly row: Row; readonly key: Row }
  | { readonly _tag: "Delete"; readonly relation: R; readonly key: Row }
  | { readonly _tag: "Truncate"; readonly relations: ReadonlyArray<R> }

/**
 * One statement for the target: SQL text and its bind parameters.
 *
 * @since 0.1.0
 * @category models
 */
export interface Statement {
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
}

/**
 * The SQL a target dialect needs: its placeholders, how a value is bound,
 * and the column type of a created table.
 *
 * @since 0.1.0
 * @category models
 */
export interface Dialect {
  readonly name: Types.Dialect
  readonly placeholder: (index: number) => string
  readonly encode: (type: Types.ColumnType) => (value: unknown) => unknown
  readonly columnType: (
    column: Table["columns"][number],
    type: Types.ColumnType & { readonly pgType?: string | undefined }
  ) => string
}

/**
 * The target dialects, by name.
 *
 * @since 0.1.0
 * @category dialects
 */
export const dialects: Readonly<Record<Types.Dialect, Dialect>> = {
  pg: {
    name: "pg",
    placeholder: (i) => `$${i}`,
    encode: (type) => type.toPg,
    // The source's own type, typmod included (numeric(12,2), varchar(20), int4[]),
    // unless resolving it said otherwise (a domain's base type, an enum's text).
    columnType: (column, type) => type.pgType ?? column.formatted
  },
  sqlite: {
    name: "sqlite",
    placeholder: () => "?",
    encode: (type) => type.toSqlite,
    columnType: (_, type) => type.sqliteType
  }
}

/**
 * An identifier quoted for SQL (`"a""b"`), in both dialects.
 *
 * @since 0.1.0
 * @category sql
 */
export const quoteIdent = (name: string): string => `"${name.replace(/"/g, "\"\"")}"`

/**
 * The state table's name when none is given.
 *
 * @since 0.1.0
 * @category sql
 */
export const defaultStateTable = "effect_sql_router_cdc"

/**
 * The statements of one rule's SQL target, planned once when the target
 * opens (`tables` are the rule's tables).
 *
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  /** `CREATE TABLE IF NOT EXISTS` for each table, with the dialect's column types (every type supported). */
  readonly createTables: () => ReadonlyArray<Statement>
  readonly createStateTable: Statement
  /** Reads the last applied LSN of the rule (a row with `lsn`, or none). */
  readonly readState: Statement
  /** Records `lsn` as the last applied LSN of the rule. */
  readonly recordState: (lsn: string) => Statement
  /**
   * Records that the source transaction committed at `partial` is partly
   * applied (atomicity `"batch"`), while `lsn` stays the last whole one: see
   * {@link parseState}.
   */
  readonly recordPartial: (lsn: string | undefined, partial: string) => Statement
  /** The statements that apply a transaction's changes, in order. */
  readonly changes: (changes: ReadonlyArray<RowChange>) => Array<Statement>
  /** The rule's table a relation stands for, as the plan knows it now. */
  readonly table: (relation: Relation) => Table | undefined
  /** Learns a table's new columns after a schema change (see `Schema.statements`). */
  readonly alter: (table: Table) => void
}

// int2, int4, int8, text, varchar, uuid (the server prints uuids one way).
const textIsIdentity = new Set([21, 23, 20, 25, 1043, 2950])

/**
 * Upserts and deletes batched into one statement bind at most this many
 * parameters: below the limit of bound parameters of the SQLite that
 * better-sqlite3 bundles (`SQLITE_MAX_VARIABLE_NUMBER`, 32 766), far below
 * PostgreSQL's (65 535).
 *
 * @since 0.1.0
 * @category sql
 */
export const maxParameters = 30_000

/**
 * The columns an upsert writes: an unchanged TOAST value is absent, and the
 * target's value is left alone.
 *
 * @since 0.1.0
 * @category rows
 */
export const presentColumns = (row: Row): ReadonlyArray<string> => Object.keys(row).filter((c) => row[c] !== undefined)

/** True when `row`'s present columns are `columns`, in order (without listing them: this runs per change). */
const hasColumns = (row: Row, columns: ReadonlyArray<string>): boolean => {
  let i = 0
  for (const column in row) {
    if (row[column] === undefined) continue
    if (columns[i++] !== column) return false
  }
  return i === columns.length
}

/** A row's key as one string, to find a key already in a run. */
const keyText = (table: Table, row: Row): string =>
  table.key.length === 1 ? String(row[table.key[0]!]) : table.key.map((c) => String(row[c])).join("\u0000")

const sameValue = (a: unknown, b: unknown): boolean =>
  a instanceof Uint8Array && b instanceof Uint8Array ? Buffer.compare(a, b) === 0 : a === b

/**
 * True when an update moved the row to another primary key: the target
 * deletes the old key, then upserts the row.
 *
 * @since 0.1.0
 * @category rows
 */
export const keyChanged = (table: Pick<Table, "key">, key: Row, row: Row): boolean =>
  table.key.some((c) => key[c] !== undefined && !sameValue(key[c], row[c]))

/** What planning a rule's changes needs: the dialect and the rule's tables (replaced by a schema change). */
interface Planner {
  readonly dialect: Dialect
  readonly byName: Map<string, Table>
  /** The tables whose upserts may share a statement. */
  readonly batchableKeys: Set<Table>
  /** Multi-row upsert texts by table, then columns and row count: built once, bound many times. */
  readonly upsertTexts: Map<Table, Map<string, string>>
}

// Texts kept per table before its cache starts over (run sizes and column sets are few in practice).
const maxUpsertTexts = 512

// Only keys whose text is their identity (integers, text, uuid) are
// batched: for numeric or timestamp keys two spellings of one value could
// meet in one statement.
const batchable = (t: Table) => t.key.every((k) => textIsIdentity.has(t.columns.find((c) => c.name === k)?.typeOid ?? 0))

const makePlanner = (dialect: Dialect, tables: ReadonlyArray<Table>): Planner => ({
  dialect,
  byName: new Map(tables.map((t) => [`${t.schema}.${t.table}`, t])),
  batchableKeys: new Set(tables.filter(batchable)),
  upsertTexts: new Map()
})

const alterPlanner = (planner: Planner, table: Table): void => {
  const name = `${table.schema}.${table.table}`
  const old = planner.byName.get(name)
  if (old) {
    planner.batchableKeys.delete(old)
    planner.upsertTexts.delete(old)
  }
  planner.byName.set(name, table)
  if (batchable(table)) planner.batchableKeys.add(table)
}

const tableOf = (planner: Planner, relation: Relation) => planner.byName.get(`${relation.schema}.${relation.table}`)

const typesOf = (table: Table): Types.Registry => table.types ?? Types.builtins

const encoderOf = (dialect: Dialect, table: Table, relation: Relation, column: string) => {
  const type = relation.columns.find((c) => c.name === column)
  return dialect.encode(typesOf(table).columnType(type?.typeOid ?? 25) ?? Types.columnType(25)!)
}

/** `CREATE TABLE IF NOT EXISTS` with the dialect's column types and the source's primary key. */
const createTable = (dialect: Dialect, table: Table): Statement => {
  const types = typesOf(table)
  const columns = table.columns.map((c) => `${quoteIdent(c.name)} ${dialect.columnType(c, types.columnType(c.typeOid)!)}`)
  return {
    sql: `CREATE TABLE IF NOT EXISTS ${quoteIdent(table.table)} (${columns.join(", ")}, PRIMARY KEY (${
      table.key.map(quoteIdent).join(", ")
    }))`,
    params: []
  }
}

/** The text of one `INSERT … VALUES (…), (…) ON CONFLICT` of `rows` rows with `columns`. */
const upsertText = (dialect: Dialect, table: Table, columns: ReadonlyArray<string>, rows: number): string => {
  let index = 0
  const tuples = Array.from({ length: rows }, () => `(${columns.map(() => dialect.placeholder(++index)).join(", ")})`)
  const updates = columns.filter((c) => !table.key.includes(c)).map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`)
  return `INSERT INTO ${quoteIdent(table.table)} (${columns.map(quoteIdent).join(", ")}) VALUES ${tuples.join(", ")} ON CONFLICT (${
    table.key.map(quoteIdent).join(", ")
  }) ${updates.length === 0 ? "DO NOTHING" : `DO UPDATE SET ${updates.join(", ")}`}`
}

/** {@link upsertText}, from the planner's cache when it has it. */
const cachedUpsertText = (planner: Planner, table: Table, columns: ReadonlyArray<string>, rows: number): string => {
  let texts = planner.upsertTexts.get(table)
  if (texts === undefined) planner.upsertTexts.set(table, texts = new Map())
  const shape = `${rows}\u0000${columns.join("\u0000")}`
  let text = texts.get(shape)
  if (text === undefined) {
    if (texts.size >= maxUpsertTexts) texts.clear()
    texts.set(shape, text = upsertText(planner.dialect, table, columns, rows))
  }
  return text
}

/** One `INSERT … VALUES (…), (…) ON CONFLICT` for rows with the same columns and distinct keys. */
const upsertMany = (
  planner: Planner,
  table: Table,
  relation: Relation,
  columns: ReadonlyArray<string>,
  rows: ReadonlyArray<Row>
): Statement => {
  const encoders = columns.map((c) => encoderOf(planner.dialect, table, relation, c))
  const params: Array<unknown> = new Array(rows.length * columns.length)
  let index = 0
  for (const row of rows) {
    for (let i = 0; i < columns.length; i++) params[index++] = encoders[i]!(row[columns[i]!])
  }
  return { sql: cachedUpsertText(planner, table, columns, rows.length), params }
}

const upsert = (planner: Planner, table: Table, relation: Relation, row: Row) =>
  upsertMany(planner, table, relation, presentColumns(row), [row])

const remove = (dialect: Dialect, table: Table, relation: Relation, key: Row): Statement => ({
  sql: `DELETE FROM ${quoteIdent(table.table)} WHERE ${
    table.key.map((c, i) => `${quoteIdent(c)} = ${dialect.placeholder(i + 1)}`).join(" AND ")
  }`,
  params: table.key.map((c) => encoderOf(dialect, table, relation, c)(key[c]))
})

/** One `DELETE … WHERE key IN (…)` for several keys (`(a, b) IN ((…), (…))` for a composite key). */
const removeMany = (dialect: Dialect, table: Table, relation: Relation, keys: ReadonlyArray<Row>): Statement => {
  if (keys.length === 1) return remove(dialect, table, relation, keys[0]!)
  const encoders = table.key.map((c) => encoderOf(dialect, table, relation, c))
  const params: Array<unknown> = []
  const tuples = keys.map((key) => {
    const placeholders = table.key.map((c, i) => {
      params.push(encoders[i]!(key[c]))
      return dialect.placeholder(params.length)
    })
    return placeholders.length === 1 ? placeholders[0]! : `(${placeholders.join(", ")})`
  })
  const columns = table.key.length === 1 ? quoteIdent(table.key[0]!) : `(${table.key.map(quoteIdent).join(", ")})`
  return { sql: `DELETE FROM ${quoteIdent(table.table)} WHERE ${columns} IN (${tuples.join(", ")})`, params }
}

/** A truncate is a `DELETE` of every row, for the rule's tables only. */
const truncate = (planner: Planner, relations: ReadonlyArray<Relation>, out: Array<Statement>): void => {
  for (const relation of relations) {
    const table = tableOf(planner, relation)
    if (table) out.push({ sql: `DELETE FROM ${quoteIdent(table.table)}`, params: [] })
  }
}

/** One change on its own: a row change of a table outside the rule plans nothing. */
const planChange = (planner: Planner, change: RowChange, out: Array<Statement>): void => {
  if (change._tag === "Truncate") return truncate(planner, change.relations, out)
  const table = tableOf(planner, change.relation)
  if (!table) return
  const dialect = planner.dialect
  switch (change._tag) {
    case "Insert":
      out.push(upsert(planner, table, change.relation, change.row))
      return
    case "Update":
      if (keyChanged(table, change.key, change.row)) out.push(remove(dialect, table, change.relation, change.key))
      out.push(upsert(planner, table, change.relation, change.row))
      return
    case "Delete":
      out.push(remove(dialect, table, change.relation, change.key))
      return
  }
}

/** A run of upserts into one table with one column set, becoming one statement. */
interface Run {
  readonly _tag: "Upserts"
  readonly table: Table
  readonly relation: Relation
  readonly columns: ReadonlyArray<string>
  readonly rows: Array<Row>
  readonly keys: Set<string>
}

/** A run of deletes from one table, becoming one statement. */
interface Deletes {
  readonly _tag: "Deletes"
  readonly table: Table
  readonly relation: Relation
  readonly keys: Array<Row>
}

/** The table of a change that may join a run: an insert, or an update that keeps its key, of a batchable table. */
const batchableTable = (planner: Planner, change: RowChange): Table | undefined => {
  if (change._tag === "Truncate") return undefined
  const table = tableOf(planner, change.relation)
  const batchable = table !== undefined && planner.batchableKeys.has(table) &&
    (change._tag === "Insert" || (change._tag === "Update" && !keyChanged(table, change.key, change.row)))
  return batchable ? table : undefined
}

/** A run ends at another table or column set, a key already in it, or the size cap. */
const continuesRun = (run: Run, table: Table, relation: Relation, row: Row, key: string) =>
  run.relation === relation && run.table === table && hasColumns(row, run.columns) && !run.keys.has(key) &&
  (run.rows.length + 1) * run.columns.length <= maxParameters

/** Deletes share a statement while they are of one table and under the size cap (a repeated key is harmless). */
const continuesDeletes = (run: Deletes, table: Table, relation: Relation) =>
  run.relation === relation && run.table === table && (run.keys.length + 1) * table.key.length <= maxParameters

/**
 * The row counts of the statements a run of `rows` upserts becomes: a run
 * of up to 255 rows is one statement; a longer one is cut into powers of
 * two (then the rest, under 256). The statement texts repeat from one
 * batch to the next, so a client's cache of prepared statements (SQLite's
 * holds 200 for 10 minutes, each as large as its text) stays small however
 * the batch sizes vary (snapshot chunks less the rows the stream had).
 *
 * @since 0.1.0
 * @category sql
 */
export const runSizes = (rows: number): Array<number> => {
  const sizes: Array<number> = []
  let left = rows
  while (left >= 256) {
    const size = 2 ** Math.floor(Math.log2(left))
    sizes.push(size)
    left -= size
  }
  if (left > 0) sizes.push(left)
  return sizes
}

/**
 * Runs of upserts into one table become multi-row statements (one round
 * trip instead of one per row), and so do runs of deletes from one table.
 * Order is kept exactly: a run ends at any other change (another kind,
 * another table, an update that moves its key), and an upsert run also at
 * another column set or a key already in the run (one statement cannot
 * upsert a row twice); every run ends at the parameter cap.
 */
const planChanges = (planner: Planner, changes: ReadonlyArray<RowChange>): Array<Statement> => {
  const statements: Array<Statement> = []
  let run: Run | Deletes | undefined
  const flush = () => {
    if (run?._tag === "Upserts") {
      let at = 0
      for (const size of runSizes(run.rows.length)) {
        statements.push(upsertMany(planner, run.table, run.relation, run.columns, run.rows.slice(at, at + size)))
        at += size
      }
    } else if (run) statements.push(removeMany(planner.dialect, run.table, run.relation, run.keys))
    run = undefined
  }
  for (const change of changes) {
    if (change._tag === "Delete") {
      const table = tableOf(planner, change.relation)
      if (!table) {
        flush()
        continue
      }
      if (run && !(run._tag === "Deletes" && continuesDeletes(run, table, change.relation))) flush()
      if (!run) run = { _tag: "Deletes", table, relation: change.relation, keys: [] }
      ;(run as Deletes).keys.push(change.key)
      continue
    }
    const table = batchableTable(planner, change)
    if (!table) {
      flush()
      planChange(planner, change, statements)
      continue
    }
    const { relation, row } = change as { readonly relation: Relation; readonly row: Row }
    const key = keyText(table, row)
    if (run && !(run._tag === "Upserts" && continuesRun(run, table, relation, row, key))) flush()
    if (!run) run = { _tag: "Upserts", table, relation, columns: presentColumns(row), rows: [], keys: new Set() }
    const upserts = run as Run
    upserts.rows.push(row)
    upserts.keys.add(key)
  }
  flush()
  return statements
}

/**
 * How many statement texts a target connection keeps prepared under a name
 * (see {@link makeStatementNames}): as many as the Effect 4 line's native
 * driver keeps by default.
 *
 * @since 0.1.0
 * @category sql
 */
export const preparedStatements = 100

/**
 * Names for the statement texts of one target connection, so that a client
 * which would send every statement unnamed (`pg`: the server parses and plans
 * each multi-row upsert again) prepares each text once and then only binds
 * it. A text gets a name while fewer than `capacity` have one, and keeps it;
 * later texts get `undefined` (run unnamed), which bounds what the server
 * holds per connection. Names are unique per namer: keep one per connection.
 *
 * @since 0.1.0
 * @category sql
 */
export const makeStatementNames = (capacity: number = preparedStatements): (sql: string) => string | undefined => {
  const names = new Map<string, string>()
  return (sql) => {
    const known = names.get(sql)
    if (known !== undefined || names.size >= capacity) return known
    const name = `effect_sql_router_cdc_${names.size}`
    names.set(sql, name)
    return name
  }
}

/** Records `lsn` as the rule's last applied LSN. */
const recordState = (dialect: Dialect, stateTable: string, rule: string, lsn: string): Statement => ({
  sql: `INSERT INTO ${stateTable} (rule, lsn) VALUES (${dialect.placeholder(1)}, ${dialect.placeholder(2)})
           ON CONFLICT (rule) DO UPDATE SET lsn = excluded.lsn`,
  params: [rule, lsn]
})

/** What the state table's `lsn` says: the last whole source transaction, and one partly applied after it. */
const partialMarker = " partial "

/**
 * The rule's position as the state table keeps it: `lsn` is the end of the
 * last source transaction applied whole (`"0/0"` when none was); `partial`,
 * when present, is the commit LSN of a source transaction after it that the
 * target holds only in part (atomicity `"batch"`, stopped mid-way). A restart
 * resumes after `lsn`, so that transaction is applied again from its start:
 * its upserts and deletes land on rows already in their final state for the
 * part applied, which changes nothing, and then the rest follows.
 *
 * @since 0.1.0
 * @category sql
 */
export const parseState = (text: string): { readonly lsn: string; readonly partial: string | undefined } => {
  const at = text.indexOf(partialMarker)
  return at < 0 ? { lsn: text, partial: undefined } : { lsn: text.slice(0, at), partial: text.slice(at + partialMarker.length) }
}

/**
 * Plans the statements of a rule's SQL target in `dialect`: `rule` is the
 * rule's name (the state table's key), `tables` its source tables.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePlan = (
  dialect: Dialect,
  rule: string,
  tables: ReadonlyArray<Table>,
  stateTableName: string = defaultStateTable
): Plan => {
  const stateTable = quoteIdent(stateTableName)
  const planner = makePlanner(dialect, tables)
  return {
    createTables: () => tables.map((table) => createTable(dialect, table)),
    createStateTable: { sql: `CREATE TABLE IF NOT EXISTS ${stateTable} (rule TEXT PRIMARY KEY, lsn TEXT NOT NULL)`, params: [] },
    readState: { sql: `SELECT lsn FROM ${stateTable} WHERE rule = ${dialect.placeholder(1)}`, params: [rule] },
    recordState: (lsn) => recordState(dialect, stateTable, rule, lsn),
    recordPartial: (lsn, partial) => recordState(dialect, stateTable, rule, `${lsn ?? "0/0"}${partialMarker}${partial}`),
    changes: (changes) => planChanges(planner, changes),
    table: (relation) => tableOf(planner, relation),
    alter: (table) => alterPlanner(planner, table)
  }
}
