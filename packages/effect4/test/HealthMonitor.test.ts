import { describe, expect, it } from "@effect/vitest"
import * as Health from "@effect-sql-router/core/Health"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import { TestClock } from "effect/testing"
import * as TxRef from "effect/TxRef"
import * as Duration from "effect/Duration"
import type * as HealthMonitor from "@effect-sql-router/effect4/HealthMonitor"
import type * as Node from "@effect-sql-router/effect4/Node"
import * as Selection from "@effect-sql-router/effect4/Selection"
import * as Topology from "@effect-sql-router/effect4/Topology"
import type * as Catalog from "../src/internal/health/catalog.js"
import * as Monitor from "../src/internal/health/monitor.js"
import * as Membership from "../src/internal/health/membership.js"
import type { RouterState } from "../src/internal/routerState.js"

// Pure logic under TestClock: the probe is a stub, so no server is involved.
// Only `id` of a node is read by the monitor.
const fakeNode = (id: string) => ({ id, role: id === "primary" ? "primary" : "replica" }) as unknown as Node.Node

// maxInterval equal to interval: the fixed cadence these tests count probes by.
const health = {
  interval: Duration.seconds(1),
  maxInterval: Duration.seconds(1),
  replyTimeout: Duration.seconds(25),
  timeout: Duration.millis(500),
  failureThreshold: 2,
  successThreshold: 3,
  enabled: true,
  clock: "ambient"
} as const

const good = { ok: true, replayLsn: 100n, lagBytes: 0, lagMillis: 0, error: undefined } as const

const setup = (replicaCount = 1) =>
  Effect.gen(function*() {
    const replicas: Array<Topology.Replica> = []
    for (let i = 0; i < replicaCount; i++) replicas.push(yield* Topology.makeReplica(fakeNode(`replica-${i}`), true))
    return yield* Topology.make(fakeNode("primary"), replicas)
  })

/** A probe whose outcome the test sets, counting its calls. */
const scriptedProbe = Effect.gen(function*() {
  const ok = yield* Ref.make(true)
  const calls = yield* Ref.make(0)
  const probe: HealthMonitor.ProbeFn = () =>
    Effect.andThen(
      Ref.update(calls, (n) => n + 1),
      Effect.flatMap(Ref.get(ok), (up) => up ? Effect.succeed(good) : Effect.fail(new Error("connection refused")))
    )
  return { ok, calls, probe }
})

const healthy = (replica: Topology.Replica) => Topology.isHealthy(replica)

