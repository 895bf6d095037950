import { describe, expect, it } from "vitest"
import * as ApplyPlan from "../../src/cdc/ApplyPlan.js"
import * as Types from "../../src/cdc/Types.js"

// int4 id, text name, numeric price; a second table keyed by numeric (not batchable).
const items: ApplyPlan.Table = {
  schema: "public",
  table: "items",
  columns: [
    { name: "id", typeOid: 23, formatted: "integer" },
    { name: "name", typeOid: 25, formatted: "text" },
    { name: "price", typeOid: 1700, formatted: "numeric(12,2)" }
  ],
  key: ["id"]
}
const prices: ApplyPlan.Table = {
  schema: "public",
  table: "prices",
  columns: [{ name: "amount", typeOid: 1700, formatted: "numeric" }, { name: "note", typeOid: 25, formatted: "text" }],
  key: ["amount"]
}
const relation = (table: ApplyPlan.Table): ApplyPlan.Relation => ({ schema: table.schema, table: table.table, columns: table.columns })
const itemsRel = relation(items)
const pricesRel = relation(prices)
const other: ApplyPlan.Relation = { schema: "public", table: "other", columns: [{ name: "id", typeOid: 23 }] }

const insert = (row: ApplyPlan.Row, rel = itemsRel): ApplyPlan.RowChange => ({ _tag: "Insert", relation: rel, row })
const pg = ApplyPlan.makePlan(ApplyPlan.dialects.pg, "r1", [items, prices])
const sqlite = ApplyPlan.makePlan(ApplyPlan.dialects.sqlite, "r1", [items, prices], "my \"state\"")

describe("cdc/ApplyPlan tables and state", () => {
  it("creates each table with the source's types in PostgreSQL and mapped types in SQLite", () => {
    expect(pg.createTables().map((s) => s.sql)).toEqual([
      "CREATE TABLE IF NOT EXISTS \"items\" (\"id\" integer, \"name\" text, \"price\" numeric(12,2), PRIMARY KEY (\"id\"))",
      "CREATE TABLE IF NOT EXISTS \"prices\" (\"amount\" numeric, \"note\" text, PRIMARY KEY (\"amount\"))"
    ])
    expect(sqlite.createTables()[0]!.sql).toBe(
      "CREATE TABLE IF NOT EXISTS \"items\" (\"id\" INTEGER, \"name\" TEXT, \"price\" TEXT, PRIMARY KEY (\"id\"))"
    )
  })

  it("a table's type registry gives enums, domains and pass-through columns their target types and encoders", () => {
    const types = Types.makeRegistry([
      { oid: 90001, name: "mood", kind: "e", baseType: 0, element: 0 },
      { oid: 90002, name: "_mood", kind: "b", baseType: 0, element: 90001 },
      { oid: 90003, name: "small", kind: "d", baseType: 23, baseFormatted: "integer", element: 0 },
      { oid: 90004, name: "pair", kind: "c", baseType: 0, element: 0 }
    ], "text")
    const typed: ApplyPlan.Table = {
      schema: "public",
      table: "typed",
      columns: [
        { name: "id", typeOid: 90003, formatted: "small" },
        { name: "m", typeOid: 90002, formatted: "mood[]" },
        { name: "p", typeOid: 90004, formatted: "pair" },
        { name: "span", typeOid: 1186, formatted: "interval" }
      ],
      key: ["id"],
      types
    }
    const plan = (dialect: ApplyPlan.Dialect) => ApplyPlan.makePlan(dialect, "r", [typed])
    expect(plan(ApplyPlan.dialects.pg).createTables()[0]!.sql).toBe(
      "CREATE TABLE IF NOT EXISTS \"typed\" (\"id\" integer, \"m\" text[], \"p\" text, \"span\" interval, PRIMARY KEY (\"id\"))"
    )
    expect(plan(ApplyPlan.dialects.sqlite).createTables()[0]!.sql).toBe(
      "CREATE TABLE IF NOT EXISTS \"typed\" (\"id\" INTEGER, \"m\" TEXT, \"p\" TEXT, \"span\" TEXT, PRIMARY KEY (\"id\"))"
    )
    const row = { id: 7, m: ["ok", null], p: "(1,x)", span: "P1D" }
    const change: ApplyPlan.RowChange = { _tag: "Insert", relation: relation(typed), row }
    expect(plan(ApplyPlan.dialects.pg).changes([change])[0]!.params).toEqual([7, "{\"ok\",NULL}", "(1,x)", "P1D"])
    expect(plan(ApplyPlan.dialects.sqlite).changes([change])[0]!.params).toEqual([7, "[\"ok\",null]", "(1,x)", "P1D"])
  })

  it("keeps the last applied LSN per rule in the state table, quoted", () => {
    expect(pg.createStateTable.sql).toBe("CREATE TABLE IF NOT EXISTS \"effect_sql_router_cdc\" (rule TEXT PRIMARY KEY, lsn TEXT NOT NULL)")
    expect(pg.readState).toEqual({ sql: "SELECT lsn FROM \"effect_sql_router_cdc\" WHERE rule = $1", params: ["r1"] })
    expect(sqlite.readState).toEqual({ sql: "SELECT lsn FROM \"my \"\"state\"\"\" WHERE rule = ?", params: ["r1"] })
    const record = pg.recordState("0/016B3748")
    expect(record.sql).toMatch(/^INSERT INTO "effect_sql_router_cdc" \(rule, lsn\) VALUES \(\$1, \$2\)\s+ON CONFLICT \(rule\) DO UPDATE SET lsn = excluded.lsn$/)
    expect(record.params).toEqual(["r1", "0/016B3748"])
  })

  it("quotes identifiers by doubling quotes", () => {
    expect(ApplyPlan.quoteIdent("a\"b")).toBe("\"a\"\"b\"")
  })
})

