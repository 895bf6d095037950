import { describe, expect, it } from "vitest"
import type * as Follow from "../../src/cdc/Follow.js"
import * as Inbox from "../../src/cdc/Inbox.js"
import type * as Pgoutput from "../../src/cdc/Pgoutput.js"
import * as Walsender from "../../src/cdc/Walsender.js"

// The replication connection's protocol side, on payloads built here as the
// server sends them.

describe("cdc/Walsender copyDataReader", () => {
  const xLogData = (start: bigint, body: Buffer) => {
    const header = Buffer.alloc(25)
    header[0] = 0x77
    header.writeBigUInt64BE(start, 1)
    header.writeBigUInt64BE(start + BigInt(body.length), 9)
    return Buffer.concat([header, body])
  }
  const keepalive = (end: bigint, reply: boolean) => {
    const chunk = Buffer.alloc(18)
    chunk[0] = 0x6b
    chunk.writeBigUInt64BE(end, 1)
    chunk[17] = reply ? 1 : 0
    return chunk
  }
  const readerOf = (parse: (bytes: Buffer) => Pgoutput.Message) => {
    const inbox = Inbox.make<Follow.Message | Follow.Failure<string>>()
    let replies = 0
    const read = Walsender.copyDataReader({
      inbox,
      parse,
      reply: () => replies++,
      decodeFailure: (cause) => `decode: ${(cause as Error).message}`
    })
    const items = () => {
      const all: Array<Follow.Message | Follow.Failure<string>> = []
      for (let item = inbox.shift(); item !== undefined; item = inbox.shift()) all.push(item)
      return all
    }
    return { read, items, replies: () => replies }
  }

  it("an XLogData becomes Data at its WAL start with the parsed body; a keepalive becomes Keepalive, replied to only when asked", () => {
    const bodies: Array<string> = []
    const { items, read, replies } = readerOf((bytes) => {
      bodies.push(bytes.toString("latin1"))
      return { tag: "commit", flags: 0, commitLsn: 1n, endLsn: 2n, commitTime: 0n }
    })
    read(xLogData(0x1_0000_0028n, Buffer.from("C-body", "latin1")))
    read(keepalive(0x2_0000_0000n, false))
    read(keepalive(0x2_0000_0010n, true))
    expect(bodies).toEqual(["C-body"])
    expect(items()).toEqual([
      { _tag: "Data", lsn: 0x1_0000_0028n, message: { tag: "commit", flags: 0, commitLsn: 1n, endLsn: 2n, commitTime: 0n } },
      { _tag: "Keepalive", lsn: 0x2_0000_0000n },
      { _tag: "Keepalive", lsn: 0x2_0000_0010n }
    ])
    expect(replies()).toBe(1)
  })

  it("a body the parser refuses ends the stream with the failure, after what came before; unknown payloads are ignored", () => {
    const { items, read } = readerOf(() => {
      throw new Error("invalid UTF-8")
    })
    read(keepalive(5n, false))
    read(Buffer.from([0x7a, 1, 2, 3]))
    read(xLogData(6n, Buffer.from("I", "latin1")))
    expect(items()).toEqual([{ _tag: "Keepalive", lsn: 5n }, { _tag: "Failure", error: "decode: invalid UTF-8" }])
  })
})

describe("cdc/Walsender startReplicationSql", () => {
  it("quotes slot and publication (a quote in the publication's name stays inside the literal), and asks for logical messages only when told", () => {
    expect(Walsender.startReplicationSql({ slot: "cdc_a", publication: "pub" })).toBe(
      `START_REPLICATION SLOT "cdc_a" LOGICAL 0/0 (proto_version '1', publication_names '"pub"')`
    )
    expect(Walsender.startReplicationSql({ slot: 'odd"slot', publication: "Pub", messages: true })).toBe(
      `START_REPLICATION SLOT "odd""slot" LOGICAL 0/0 (proto_version '1', publication_names '"Pub"', messages 'true')`
    )
    expect(Walsender.startReplicationSql({ slot: "s", publication: `it's "q"` })).toBe(
      `START_REPLICATION SLOT "s" LOGICAL 0/0 (proto_version '1', publication_names '"it''s ""q"""')`
    )
  })
})
