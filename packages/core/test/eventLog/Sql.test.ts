import { describe, expect, it } from "vitest"
import * as Sql from "../../src/eventLog/Sql.js"

describe("resolveNames", () => {
  it("defaults: event_log, its projection table, the table as channel", () => {
    expect(Sql.resolveNames({})).toEqual({
      table: "event_log",
      projectionTable: "event_log_projection",
      channel: "event_log"
    })
  })

  it("keeps names that are given", () => {
    expect(Sql.resolveNames({ table: "orders", projectionTable: "seen", channel: "orders_feed" })).toEqual({
      table: "orders",
      projectionTable: "seen",
      channel: "orders_feed"
    })
  })

  it.each([
    ["upper case", "Orders"],
    ["a leading digit", "1orders"],
    ["a quote", "a\"b"],
    ["a space", "a b"],
    ["the empty name", ""],
    ["a non-ASCII letter", "ordrés"]
  ])("refuses a table with %s", (_, table) => {
    expect(Sql.resolveNames({ table })).toEqual({ field: "table", reason: Sql.nameRule(Sql.maxTableBytes) })
  })

  it("refuses a name that is not a string", () => {
    expect(Sql.resolveNames({ channel: 42 as unknown as string })).toMatchObject({ field: "channel" })
  })

  it("a table leaves room for its longest trigger suffix (_immutable)", () => {
    expect(Sql.maxTableBytes).toBe(63 - "_immutable".length)
    const longest = "t".repeat(Sql.maxTableBytes)
    expect(Sql.resolveNames({ table: longest, projectionTable: "p" })).toMatchObject({ table: longest })
    expect(Sql.resolveNames({ table: `${longest}t`, projectionTable: "p" })).toEqual({
      field: "table",
      reason: Sql.nameRule(53)
    })
  })

  it("a table too long for the default projection table names the limit and the way out", () => {
    const table = "t".repeat(63 - "_projection".length + 1)
    const refused = Sql.resolveNames({ table })
    expect(refused).toMatchObject({ field: "table" })
    expect(Sql.isNameRefusal(refused) && refused.reason).toContain("use at most 52 bytes, or set projectionTable")
    expect(Sql.resolveNames({ table: "t".repeat(52) })).toMatchObject({ projectionTable: `${"t".repeat(52)}_projection` })
  })

  it("other names may use all 63 bytes, not 64", () => {
    expect(Sql.resolveNames({ channel: "c".repeat(63) })).toMatchObject({ channel: "c".repeat(63) })
    expect(Sql.resolveNames({ channel: "c".repeat(64) })).toEqual({ field: "channel", reason: Sql.nameRule(63) })
    expect(Sql.resolveNames({ projectionTable: "p".repeat(64) })).toEqual({
      field: "projectionTable",
      reason: Sql.nameRule(63)
    })
  })

  it("the projection table must differ from the table", () => {
    expect(Sql.resolveNames({ table: "log", projectionTable: "log" })).toEqual({
      field: "projectionTable",
      reason: "must differ from table"
    })
  })

  it("the first refusal in field order wins", () => {
    expect(Sql.resolveNames({ table: "Bad", channel: "Bad" })).toMatchObject({ field: "table" })
  })
})

describe("queriesFor", () => {
  const queries = Sql.queriesFor({ table: "order", projectionTable: "user", channel: "select" })
  const all = [...queries.migrate, ...Object.values(queries).filter((q): q is string => typeof q === "string")]

  it("quotes every table, so reserved words work", () => {
    for (const text of all.filter((text) => /\bFROM\b|\bINTO\b|\bUPDATE\b|\bTABLE\b/.test(text))) {
      expect(text).not.toMatch(/(FROM|INTO|UPDATE|TABLE IF NOT EXISTS|ON) (order|user)\b/)
    }
    expect(queries.systemVersion).toBe(`SELECT coalesce(max(version), 0) AS version FROM "order"`)
    expect(queries.projectionVersion).toBe(`SELECT version FROM "user" WHERE id = $1`)
    expect(queries.migrate.some((text) => text.includes(`CREATE TABLE IF NOT EXISTS "order"`))).toBe(true)
    expect(queries.migrate.some((text) => text.includes(`CREATE TABLE IF NOT EXISTS "user"`))).toBe(true)
  })

  it("names the triggers after the table, quoted, and notifies on the channel", () => {
    const triggers = queries.migrate.filter((text) => text.startsWith("CREATE OR REPLACE TRIGGER"))
    expect(triggers).toHaveLength(2)
    expect(triggers[0]).toContain(`TRIGGER "order_notify" AFTER INSERT ON "order"`)
    expect(triggers[0]).toContain(`effect_sql_router_event_log_notify('select')`)
    expect(triggers[1]).toContain(`TRIGGER "order_immutable" BEFORE UPDATE OR DELETE ON "order"`)
  })

  it("migrates under one advisory lock, taken first", () => {
    expect(queries.migrate[0]).toContain("pg_advisory_xact_lock")
  })

  it("appends at the assumed version plus one, only when the log is there", () => {
    expect(queries.append).toContain("SELECT $1::bigint + 1, $2, $3::jsonb, $4")
    expect(queries.append).toContain(`WHERE (SELECT coalesce(max(version), 0) FROM "order") = $1::bigint`)
    expect(queries.append).toContain("ON CONFLICT (version) DO NOTHING")
  })

  it("reads forward ascending and backward descending", () => {
    expect(queries.eventsForward).toContain("version >= $1 ORDER BY version LIMIT $2")
    expect(queries.eventsReverse).toContain("version <= $1 ORDER BY version DESC LIMIT $2")
  })

  it("never sets a projection past the log's head", () => {
    expect(queries.setProjection).toContain(`$2::bigint <= (SELECT coalesce(max(version), 0) FROM "order")`)
  })
})