describe("cdc/ApplyPlan changes", () => {
  it("an insert is an upsert on the key with the dialect's encoding", () => {
    expect(pg.changes([insert({ id: 1, name: "a", price: "1.50" })])).toEqual([{
      sql: "INSERT INTO \"items\" (\"id\", \"name\", \"price\") VALUES ($1, $2, $3) ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\", \"price\" = excluded.\"price\"",
      params: [1, "a", "1.50"]
    }])
    expect(sqlite.changes([insert({ id: 1, name: null, price: "1.50" })])[0]).toEqual({
      sql: "INSERT INTO \"items\" (\"id\", \"name\", \"price\") VALUES (?, ?, ?) ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\", \"price\" = excluded.\"price\"",
      params: [1, null, "1.50"]
    })
  })

  it("an unchanged TOAST value is left out; a key-only row does nothing on conflict", () => {
    const [update] = pg.changes([{ _tag: "Update", relation: itemsRel, key: { id: 2 }, row: { id: 2, name: undefined, price: "3" } }])
    expect(update!.sql).toBe("INSERT INTO \"items\" (\"id\", \"price\") VALUES ($1, $2) ON CONFLICT (\"id\") DO UPDATE SET \"price\" = excluded.\"price\"")
    expect(pg.changes([insert({ id: 3 })])[0]!.sql).toBe("INSERT INTO \"items\" (\"id\") VALUES ($1) ON CONFLICT (\"id\") DO NOTHING")
  })

  it("an update that moves the key deletes the old key first", () => {
    const statements = pg.changes([{ _tag: "Update", relation: itemsRel, key: { id: 1 }, row: { id: 5, name: "x", price: "1" } }])
    expect(statements.map((s) => s.sql)).toEqual([
      "DELETE FROM \"items\" WHERE \"id\" = $1",
      "INSERT INTO \"items\" (\"id\", \"name\", \"price\") VALUES ($1, $2, $3) ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\", \"price\" = excluded.\"price\""
    ])
    expect(statements[0]!.params).toEqual([1])
    expect(ApplyPlan.keyChanged(items, { id: 1 }, { id: 1 })).toBe(false)
    expect(ApplyPlan.keyChanged(items, { id: undefined }, { id: 1 })).toBe(false)
  })

  it("a delete is by key; a truncate deletes every row of the rule's tables only", () => {
    expect(sqlite.changes([{ _tag: "Delete", relation: itemsRel, key: { id: 9 } }])).toEqual([
      { sql: "DELETE FROM \"items\" WHERE \"id\" = ?", params: [9] }
    ])
    expect(pg.changes([{ _tag: "Truncate", relations: [itemsRel, other, pricesRel] }])).toEqual([
      { sql: "DELETE FROM \"items\"", params: [] },
      { sql: "DELETE FROM \"prices\"", params: [] }
    ])
  })

  it("changes of a table outside the rule are skipped", () => {
    expect(pg.changes([insert({ id: 1 }, other), { _tag: "Delete", relation: other, key: { id: 1 } }])).toEqual([])
  })

  it("runs of upserts with the same columns become one statement; a repeated key, another column set or another change ends the run", () => {
    const statements = pg.changes([
      insert({ id: 1, name: "a" }),
      insert({ id: 2, name: "b" }),
      insert({ id: 2, name: "c" }), // same key: a new statement
      insert({ id: 3 }), // other columns
      { _tag: "Delete", relation: itemsRel, key: { id: 1 } },
      insert({ id: 4 })
    ])
    expect(statements.map((s) => s.params)).toEqual([[1, "a", 2, "b"], [2, "c"], [3], [1], [4]])
    expect(statements[0]!.sql).toBe(
      "INSERT INTO \"items\" (\"id\", \"name\") VALUES ($1, $2), ($3, $4) ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\""
    )
  })

  it("a run's text is built once per shape and bound again with each batch's rows; a new column set or row count gets its own text", () => {
    const plan = ApplyPlan.makePlan(ApplyPlan.dialects.pg, "r", [items])
    const [first] = plan.changes([insert({ id: 1, name: "a" }), insert({ id: 2, name: "b" })])
    const [again] = plan.changes([insert({ id: 3, name: "c" }), insert({ id: 4, name: "d" })])
    expect(again!.sql).toBe(first!.sql)
    expect(again!.params).toEqual([3, "c", 4, "d"])
    // An unchanged TOAST value (undefined) leaves its column out, in the text as in the run.
    const [three, toast] = plan.changes([
      insert({ id: 5, name: "e" }),
      insert({ id: 6, name: "f" }),
      insert({ id: 7, name: "g" }),
      insert({ id: 8, name: undefined, price: "1.00" })
    ])
    expect(three!.sql).toContain("VALUES ($1, $2), ($3, $4), ($5, $6) ON CONFLICT")
    expect(three!.params).toEqual([5, "e", 6, "f", 7, "g"])
    expect(toast!.sql).toBe("INSERT INTO \"items\" (\"id\", \"price\") VALUES ($1, $2) ON CONFLICT (\"id\") DO UPDATE SET \"price\" = excluded.\"price\"")
    expect(toast!.params).toEqual([8, "1.00"])
  })

  it("a key whose text is not its identity (numeric) is never batched", () => {
    const statements = pg.changes([insert({ amount: "1.0", note: "a" }, pricesRel), insert({ amount: "2.0", note: "b" }, pricesRel)])
    expect(statements).toHaveLength(2)
  })

  it("a run stays under the parameter cap", () => {
    const rows = Array.from({ length: 10_001 }, (_, i) => insert({ id: i, name: "n", price: "1" }))
    const statements = pg.changes(rows)
    // 10 000 rows (the cap for 3 columns): 8192 + 1024 + 512 + 256 + 16, then the last row.
    expect(statements.map((s) => s.params.length)).toEqual([24_576, 3_072, 1_536, 768, 48, 3])
    expect(statements.every((s) => s.params.length <= ApplyPlan.maxParameters)).toBe(true)
  })


  it("names each statement text once per namer, up to its capacity, and keeps the names it gave", () => {
    const names = ApplyPlan.makeStatementNames(2)
    const a = names("INSERT a")
    const b = names("INSERT b")
    expect(a).toBeDefined()
    expect(b).toBeDefined()
    expect(a).not.toBe(b)
    expect(names("INSERT a")).toBe(a)
    expect(names("INSERT c")).toBeUndefined()
    expect(names("INSERT b")).toBe(b)
    expect(a!.length).toBeLessThan(64) // PostgreSQL's NAMEDATALEN
    expect(ApplyPlan.makeStatementNames()("INSERT a")).toBe(a)
  })
  it("long runs are cut into powers of two, so statement texts repeat across batches of varying size", () => {
    expect(ApplyPlan.runSizes(1)).toEqual([1])
    expect(ApplyPlan.runSizes(255)).toEqual([255])
    expect(ApplyPlan.runSizes(256)).toEqual([256])
    expect(ApplyPlan.runSizes(1999)).toEqual([1024, 512, 256, 207])
    expect(ApplyPlan.runSizes(5000)).toEqual([4096, 512, 256, 136])
    expect(ApplyPlan.runSizes(0)).toEqual([])
  })

  it("presentColumns leaves out unchanged TOAST values but keeps NULL", () => {
    expect(ApplyPlan.presentColumns({ a: 1, b: undefined, c: null })).toEqual(["a", "c"])
  })

  it("the state record and the statements of every change kind are exact, byte for byte", () => {
    expect(sqlite.recordState("0/1")).toEqual({
      sql: "INSERT INTO \"my \"\"state\"\"\" (rule, lsn) VALUES (?, ?)\n           ON CONFLICT (rule) DO UPDATE SET lsn = excluded.lsn",
      params: ["r1", "0/1"]
    })
    const upsertItems = (values: string) =>
      `INSERT INTO "items" ("id", "name") VALUES ${values} ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name"`
    const statements = pg.changes([
      insert({ id: 1, name: "a" }),
      { _tag: "Update", relation: itemsRel, key: { id: 2 }, row: { id: 2, name: "b" } }, // keeps its key: joins the run
      insert({ amount: "1", note: "n" }, pricesRel), // another table, not batchable
      insert({ id: 3, name: "c" }),
      { _tag: "Truncate", relations: [pricesRel] },
      insert({ id: 4, name: "d" }),
      insert({ id: 5, name: "e" }, other), // outside the rule: nothing planned, but the run ends
      insert({ id: 6, name: "f" })
    ])
    expect(statements).toEqual([
      { sql: upsertItems("($1, $2), ($3, $4)"), params: [1, "a", 2, "b"] },
      {
        sql: "INSERT INTO \"prices\" (\"amount\", \"note\") VALUES ($1, $2) ON CONFLICT (\"amount\") DO UPDATE SET \"note\" = excluded.\"note\"",
        params: ["1", "n"]
      },
      { sql: upsertItems("($1, $2)"), params: [3, "c"] },
      { sql: "DELETE FROM \"prices\"", params: [] },
      { sql: upsertItems("($1, $2)"), params: [4, "d"] },
      { sql: upsertItems("($1, $2)"), params: [6, "f"] }
    ])
  })

  it("runs of deletes from one table become one statement by key; another table or another change ends the run", () => {
    const del = (id: number, rel = itemsRel): ApplyPlan.RowChange => ({ _tag: "Delete", relation: rel, key: { id } })
    const statements = pg.changes([
      del(1),
      del(2),
      del(2), // a repeated key may share the statement
      { _tag: "Delete", relation: pricesRel, key: { amount: "1.5" } }, // another table
      del(3),
      insert({ id: 3, name: "x" }), // another kind
      del(3),
      del(4, other), // outside the rule: nothing, and the run ends
      del(5)
    ])
    expect(statements).toEqual([
      { sql: "DELETE FROM \"items\" WHERE \"id\" IN ($1, $2, $3)", params: [1, 2, 2] },
      { sql: "DELETE FROM \"prices\" WHERE \"amount\" = $1", params: ["1.5"] },
      { sql: "DELETE FROM \"items\" WHERE \"id\" = $1", params: [3] },
      { sql: "INSERT INTO \"items\" (\"id\", \"name\") VALUES ($1, $2) ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\"", params: [3, "x"] },
      { sql: "DELETE FROM \"items\" WHERE \"id\" = $1", params: [3] },
      { sql: "DELETE FROM \"items\" WHERE \"id\" = $1", params: [5] }
    ])
  })

  it("a composite key deletes by row values, in both dialects", () => {
    const pairs: ApplyPlan.Table = {
      schema: "public",
      table: "pairs",
      columns: [{ name: "a", typeOid: 23, formatted: "integer" }, { name: "b", typeOid: 25, formatted: "text" }],
      key: ["a", "b"]
    }
    const rel = relation(pairs)
    const changes: Array<ApplyPlan.RowChange> = [
      { _tag: "Delete", relation: rel, key: { a: 1, b: "x" } },
      { _tag: "Delete", relation: rel, key: { a: 2, b: "y" } }
    ]
    expect(ApplyPlan.makePlan(ApplyPlan.dialects.pg, "r", [pairs]).changes(changes)).toEqual([
      { sql: "DELETE FROM \"pairs\" WHERE (\"a\", \"b\") IN (($1, $2), ($3, $4))", params: [1, "x", 2, "y"] }
    ])
    expect(ApplyPlan.makePlan(ApplyPlan.dialects.sqlite, "r", [pairs]).changes(changes)).toEqual([
      { sql: "DELETE FROM \"pairs\" WHERE (\"a\", \"b\") IN ((?, ?), (?, ?))", params: [1, "x", 2, "y"] }
    ])
  })

  it("a run of deletes stays under the parameter cap", () => {
    const keys = Array.from({ length: 30_001 }, (_, i): ApplyPlan.RowChange => ({ _tag: "Delete", relation: itemsRel, key: { id: i } }))
    expect(sqlite.changes(keys).map((s) => s.params.length)).toEqual([30_000, 1])
  })

  it("insert, update and delete of one key in one transaction keep their order across runs", () => {
    const statements = sqlite.changes([
      insert({ id: 1, name: "a" }),
      insert({ id: 2, name: "a" }),
      { _tag: "Update", relation: itemsRel, key: { id: 1 }, row: { id: 1, name: "b" } }, // key 1 again: new run
      { _tag: "Delete", relation: itemsRel, key: { id: 1 } },
      { _tag: "Delete", relation: itemsRel, key: { id: 2 } },
      insert({ id: 1, name: "c" }),
      { _tag: "Update", relation: itemsRel, key: { id: 1 }, row: { id: 7, name: "d" } }, // moves its key
      insert({ id: 8, name: "e" })
    ])
    expect(statements.map((s) => [s.sql.split(" ")[0], s.params])).toEqual([
      ["INSERT", [1, "a", 2, "a"]],
      ["INSERT", [1, "b"]],
      ["DELETE", [1, 2]],
      ["INSERT", [1, "c"]],
      ["DELETE", [1]],
      ["INSERT", [7, "d"]],
      ["INSERT", [8, "e"]]
    ])
  })

  it("an update with an unchanged TOAST value starts a run of its own column set", () => {
    const statements = pg.changes([
      insert({ id: 1, name: "a", price: "1" }),
      { _tag: "Update", relation: itemsRel, key: { id: 2 }, row: { id: 2, name: undefined, price: "2" } },
      { _tag: "Update", relation: itemsRel, key: { id: 3 }, row: { id: 3, name: undefined, price: "3" } }
    ])
    expect(statements.map((s) => s.params)).toEqual([[1, "a", "1"], [2, "2", 3, "3"]])
    expect(statements[1]!.sql).toBe(
      "INSERT INTO \"items\" (\"id\", \"price\") VALUES ($1, $2), ($3, $4) ON CONFLICT (\"id\") DO UPDATE SET \"price\" = excluded.\"price\""
    )
  })

  it("a partly applied source transaction is recorded after the last whole one, and read back", () => {
    expect(pg.recordPartial("0/10", "0/20").params).toEqual(["r1", "0/10 partial 0/20"])
    expect(pg.recordPartial(undefined, "0/20").params).toEqual(["r1", "0/0 partial 0/20"])
    expect(ApplyPlan.parseState("0/10 partial 0/20")).toEqual({ lsn: "0/10", partial: "0/20" })
    expect(ApplyPlan.parseState("0/10")).toEqual({ lsn: "0/10", partial: undefined })
  })
})
