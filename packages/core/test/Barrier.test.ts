import { describe, expect, it } from "vitest"
import * as Barrier from "../src/Barrier.js"
import * as Selection from "../src/Selection.js"

describe("Barrier", () => {
  it("a read under the barrier needs the later of its own position and the barrier's", () => {
    expect(Barrier.requirementUnder(Selection.anyHealthy, undefined)).toBe(Selection.anyHealthy)
    expect(Barrier.requirementUnder(Selection.anyHealthy, 10n).minLsn).toBe(10n)
    expect(Barrier.requirementUnder({ ...Selection.anyHealthy, minLsn: 20n }, 10n).minLsn).toBe(20n)
    expect(Barrier.maxLsn(undefined, undefined)).toBeUndefined()
    expect(Barrier.maxLsn(3n, undefined)).toBe(3n)
  })

  it("comes down when every healthy replica replayed it, or after its time bound", () => {
    expect(Barrier.lowers(10n, 0, [10n, 11n])).toBe(true)
    expect(Barrier.lowers(10n, 0, [])).toBe(true)
    expect(Barrier.lowers(10n, 0, [10n, 9n])).toBe(false)
    expect(Barrier.lowers(10n, 0, [undefined])).toBe(false)
    expect(Barrier.lowers(10n, Barrier.maxMillis, [undefined])).toBe(true)
  })

  it("writes move it only within the window; replicas are asked at most once per refresh interval", () => {
    expect(Barrier.extendedBy(999, 1000)).toBe(true)
    expect(Barrier.extendedBy(1000, 1000)).toBe(false)
    expect(Barrier.refreshDue(100, 100 - Barrier.refreshMillis)).toBe(true)
    expect(Barrier.refreshDue(100, 99)).toBe(false)
  })
})
