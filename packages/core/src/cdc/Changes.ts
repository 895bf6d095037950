/**
 * The CDC change model and how it is made: pgoutput messages (see
 * `Pgoutput`) become changes that carry their table (snapshot chunks are
 * made in `Snapshot`). Each Effect line's `Cdc` module publishes these
 * shapes and runs the decoder on its replication session.
 *
 * @since 0.1.0
 */
import type * as Pgoutput from "./Pgoutput.js"
import type { ColumnChange } from "./Schema.js"

/**
 * A WAL position as PostgreSQL prints it (`0/16B3748`).
 *
 * @since 0.1.0
 * @category models
 */
export type Lsn = string

/**
 * A column of a relation: its name, type (OID and name) and whether it is part of the key.
 *
 * @since 0.1.0
 * @category models
 */
export interface Column {
  readonly name: string
  readonly typeOid: number
  /** `int8`, `_int4` (an array), … (undefined for a type the server did not name). */
  readonly typeName: string | undefined
  readonly typeMod: number
  /** Part of the replica identity (the primary key by default). */
  readonly isKey: boolean
}

/**
 * The table a change belongs to, as the server described it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Relation {
  readonly oid: number
  readonly schema: string
  readonly table: string
  readonly columns: ReadonlyArray<Column>
  readonly keyColumns: ReadonlyArray<string>
  readonly replicaIdentity: "default" | "nothing" | "full" | "index"
}

/**
 * A row, by column name. Values: see "Type mapping" in the README (`int8` is
 * a `bigint`; `numeric`, timestamps, `json` and `jsonb` are the server's exact
 * text; `bytea` is a `Uint8Array`; arrays are arrays). An unchanged TOAST value in
 * an update is `undefined` (the target keeps what it has).
 *
 * @since 0.1.0
 * @category models
 */
export type Row = Readonly<Record<string, unknown>>

/**
 * The start of a source transaction: its final LSN, commit time and xid.
 *
 * @since 0.1.0
 * @category models
 */
export interface Begin {
  readonly _tag: "Begin"
  readonly xid: number
  /** The transaction's commit LSN. */
  readonly lsn: Lsn
  readonly commitTime: Date
}

/**
 * A row inserted into a relation: the new row.
 *
 * @since 0.1.0
 * @category models
 */
export interface Insert {
  readonly _tag: "Insert"
  readonly xid: number
  /** Where the change's WAL record is. */
  readonly lsn: Lsn
  readonly relation: Relation
  readonly row: Row
}

/**
 * A row updated in a relation: the new row and, when the key changed, the old key.
 *
 * @since 0.1.0
 * @category models
 */
export interface Update {
  readonly _tag: "Update"
  readonly xid: number
  readonly lsn: Lsn
  readonly relation: Relation
  readonly row: Row
  /** The key of the row before the update (differs from `row`'s when the key changed). */
  readonly key: Row
  /** The whole old row, with `REPLICA IDENTITY FULL`. */
  readonly old: Row | undefined
}

/**
 * A row deleted from a relation: its old key.
 *
 * @since 0.1.0
 * @category models
 */
export interface Delete {
  readonly _tag: "Delete"
  readonly xid: number
  readonly lsn: Lsn
  readonly relation: Relation
  readonly key: Row
  readonly old: Row | undefined
}

/**
 * Relations truncated in one statement.
 *
 * @since 0.1.0
 * @category models
 */
export interface Truncate {
  readonly _tag: "Truncate"
  readonly xid: number
  readonly lsn: Lsn
  readonly relations: ReadonlyArray<Relation>
  readonly cascade: boolean
  readonly restartIdentity: boolean
}

/**
 * A table's definition changed before the next row of it (rule sessions
 * only, with `schemaChanges: "apply"`): the new relation and the column
 * changes against what the target had (see `Schema`). The rows after it
 * carry the new relation.
 *
 * @since 0.1.0
 * @category models
 */
export interface SchemaChange {
  readonly _tag: "SchemaChange"
  readonly xid: number
  readonly lsn: Lsn
  readonly relation: Relation
  readonly columns: ReadonlyArray<ColumnChange>
}

/**
 * The end of a source transaction: its commit and end LSNs and commit time.
 *
 * @since 0.1.0
 * @category models
 */
export interface Commit {
  readonly _tag: "Commit"
  readonly xid: number
  readonly lsn: Lsn
  /** Just past the commit record: the position acknowledged once the transaction is applied. */
  readonly endLsn: Lsn
  readonly commitTime: Date
}

/**
 * One element of the change stream. Changes of one transaction arrive
 * between its `Begin` and `Commit`, transactions in commit order.
 *
 * @since 0.1.0
 * @category models
 */
export type Change = Begin | Insert | Update | Delete | Truncate | Commit

/**
 * A change inside a transaction: a row change, or (in a rule's
 * transactions) a table's schema change before the rows that follow it.
 *
 * @since 0.1.0
 * @category models
 */
