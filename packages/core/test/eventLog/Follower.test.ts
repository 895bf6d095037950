import { describe, expect, it } from "vitest"
import * as Follower from "../../src/eventLog/Follower.js"

/** Each step as what a listener emits: "Ready" and the versions. */
const run = (from: number | undefined, signals: ReadonlyArray<Follower.Signal>) => {
  const step = Follower.follower(from)
  return signals.map((signal) => {
    const { from, ready, to } = step(signal)
    const out: Array<string | number> = ready ? ["Ready"] : []
    for (let v = from; v <= to; v++) out.push(v)
    return out
  })
}

const at = (version: number): Follower.Signal => ({ _tag: "At", version })
const notified = (version: number): Follower.Signal => ({ _tag: "Notified", version })
const lost: Follower.Signal = { _tag: "Lost", reason: "gone" }

describe("follower", () => {
  it("emits nothing before the first snapshot, then Ready", () => {
    expect(run(undefined, [notified(3), at(5), notified(6)])).toEqual([[], ["Ready"], [6]])
  })

  it("from a version, catches up to the snapshot after Ready", () => {
    expect(run(2, [at(5)])).toEqual([["Ready", 3, 4, 5]])
  })

  it("emits every version once, in order, whatever arrives twice or out of order", () => {
    expect(run(0, [at(1), notified(3), notified(2), at(3), notified(4), notified(4)])).toEqual([
      ["Ready", 1],
      [2, 3],
      [],
      [],
      [4],
      []
    ])
  })

  it("a lost connection emits nothing; the next snapshot fills the gap", () => {
    expect(run(undefined, [at(1), lost, at(4)])).toEqual([["Ready"], [], [2, 3, 4]])
  })
})
