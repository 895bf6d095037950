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
    expect(Types.decoderFor(600)("(1,2)")).toBe("(1,2)")
    expect(Types.isSupported(600)).toBe(false)
    // interval: the ISO 8601 text the source sessions print, kept as it is.
    expect(Types.decoderFor(1186)("P1Y2M-3DT4H5M6.000001S")).toBe("P1Y2M-3DT4H5M6.000001S")
    expect(Types.decoderFor(1187)("{P1D,NULL,\"PT-0.5S\"}")).toEqual(["P1D", null, "PT-0.5S"])
    expect(Types.columnType(1187)!.toSqlite(["P1D", null])).toBe("[\"P1D\",null]")
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

  describe("types resolved from catalog facts", () => {
    // An enum "mood", a domain "price" over numeric(12,2), a domain "pos"
    // over "price", their array types, a composite and a range.
    const facts: ReadonlyArray<Types.TypeFact> = [
      { oid: 90001, name: "mood", kind: "e", baseType: 0, element: 0 },
      { oid: 90002, name: "_mood", kind: "b", baseType: 0, element: 90001 },
      { oid: 90003, name: "price", kind: "d", baseType: 1700, baseFormatted: "numeric(12,2)", element: 0 },
      { oid: 90004, name: "_price", kind: "b", baseType: 0, element: 90003 },
      { oid: 90005, name: "pos", kind: "d", baseType: 90003, baseFormatted: "price", element: 0 },
      { oid: 90006, name: "small", kind: "d", baseType: 23, baseFormatted: "integer", element: 0 },
      { oid: 90007, name: "_small", kind: "b", baseType: 0, element: 90006 },
      { oid: 90008, name: "ints", kind: "d", baseType: 1007, baseFormatted: "integer[]", element: 0 },
      { oid: 90009, name: "pair", kind: "c", baseType: 0, element: 0 },
      { oid: 3904, name: "int4range", kind: "r", baseType: 0, element: 0 },
      { oid: 90010, name: "_pair", kind: "b", baseType: 0, element: 90009 }
    ]
    const registry = Types.makeRegistry(facts)

    it("an enum is its label, text on both targets", () => {
      const mood = registry.columnType(90001)!
      expect(mood.decode("happy")).toBe("happy")
      expect(mood.pgType).toBe("text")
      expect(mood.sqliteType).toBe("TEXT")
      const moods = registry.columnType(90002)!
      expect(moods.decode("{happy,NULL,\"very sad\"}")).toEqual(["happy", null, "very sad"])
      expect(moods.pgType).toBe("text[]")
      expect(moods.toPg(["a", null])).toBe("{\"a\",NULL}")
    })

    it("a domain is its base type, recursively, with the domain's modifier", () => {
      const price = registry.columnType(90003)!
      expect(price.decode("12.50")).toBe("12.50")
      expect(price.pgType).toBe("numeric(12,2)")
      expect(registry.columnType(90005)!.pgType).toBe("numeric(12,2)")
      const small = registry.columnType(90006)!
      expect(small.decode("7")).toBe(7)
      expect(small.sqliteType).toBe("INTEGER")
      expect(small.pgType).toBe("integer")
      const smalls = registry.columnType(90007)!
      expect(smalls.decode("{{1,NULL},{3,4}}")).toEqual([[1, null], [3, 4]])
      expect(smalls.pgType).toBe("integer[]")
      expect(smalls.toSqlite([[1, null], [3, 4]])).toBe("[[1,null],[3,4]]")
      expect(registry.columnType(90004)!.pgType).toBe("numeric(12,2)[]")
      // A domain over an array type.
      const ints = registry.columnType(90008)!
      expect(ints.decode("{1,2}")).toEqual([1, 2])
      expect(ints.pgType).toBe("integer[]")
    })

    it("built-in types keep the source column's own type", () => {
      expect(registry.columnType(1700)!.pgType).toBe(undefined)
      expect(registry.columnType(1187)!.pgType).toBe(undefined)
      expect(registry.columnType(1186)!.passthrough).toBe(false)
    })

    it("other types: refused under fail, their text form under text", () => {
      for (const oid of [90009, 3904, 90010, 600, 3614, 142]) {
        expect(registry.columnType(oid), String(oid)).toBe(undefined)
        expect(registry.decoderFor(oid)("(1,2)")).toBe("(1,2)")
      }
      const text = Types.makeRegistry(facts, "text")
      for (const oid of [90009, 3904, 90010, 600, 3614, 142]) {
        const type = text.columnType(oid)!
        expect(type.passthrough).toBe(true)
        expect(type.pgType).toBe("text")
        expect(type.sqliteType).toBe("TEXT")
        expect(type.decode("{\"(1,2)\"}")).toBe("{\"(1,2)\"}")
      }
      expect(text.columnType(90001)!.passthrough).toBe(false)
    })

    it("knows the server's own types and those the facts describe, not user types created since", () => {
      expect(registry.knows(23)).toBe(true)
      expect(registry.knows(1187)).toBe(true)
      expect(registry.knows(90001)).toBe(true)
      expect(registry.knows(600)).toBe(true)
      expect(registry.knows(99999)).toBe(false)
      expect(Types.builtins.knows(90001)).toBe(false)
      expect(Types.builtins.columnType(90001)).toBe(undefined)
    })
  })
})
