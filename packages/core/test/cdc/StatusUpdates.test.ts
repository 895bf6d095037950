import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import * as StatusUpdates from "../../src/cdc/StatusUpdates.js"

// Reads back a Standby Status Update: the three positions, the clock and the reply flag.
const read = (message: Buffer) => ({
  tag: String.fromCharCode(message[0]!),
  written: message.readBigUInt64BE(1),
  flushed: message.readBigUInt64BE(9),
  applied: message.readBigUInt64BE(17),
  micros: message.readBigUInt64BE(25),
  reply: message[33] === 1
})

describe("cdc/StatusUpdates", () => {
  beforeEach(() => {
    vi.useFakeTimers()
    vi.setSystemTime(new Date("2026-12-05T00:00:00Z"))
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it("encodes the position three times, the time in microseconds since 2000-01-01, and the reply flag", () => {
    const at = Date.parse("2000-01-01T00:00:01.5Z")
    expect(read(StatusUpdates.encode(0x1_0000_00ffn, at, true))).toEqual({
      tag: "r",
      written: 0x1_0000_00ffn,
      flushed: 0x1_0000_00ffn,
      applied: 0x1_0000_00ffn,
      micros: 1_500_000n,
      reply: true
    })
    expect(StatusUpdates.encode(1n, at, false).length).toBe(34)
    expect(read(StatusUpdates.encode(1n, at, false)).reply).toBe(false)
  })

  it("the first acknowledgement goes out at once; those within the interval go out together when it ends", () => {
    const sent: Array<ReturnType<typeof read>> = []
    const reporter = StatusUpdates.makeReporter({ start: 100n, write: (m) => sent.push(read(m)), minIntervalMillis: 10 })
    reporter.acknowledge(200n)
    expect(sent.map((s) => s.flushed)).toEqual([200n])
    reporter.acknowledge(300n)
    reporter.acknowledge(400n)
    expect(reporter.confirmed()).toBe(400n)
    expect(sent.length).toBe(1)
    vi.advanceTimersByTime(9)
    expect(sent.length).toBe(1)
    vi.advanceTimersByTime(1)
    expect(sent.map((s) => s.flushed)).toEqual([200n, 400n])
    expect(sent.every((s) => !s.reply)).toBe(true)
    // After a quiet interval, the next goes out at once again.
    vi.advanceTimersByTime(50)
    reporter.acknowledge(500n)
    expect(sent.map((s) => s.flushed)).toEqual([200n, 400n, 500n])
  })

  it("never moves back, and an acknowledgement at or before the confirmed position sends nothing", () => {
    const sent: Array<bigint> = []
    const reporter = StatusUpdates.makeReporter({ start: 100n, write: (m) => sent.push(read(m).flushed) })
    reporter.acknowledge(100n)
    reporter.acknowledge(50n)
    expect(sent).toEqual([])
    expect(reporter.confirmed()).toBe(100n)
    reporter.acknowledge(150n)
    vi.advanceTimersByTime(100)
    reporter.acknowledge(120n)
    vi.advanceTimersByTime(100)
    expect(sent).toEqual([150n])
    expect(reporter.confirmed()).toBe(150n)
  })

  it("a periodic update (send) reports the confirmed position and asks a reply; a deferred report with nothing new is skipped", () => {
    const sent: Array<ReturnType<typeof read>> = []
    const reporter = StatusUpdates.makeReporter({ start: 7n, write: (m) => sent.push(read(m)) })
    reporter.send(true)
    expect(sent).toMatchObject([{ flushed: 7n, reply: true }])
    reporter.acknowledge(8n) // within the interval of the send: deferred
    reporter.send(true) // reports 8 already
    vi.advanceTimersByTime(StatusUpdates.defaultMinIntervalMillis)
    expect(sent.map((s) => [s.flushed, s.reply])).toEqual([[7n, true], [8n, true]])
  })

  it("close sends what was acknowledged and not reported, cancels the timer, and sends nothing after", () => {
    const sent: Array<bigint> = []
    const reporter = StatusUpdates.makeReporter({ start: 0n, write: (m) => sent.push(read(m).flushed) })
    reporter.acknowledge(10n)
    reporter.acknowledge(20n)
    reporter.close()
    expect(sent).toEqual([10n, 20n])
    vi.advanceTimersByTime(1_000)
    reporter.acknowledge(30n)
    reporter.send(true)
    reporter.close()
    expect(sent).toEqual([10n, 20n])
    expect(vi.getTimerCount()).toBe(0)
  })

  it("a write that throws (the connection is gone) is dropped without failing the caller", () => {
    const reporter = StatusUpdates.makeReporter({
      start: 0n,
      write: () => {
        throw new Error("This socket has been ended by the other party")
      }
    })
    expect(() => reporter.acknowledge(1n)).not.toThrow()
    expect(() => reporter.send(true)).not.toThrow()
    expect(() => reporter.close()).not.toThrow()
    expect(reporter.confirmed()).toBe(1n)
  })
})