describe("HealthMonitor", () => {
  it.effect("probes at start and then exactly once per interval", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* TxRef.get(topology.replicas))[0]!
      const { calls, probe } = yield* scriptedProbe
      const fiber = yield* Effect.forkChild(Monitor.watchReplica(topology, replica, health, probe))
      yield* TestClock.adjust(0)
      expect(yield* Ref.get(calls)).toBe(1)
      yield* TestClock.adjust("999 millis")
      expect(yield* Ref.get(calls)).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* Ref.get(calls)).toBe(2)
      yield* TestClock.adjust("3 seconds")
      expect(yield* Ref.get(calls)).toBe(5)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("clock: \"ambient\" runs the router's loops on TestClock, so adjust drives stubbed probes", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const { calls, probe } = yield* scriptedProbe
      yield* Monitor.start({ topology, health, probe, probePrimary: () => Effect.succeed(100n) })
      yield* TestClock.adjust(0)
      expect(yield* Ref.get(calls)).toBe(1)
      yield* TestClock.adjust("2 seconds")
      expect(yield* Ref.get(calls)).toBe(3)
      expect(yield* TxRef.get(topology.primaryLsn)).toBe(100n)
    }))

  it.effect("a replica leaves after failureThreshold consecutive failures and returns after successThreshold successes", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* TxRef.get(topology.replicas))[0]!
      const { ok, probe } = yield* scriptedProbe
      const fiber = yield* Effect.forkChild(Monitor.watchReplica(topology, replica, health, probe))
      yield* TestClock.adjust(0)
      expect(yield* healthy(replica)).toBe(true)
      yield* Ref.set(ok, false)
      yield* TestClock.adjust("1 second") // first failure: still in (threshold 2)
      expect(yield* healthy(replica)).toBe(true)
      yield* TestClock.adjust("1 second") // second consecutive failure: out
      expect(yield* healthy(replica)).toBe(false)
      yield* Ref.set(ok, true)
      yield* TestClock.adjust("2 seconds") // two successes: not yet (threshold 3)
      expect(yield* healthy(replica)).toBe(false)
      yield* TestClock.adjust("1 second") // third success: back
      expect(yield* healthy(replica)).toBe(true)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a success between failures resets the count (no flapping out)", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* TxRef.get(topology.replicas))[0]!
      const outcomes = [false, true, false, true, false]
      const probe: HealthMonitor.ProbeFn = () =>
        Effect.suspend(() => outcomes.shift() === false ? Effect.fail(new Error("x")) : Effect.succeed(good))
      const fiber = yield* Effect.forkChild(Monitor.watchReplica(topology, replica, health, probe))
      yield* TestClock.adjust("5 seconds")
      expect(yield* healthy(replica)).toBe(true)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a manual mark holds against good probes; lifting it restores rotation", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* TxRef.get(topology.replicas))[0]!
      const { probe } = yield* scriptedProbe
      yield* TxRef.update(replica.health, (h) => Health.mark(h, true, undefined, 0))
      const fiber = yield* Effect.forkChild(Monitor.watchReplica(topology, replica, health, probe))
      yield* TestClock.adjust("10 seconds")
      expect(yield* healthy(replica)).toBe(false)
      expect(Health.probesUp(yield* TxRef.get(replica.health))).toBe(true) // the probes' own view
      yield* TxRef.update(replica.health, (h) => Health.mark(h, false, undefined, 0))
      expect(yield* healthy(replica)).toBe(true)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a failed probe keeps the last known lag and records the error", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* TxRef.get(topology.replicas))[0]!
      const { ok, probe } = yield* scriptedProbe
      yield* Monitor.checkReplica(replica, probe, health)
      yield* Ref.set(ok, false)
      yield* TestClock.adjust("1 second")
      yield* Monitor.checkReplica(replica, probe, health)
      const recorded = yield* TxRef.get(replica.probe)
      expect(recorded).toMatchObject({ ok: false, replayLsn: 100n, lagBytes: 0, at: 1000 })
      expect(recorded!.error).toContain("connection refused")
    }))

  it.effect("a removed replica stops being probed", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* TxRef.get(topology.replicas))[0]!
      const { calls, probe } = yield* scriptedProbe
      const fiber = yield* Effect.forkChild(Monitor.watchReplica(topology, replica, health, probe))
      yield* TestClock.adjust("1 second")
      yield* TxRef.set(replica.health, Health.removed)
      yield* TestClock.adjust("1 second")
      const after = yield* Ref.get(calls)
      yield* TestClock.adjust("5 seconds")
      expect(yield* Ref.get(calls)).toBe(after)
      expect((yield* Fiber.await(fiber))._tag).toBe("Success")
    }))

  describe("following the primary", () => {
    const primary = fakeNode("primary")
    const other = fakeNode("replica-1")
    const view = { node: primary, ok: true, lsn: Monitor.parseLsn("0/3000100"), timeline: 2 }
    // `now`: the primary's position when asked again (null: it does not answer).
    const context = (
      over: Partial<Monitor.PrimaryView> | null = {},
      now: bigint | undefined | null = view.lsn
    ): Monitor.Context => ({
      primary: Effect.succeed(over === null ? undefined : { ...view, ...over }),
      primaryLsnNow: Effect.succeed(now ?? undefined),
      nodeAt: (address) =>
        Effect.succeed(address === "loopback:5432" ? primary : address === "loopback:5433" ? other : undefined)
    })
    const streaming = { visible: true, status: "streaming", sender: "loopback:5432", timeline: 2 }
    const standby = (over: Partial<Catalog.StandbyState> = {}): Catalog.StandbyState => ({
      standby: true,
      replayLsn: Monitor.parseLsn("0/3000000"),
      behindMillis: 1500,
      receiver: streaming,
      self: "loopback:5434",
      ...over
    })
    const stateOf = (s: Catalog.StandbyState, c: Monitor.Context = context()) =>
      Effect.map(Monitor.judge(s, c), (probe) => probe.state?._tag)

    it.effect("a standby streaming from the primary on its timeline, not ahead, follows", () =>
      Effect.gen(function*() {
        const probe = yield* Monitor.judge(standby(), context())
        expect(probe).toMatchObject({ ok: true, lagBytes: 256, lagMillis: 1500, state: { _tag: "Following", verified: true } })
      }))

    it.effect("a replica that replayed everything has no lag, however old its last commit", () =>
      Effect.gen(function*() {
        const probe = yield* Monitor.judge(standby({ replayLsn: view.lsn, behindMillis: 3_600_000 }), context())
        expect(probe).toMatchObject({ ok: true, lagBytes: 0, lagMillis: 0, replayLsn: 0x3000100n })
      }))

    it.effect("another timeline, another known sender, or a position ahead of the primary is diverged", () =>
      Effect.gen(function*() {
        expect(yield* stateOf(standby({ receiver: { ...streaming, timeline: 1 } }))).toBe("Diverged")
        expect(yield* stateOf(standby({ receiver: { ...streaming, sender: "loopback:5433" } }))).toBe("Diverged")
        const ahead = standby({ replayLsn: Monitor.parseLsn("0/4000000") })
        expect(yield* stateOf(ahead, context({}, Monitor.parseLsn("0/3000200")))).toBe("Diverged")
        // Ahead only of an old position: the primary moved on meanwhile.
        expect(yield* stateOf(ahead, context({}, Monitor.parseLsn("0/5000000")))).toBe("Following")
        const probe = yield* Monitor.judge(standby({ receiver: { ...streaming, timeline: 1 } }), context())
        expect(probe.ok).toBe(false)
        expect(probe.error).toContain("timeline 1")
      }))

    it.effect("a standby that does not stream is detached; an unknown sender is judged by timeline", () =>
      Effect.gen(function*() {
        expect(yield* stateOf(standby({ receiver: undefined }))).toBe("Detached")
        expect(yield* stateOf(standby({ receiver: { ...streaming, status: "waiting" } }))).toBe("Detached")
        expect(yield* stateOf(standby({ receiver: { ...streaming, sender: "db-rw.svc:5432" } }))).toBe("Following")
      }))

    it.effect("without a primary that answers nothing is judged; hidden receiver details admit unverified", () =>
      Effect.gen(function*() {
        expect(yield* stateOf(standby({ receiver: undefined }), context({ ok: false }))).toBe("Stranded")
        // The last view says the primary is up, but it does not answer now (it just died).
        expect(yield* stateOf(standby({ receiver: undefined }), context({}, null))).toBe("Stranded")
        expect(yield* stateOf(standby({ receiver: { ...streaming, timeline: 1 } }), context(null))).toBe("Stranded")
        const hidden = { visible: false, status: undefined, sender: undefined, timeline: undefined }
        const probe = yield* Monitor.judge(standby({ receiver: hidden }), context())
        expect(probe.state).toEqual({ _tag: "Following", verified: false })
        expect(yield* stateOf(standby({ standby: false }))).toBe("Writable")
      }))

    it.effect("a diverged probe takes a replica out at once; a stranded one changes nothing", () =>
      Effect.gen(function*() {
        const topology = yield* setup()
        const replica = (yield* TxRef.get(topology.replicas))[0]!
        const at = (state: Topology.Probe["state"], ok: boolean): Topology.Probe => ({ ...good, ok, at: 0, state })
        const apply = (probe: Topology.Probe) => Monitor.applyProbe(replica, probe, health)
        expect(yield* apply(at({ _tag: "Stranded" }, true))).toBeUndefined()
        expect(yield* apply(at({ _tag: "Diverged", reason: "timeline" }, false))).toBe("down")
        expect(yield* healthy(replica)).toBe(false)
        // Back only after successThreshold (3) probes that see it following.
        for (let i = 0; i < 2; i++) expect(yield* apply(at({ _tag: "Following", verified: true }, true))).toBeUndefined()
        expect(yield* apply(at({ _tag: "Stranded" }, true))).toBeUndefined()
        expect(yield* apply(at({ _tag: "Following", verified: true }, true))).toBe("up")
      }))
  })

  describe("lag", () => {
    it("LSNs parse and print like PostgreSQL's", () => {
      expect(Monitor.parseLsn("16/B374D848")).toBe((0x16n << 32n) + 0xb374d848n)
      expect(Monitor.formatLsn(Monitor.parseLsn("16/B374D848")!)).toBe("16/B374D848")
      expect(Monitor.parseLsn(null)).toBeUndefined()
    })

    it.effect("maxLag excludes a replica whose last probe is beyond the bound (or unknown)", () =>
      Effect.gen(function*() {
        const topology = yield* setup(3)
        const [fresh, stale, unknown] = yield* TxRef.get(topology.replicas)
        yield* TxRef.set(fresh!.probe, { ...good, at: 0, lagMillis: 100 })
        yield* TxRef.set(stale!.probe, { ...good, at: 0, lagMillis: 5000, lagBytes: 10_000 })
        void unknown
        const requirement = { maxLagMillis: 1000, maxLagBytes: undefined, minLsn: undefined }
        const picks = yield* Effect.forEach([1, 2, 3], () => Selection.roundRobin(topology, requirement))
        expect(picks.map((p) => Option.map(p, (r) => r.node.id))).toEqual([
          Option.some("replica-0"),
          Option.some("replica-0"),
          Option.some("replica-0")
        ])
        const leastLag = yield* Selection.leastLag(topology, Selection.anyHealthy)
        expect(Option.map(leastLag, (r) => r.node.id)).toEqual(Option.some("replica-0"))
      }))
  })

  describe("discovery", () => {
    it.effect("concurrent rounds coalesce: writers that meet a read-only node share one round", () =>
      Effect.gen(function*() {
        const topology = yield* setup(1)
        const asked = yield* Ref.make(0)
        const gate = yield* Deferred.make<void>()
        const role = (node: Node.Node) =>
          Effect.andThen(
            Effect.andThen(Ref.update(asked, (n) => n + 1), Deferred.await(gate)),
            Effect.succeed({ standby: node.id !== "primary", lsn: 1n, timeline: 1, self: undefined })
          )
        const internals = {
          topology,
          scope: yield* Effect.scope,
          probes: { role, primaryRole: role, recordPrimary: () => Effect.void }
        } as unknown as RouterState
        const rounds = yield* Effect.forkChild(
          Effect.all(Array.from({ length: 8 }, () => Membership.discoverOnce(internals)), { concurrency: "unbounded" })
        )
        yield* TestClock.adjust(0)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(rounds)
        expect(yield* Ref.get(asked)).toBe(2) // one round: each of the two nodes asked once
        yield* Membership.discoverOnce(internals)
        expect(yield* Ref.get(asked)).toBe(4) // the next round is a new one
      }))
  })
})