export type RowChange = Insert | Update | Delete | Truncate | SchemaChange

/**
 * One source transaction, as a target receives it. Each chunk of a
 * snapshot is a transaction too (`snapshot: true`): an `Insert` per row, after
 * a `Truncate` of the table at its first chunk (see `Snapshot`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Transaction {
  readonly xid: number
  readonly lsn: Lsn
  readonly endLsn: Lsn
  readonly commitTime: Date
  readonly changes: ReadonlyArray<RowChange>
  readonly snapshot: boolean
  /**
   * Present when a source transaction larger than the rule's `batchSize`
   * reaches a sink in parts: `index` counts from 0 and `last` marks the part
   * that ends with the source commit. Parts before the last carry the commit
   * LSN (`lsn`) as their `endLsn`.
   */
  readonly part?: { readonly index: number; readonly last: boolean } | undefined
}

/**
 * The most changes of a source transaction held in memory when a rule does
 * not set `batchSize` (and the most changes of whole transactions grouped
 * into one target transaction during catch-up). 2 000 keeps a 1M-row source
 * transaction under 256 MiB of RSS on Node's default heap in both lines
 * (10 000 did not); catch-up throughput did not fall with it (see the
 * CHANGELOGs for the figures).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBatchSize = 2_000

/**
 * `0/16B3748` → bigint.
 *
 * @since 0.1.0
 * @category conversions
 */
export const parseLsn = (lsn: string): bigint => {
  const [hi, lo] = lsn.split("/")
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)
}

/**
 * bigint → `0/016B3748` (the low half zero-padded, so that positions of one
 * timeline sort as text).
 *
 * @since 0.1.0
 * @category conversions
 */
export const formatLsn = (lsn: bigint): Lsn =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase().padStart(8, "0")}`

const toRelation = (message: Pgoutput.RelationMessage): Relation => ({
  oid: message.relationOid,
  schema: message.schema,
  table: message.name,
  replicaIdentity: message.replicaIdentity,
  keyColumns: message.keyColumns,
  columns: message.columns.map((c) => ({
    name: c.name,
    typeOid: c.typeOid,
    typeName: c.typeName,
    typeMod: c.typeMod,
    isKey: (c.flags & 1) === 1
  }))
})

const pick = (row: Row, columns: ReadonlyArray<string>): Row => Object.fromEntries(columns.map((c) => [c, row[c]]))

// pgoutput's commit time, in microseconds since the Unix epoch.
const toDate = (micros: bigint): Date => new Date(Number(micros / 1000n))

/**
 * A session's decoder of pgoutput messages into changes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Decoder {
  /** A new or changed table definition, to check before its rows are applied. */
  readonly relation: (message: Pgoutput.RelationMessage) => Relation
  /** The change a message at `lsn` stands for; `undefined` for messages that are not changes. */
  readonly decode: (lsn: bigint, message: Pgoutput.Message) => Change | undefined
}

/**
 * A decoder for one replication session. Relations are described once per
 * session and kept here (`Relation` objects are shared by every change of
 * the table until its definition changes); row changes carry the xid of the
 * last `Begin`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const makeDecoder = (): Decoder => {
  const relations = new Map<number, Relation>()
  let xid = 0
  const relationOf = (message: Pgoutput.RelationMessage): Relation => {
    const known = relations.get(message.relationOid)
    if (known) return known
    const relation = toRelation(message)
    relations.set(message.relationOid, relation)
    return relation
  }
  return {
    relation: (message) => {
      const relation = toRelation(message)
      relations.set(message.relationOid, relation)
      return relation
    },
    decode: (lsn, message) => {
      const at = formatLsn(lsn)
      switch (message.tag) {
        case "begin":
          xid = message.xid
          return { _tag: "Begin", xid, lsn: formatLsn(message.finalLsn), commitTime: toDate(message.commitTime) }
        case "commit":
          return {
            _tag: "Commit",
            xid,
            lsn: formatLsn(message.commitLsn),
            endLsn: formatLsn(message.endLsn),
            commitTime: toDate(message.commitTime)
          }
        case "insert":
          return { _tag: "Insert", xid, lsn: at, relation: relationOf(message.relation), row: message.new }
        case "update": {
          const relation = relationOf(message.relation)
          const key = message.key ?? (message.old ? pick(message.old, relation.keyColumns) : pick(message.new, relation.keyColumns))
          return { _tag: "Update", xid, lsn: at, relation, row: message.new, key: message.old ?? key, old: message.old ?? undefined }
        }
        case "delete": {
          const relation = relationOf(message.relation)
          const key = message.key ?? message.old ?? {}
          return { _tag: "Delete", xid, lsn: at, relation, key, old: message.old ?? undefined }
        }
        case "truncate":
          return {
            _tag: "Truncate",
            xid,
            lsn: at,
            relations: message.relations.map(relationOf),
            cascade: message.cascade,
            restartIdentity: message.restartIdentity
          }
        default:
          return undefined
      }
    }
  }
}
