import { describe, expect, it } from "vitest"
import { dialects } from "../../src/cdc/ApplyPlan.js"
import type { Relation, RowChange } from "../../src/cdc/Changes.js"
import * as Snapshot from "../../src/cdc/Snapshot.js"

const table = { schema: "public", table: "t", columns: [{ name: "id" }, { name: "v" }], key: ["id"] }
const composite = { schema: "s", table: "Odd\"name", columns: [{ name: "a" }, { name: "b" }, { name: "v" }], key: ["a", "b"] }
const relation = (t: typeof table | typeof composite): Relation => ({
  oid: 1,
  schema: t.schema,
  table: t.table,
  columns: [],
  keyColumns: t.key,
  replicaIdentity: "default"
})
const insert = (row: Record<string, unknown>, t: typeof table | typeof composite = table): RowChange => ({
  _tag: "Insert",
  xid: 1,
  lsn: "0/1",
  relation: relation(t),
  row
})
const seeAll = Snapshot.parseVisibility("100:100:")

describe("Snapshot", () => {
  it("chunk queries: keyset by primary key, single and composite, quoted, resume key bound as text", () => {
    expect(Snapshot.chunkQuery(table, null, 500)).toEqual({
      sql: "SELECT \"id\", \"v\" FROM \"public\".\"t\" ORDER BY \"id\" LIMIT 500",
      params: []
    })
    expect(Snapshot.chunkQuery(table, ["41"], 500)).toEqual({
      sql: "SELECT \"id\", \"v\" FROM \"public\".\"t\" WHERE \"id\" > $1 ORDER BY \"id\" LIMIT 500",
      params: ["41"]
    })
    expect(Snapshot.chunkQuery(composite, ["x", "7"], 10)).toEqual({
      sql: "SELECT \"a\", \"b\", \"v\" FROM \"s\".\"Odd\"\"name\" WHERE (\"a\", \"b\") > ($1, $2) ORDER BY \"a\", \"b\" LIMIT 10",
      params: ["x", "7"]
    })
    expect(() => Snapshot.chunkQuery(composite, ["x"], 10)).toThrow(/2 key columns/)
  })

  it("key text: what the stream decodes prints back as the server's text; the last row's key is the resume point", () => {
    expect(Snapshot.keyText(9007199254740993n)).toBe("9007199254740993")
    expect(Snapshot.keyText(42)).toBe("42")
    expect(Snapshot.keyText("a\u0000b")).toBe("a\u0000b")
    expect(Snapshot.keyText(new Uint8Array([0, 255]))).toBe("\\x00ff")
    expect(Snapshot.keyText(true)).toBe("true")
    expect(() => Snapshot.keyText(null)).toThrow(/NULL/)
    expect(Snapshot.lastKey(composite, [{ a: "x", b: 1n }, { a: "y", b: 2n }])).toEqual(["y", "2"])
    expect(Snapshot.lastKey(composite, [])).toBeNull()
  })

  it("watermarks: written transactional under the slot's prefix; only the slot's own are read back", () => {
    const statement = Snapshot.emitWatermark("cdc_a", { chunk: "c1", kind: "low" })
    expect(statement.sql).toBe("SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn")
    expect(statement.params).toEqual(["effect-sql-router/cdc/cdc_a", "{\"chunk\":\"c1\",\"kind\":\"low\"}"])
    const content = Buffer.from(String(statement.params[1]))
    expect(Snapshot.parseWatermark("cdc_a", "effect-sql-router/cdc/cdc_a", content)).toEqual({ chunk: "c1", kind: "low" })
    expect(Snapshot.parseWatermark("cdc_b", "effect-sql-router/cdc/cdc_a", content)).toBeUndefined()
    expect(Snapshot.parseWatermark("cdc_a", "effect-sql-router/cdc/cdc_a", Buffer.from("not json"))).toBeUndefined()
    expect(Snapshot.parseWatermark("cdc_a", "effect-sql-router/cdc/cdc_a", Buffer.from("{\"chunk\":1}"))).toBeUndefined()
  })

  it("visibility: running xids and xids from xmax on are invisible, modulo 2^32", () => {
    const v = Snapshot.parseVisibility("90:100:92,95")
    expect([89, 91, 92, 95, 99, 100, 5000].map(v.invisible)).toEqual([false, false, true, true, false, true, true])
    // 64-bit xids of a later epoch compare by their low half.
    const wrapped = Snapshot.parseVisibility(`${2n ** 32n + 10n}:${2n ** 32n + 20n}:${2n ** 32n + 12n}`)
    expect([11, 12, 19, 20, 2 ** 32 - 5].map(wrapped.invisible)).toEqual([false, true, false, true, false])
    expect(() => Snapshot.parseVisibility("garbage")).toThrow(/not a snapshot/)
  })

  it("the merge: keys the stream touched inside the window leave the chunk; before it, only invisible transactions' do", () => {
    const rows = [1, 2, 3, 4, 5, 6].map((id) => ({ id, v: `r${id}` }))
    const window = Snapshot.makeWindow("c", table, rows, Snapshot.parseVisibility("50:60:55"))
    // Before the low watermark: a visible transaction's change is already in the read.
    window.touch(insert({ id: 1, v: "x" }), 40)
    // ... an invisible one's is not: the stream's row wins.
    window.touch(insert({ id: 2, v: "x" }), 55)
    window.opened = true
    window.touch({ _tag: "Update", xid: 61, lsn: "0/2", relation: relation(table), row: { id: 9, v: "moved" }, key: { id: 3 }, old: undefined }, 61)
    window.touch({ _tag: "Delete", xid: 62, lsn: "0/3", relation: relation(table), key: { id: 4 }, old: undefined }, 62)
    window.touch(insert({ id: 5, v: "other table" }, { ...table, table: "u" }), 63)
    expect(window.remaining().map((r) => r.id)).toEqual([1, 5, 6])
    expect(window.dropped()).toBe(3)
    window.touch({ _tag: "Truncate", xid: 64, lsn: "0/4", relations: [relation(table)], cascade: false, restartIdentity: false }, 64)
    expect(window.remaining()).toEqual([])
    expect(window.dropped()).toBe(6)
  })

  it("the merge on a composite key: a key is its whole tuple", () => {
    const rows = [{ a: "x", b: 1n, v: 1 }, { a: "x", b: 2n, v: 2 }, { a: "y", b: 1n, v: 3 }]
    const window = Snapshot.makeWindow("c", composite, rows, seeAll)
    window.opened = true
    window.touch(insert({ a: "x", b: 2n, v: 9 }, composite), 101)
    expect(window.remaining()).toEqual([rows[0], rows[2]])
  })

  it("progress records: one row per table left, written next to the state table, in both dialects", () => {
    const pg = Snapshot.progressPlan(dialects.pg, "r", "effect_sql_router_cdc")
    expect(pg.create.sql).toBe(
      "CREATE TABLE IF NOT EXISTS \"effect_sql_router_cdc_snapshot\" (rule TEXT NOT NULL, tbl TEXT NOT NULL, after TEXT, PRIMARY KEY (rule, tbl))"
    )
    expect(pg.read).toEqual({ sql: "SELECT tbl, after FROM \"effect_sql_router_cdc_snapshot\" WHERE rule = $1 ORDER BY tbl", params: ["r"] })
    expect(pg.record({ table: "public.t", after: ["x", "7"] }).params).toEqual(["r", "public.t", "[\"x\",\"7\"]"])
    expect(pg.record({ table: "public.t", after: null }).params).toEqual(["r", "public.t", null])
    expect(pg.done("public.t")).toEqual({ sql: "DELETE FROM \"effect_sql_router_cdc_snapshot\" WHERE rule = $1 AND tbl = $2", params: ["r", "public.t"] })
    const lite = Snapshot.progressPlan(dialects.sqlite, "r", "st")
    expect(lite.record({ table: "public.t", after: null }).sql).toContain("VALUES (?, ?, ?)")
    expect(Snapshot.readProgress({ tbl: "public.t", after: "[\"x\",\"7\"]" })).toEqual({ table: "public.t", after: ["x", "7"] })
    expect(Snapshot.readProgress({ tbl: "public.t", after: null })).toEqual({ table: "public.t", after: null })
  })

  it("resnapshot requests: one row per table asked for, kept until a session takes it; each update has its statement", () => {
    const pg = Snapshot.progressPlan(dialects.pg, "r")
    expect(Snapshot.progressPlan(dialects.pg, "r", "effect_sql_router_cdc").request("t")).toEqual(pg.request("t"))
    expect(pg.createRequests.sql).toBe(
      "CREATE TABLE IF NOT EXISTS \"effect_sql_router_cdc_resnapshot\" (rule TEXT NOT NULL, tbl TEXT NOT NULL, PRIMARY KEY (rule, tbl))"
    )
    expect(pg.readRequests).toEqual({ sql: "SELECT tbl FROM \"effect_sql_router_cdc_resnapshot\" WHERE rule = $1 ORDER BY tbl", params: ["r"] })
    // Asking twice is one request.
    expect(pg.request("items")).toEqual({
      sql: "INSERT INTO \"effect_sql_router_cdc_resnapshot\" (rule, tbl) VALUES ($1, $2) ON CONFLICT (rule, tbl) DO NOTHING",
      params: ["r", "items"]
    })
    expect(pg.taken("items")).toEqual({ sql: "DELETE FROM \"effect_sql_router_cdc_resnapshot\" WHERE rule = $1 AND tbl = $2", params: ["r", "items"] })
    const lite = Snapshot.progressPlan(dialects.sqlite, "r", "st")
    expect(lite.request("items").sql).toBe("INSERT INTO \"st_resnapshot\" (rule, tbl) VALUES (?, ?) ON CONFLICT (rule, tbl) DO NOTHING")
    expect(Snapshot.progressStatement(pg, { taken: "items" })).toEqual(pg.taken("items"))
    expect(Snapshot.progressStatement(pg, { table: "public.t", after: "done" })).toEqual(pg.done("public.t"))
    expect(Snapshot.progressStatement(pg, { table: "public.t", after: null })).toEqual(pg.record({ table: "public.t", after: null }))
    expect(Snapshot.progressStatement(pg, { table: "public.t", after: ["7"] })).toEqual(pg.record({ table: "public.t", after: ["7"] }))
  })

  it("progress figures: rate, rows left and seconds left; none left once done; no estimate, no time left", () => {
    const base = { running: true, table: "public.t", tablesDone: 0, tablesTotal: 2, rowsCopied: 500, rowsTotal: 1500, startedAt: 0, endedAt: undefined }
    expect(Snapshot.progress(base, 2000)).toEqual({ ...base, rowsPerSecond: 250, secondsLeft: 4, startedAt: undefined, endedAt: undefined })
    expect(Snapshot.progress({ ...base, rowsTotal: undefined }, 2000).secondsLeft).toBeUndefined()
    expect(Snapshot.progress({ ...base, running: false, endedAt: 1000 }, 5000)).toMatchObject({ table: undefined, rowsPerSecond: 500, secondsLeft: 0 })
  })

  it("relations of snapshot changes carry the table's key", () => {
    expect(Snapshot.relationOf({ schema: "s", table: "t", key: ["a"], columns: [{ name: "a", typeOid: 23 }, { name: "b", typeOid: 25 }] }))
      .toMatchObject({ schema: "s", table: "t", keyColumns: ["a"], columns: [{ name: "a", isKey: true }, { name: "b", isKey: false }] })
  })
})
