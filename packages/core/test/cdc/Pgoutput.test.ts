import { describe, expect, it } from "vitest"
import * as Pgoutput from "../../src/cdc/Pgoutput.js"

// The pgoutput decoder, on messages built here byte by byte, as the server
// sends them.

const u8 = (n: number) => Buffer.from([n])
const i16 = (n: number) => {
  const b = Buffer.alloc(2)
  b.writeInt16BE(n)
  return b
}
const i32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeInt32BE(n)
  return b
}
const u32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(n)
  return b
}
const char = (c: string) => Buffer.from(c, "latin1")
const cstring = (text: string) => Buffer.concat([Buffer.from(text, "utf8"), u8(0)])
const message = (...parts: ReadonlyArray<Buffer>) => Buffer.concat(parts)

/** One column of a TupleData: text, NULL or an unchanged TOAST value. */
const value = (v: string | null | "unchanged"): Buffer =>
  v === null
    ? char("n")
    : v === "unchanged"
    ? char("u")
    : Buffer.concat([char("t"), i32(Buffer.byteLength(v, "utf8")), Buffer.from(v, "utf8")])
const tuple = (...values: ReadonlyArray<string | null | "unchanged">) => Buffer.concat([i16(values.length), ...values.map(value)])

const bom = "\uFEFF"
/** Strings a decoder that is not byte-exact would change. */
const edgeStrings: ReadonlyArray<string> = [
  `${bom}x`, // a leading byte-order mark: TextDecoder's default drops it
  bom,
  `${bom}${bom}x`, // a decoder dropping one would keep one
  `a${bom}b`,
  `x${bom}`,
  "\u0301", // a lone combining mark
  "\u0301\u0308e",
  "e\u0301", // decomposed: not normalized to U+00E9
  "\u00e9",
  "\u{1F600}", // 4-byte UTF-8
  "\u{1F469}\u200D\u{1F469}\u200D\u{1F467}",
  "\u{20000}\u{2A6D6}", // astral CJK
  "\u{10FFFF}",
  "\uFFFD", // the replacement character itself
  "",
  `${bom}${"\u00e9\u{1F600}\u{20000}x".repeat(95_325)}` // 1 MiB of UTF-8 (11 bytes a repeat), behind a BOM
]

