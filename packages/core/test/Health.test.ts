import { describe, expect, it } from "vitest"
import type { StandbyState } from "../src/Catalog.js"
import * as Health from "../src/Health.js"

const primary = { id: "primary" }
const other = { id: "replica-1" }
const view: Health.PrimaryView<{ readonly id: string }> = { node: primary, ok: true, lsn: 0x3000100n, timeline: 2 }
const streaming = { visible: true, status: "streaming", sender: "loopback:5432", timeline: 2 }
const standby = (over: Partial<StandbyState> = {}): StandbyState => ({
  standby: true,
  replayLsn: 0x3000000n,
  behindMillis: 1500,
  receiver: streaming,
  self: "loopback:5434",
  ...over
})

/** Runs the verdict the way a shell does: asks the primary's position (`now`) only when told to. */
const judge = (
  facts: Omit<Health.Facts<{ readonly id: string }>, "primaryNow">,
  // null: the primary does not answer now.
  now: bigint | null | undefined = view.lsn
): { readonly probe: Health.Judged; readonly asked: boolean } => {
  const first = Health.judge(facts)
  if (first._tag === "Judged") return { probe: first.probe, asked: false }
  const second = Health.judge({ ...facts, primaryNow: { lsn: now ?? undefined } })
  if (second._tag !== "Judged") throw new Error("asked twice")
  return { probe: second.probe, asked: true }
}
const stateOf = (s: StandbyState, sender: { readonly id: string } | undefined = primary, v = view, now = v.lsn) =>
  judge({ standby: s, view: v, sender }, now).probe.state?._tag

describe("Health.judge", () => {
  it("a standby streaming from the primary on its timeline, not ahead, follows without asking the primary", () => {
    const { asked, probe } = judge({ standby: standby(), view, sender: primary })
    expect(asked).toBe(false)
    expect(probe).toEqual({
      ok: true,
      replayLsn: 0x3000000n,
      lagBytes: 256,
      lagMillis: 1500,
      error: undefined,
      state: { _tag: "Following", verified: true }
    })
  })

  it("a replica that replayed everything has no lag, however old its last commit", () => {
    const { probe } = judge({ standby: standby({ replayLsn: view.lsn, behindMillis: 3_600_000 }), view, sender: primary })
    expect(probe).toMatchObject({ ok: true, lagBytes: 0, lagMillis: 0, replayLsn: 0x3000100n })
  })

  it("another timeline, another known sender, or a position ahead of the primary is diverged", () => {
    expect(stateOf(standby({ receiver: { ...streaming, timeline: 1 } }))).toBe("Diverged")
    expect(stateOf(standby(), other)).toBe("Diverged")
    const ahead = standby({ replayLsn: 0x4000000n })
    expect(stateOf(ahead, primary, view, 0x3000200n)).toBe("Diverged")
    // Ahead only of an old position: the primary moved on meanwhile, and lag is measured against now.
    const moved = judge({ standby: ahead, view, sender: primary }, 0x5000000n)
    expect(moved.asked).toBe(true)
    expect(moved.probe).toMatchObject({ ok: true, lagBytes: 0x1000000, state: { _tag: "Following" } })
    const { probe } = judge({ standby: standby(), view, sender: other })
    expect(probe.ok).toBe(false)
    expect(probe.error).toBe("it follows replica-1, not the primary primary")
  })

  it("a standby that does not stream is detached; an unknown sender is judged by timeline", () => {
    expect(stateOf(standby({ receiver: undefined }))).toBe("Detached")
    expect(stateOf(standby({ receiver: { ...streaming, status: "waiting" } }))).toBe("Detached")
    expect(stateOf(standby({ receiver: { ...streaming, sender: "db-rw.svc:5432" } }), undefined)).toBe("Following")
    expect(stateOf(standby(), primary, { ...view, timeline: undefined })).toBe("Detached")
  })

  it("without a primary that answers nothing is judged; hidden receiver details admit unverified", () => {
    expect(stateOf(standby({ receiver: undefined }), primary, { ...view, ok: false })).toBe("Stranded")
    // The last view says the primary is up, but it does not answer now (it just died).
    expect(judge({ standby: standby({ receiver: undefined }), view, sender: primary }, null).probe.state)
      .toEqual({ _tag: "Stranded" })
    expect(judge({ standby: standby(), view: undefined, sender: undefined }).probe).toMatchObject({
      ok: true,
      lagBytes: undefined,
      state: { _tag: "Stranded" }
    })
    const hidden = { visible: false, status: undefined, sender: undefined, timeline: undefined }
    expect(judge({ standby: standby({ receiver: hidden }), view, sender: undefined }).probe.state)
      .toEqual({ _tag: "Following", verified: false })
  })

  it("a writable node is not a standby, whatever the primary says", () => {
    const { asked, probe } = judge({ standby: standby({ standby: false }), view: undefined, sender: undefined })
    expect(asked).toBe(false)
    expect(probe).toMatchObject({ ok: false, error: "the server is not a standby (not in recovery)" })
  })

  it("a turned-away replica asks the primary once; the second verdict never asks again", () => {
    expect(Health.judge({ standby: standby({ receiver: undefined }), view, sender: primary })).toEqual({ _tag: "AskPrimary" })
    const again = Health.judge({ standby: standby({ receiver: undefined }), view, sender: primary, primaryNow: { lsn: view.lsn } })
    expect(again).toMatchObject({ _tag: "Judged", probe: { ok: false, state: { _tag: "Detached" } } })
  })
})

