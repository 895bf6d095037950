/**
 * Incremental snapshots (DBLog's watermark algorithm, as in Debezium's
 * incremental snapshot): a table is copied in chunks by primary key while
 * the change stream flows. For each chunk a low watermark is written to the
 * WAL (`pg_logical_emit_message`), the chunk is read, and a high watermark
 * is written. While the stream is read between the two, every key a
 * streamed change touches is dropped from the buffered chunk (the stream
 * has the newer row); at the high watermark the rest of the chunk is
 * applied as upserts. Memory is bounded by the chunk size.
 *
 * This module holds the effect-free parts: the chunk query, the watermark
 * messages, the merge, the progress records of a SQL target and the
 * progress figures. The Effect lines run them.
 *
 * @since 0.1.0
 */
import type { Relation, Row, RowChange } from "./Changes.js"
import { defaultStateTable, type Dialect, quoteIdent } from "./ApplyPlan.js"

/**
 * A source table as the snapshot reads it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Table {
  readonly schema: string
  readonly table: string
  readonly columns: ReadonlyArray<{ readonly name: string }>
  /** Primary key columns, in key order. */
  readonly key: ReadonlyArray<string>
}

/**
 * Where a table's snapshot stands: `after` is the text of the last copied
 * key (one string per key column), `null` before the first chunk.
 *
 * @since 0.1.0
 * @category models
 */
export interface TableProgress {
  /** `schema.table`. */
  readonly table: string
  readonly after: ReadonlyArray<string> | null
}

/**
 * Rows per chunk when the rule does not say (`snapshotChunkSize`).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultChunkSize = 5_000

/**
 * `schema.table`, the name progress records use.
 *
 * @since 0.1.0
 * @category models
 */
export const tableName = (table: Pick<Table, "schema" | "table">): string => `${table.schema}.${table.table}`

/**
 * The next chunk of a table in key order: the rows whose key is above
 * `after` (all rows when `after` is null), at most `limit`. The key values
 * are bound as text and cast by the server to the column's type.
 *
 * @since 0.1.0
 * @category sql
 */
export const chunkQuery = (
  table: Table,
  after: ReadonlyArray<string> | null,
  limit: number
): { readonly sql: string; readonly params: ReadonlyArray<unknown> } => {
  const columns = table.columns.map((c) => quoteIdent(c.name)).join(", ")
  const key = table.key.map(quoteIdent)
  const from = `${quoteIdent(table.schema)}.${quoteIdent(table.table)}`
  const order = `ORDER BY ${key.join(", ")} LIMIT ${Math.max(1, Math.floor(limit))}`
  if (after === null) return { sql: `SELECT ${columns} FROM ${from} ${order}`, params: [] }
  if (after.length !== key.length) throw new Error(`snapshot: a resume key of ${after.length} values for ${key.length} key columns`)
  const bound = after.map((_, i) => `$${i + 1}`)
  const where = key.length === 1 ? `${key[0]} > ${bound[0]}` : `(${key.join(", ")}) > (${bound.join(", ")})`
  return { sql: `SELECT ${columns} FROM ${from} WHERE ${where} ${order}`, params: after }
}

/**
 * The server's text of a key value as the change stream decodes it
 * (`bigint`, number, string, boolean, `Uint8Array` for bytea), so that it
 * binds back to the same value in `chunkQuery`.
 *
 * @since 0.1.0
 * @category rows
 */