describe("cdc/Pgoutput", () => {
  it("pgoutput text is byte-exact: a leading BOM, combining marks and 4-byte characters survive, bad UTF-8 fails", () => {
    for (const text of edgeStrings) expect(Pgoutput.decodeUtf8(Buffer.from(text, "utf8"))).toBe(text)
    expect(Pgoutput.decodeUtf8(Buffer.from([0xef, 0xbb, 0xbf, 0x78]))).toBe("\uFEFFx")
    // Not UTF-8 (a SQL_ASCII database can send it): an error, never U+FFFD in the target.
    expect(() => Pgoutput.decodeUtf8(Buffer.from([0x78, 0xff]))).toThrow()
    expect(() => Pgoutput.decodeUtf8(Buffer.from([0xed, 0xa0, 0x80]))).toThrow() // an encoded surrogate
  })

  it("rows inherit nothing: columns called __proto__ or constructor are plain values; a row value that is not UTF-8 fails", () => {
    const parser = Pgoutput.makeParser()
    parser.parse(message(
      char("R"),
      u32(1),
      cstring("public"),
      cstring("odd"),
      char("d"),
      i16(3),
      ...[[1, "id", 23], [0, "__proto__", 25], [0, "constructor", 25]].flatMap(([flags, name, oid]) => [
        u8(flags as number),
        cstring(name as string),
        u32(oid as number),
        i32(-1)
      ])
    ))
    const inserted = parser.parse(message(char("I"), u32(1), char("N"), tuple("1", "p", "c")))
    const row = (inserted as Extract<Pgoutput.Message, { tag: "insert" }>).new
    expect(Object.keys(row)).toEqual(["id", "__proto__", "constructor"])
    expect([row["__proto__"], row["constructor"], row["toString"]]).toEqual(["p", "c", undefined])
    const short = parser.parse(message(char("I"), u32(1), char("N"), tuple("2")))
    expect((short as Extract<Pgoutput.Message, { tag: "insert" }>).new["constructor"]).toBeUndefined()
    const bad = message(char("I"), u32(1), char("N"), i16(2), value("3"), char("t"), i32(2), Buffer.from([0x78, 0xff]))
    expect(() => parser.parse(bad)).toThrow()
  })

  it("pgoutput messages: names and values keep every byte; NULL, '' and unchanged TOAST values stay apart", () => {
    const parser = Pgoutput.makeParser()
    // OIDs and xids are unsigned: above 2^31 they stay positive.
    const relationOid = 0x8000_0001
    const relation = parser.parse(message(
      char("R"),
      u32(relationOid),
      cstring(`${bom}s`),
      cstring(`${bom}t\u{1F600}`),
      char("d"),
      i16(3),
      ...[[1, "id", 23], [0, `${bom}name`, 25], [0, "tags", 1009]].flatMap(([flags, name, oid]) => [
        u8(flags as number),
        cstring(name as string),
        u32(oid as number),
        i32(-1)
      ])
    ))
    expect(relation).toMatchObject({
      tag: "relation",
      relationOid,
      schema: `${bom}s`,
      name: `${bom}t\u{1F600}`,
      replicaIdentity: "default",
      keyColumns: ["id"]
    })
    const names = [`${bom}name`, "tags"] as const

    for (const text of edgeStrings) {
      const inserted = parser.parse(message(char("I"), u32(relationOid), char("N"), tuple("7", text, `{"${text}",NULL,""}`)))
      expect(inserted.tag).toBe("insert")
      const row = (inserted as Extract<Pgoutput.Message, { tag: "insert" }>).new
      expect(row["id"]).toBe(7)
      expect(row[names[0]] === text).toBe(true)
      expect(row[names[1]]).toEqual([text, null, ""])
    }
    const nulls = parser.parse(message(char("I"), u32(relationOid), char("N"), tuple("8", "", null)))
    expect((nulls as Extract<Pgoutput.Message, { tag: "insert" }>).new).toEqual(
      Object.assign(Object.create(null), { id: 8, [names[0]]: "", tags: null })
    )

    // An update with the old row (REPLICA IDENTITY FULL): an unchanged TOAST value comes from it.
    const full = parser.parse(message(
      char("U"),
      u32(relationOid),
      char("O"),
      tuple("9", `${bom}old`, "{}"),
      char("N"),
      tuple("9", "unchanged", "{x}")
    ))
    expect(full).toMatchObject({ tag: "update", key: null, old: { id: 9, [names[0]]: `${bom}old` }, new: { id: 9, [names[0]]: `${bom}old`, tags: ["x"] } })
    // Without an old row, an unchanged value is undefined: the target keeps its own.
    const plain = parser.parse(message(char("U"), u32(relationOid), char("N"), tuple("9", "unchanged", null)))
    const row = (plain as Extract<Pgoutput.Message, { tag: "update" }>).new
    expect(names[0] in row && row[names[0]] === undefined).toBe(true)
    expect(row["tags"]).toBe(null)
    const keyed = parser.parse(message(char("D"), u32(relationOid), char("K"), tuple("9", null, null)))
    expect(keyed).toMatchObject({ tag: "delete", key: { id: 9 }, old: null })

    const begin = parser.parse(message(char("B"), u64(0x1_0000_0028n), u64(1_000_000n), u32(0xffff_fff0)))
    expect(begin).toEqual({ tag: "begin", finalLsn: 0x1_0000_0028n, commitTime: 946_684_801_000_000n, xid: 0xffff_fff0 })
    const commit = parser.parse(message(char("C"), u8(0), u64(0x1_0000_0028n), u64(0x1_0000_0058n), u64(1_000_000n)))
    expect(commit).toMatchObject({ tag: "commit", commitLsn: 0x1_0000_0028n, endLsn: 0x1_0000_0058n })
    const truncate = parser.parse(message(char("T"), u32(1), u8(3), u32(relationOid)))
    expect(truncate).toMatchObject({ tag: "truncate", cascade: true, restartIdentity: true, relations: [relation] })
    const logical = parser.parse(message(char("M"), u8(1), u64(5n), cstring(`${bom}p`), i32(3), Buffer.from([0xef, 0xbb, 0xbf])))
    expect(logical).toMatchObject({ tag: "message", transactional: true, prefix: `${bom}p` })
    expect(Buffer.from((logical as Extract<Pgoutput.Message, { tag: "message" }>).content)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]))
    const type = parser.parse(message(char("Y"), u32(16_500), cstring("public"), cstring(`${bom}mood`)))
    expect(type).toEqual({ tag: "type", typeOid: 16_500, typeSchema: "public", typeName: `${bom}mood` })
  })

  it("pgoutput: a malformed message fails instead of yielding a partial row", () => {
    const parser = Pgoutput.makeParser()
    expect(() => parser.parse(message(char("I"), u32(1), char("N"), tuple("1")))).toThrow(/Relation message never came/)
    parser.parse(message(char("R"), u32(1), cstring("public"), cstring("t"), char("d"), i16(1), u8(1), cstring("id"), u32(25), i32(-1)))
    const cut = message(char("I"), u32(1), char("N"), tuple("abcdef"))
    expect(() => parser.parse(cut.subarray(0, cut.length - 2))).toThrow(/ends early/)
    expect(() => parser.parse(message(char("I"), u32(1), char("N"), tuple("1", "2")))).toThrow(/2 columns/)
    expect(() => parser.parse(message(char("I"), u32(1), char("N"), i16(1), char("t"), i32(1), u8(0xff)))).toThrow()
    expect(() => parser.parse(message(char("Z")))).toThrow(/unknown message/)
  })

  it("pgoutput: origin, a Type before its Relation, key and old-row images, binary values and the decoder given", () => {
    // A decoder that tags each value with its type OID: the parser uses the one it is given.
    const parser = Pgoutput.makeParser((oid) => (text) => `${oid}:${text}`)
    expect(parser.parse(message(char("O"), u64(0x2_0000_0010n), cstring(`${bom}origin`)))).toEqual({
      tag: "origin",
      originLsn: 0x2_0000_0010n,
      originName: `${bom}origin`
    })
    parser.parse(message(char("Y"), u32(16_600), cstring("public"), cstring("mood")))
    const relation = parser.parse(message(
      char("R"),
      u32(2),
      cstring("public"),
      cstring("moods"),
      char("i"),
      i16(2),
      u8(1),
      cstring("id"),
      u32(23),
      i32(-1),
      u8(0),
      cstring("m"),
      u32(16_600),
      i32(4)
    )) as Pgoutput.RelationMessage
    expect(relation.replicaIdentity).toBe("index")
    expect(relation.columns.map((c) => [c.name, c.typeOid, c.typeMod, c.typeName])).toEqual([
      ["id", 23, -1, undefined],
      ["m", 16_600, 4, "mood"]
    ])

    // An update that moved the key: the old key ('K'), then the new row.
    const moved = parser.parse(message(char("U"), u32(2), char("K"), tuple("1", null), char("N"), tuple("2", "sad")))
    expect(moved).toEqual({
      tag: "update",
      relation,
      key: Object.assign(Object.create(null), { id: "23:1" }),
      old: null,
      new: Object.assign(Object.create(null), { id: "23:2", m: "16600:sad" })
    })
    // A delete under REPLICA IDENTITY FULL carries the whole old row ('O').
    const deleted = parser.parse(message(char("D"), u32(2), char("O"), tuple("2", "sad")))
    expect(deleted).toEqual({
      tag: "delete",
      relation,
      key: null,
      old: Object.assign(Object.create(null), { id: "23:2", m: "16600:sad" })
    })
    // A binary value ('b') is its bytes.
    const bytes = message(char("I"), u32(2), char("N"), i16(2), value("3"), char("b"), i32(2), Buffer.from([0xde, 0xad]))
    const inserted = parser.parse(bytes) as Extract<Pgoutput.Message, { tag: "insert" }>
    expect(inserted.new["id"]).toBe("23:3")
    expect(Buffer.from(inserted.new["m"] as Uint8Array)).toEqual(Buffer.from([0xde, 0xad]))
    // A copy: the message's buffer may be reused for the next one.
    bytes.fill(0)
    expect(Buffer.from(inserted.new["m"] as Uint8Array)).toEqual(Buffer.from([0xde, 0xad]))
  })

  it("pgoutput: an unknown image, replica identity or value kind, or a missing 'N', fails", () => {
    const parser = Pgoutput.makeParser()
    parser.parse(message(char("R"), u32(1), cstring("public"), cstring("t"), char("f"), i16(1), u8(1), cstring("id"), u32(25), i32(-1)))
    expect(() => parser.parse(message(char("U"), u32(1), char("X"), tuple("1")))).toThrow(/unknown update image 'X'/)
    expect(() => parser.parse(message(char("D"), u32(1), char("N"), tuple("1")))).toThrow(/unknown delete image 'N'/)
    expect(() => parser.parse(message(char("I"), u32(1), char("K"), tuple("1")))).toThrow(/expected 'N', got 'K'/)
    expect(() => parser.parse(message(char("U"), u32(1), char("O"), tuple("1"), char("O"), tuple("2")))).toThrow(
      /expected 'N', got 'O'/
    )
    expect(() => parser.parse(message(char("I"), u32(1), char("N"), i16(1), char("x")))).toThrow(/unknown tuple value kind/)
    expect(() => parser.parse(message(char("R"), u32(3), cstring("public"), cstring("t"), char("z"), i16(0)))).toThrow(
      /unknown replica identity 'z'/
    )
    expect(() => parser.parse(message(char("T"), u32(1), u8(0), u32(99)))).toThrow(/relation 99/)
  })
})
