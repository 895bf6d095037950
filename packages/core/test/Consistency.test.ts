import { describe, expect, it } from "vitest"
import * as Consistency from "../src/Consistency.js"
import * as Selection from "../src/Selection.js"

describe("Consistency", () => {
  it("a commit moves the session's position forward, never back, and records when", () => {
    const first = Consistency.afterCommit(Consistency.emptyState, 100n, 5)
    expect(first).toEqual({ lsn: 100n, lastWriteAt: 5 })
    expect(Consistency.afterCommit(first, 90n, 6)).toEqual({ lsn: 100n, lastWriteAt: 6 })
    expect(Consistency.afterCommit(first, undefined, 7)).toEqual({ lsn: 100n, lastWriteAt: 7 })
    expect(Consistency.afterCommit(first, 200n, 8)).toEqual({ lsn: 200n, lastWriteAt: 8 })
  })

  it("reads stick to the primary only within the window after a write", () => {
    expect(Consistency.sticksToPrimary(1000, 1999, 1000)).toBe(true)
    expect(Consistency.sticksToPrimary(1000, 2000, 1000)).toBe(false)
  })

  it("a session requires its position; a staleness bound tightens the configuration's", () => {
    const base = { maxLagMillis: 500, maxLagBytes: 1024, minLsn: undefined }
    const state = { lsn: 42n, lastWriteAt: undefined }
    expect(Consistency.requirement(base, state, undefined)).toEqual({ maxLagMillis: 500, maxLagBytes: 1024, minLsn: 42n })
    expect(Consistency.requirement(base, state, 100).maxLagMillis).toBe(100)
    expect(Consistency.requirement(base, state, 900).maxLagMillis).toBe(500)
    expect(Consistency.requirement(Selection.anyHealthy, Consistency.emptyState, 100))
      .toEqual({ maxLagMillis: 100, maxLagBytes: undefined, minLsn: undefined })
  })
})