export const keyText = (value: unknown): string => {
  if (typeof value === "string") return value
  if (typeof value === "bigint" || typeof value === "number" || typeof value === "boolean") return String(value)
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString("hex")}`
  if (value instanceof Date) return value.toISOString()
  if (value === null || value === undefined) throw new Error("snapshot: a primary key value is NULL")
  return JSON.stringify(value)
}

/** The identity of a row by its key, for the merge's set of touched keys. */
const keyId = (key: ReadonlyArray<string>, row: Row): string => key.map((c) => keyText(row[c])).join("\u0000")

/**
 * The key of the last row of a chunk, as text: where the next chunk starts.
 *
 * @since 0.1.0
 * @category rows
 */
export const lastKey = (table: Pick<Table, "key">, rows: ReadonlyArray<Row>): ReadonlyArray<string> | null => {
  const last = rows[rows.length - 1]
  return last === undefined ? null : table.key.map((c) => keyText(last[c]))
}

// -----------------------------------------------------------------------------
// Watermarks
// -----------------------------------------------------------------------------

/**
 * The prefix of a slot's watermark messages: each session acts only on its own.
 *
 * @since 0.1.0
 * @category watermarks
 */
export const watermarkPrefix = (slot: string): string => `effect-sql-router/cdc/${slot}`

/**
 * A watermark: which chunk, and whether it opens or closes its window.
 *
 * @since 0.1.0
 * @category watermarks
 */
export interface Watermark {
  readonly chunk: string
  readonly kind: "low" | "high"
}

/**
 * The statement that writes a watermark into the WAL, transactional, so it
 * reaches the stream in commit order (needs PostgreSQL 14+ and pgoutput's
 * `messages 'true'` to be seen).
 *
 * @since 0.1.0
 * @category watermarks
 */
export const emitWatermark = (slot: string, watermark: Watermark): { readonly sql: string; readonly params: ReadonlyArray<unknown> } => ({
  sql: "SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn",
  params: [watermarkPrefix(slot), JSON.stringify(watermark)]
})

/**
 * The watermark a logical decoding message stands for, if it is one of `slot`'s.
 *
 * @since 0.1.0
 * @category watermarks
 */
export const parseWatermark = (slot: string, prefix: string, content: Uint8Array): Watermark | undefined => {
  if (prefix !== watermarkPrefix(slot)) return undefined
  try {
    const parsed = JSON.parse(Buffer.from(content).toString("utf8")) as Partial<Watermark>
    return typeof parsed.chunk === "string" && (parsed.kind === "low" || parsed.kind === "high")
      ? { chunk: parsed.chunk, kind: parsed.kind }
      : undefined
  } catch {
    return undefined
  }
}

// -----------------------------------------------------------------------------
// Visibility
// -----------------------------------------------------------------------------

/**
 * Which transactions a chunk's read could not see, from the server's
 * `pg_current_snapshot()` text (`xmin:xmax:xip,…`) taken in the reading
 * transaction. A transaction whose commit reached the WAL just before the
 * low watermark may still have been invisible to the read: its changes
 * must drop their keys from the chunk too.
 *
 * @since 0.1.0
 * @category visibility
 */
export interface Visibility {
  /** True when the read did not see transaction `xid` (the stream's 32-bit xid). */
  readonly invisible: (xid: number) => boolean
}

/**
 * Parses `pg_current_snapshot()` text; 64-bit xids are compared by their low
 * 32 bits, as the stream gives them, modulo wraparound.
 *
 * @since 0.1.0
 * @category visibility
 */
export const parseVisibility = (text: string): Visibility => {
  const [, xmaxText, xipText] = text.split(":")
  if (xmaxText === undefined) throw new Error(`snapshot: not a snapshot: ${text}`)
  const low = (x: string) => Number(BigInt(x) & 0xffffffffn)
  const xmax = low(xmaxText)
  const running = new Set((xipText ?? "").split(",").filter((x) => x !== "").map(low))
  // xid >= xmax, modulo 2^32 (xids are compared in a window of 2^31).
  return { invisible: (xid) => running.has(xid) || ((xid - xmax) >>> 0) < 0x8000_0000 }
}

// -----------------------------------------------------------------------------
// The merge
// -----------------------------------------------------------------------------

/**
 * One chunk between its watermarks: the rows read, and the keys that
 * streamed changes touched since the low watermark (or that a transaction
 * invisible to the read touched, whenever it came).
 *
 * @since 0.1.0
 * @category merge
 */
export interface Window {
  readonly chunk: string
  readonly table: Table
  /** True once the low watermark came through the stream. */
  opened: boolean
  /** Notes a streamed change of transaction `xid`: its keys leave the chunk when it falls in the window. */
  readonly touch: (change: RowChange, xid: number) => void
  /** The rows still to apply at the high watermark, in key order. */
  readonly remaining: () => ReadonlyArray<Row>
  /** How many rows were dropped because the stream had them. */
  readonly dropped: () => number
}

const sameTable = (relation: Relation, table: Table) => relation.schema === table.schema && relation.table === table.table

/**
 * A window over a chunk's rows: `opened` is set when the low watermark is
 * seen; changes before that count only if `visibility` says the read could
 * not see their transaction. A truncate of the table empties the chunk.
 *
 * @since 0.1.0
 * @category merge
 */
export const makeWindow = (chunk: string, table: Table, rows: ReadonlyArray<Row>, visibility: Visibility): Window => {
  const touched = new Set<string>()
  let truncated = false
  const window: Window = {
    chunk,
    table,
    opened: false,
    touch: (change, xid) => {
      if (!window.opened && !visibility.invisible(xid)) return
      switch (change._tag) {
        case "Truncate":
          if (change.relations.some((r) => sameTable(r, table))) truncated = true
          return
        case "Insert":
          if (sameTable(change.relation, table)) touched.add(keyId(table.key, change.row))
          return
        case "Update":
          if (sameTable(change.relation, table)) {
            touched.add(keyId(table.key, change.row))
            touched.add(keyId(table.key, change.key))
          }
          return
        case "Delete":
          if (sameTable(change.relation, table)) touched.add(keyId(table.key, change.key))
          return
      }
    },
    remaining: () => truncated ? [] : rows.filter((row) => !touched.has(keyId(table.key, row))),
    dropped: () => truncated ? rows.length : rows.filter((row) => touched.has(keyId(table.key, row))).length
  }
  return window
}

/**
 * The relation of the snapshot's `Insert` and `Truncate` changes.
 *
 * @since 0.1.0
 * @category merge
 */
export const relationOf = (table: {
  readonly schema: string
  readonly table: string
  readonly key: ReadonlyArray<string>
  readonly columns: ReadonlyArray<
    { readonly name: string; readonly typeOid: number; readonly typeName?: string | undefined; readonly typeMod?: number | undefined }
  >
}): Relation => ({
  oid: 0,
  schema: table.schema,
  table: table.table,
  columns: table.columns.map((c) => ({
    name: c.name,
    typeOid: c.typeOid,
    typeName: c.typeName,
    typeMod: c.typeMod ?? -1,
    isKey: table.key.includes(c.name)
  })),
  keyColumns: table.key,
  replicaIdentity: "default"
})

// -----------------------------------------------------------------------------
// Progress records of a SQL target
// -----------------------------------------------------------------------------

/**
 * What a session records of a snapshot, beside (or in the same target
 * transaction as) a chunk: a table's progress (`after`: its last copied key,
 * `null` to copy it from its start), a table copied (`"done"`), or a
 * `resnapshot` request taken (`taken`: the table as the rule names it).
 *
 * @since 0.1.0
 * @category models
 */
export type ProgressUpdate =
  | TableProgress
  | { readonly table: string; readonly after: "done" }
  | { readonly taken: string }

/**
 * The statements that keep a rule's snapshot progress in a SQL target, in a
 * table next to the state table (`<stateTable>_snapshot`): one row per table
 * still to copy, with the text of its last copied key (NULL before the
 * first chunk). Written in the same target transaction as the chunk.
 *
 * `resnapshot` requests wait in another (`<stateTable>_resnapshot`), one
 * row per table as the rule names it, written when asked: a request outlives
 * the process that made it until a session records its table as starting
 * over, in the transaction that deletes the request.
 *
 * @since 0.1.0
 * @category sql
 */
export interface ProgressPlan {
  readonly create: { readonly sql: string; readonly params: ReadonlyArray<unknown> }
  /** Rows with `tbl` and `after` (JSON text of the key, or NULL). */
  readonly read: { readonly sql: string; readonly params: ReadonlyArray<unknown> }
  readonly record: (progress: TableProgress) => { readonly sql: string; readonly params: ReadonlyArray<unknown> }
  /** The table is copied: its row goes. */
  readonly done: (table: string) => { readonly sql: string; readonly params: ReadonlyArray<unknown> }
  readonly createRequests: { readonly sql: string; readonly params: ReadonlyArray<unknown> }
  /** Rows with `tbl`, the tables asked for, as the rule names them. */
  readonly readRequests: { readonly sql: string; readonly params: ReadonlyArray<unknown> }
  /** Asks for the table again (nothing when it is asked for already). */
  readonly request: (table: string) => { readonly sql: string; readonly params: ReadonlyArray<unknown> }
  /** A session took the request. */
  readonly taken: (table: string) => { readonly sql: string; readonly params: ReadonlyArray<unknown> }
}

/**
 * The progress table of `stateTable` (`ApplyPlan.defaultStateTable` when
 * not given, as `ApplyPlan.makePlan` does) in `dialect`, for `rule`.
 *
 * @since 0.1.0
 * @category sql
 */
export const progressPlan = (
  dialect: Pick<Dialect, "placeholder">,
  rule: string,
  stateTable: string = defaultStateTable
): ProgressPlan => {
  const name = quoteIdent(`${stateTable}_snapshot`)
  const requests = quoteIdent(`${stateTable}_resnapshot`)
  const p = dialect.placeholder
  return {
    create: {
      sql: `CREATE TABLE IF NOT EXISTS ${name} (rule TEXT NOT NULL, tbl TEXT NOT NULL, after TEXT, PRIMARY KEY (rule, tbl))`,
      params: []
    },
    read: { sql: `SELECT tbl, after FROM ${name} WHERE rule = ${p(1)} ORDER BY tbl`, params: [rule] },
    record: (progress) => ({
      sql: `INSERT INTO ${name} (rule, tbl, after) VALUES (${p(1)}, ${p(2)}, ${p(3)})
           ON CONFLICT (rule, tbl) DO UPDATE SET after = excluded.after`,
      params: [rule, progress.table, progress.after === null ? null : JSON.stringify(progress.after)]
    }),
    done: (table) => ({ sql: `DELETE FROM ${name} WHERE rule = ${p(1)} AND tbl = ${p(2)}`, params: [rule, table] }),
    createRequests: {
      sql: `CREATE TABLE IF NOT EXISTS ${requests} (rule TEXT NOT NULL, tbl TEXT NOT NULL, PRIMARY KEY (rule, tbl))`,
      params: []
    },
    readRequests: { sql: `SELECT tbl FROM ${requests} WHERE rule = ${p(1)} ORDER BY tbl`, params: [rule] },
    request: (table) => ({
      sql: `INSERT INTO ${requests} (rule, tbl) VALUES (${p(1)}, ${p(2)}) ON CONFLICT (rule, tbl) DO NOTHING`,
      params: [rule, table]
    }),
    taken: (table) => ({ sql: `DELETE FROM ${requests} WHERE rule = ${p(1)} AND tbl = ${p(2)}`, params: [rule, table] })
  }
}

/**
 * The statement that records one update in a SQL target.
 *
 * @since 0.1.0
 * @category sql
 */
export const progressStatement = (
  plan: ProgressPlan,
  update: ProgressUpdate
): { readonly sql: string; readonly params: ReadonlyArray<unknown> } =>
  "taken" in update
    ? plan.taken(update.taken)
    : update.after === "done"
    ? plan.done(update.table)
    : plan.record(update as TableProgress)

/**
 * A progress row as read back (`after` is JSON text or NULL).
 *
 * @since 0.1.0
 * @category sql
 */
export const readProgress = (row: { readonly tbl: unknown; readonly after: unknown }): TableProgress => ({
  table: String(row.tbl),
  after: row.after === null || row.after === undefined ? null : (JSON.parse(String(row.after)) as Array<string>)
})

/**
 * The source's estimate of a table's rows (`pg_class.reltuples`, as of the
 * last ANALYZE or VACUUM; NULL when the table was never analyzed).
 *
 * @since 0.1.0
 * @category sql
 */
export const estimateQuery = "SELECT CASE WHEN reltuples < 0 THEN NULL ELSE reltuples::float8 END AS rows FROM pg_class WHERE oid = to_regclass($1)"

// -----------------------------------------------------------------------------
// Progress figures
// -----------------------------------------------------------------------------

/**
 * A snapshot's progress as `stats` shows it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  /** True while tables are left to copy. */
  readonly running: boolean
  /** The table being copied (`schema.table`). */
  readonly table: string | undefined
  readonly tablesDone: number
  readonly tablesTotal: number
  /** Rows applied from chunks since this snapshot started (in this process). */
  readonly rowsCopied: number
  /** The source's estimate (`pg_class.reltuples`) of the rows to copy; undefined if a table was never analyzed. */
  readonly rowsTotal: number | undefined
  readonly rowsPerSecond: number
  /** From rows left and rows per second; undefined without an estimate or a rate. */
  readonly secondsLeft: number | undefined
}

/**
 * The figures of a snapshot that started at `startedAt` (epoch millis).
 *
 * @since 0.1.0
 * @category models
 */
export const progress = (
  state: Omit<Progress, "rowsPerSecond" | "secondsLeft"> & {
    readonly startedAt: number
    readonly endedAt: number | undefined
  },
  now: number
): Progress => {
  const seconds = Math.max(0.001, ((state.endedAt ?? now) - state.startedAt) / 1000)
  const rowsPerSecond = state.rowsCopied / seconds
  const left = state.rowsTotal === undefined ? undefined : Math.max(0, state.rowsTotal - state.rowsCopied)
  return {
    running: state.running,
    table: state.running ? state.table : undefined,
    tablesDone: state.tablesDone,
    tablesTotal: state.tablesTotal,
    rowsCopied: state.rowsCopied,
    rowsTotal: state.rowsTotal,
    rowsPerSecond,
    secondsLeft: !state.running ? 0 : left === undefined || rowsPerSecond === 0 ? undefined : left / rowsPerSecond
  }
}
