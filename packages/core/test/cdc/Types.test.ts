import { describe, expect, it } from "vitest"
import * as Types from "../../src/cdc/Types.js"

// Column types of the change stream: array text, the decoders, and the
// per-dialect encoders.

describe("cdc/Types", () => {
  it("array text: NULLs, quotes, backslashes, nesting, bounds", () => {
    expect(Types.parseArray("{1,NULL,3}", Number)).toEqual([1, null, 3])
    expect(Types.parseArray("{\"a b\",\"c\\\"d\",\"e\\\\f\",NULL,\"NULL\"}", String)).toEqual(["a b", "c\"d", "e\\f", null, "NULL"])
    expect(Types.parseArray("{{1,2},{3,4}}", Number)).toEqual([[1, 2], [3, 4]])
    expect(Types.parseArray("{}", Number)).toEqual([])
    // Malformed text fails; it never loops past its end.
    for (const text of ["1", "", "{", "{1,2", "{\"a", "{{1}"]) {
      expect(() => Types.parseArray(text, Number), text).toThrow(/not an array literal/)
    }
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
})
