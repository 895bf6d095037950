import { describe, expect, it } from "vitest"
import * as Changes from "../../src/cdc/Changes.js"
import * as Follow from "../../src/cdc/Follow.js"
import * as Inbox from "../../src/cdc/Inbox.js"
import type * as Pgoutput from "../../src/cdc/Pgoutput.js"

// The follow loop's effect-free decisions, on messages built here as the
// parser returns them.

const users: Pgoutput.RelationMessage = {
  tag: "relation",
  relationOid: 16384,
  schema: "public",
  name: "users",
  replicaIdentity: "default",
  keyColumns: ["id"],
  columns: [{ flags: 1, name: "id", typeOid: 23, typeMod: -1, typeName: undefined, decode: Number }]
}

const data = (lsn: bigint, message: Pgoutput.Message): Follow.Message => ({ _tag: "Data", lsn, message })
const begin = (lsn: bigint) => data(lsn, { tag: "begin", finalLsn: lsn + 0x40n, commitTime: 0n, xid: 7 })
const insert = (lsn: bigint, id: number) => data(lsn, { tag: "insert", relation: users, new: { id } })
const commit = (lsn: bigint) => data(lsn, { tag: "commit", flags: 0, commitLsn: lsn, endLsn: lsn + 0x10n, commitTime: 0n })

const loopOf = (messages: ReadonlyArray<Follow.Message | Follow.Failure<string>>, waiting = 0, waitingChanges = 0) => {
  const inbox = Inbox.make<Follow.Message | Follow.Failure<string>>()
  for (const message of messages) inbox.offer(message)
  return {
    inbox,
    loop: {
      pending: new Array(waiting).fill(null),
      pendingChanges: new Array(waitingChanges).fill(null),
      batchSize: 10,
      decoder: Changes.makeDecoder(),
      stream: Follow.buffered(inbox)
    }
  }
}

describe("cdc/Follow", () => {
  it("pollChange decodes buffered Begin, row changes and Commit in order, then stops at an empty inbox", () => {
    const { inbox, loop } = loopOf([begin(0x100n), insert(0x110n, 1), insert(0x120n, 2), commit(0x130n)])
    const tags = [Follow.pollChange(loop), Follow.pollChange(loop), Follow.pollChange(loop), Follow.pollChange(loop)]
      .map((c) => c?._tag)
    expect(tags).toEqual(["Begin", "Insert", "Insert", "Commit"])
    expect(Follow.pollChange(loop)).toBeUndefined()
    expect(inbox.size()).toBe(0)
  })

  it("pollChange leaves a keepalive, a relation, a logical message, a truncate and a failure in place for the effectful read", () => {
    const leftAlone: ReadonlyArray<Follow.Message | Follow.Failure<string>> = [
      { _tag: "Keepalive", lsn: 1n },
      data(1n, users),
      data(1n, { tag: "message", transactional: true, lsn: 1n, prefix: "p", content: new Uint8Array() }),
      data(1n, { tag: "truncate", relations: [users], cascade: false, restartIdentity: false }),
      { _tag: "Failure", error: "connection lost" }
    ]
    for (const first of leftAlone) {
      const { inbox, loop } = loopOf([first, begin(0x100n)])
      expect(Follow.pollChange(loop)).toBeUndefined()
      expect(inbox.size()).toBe(2)
      expect(inbox.peek()).toBe(first)
    }
  })

  it("pollChange skips messages that decode to nothing (origin, type)", () => {
    const { inbox, loop } = loopOf([
      data(1n, { tag: "origin", originLsn: 1n, originName: "o" }),
      data(2n, { tag: "type", typeOid: 1, typeSchema: "public", typeName: "t" }),
      begin(0x100n)
    ])
    expect(Follow.pollChange(loop)?._tag).toBe("Begin")
    expect(inbox.size()).toBe(0)
  })

  it("flushDue: waiting transactions are applied at an empty inbox or at batchSize changes, never with none waiting", () => {
    expect(Follow.flushDue(loopOf([], 0, 0).loop)).toBe(false)
    expect(Follow.flushDue(loopOf([], 1, 3).loop)).toBe(true)
    expect(Follow.flushDue(loopOf([begin(1n)], 1, 3).loop)).toBe(false)
    expect(Follow.flushDue(loopOf([begin(1n)], 2, 10).loop)).toBe(true)
    // pollChange stops where a flush is due, taking nothing.
    const { inbox, loop } = loopOf([begin(1n)], 2, 10)
    expect(Follow.pollChange(loop)).toBeUndefined()
    expect(inbox.size()).toBe(1)
  })

  it("buffered: a failure counts as pending but is never peeked; skip removes the peeked message", () => {
    const { inbox, loop } = loopOf([begin(1n), { _tag: "Failure", error: "gone" }])
    expect(loop.stream.pending()).toBe(2)
    expect(loop.stream.peek()?._tag).toBe("Data")
    loop.stream.skip()
    expect(loop.stream.pending()).toBe(1)
    expect(loop.stream.peek()).toBeUndefined()
    expect(inbox.peek()).toEqual({ _tag: "Failure", error: "gone" })
  })
})
