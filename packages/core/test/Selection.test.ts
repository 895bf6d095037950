import { describe, expect, it } from "vitest"
import type { Probe, Standing } from "../src/Health.js"
import * as Selection from "../src/Selection.js"

const up: Standing = { _tag: "InRotation", streak: 1 }
const down: Standing = { _tag: "OutOfRotation", streak: -1 }
const probe = (over: Partial<Probe> = {}): Probe => ({
  at: 0,
  ok: true,
  replayLsn: 100n,
  lagBytes: 0,
  lagMillis: 0,
  error: undefined,
  ...over
})
const replica = (over: Partial<Selection.Seen> = {}): Selection.Seen => ({ health: up, probe: probe(), inFlight: 0, ...over })
const admitNone = Selection.viewOfSeen(() => false)
const admitAll = Selection.viewOfSeen(() => true)
const choose = (
  name: Selection.Name,
  replicas: ReadonlyArray<Selection.Seen>,
  { cursor = 0, random = 0, requirement = Selection.anyHealthy, view = admitNone } = {}
) => Selection.strategies[name].choose(replicas, cursor, requirement, random, view)

describe("Selection", () => {
  it("every name has one strategy", () => {
    expect(Object.keys(Selection.strategies).sort()).toEqual([...Selection.names].sort())
  })

  it("round-robin takes the first eligible replica from the cursor, wrapping around", () => {
    const replicas = [replica(), replica({ health: down }), replica()]
    expect(choose("round-robin", replicas, { cursor: 1 })).toBe(2)
    expect(choose("round-robin", replicas, { cursor: 3 })).toBe(0)
    expect(Selection.strategies["round-robin"].movesCursor).toBe(true)
  })

  it("no replica in rotation (down, marked down, removed) means none", () => {
    const replicas = [
      replica({ health: down }),
      replica({ health: { _tag: "MarkedDown", up: true, streak: 1 } }),
      replica({ health: { _tag: "Removed" } })
    ]
    for (const name of Selection.names) expect(choose(name, replicas, { random: 0.5 })).toBeUndefined()
    expect(choose("round-robin", [])).toBeUndefined()
  })

  it("random picks among the eligible by its draw, and leaves the cursor", () => {
    const replicas = [replica(), replica({ health: down }), replica(), replica()]
    expect(choose("random", replicas, { random: 0 })).toBe(0)
    expect(choose("random", replicas, { random: 0.5 })).toBe(2)
    expect(choose("random", replicas, { random: 0.99 })).toBe(3)
    expect(Selection.strategies.random.usesRandom).toBe(true)
    expect(Selection.strategies.random.movesCursor).toBe(false)
  })

  it("least-connections takes the fewest in flight; ties go to the first after the cursor", () => {
    const replicas = [replica({ inFlight: 2 }), replica({ inFlight: 1 }), replica({ inFlight: 1 })]
    expect(choose("least-connections", replicas)).toBe(1)
    expect(choose("least-connections", replicas, { cursor: 2 })).toBe(2)
  })

  it("least-lag takes the least byte lag; a replica never probed counts as furthest behind", () => {
    const replicas = [replica({ probe: undefined }), replica({ probe: probe({ lagBytes: 500 }) }), replica({ probe: probe({ lagBytes: 20 }) })]
    expect(choose("least-lag", replicas)).toBe(2)
    expect(choose("least-lag", [replica({ probe: undefined }), replica({ probe: probe({ lagBytes: 1e12 }) })])).toBe(1)
  })

  it("a lag bound or a position excludes a replica whose last probe cannot vouch for it", () => {
    const replicas = [
      replica({ probe: probe({ lagMillis: 5000, lagBytes: 10_000 }) }),
      replica({ probe: undefined }),
      replica({ probe: probe({ lagMillis: 100, replayLsn: 50n }) }),
      replica({ probe: probe({ lagMillis: 100, replayLsn: 200n }) })
    ]
    const bounded = { maxLagMillis: 1000, maxLagBytes: undefined, minLsn: undefined }
    expect(choose("round-robin", replicas, { requirement: bounded })).toBe(2)
    expect(choose("round-robin", replicas, { requirement: { ...bounded, minLsn: 150n } })).toBe(3)
    expect(choose("round-robin", replicas, { requirement: { ...bounded, maxLagBytes: 5000 } })).toBe(2)
  })

  it("a ramping replica takes a read only when its ramp admits it, unless the requirement ignores ramps", () => {
    const ramping = [replica({ health: { ...up, ramp: { from: 0, millis: 1000 } } }), replica({ inFlight: 9 })]
    expect(choose("least-connections", ramping, { view: admitNone })).toBe(1)
    expect(choose("least-connections", ramping, { view: admitAll })).toBe(0)
    const alone = [ramping[0]!]
    expect(choose("round-robin", alone)).toBeUndefined()
    expect(choose("round-robin", alone, { requirement: Selection.ignoringRamp(Selection.anyHealthy) })).toBe(0)
    expect(Selection.ignoringRamp(Selection.anyHealthy)).toBe(Selection.ignoringRamp(Selection.anyHealthy))
  })

  it("the ramp's draws stay in [0, 1) and spread evenly", () => {
    let draw = 0
    let below = 0
    for (let i = 0; i < 1000; i++) {
      draw = Selection.nextRampDraw(draw)
      expect(draw >= 0 && draw < 1).toBe(true)
      if (draw < 0.3) below++
    }
    expect(Math.abs(below - 300)).toBeLessThan(10)
  })
})
