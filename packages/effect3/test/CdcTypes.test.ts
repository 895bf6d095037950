import { describe, expect, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as Cdc from "effect-sql-router/Cdc"
import * as Types from "../src/internal/cdcTypes.js"

// The pure half of CDC: LSNs, array text, and the per-dialect encoders.

describe("Cdc types", () => {
  it("LSNs print as PostgreSQL 18 does and parse both widths", () => {
    expect(Cdc.formatLsn(0x16b3748n)).toBe("0/016B3748")
    expect(Cdc.formatLsn((0xabn << 32n) | 0xffffffffn)).toBe("AB/FFFFFFFF")
    expect(Cdc.parseLsn("0/16B3748")).toBe(0x16b3748n)
    expect(Cdc.parseLsn("00000000/016B3748")).toBe(0x16b3748n)
    expect(Cdc.parseLsn(Cdc.formatLsn(123456789012345n))).toBe(123456789012345n)
  })

  it("array text: NULLs, quotes, backslashes, nesting, bounds", () => {
    expect(Types.parseArray("{1,NULL,3}", Number)).toEqual([1, null, 3])
    expect(Types.parseArray("{\"a b\",\"c\\\"d\",\"e\\\\f\",NULL,\"NULL\"}", String)).toEqual(["a b", "c\"d", "e\\f", null, "NULL"])
    expect(Types.parseArray("{{1,2},{3,4}}", Number)).toEqual([[1, 2], [3, 4]])
    expect(Types.parseArray("{}", Number)).toEqual([])
    expect(Types.parseArray("[0:1]={7,8}", Number)).toEqual([7, 8])
  })

  it("decoders: exact int8 and numeric, JSON kept as text, bytea as bytes", () => {
    expect(Types.decoderFor(20)("9223372036854775807")).toBe(9223372036854775807n)
    expect(Types.decoderFor(1700)("0.1000000000000000000001")).toBe("0.1000000000000000000001")
    expect(Types.decoderFor(3802)("{\"n\": 12345678901234567890}")).toBe("{\"n\": 12345678901234567890}")
    expect(Buffer.from(Types.decoderFor(17)("\\x00ff") as Uint8Array)).toEqual(Buffer.from([0, 255]))
    expect(Types.decoderFor(1016)("{1,-9223372036854775808}")).toEqual([1n, -9223372036854775808n])
    // An unknown type stays the server's text (a rule refuses it before this).
    expect(Types.decoderFor(1186)("1 day")).toBe("1 day")
    expect(Types.isSupported(1186)).toBe(false)
  })

  it("encoders: PostgreSQL array literals and SQLite values", () => {
    const texts = Types.columnType(1009)!
    expect(texts.toPg(["a\"b", null, "c\\d", "{}"])).toBe("{\"a\\\"b\",NULL,\"c\\\\d\",\"{}\"}")
    expect(texts.toSqlite(["a\"b", null])).toBe("[\"a\\\"b\",null]")
    const bigs = Types.columnType(1016)!
    expect(bigs.toPg([9223372036854775807n])).toBe("{\"9223372036854775807\"}")
    expect(bigs.toSqlite([9223372036854775807n])).toBe("[9223372036854775807]")
    expect(Types.columnType(20)!.toPg(5n)).toBe("5")
    expect(Types.columnType(16)!.toSqlite(true)).toBe(1)
    expect(Types.columnType(1184)!.toSqlite("2026-12-01 18:51:00.123456+00")).toBe("2026-12-01T18:51:00.123456Z")
    expect(Types.columnType(1184)!.toSqlite(null)).toBe(null)
    expect(Types.columnType(1700)!.sqliteType).toBe("TEXT")
  })

  it("the rule schema names the bad field", () => {
    const decode = Schema.decodeUnknownEither(Cdc.Rule)
    expect(decode({ name: "ok_1", tables: ["a", "s.b"], target: "t" })._tag).toBe("Right")
    expect(decode({ name: "1bad", tables: ["a"], target: "t" })._tag).toBe("Left")
    expect(decode({ name: "ok", tables: ["a;drop"], target: "t" })._tag).toBe("Left")
    expect(decode({ name: "ok", tables: ["a"], target: "t", slot: "Upper" })._tag).toBe("Left")
    expect(decode({ name: "ok", tables: ["a"], target: "t", maxRetainedWalBytes: 0 })._tag).toBe("Left")
  })
})