describe("Health.effectOf", () => {
  const probe = (state: Health.ReplicaState | undefined, ok = true) => ({ ok, state })
  it("moves a replica by its state, or by ok without one", () => {
    expect(Health.effectOf(probe(undefined, true))).toBe("success")
    expect(Health.effectOf(probe(undefined, false))).toBe("failure")
    expect(Health.effectOf(probe({ _tag: "Following", verified: true }))).toBe("success")
    expect(Health.effectOf(probe({ _tag: "Diverged", reason: "x" }))).toBe("evict")
    expect(Health.effectOf(probe({ _tag: "Stranded" }))).toBe("hold")
    expect(Health.effectOf(probe({ _tag: "Busy" }))).toBe("hold")
    expect(Health.effectOf(probe({ _tag: "Detached", reason: "x" }))).toBe("failure")
    expect(Health.effectOf(probe({ _tag: "Writable" }))).toBe("failure")
    expect(Health.effectOf(probe({ _tag: "Unreachable", error: "x" }))).toBe("failure")
  })
})

describe("Health.step", () => {
  const thresholds = { failureThreshold: 2, successThreshold: 3 }
  it("leaves rotation after failureThreshold consecutive failures, returns after successThreshold successes", () => {
    let current = { up: true, streak: 5 }
    const run = (effect: "success" | "failure" | "evict") => {
      const next = Health.step(current, effect, thresholds)
      current = {
        up: next.transition === undefined ? current.up : next.transition === "up",
        streak: next.streak
      }
      return next
    }
    expect(run("failure")).toEqual({ streak: -1, transition: undefined })
    expect(run("failure")).toEqual({ streak: -2, transition: "down" })
    expect(run("success")).toEqual({ streak: 1, transition: undefined })
    expect(run("success")).toEqual({ streak: 2, transition: undefined })
    expect(run("failure")).toEqual({ streak: -1, transition: undefined })
    expect(run("success")).toEqual({ streak: 1, transition: undefined })
    expect(run("success")).toEqual({ streak: 2, transition: undefined })
    expect(run("success")).toEqual({ streak: 3, transition: "up" })
    expect(run("success")).toEqual({ streak: 4, transition: undefined })
  })

  it("a diverged replica is out at once; one already out stays out", () => {
    expect(Health.step({ up: true, streak: 7 }, "evict", thresholds).transition).toBe("down")
    expect(Health.step({ up: false, streak: 0 }, "evict", thresholds).transition).toBeUndefined()
  })
})

describe("slow start", () => {
  it("a ramp admits the elapsed share of draws, then everything", () => {
    const ramp = Health.rampFrom(1000, 10_000)!
    expect(ramp).toEqual({ from: 10_000, millis: 1000 })
    expect(Health.rampAdmits(ramp, 10_250, 0.2)).toBe(true)
    expect(Health.rampAdmits(ramp, 10_250, 0.3)).toBe(false)
    expect(Health.rampOver(ramp, 10_999)).toBe(false)
    expect(Health.rampOver(ramp, 11_000)).toBe(true)
    expect(Health.rampAdmits(ramp, 11_000, 0.99)).toBe(true)
  })

  it("no ramp without a positive slow start", () => {
    expect(Health.rampFrom(undefined, 1)).toBeUndefined()
    expect(Health.rampFrom(0, 1)).toBeUndefined()
  })
})

