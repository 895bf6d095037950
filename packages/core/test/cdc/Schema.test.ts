import { describe, expect, it } from "vitest"
import * as ApplyPlan from "../../src/cdc/ApplyPlan.js"
import * as Schema from "../../src/cdc/Schema.js"
import * as Types from "../../src/cdc/Types.js"

const shape = (name: string, type: string, typeOid = 25) => ({ name, type, typeOid })

describe("cdc/Schema diff", () => {
  it("finds drops, type changes and adds, drops first", () => {
    const before = [shape("id", "integer"), shape("a", "character varying(10)"), shape("gone", "text")]
    const after = [shape("id", "bigint", 20), shape("a", "text"), shape("b", "numeric(12,2)", 1700)]
    expect(Schema.diff(before, after, { dialect: "pg" })).toEqual([
      { kind: "drop", column: "gone", oldType: "text", newType: undefined, typeOid: undefined },
      { kind: "type", column: "id", oldType: "integer", newType: "bigint", typeOid: 20 },
      { kind: "type", column: "a", oldType: "character varying(10)", newType: "text", typeOid: 25 },
      { kind: "add", column: "b", oldType: undefined, newType: "numeric(12,2)", typeOid: 1700 }
    ])
  })

  it("sees no change for the same shape, and compares SQLite types without case", () => {
    expect(Schema.diff([shape("id", "integer")], [shape("id", "integer")], { dialect: "pg" })).toEqual([])
    expect(Schema.diff([shape("id", "integer")], [shape("id", "INTEGER")], { dialect: "sqlite" })).toEqual([])
    expect(Schema.diff([shape("id", "integer")], [shape("id", "INTEGER")], { dialect: "pg" })).toHaveLength(1)
  })

  it("leaves the target's own columns and types alone", () => {
    const source = new Map([["id", new Set(["integer"])], ["n", new Set(["integer"])], ["gone", new Set(["text"])]])
    const target = [shape("id", "integer"), shape("n", "integer"), shape("gone", "text"), shape("mine", "timestamptz"), shape("at", "text")]
    const after = [shape("id", "bigint", 20), shape("n", "integer"), shape("at", "timestamp with time zone", 1184)]
    // `mine` was never the source's: not dropped; `at` has a type the source never had: not changed.
    expect(Schema.diff(target, after, { dialect: "pg", source }).map((c) => [c.kind, c.column])).toEqual([
      ["drop", "gone"],
      ["type", "id"]
    ])
    // Tables the rule created: every column and type difference counts.
    expect(Schema.diff(target, after, { dialect: "pg", source, owned: true }).map((c) => [c.kind, c.column])).toEqual([
      ["drop", "gone"],
      ["drop", "mine"],
      ["type", "id"],
      ["type", "at"]
    ])
    // SQLite: a declared type that is no storage type (DATETIME) is the target's own.
    expect(Schema.diff([shape("at", "DATETIME"), shape("n", "integer")], [shape("at", "TEXT"), shape("n", "TEXT")], {
      dialect: "sqlite",
      owned: true
    }).map((c) => [c.kind, c.column])).toEqual([["type", "n"]])
  })

  it("sees a rename as a drop of the old name and an add of the new one", () => {
    expect(Schema.diff([shape("id", "integer"), shape("old", "text")], [shape("id", "integer"), shape("new", "text")]).map(
      (c) => [c.kind, c.column]
    )).toEqual([["drop", "old"], ["add", "new"]])
  })

  it("maps a source column to each target's type", () => {
    expect(Schema.targetType("pg", { typeOid: 1043, formatted: "character varying(10)" })).toBe("character varying(10)")
    expect(Schema.targetType("sqlite", { typeOid: 1043, formatted: "character varying(10)" })).toBe("TEXT")
    expect(Schema.targetType("sqlite", { typeOid: 20, formatted: "bigint" })).toBe("INTEGER")
    expect(Schema.targetType(undefined, { typeOid: 20, formatted: "bigint" })).toBe("bigint")
  })

  it("maps enums and domains as the rule's registry resolves them, not as the source names them", () => {
    const registry = Types.makeRegistry([
      { oid: 70001, name: "mood", kind: "e", baseType: 0, element: 0 },
      { oid: 70002, name: "positive", kind: "d", baseType: 1700, baseFormatted: "numeric(12,2)", element: 0 }
    ])
    expect(Schema.targetType("pg", { typeOid: 70001, formatted: "mood" }, registry)).toBe("text")
    expect(Schema.targetType("pg", { typeOid: 70002, formatted: "positive" }, registry)).toBe("numeric(12,2)")
    expect(Schema.targetType("sqlite", { typeOid: 70001, formatted: "mood" }, registry)).toBe("TEXT")
    // Unknown to the registry: the text the column is stored as.
    expect(Schema.targetType("sqlite", { typeOid: 70003, formatted: "point" })).toBe("TEXT")
  })
})

describe("cdc/Schema refusals", () => {
  const change = (kind: Schema.ColumnChange["kind"], column = "c"): Schema.ColumnChange => ({
    kind,
    column,
    oldType: "INTEGER",
    newType: "TEXT",
    typeOid: 25
  })
  it("refuses a type change in SQLite and a key column's drop anywhere", () => {
    expect(Schema.refusal("sqlite", change("type"), ["id"])).toBe("SQLite cannot change a column's type (INTEGER to TEXT)")
    expect(Schema.refusal("pg", change("type"), ["id"])).toBeUndefined()
    expect(Schema.refusal("pg", change("drop", "id"), ["id"])).toBe("a primary key column cannot be dropped on the target")
    expect(Schema.refusal(undefined, change("drop", "c"), ["id"])).toBeUndefined()
    expect(Schema.refusal("sqlite", change("add"), ["id"])).toBeUndefined()
  })
})

