import { describe, expect, it } from "vitest"
import * as Changes from "../../src/cdc/Changes.js"
import type * as Pgoutput from "../../src/cdc/Pgoutput.js"

// pgoutput messages → changes, and a snapshot → one transaction, on messages
// built here as the parser returns them.

const users = (keyColumns: ReadonlyArray<string> = ["id"]): Pgoutput.RelationMessage => ({
  tag: "relation",
  relationOid: 16384,
  schema: "public",
  name: "users",
  replicaIdentity: "default",
  keyColumns,
  columns: [
    { flags: 1, name: "id", typeOid: 23, typeMod: -1, typeName: undefined, decode: Number },
    { flags: 0, name: "email", typeOid: 25, typeMod: -1, typeName: undefined, decode: String }
  ]
})

// 2026-01-02T03:04:05.678Z in microseconds since the Unix epoch.
const micros = BigInt(Date.UTC(2026, 0, 2, 3, 4, 5, 678)) * 1000n

describe("cdc/Changes", () => {
  it("LSN text: the low half zero-padded, and back", () => {
    expect(Changes.formatLsn(0x16b3748n)).toBe("0/016B3748")
    expect(Changes.formatLsn((0x16n << 32n) | 0xb374d848n)).toBe("16/B374D848")
    expect(Changes.parseLsn("16/B374D848")).toBe((0x16n << 32n) | 0xb374d848n)
    expect(Changes.parseLsn("0/16B3748")).toBe(0x16b3748n)
    expect(Changes.parseLsn(Changes.formatLsn(123456789012n))).toBe(123456789012n)
  })

  it("Begin and Commit: positions as text, commit time as a Date, the xid carried to the changes", () => {
    const decoder = Changes.makeDecoder()
    expect(decoder.decode(0x100n, { tag: "begin", finalLsn: 0x200n, commitTime: micros, xid: 742 })).toEqual({
      _tag: "Begin",
      xid: 742,
      lsn: "0/00000200",
      commitTime: new Date("2026-01-02T03:04:05.678Z")
    })
    const insert = decoder.decode(0x180n, { tag: "insert", relation: users(), new: { id: 1, email: "a@x" } })
    expect(insert).toMatchObject({ _tag: "Insert", xid: 742, lsn: "0/00000180", row: { id: 1, email: "a@x" } })
    expect(decoder.decode(0x200n, { tag: "commit", flags: 0, commitLsn: 0x200n, endLsn: 0x230n, commitTime: micros })).toEqual({
      _tag: "Commit",
      xid: 742,
      lsn: "0/00000200",
      endLsn: "0/00000230",
      commitTime: new Date("2026-01-02T03:04:05.678Z")
    })
  })

  it("a relation: columns with their key flag, one object shared until the table is described again", () => {
    const decoder = Changes.makeDecoder()
    const first = decoder.decode(1n, { tag: "insert", relation: users(), new: { id: 1 } })
    const second = decoder.decode(2n, { tag: "insert", relation: users(), new: { id: 2 } })
    if (first?._tag !== "Insert" || second?._tag !== "Insert") throw new Error("expected inserts")
    expect(first.relation).toEqual({
      oid: 16384,
      schema: "public",
      table: "users",
      replicaIdentity: "default",
      keyColumns: ["id"],
      columns: [
        { name: "id", typeOid: 23, typeName: undefined, typeMod: -1, isKey: true },
        { name: "email", typeOid: 25, typeName: undefined, typeMod: -1, isKey: false }
      ]
    })
    expect(second.relation).toBe(first.relation)
    const changed = decoder.relation({ ...users(["email"]), columns: users().columns.slice(1) })
    const third = decoder.decode(3n, { tag: "insert", relation: users(), new: { email: "c@x" } })
    if (third?._tag !== "Insert") throw new Error("expected an insert")
    expect(third.relation).toBe(changed)
    expect(changed.keyColumns).toEqual(["email"])
  })

  it("an update's key: the old key, else the old row, else the key columns of the new row", () => {
    const decoder = Changes.makeDecoder()
    const update = (key: Pgoutput.Tuple | null, old: Pgoutput.Tuple | null) =>
      decoder.decode(1n, { tag: "update", relation: users(), key, old, new: { id: 2, email: "new@x" } })
    expect(update({ id: 1 }, null)).toMatchObject({ _tag: "Update", key: { id: 1 }, old: undefined, row: { id: 2, email: "new@x" } })
    expect(update(null, { id: 1, email: "old@x" })).toMatchObject({ key: { id: 1, email: "old@x" }, old: { id: 1, email: "old@x" } })
    expect(update(null, null)).toMatchObject({ key: { id: 2 }, old: undefined })
  })

  it("a delete's key: the old key, else the old row, else empty", () => {
    const decoder = Changes.makeDecoder()
    const remove = (key: Pgoutput.Tuple | null, old: Pgoutput.Tuple | null) =>
      decoder.decode(1n, { tag: "delete", relation: users(), key, old })
    expect(remove({ id: 1 }, null)).toMatchObject({ _tag: "Delete", key: { id: 1 }, old: undefined })
    expect(remove(null, { id: 1, email: "old@x" })).toMatchObject({ key: { id: 1, email: "old@x" }, old: { id: 1, email: "old@x" } })
    expect(remove(null, null)).toMatchObject({ key: {}, old: undefined })
  })

  it("a truncate names its relations; messages that are not changes decode to nothing", () => {
    const decoder = Changes.makeDecoder()
    expect(decoder.decode(5n, { tag: "truncate", cascade: true, restartIdentity: false, relations: [users()] })).toMatchObject({
      _tag: "Truncate",
      lsn: "0/00000005",
      cascade: true,
      restartIdentity: false,
      relations: [{ schema: "public", table: "users" }]
    })
    expect(decoder.decode(6n, { tag: "origin", originLsn: 1n, originName: "x" })).toBeUndefined()
    expect(decoder.decode(7n, { tag: "type", typeOid: 1, typeSchema: "public", typeName: "mood" })).toBeUndefined()
  })
})