describe("Health standing", () => {
  const thresholds = { failureThreshold: 2, successThreshold: 2 }
  const inRotation: Health.Standing = { _tag: "InRotation", streak: 3 }
  const out: Health.Standing = { _tag: "OutOfRotation", streak: -2 }
  const probe = (health: Health.Standing, effect: "success" | "failure" | "evict", slowStart?: number, now = 1_000) =>
    Health.afterProbe(health, effect, thresholds, slowStart, now)

  it("starts in rotation or out of it; only InRotation is in rotation", () => {
    expect(Health.initial(true)).toEqual({ _tag: "InRotation", streak: 0 })
    expect(Health.initial(false)).toEqual({ _tag: "OutOfRotation", streak: 0 })
    const states: ReadonlyArray<Health.Standing> = [inRotation, out, { _tag: "MarkedDown", up: true, streak: 1 }, Health.removed]
    expect(states.map(Health.inRotation)).toEqual([true, false, false, false])
    expect(states.map(Health.probesUp)).toEqual([true, false, true, false])
    expect(states.map(Health.isMember)).toEqual([true, true, true, false])
    expect(states.map(Health.isMarkedDown)).toEqual([false, false, true, false])
  })

  it("probes move it out after failureThreshold failures and back after successThreshold successes, with a slow start", () => {
    const once = probe(inRotation, "failure")!
    expect(once).toEqual({ health: { _tag: "InRotation", streak: -1 }, transition: undefined })
    expect(probe(once.health, "failure")).toEqual({ health: { _tag: "OutOfRotation", streak: -2 }, transition: "down" })
    expect(probe(out, "success")).toEqual({ health: { _tag: "OutOfRotation", streak: 1 }, transition: undefined })
    expect(probe({ _tag: "OutOfRotation", streak: 1 }, "success", 500, 7_000)).toEqual({
      health: { _tag: "InRotation", streak: 2, ramp: { from: 7_000, millis: 500 } },
      transition: "up"
    })
    expect(probe(inRotation, "evict")?.transition).toBe("down")
  })

  it("a ramp stays while it lasts and goes at the first probe after it ends", () => {
    const ramping: Health.Standing = { _tag: "InRotation", streak: 2, ramp: { from: 0, millis: 1_000 } }
    expect(Health.rampOf(probe(ramping, "success", 1_000, 999)!.health)).toEqual({ from: 0, millis: 1_000 })
    expect(probe(ramping, "success", 1_000, 1_000)!.health).toEqual({ _tag: "InRotation", streak: 3 })
  })

  it("a mark by hand holds it out while probes go on, and lifting it puts it back at its word", () => {
    const marked = Health.mark(inRotation, true, 500, 0)
    expect(marked).toEqual({ _tag: "MarkedDown", up: true, streak: 3 })
    // Probes still count, and say what they see, but the mark stays.
    const failed = probe(probe(marked, "failure")!.health, "failure")!
    expect(failed).toEqual({ health: { _tag: "MarkedDown", up: false, streak: -2 }, transition: "down" })
    expect(Health.mark(failed.health, false, 500, 9_000)).toEqual({
      _tag: "InRotation",
      streak: 0,
      ramp: { from: 9_000, millis: 500 }
    })
    // Lifting a mark on a replica in rotation keeps its ramp and starts none.
    const ramping: Health.Standing = { _tag: "InRotation", streak: 2, ramp: { from: 0, millis: 1_000 } }
    expect(Health.mark(ramping, false, 500, 9_000)).toEqual({ _tag: "InRotation", streak: 0, ramp: { from: 0, millis: 1_000 } })
    expect(Health.mark(inRotation, false, undefined, 9_000)).toEqual({ _tag: "InRotation", streak: 0 })
  })

  it("a failure in traffic takes it out at once and says whether probes had it up; a mark stays", () => {
    expect(Health.afterFailure(inRotation)).toEqual({ wasUp: true, health: { _tag: "OutOfRotation", streak: 0 } })
    expect(Health.afterFailure(out)).toEqual({ wasUp: false, health: { _tag: "OutOfRotation", streak: 0 } })
    expect(Health.afterFailure({ _tag: "MarkedDown", up: true, streak: 4 })).toEqual({
      wasUp: true,
      health: { _tag: "MarkedDown", up: false, streak: 0 }
    })
  })

  it("the first probe at start decides rotation", () => {
    expect(Health.afterStartProbe(Health.initial(false), true)).toEqual({ _tag: "InRotation", streak: 1 })
    expect(Health.afterStartProbe(Health.initial(true), false)).toEqual({ _tag: "OutOfRotation", streak: 0 })
  })

  it("a removed replica is left alone by probes, failures and marks", () => {
    expect(probe(Health.removed, "success")).toBeUndefined()
    expect(Health.afterFailure(Health.removed)).toEqual({ wasUp: false, health: Health.removed })
    expect(Health.afterStartProbe(Health.removed, true)).toBe(Health.removed)
    expect(Health.mark(Health.removed, false, undefined, 0)).toBe(Health.removed)
    expect(Health.mark(Health.removed, true, undefined, 0)).toBe(Health.removed)
  })
})