describe("cdc/Schema DDL", () => {
  const weird = "we\"ird"
  const add: Schema.ColumnChange = { kind: "add", column: "n\"ew", oldType: undefined, newType: "numeric(12,2)", typeOid: 1700 }
  it("quotes table and column names in every statement", () => {
    expect(Schema.alter(ApplyPlan.dialects.pg, weird, add)).toEqual([
      { sql: "ALTER TABLE \"we\"\"ird\" ADD COLUMN \"n\"\"ew\" numeric(12,2)", params: [] }
    ])
    expect(Schema.alter(ApplyPlan.dialects.sqlite, weird, { ...add, kind: "drop", newType: undefined })).toEqual([
      { sql: "ALTER TABLE \"we\"\"ird\" DROP COLUMN \"n\"\"ew\"", params: [] }
    ])
    expect(Schema.alter(ApplyPlan.dialects.pg, weird, { ...add, kind: "type", oldType: "integer", newType: "bigint", typeOid: 20 }))
      .toEqual([{ sql: "ALTER TABLE \"we\"\"ird\" ALTER COLUMN \"n\"\"ew\" TYPE bigint USING \"n\"\"ew\"::bigint", params: [] }])
  })

  it("backfills existing rows with the source's value for them, encoded for the dialect", () => {
    const big: Schema.ColumnChange = { kind: "add", column: "b", oldType: undefined, newType: "bigint", typeOid: 20, backfill: { value: 7n } }
    expect(Schema.alter(ApplyPlan.dialects.pg, "t", big)).toEqual([
      { sql: "ALTER TABLE \"t\" ADD COLUMN \"b\" bigint", params: [] },
      { sql: "UPDATE \"t\" SET \"b\" = $1", params: ["7"] }
    ])
    expect(Schema.alter(ApplyPlan.dialects.sqlite, "t", { ...big, newType: "INTEGER" })[1]).toEqual({
      sql: "UPDATE \"t\" SET \"b\" = ?",
      params: [7n]
    })
    // A NULL backfill is what ADD COLUMN gives anyway.
    expect(Schema.alter(ApplyPlan.dialects.pg, "t", { ...big, backfill: { value: null } })).toHaveLength(1)
  })

  it("changes no type in SQLite (a change within its storage type is none)", () => {
    expect(Schema.alter(ApplyPlan.dialects.sqlite, "t", { ...add, kind: "type", oldType: "INTEGER", newType: "INTEGER" })).toEqual([])
  })

  it("reads a target table's columns in each dialect", () => {
    expect(Schema.readColumns(ApplyPlan.dialects.pg, weird).params).toEqual(["\"we\"\"ird\""])
    expect(Schema.readColumns(ApplyPlan.dialects.sqlite, weird)).toMatchObject({ params: [weird] })
  })
})

describe("cdc/Schema statements", () => {
  const items: ApplyPlan.Table = {
    schema: "public",
    table: "items",
    columns: [{ name: "id", typeOid: 23, formatted: "integer" }, { name: "gone", typeOid: 25, formatted: "text" }],
    key: ["id"]
  }
  const before: ApplyPlan.Relation = { schema: "public", table: "items", columns: items.columns }
  const after: ApplyPlan.Relation = {
    schema: "public",
    table: "items",
    columns: [{ name: "id", typeOid: 20 }, { name: "added", typeOid: 25 }]
  }
  const change: Schema.SchemaChange = {
    _tag: "SchemaChange",
    relation: after,
    columns: [
      { kind: "drop", column: "gone", oldType: "text", newType: undefined, typeOid: undefined },
      { kind: "type", column: "id", oldType: "integer", newType: "bigint", typeOid: 20 },
      { kind: "add", column: "added", oldType: undefined, newType: "text", typeOid: 25 }
    ]
  }

  it("puts the DDL between the rows before and after it, and the plan learns the new columns", () => {
    const plan = ApplyPlan.makePlan(ApplyPlan.dialects.pg, "r", [items])
    const sql = Schema.statements(plan, ApplyPlan.dialects.pg, [
      { _tag: "Insert", relation: before, row: { id: 1, gone: "x" } },
      change,
      { _tag: "Insert", relation: after, row: { id: 2n, added: "y" } },
      { _tag: "Insert", relation: after, row: { id: 3n, added: "z" } }
    ]).map((s) => s.sql)
    expect(sql).toEqual([
      "INSERT INTO \"items\" (\"id\", \"gone\") VALUES ($1, $2) ON CONFLICT (\"id\") DO UPDATE SET \"gone\" = excluded.\"gone\"",
      "ALTER TABLE \"items\" DROP COLUMN \"gone\"",
      "ALTER TABLE \"items\" ALTER COLUMN \"id\" TYPE bigint USING \"id\"::bigint",
      "ALTER TABLE \"items\" ADD COLUMN \"added\" text",
      // int8 keys still batch: two rows, one statement.
      "INSERT INTO \"items\" (\"id\", \"added\") VALUES ($1, $2), ($3, $4) ON CONFLICT (\"id\") DO UPDATE SET \"added\" = excluded.\"added\""
    ])
    expect(plan.table(after)?.columns.map((c) => [c.name, c.typeOid, c.formatted])).toEqual([
      ["id", 20, "bigint"],
      ["added", 25, "text"]
    ])
  })

  it("plans a transaction without schema changes as before", () => {
    const plan = ApplyPlan.makePlan(ApplyPlan.dialects.sqlite, "r", [items])
    const changes: Array<ApplyPlan.RowChange> = [{ _tag: "Delete", relation: before, key: { id: 1 } }]
    expect(Schema.statements(plan, ApplyPlan.dialects.sqlite, changes)).toEqual(plan.changes(changes))
  })
})
