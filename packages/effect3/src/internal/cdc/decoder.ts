/** @internal */
import type * as Pgoutput from "@effect-sql-router/core/cdc/Pgoutput"
import type { Change, Relation, Row, RowChange, Transaction } from "../../Cdc.js"
import * as Replication from "./replication.js"
import type { TableInfo } from "./replication.js"

// pgoutput messages → changes, and a snapshot → one transaction.

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
 * Turns protocol messages into changes. Relations are described once per
 * session and kept here (`Relation` objects are shared by every change of
 * the table until its definition changes).
 * @internal
 */
export const makeDecoder = () => {
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
    /** A new or changed table definition, to check before its rows are applied. */
    relation: (message: Pgoutput.RelationMessage): Relation => {
      const relation = toRelation(message)
      relations.set(message.relationOid, relation)
      return relation
    },
    decode: (lsn: bigint, message: Pgoutput.Message): Change | undefined => {
      const at = Replication.formatLsn(lsn)
      switch (message.tag) {
        case "begin":
          xid = message.xid
          return { _tag: "Begin", xid, lsn: Replication.formatLsn(message.finalLsn), commitTime: toDate(message.commitTime) }
        case "commit":
          return {
            _tag: "Commit",
            xid,
            lsn: Replication.formatLsn(message.commitLsn),
            endLsn: Replication.formatLsn(message.endLsn),
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

/** The rows a new slot exported, as one transaction: empty the tables, insert every row. @internal */
export const snapshotTransaction = (snapshot: Replication.Snapshot): Transaction => {
  const changes: Array<RowChange> = []
  const lsn = Replication.formatLsn(snapshot.consistentPoint)
  const relations = snapshot.rows.map(({ table }) => tableRelation(table))
  changes.push({ _tag: "Truncate", xid: 0, lsn, relations, cascade: false, restartIdentity: false })
  snapshot.rows.forEach(({ rows }, i) => {
    for (const row of rows) changes.push({ _tag: "Insert", xid: 0, lsn, relation: relations[i]!, row })
  })
  return { xid: 0, lsn, endLsn: lsn, commitTime: new Date(), changes, snapshot: true }
}

const tableRelation = (table: TableInfo): Relation => ({
  oid: 0,
  schema: table.schema,
  table: table.table,
  columns: table.columns.map(({ formatted: _, ...column }) => column),
  keyColumns: table.key,
  replicaIdentity: "default"
})
