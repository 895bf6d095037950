/** @internal */
import type * as Changes from "@effect-sql-router/core/cdc/Changes"
import * as Schema from "@effect-sql-router/core/cdc/Schema"
import * as Snapshot from "@effect-sql-router/core/cdc/Snapshot"
import * as Types from "@effect-sql-router/core/cdc/Types"
import * as Effect from "effect/Effect"
import type { Rule } from "../../Cdc.js"
import type { Applier } from "./apply.js"
import { type ReplicationError, SchemaChanged, TruncateRefused } from "./errors.js"
import * as Replication from "./replication.js"
import type { TableInfo } from "./replication.js"

// A rule's schema changes and truncates, as its session meets them in the
// stream: each Relation message is compared with the columns the target has
// (a SQL target's own, read at open; for a sink or a table the target lacks,
// the first Relation of the table in this session), then refused or planned.

/** @internal */
export interface Tracker {
  /** The schema change a Relation message stands for, if any (`rule.schemaChanges: "apply"`), or its refusal. */
  readonly relation: (
    relation: Changes.Relation,
    xid: number,
    lsn: Changes.Lsn
  ) => Effect.Effect<Changes.SchemaChange | undefined, SchemaChanged | ReplicationError>
  /**
   * The schema changes a snapshot at `lsn` needs first: each table as the
   * snapshot reads it against the target's columns (no backfill: the
   * snapshot writes every row whole).
   */
  readonly snapshot: (lsn: Changes.Lsn) => Effect.Effect<ReadonlyArray<Changes.SchemaChange>, SchemaChanged | ReplicationError>
}

type Client = Parameters<typeof Replication.query>[0]

const typeKey = (oid: number, mod: number) => `${oid}/${mod}`

const refused = (table: string, change: Schema.ColumnChange, reason?: string) =>
  new SchemaChanged({
    table,
    column: change.column,
    change: change.kind,
    oldType: change.oldType,
    newType: change.newType,
    reason
  })

/** @internal */
export const makeTracker = (
  rule: Rule,
  applier: Applier,
  tables: ReadonlyArray<TableInfo>,
  client: Client
): Tracker => {
  const shapes = new Map(applier.columns)
  // What the source is known to have had, by table then column (target types):
  // in a target whose tables the rule did not create, a column or type
  // outside it is the target's own, left alone.
  const known = new Map<string, Map<string, Set<string>>>()
  const learn = (name: string, columns: ReadonlyArray<{ readonly name: string; readonly type: string }>) => {
    const table = known.get(name) ?? new Map<string, Set<string>>()
    known.set(name, table)
    for (const c of columns) table.set(c.name, (table.get(c.name) ?? new Set()).add(c.type))
  }
  for (const t of tables) {
    learn(`${t.schema}.${t.table}`, t.columns.map((c) => ({ name: c.name, type: Schema.targetType(applier.dialect, c, t.types) })))
  }
  // The rule's types (enums, domains), as the session read them from the catalog.
  const registry = tables[0]?.types ?? Types.builtins
  // Source types by OID and typmod as format_type prints them; the session's tables give most.
  const formatted = new Map(tables.flatMap((t) => t.columns.map((c) => [typeKey(c.typeOid, c.typeMod), c.formatted] as const)))

  const format = (relation: Changes.Relation) =>
    Effect.gen(function*() {
      const missing = relation.columns.filter((c) => !formatted.has(typeKey(c.typeOid, c.typeMod)))
      if (missing.length > 0) {
        const rows = yield* Replication.query<{ oid: number; mod: number; formatted: string }>(
          client,
          "describe",
          "SELECT t.oid::int AS oid, t.mod, format_type(t.oid, t.mod) AS formatted FROM unnest($1::oid[], $2::int4[]) AS t(oid, mod)",
          [missing.map((c) => c.typeOid), missing.map((c) => c.typeMod)]
        )
        for (const row of rows) formatted.set(typeKey(row.oid, row.mod), row.formatted)
      }
      return relation.columns.map((c) => ({ ...c, formatted: formatted.get(typeKey(c.typeOid, c.typeMod)) ?? "text" }))
    })

  // The value the source's existing rows have for an added column: the
  // constant DEFAULT of its ADD COLUMN, kept by the server as the column's
  // "missing value" (a volatile default rewrote the table instead: none).
  const backfill = (relation: Changes.Relation, column: string, type: string) =>
    Effect.map(
      Replication.query<{ value: unknown }>(
        client,
        "describe",
        `SELECT (a.attmissingval::text::${type}[])[1] AS value FROM pg_attribute a
         WHERE a.attrelid = $1 AND a.attname = $2 AND a.atthasmissing AND NOT a.attisdropped`,
        [relation.oid, column]
      ),
      (rows) => rows.length > 0 ? { value: rows[0]!.value } : undefined
    )

  const compare = (
    relation: Changes.Relation,
    columns: ReadonlyArray<Changes.Column & { readonly formatted: string }>,
    xid: number,
    lsn: Changes.Lsn,
    fill: boolean
  ) =>
    Effect.gen(function*() {
      const name = `${relation.schema}.${relation.table}`
      const after = columns.map((c) => ({ name: c.name, typeOid: c.typeOid, type: Schema.targetType(applier.dialect, c, registry) }))
      const before = shapes.get(name)
      shapes.set(name, after)
      if (!before) return undefined
      // A sink's shape is the session's own record of the source: every difference counts.
      const changes = Schema.diff(before, after, {
        dialect: applier.dialect,
        source: applier.dialect === undefined ? undefined : known.get(name),
        owned: applier.owned
      })
      learn(name, after)
      if (changes.length === 0) return undefined
      if ((rule.schemaChanges ?? "fail") === "fail") {
        shapes.set(name, before)
        return yield* refused(name, changes[0]!)
      }
      const key = tables.find((t) => t.schema === relation.schema && t.table === relation.table)?.key ?? relation.keyColumns
      const planned: Array<Schema.ColumnChange> = []
      for (const change of changes) {
        const reason = Schema.refusal(applier.dialect, change, key)
        if (reason !== undefined) {
          shapes.set(name, before)
          return yield* refused(name, change, reason)
        }
        const source = columns.find((c) => c.name === change.column)
        planned.push(
          change.kind === "add" && source && fill
            ? { ...change, backfill: yield* backfill(relation, change.column, source.formatted) }
            : change
        )
      }
      return { _tag: "SchemaChange", xid, lsn, relation, columns: planned } satisfies Changes.SchemaChange
    })

  return {
    relation: (relation, xid, lsn) => Effect.flatMap(format(relation), (columns) => compare(relation, columns, xid, lsn, true)),
    snapshot: (lsn) =>
      Effect.map(
        Effect.forEach(tables, (table) =>
          compare(Snapshot.relationOf(table), table.columns, 0, lsn, false)),
        (changes) => changes.filter((change) => change !== undefined)
      )
  }
}

/** A truncate the rule refuses (`truncate: "fail"`). @internal */
export const checkTruncate = (rule: Rule, change: Changes.Truncate): Effect.Effect<void, TruncateRefused> =>
  (rule.truncate ?? "apply") === "fail"
    ? Effect.fail(new TruncateRefused({ tables: change.relations.map((r) => `${r.schema}.${r.table}`) }))
    : Effect.void
