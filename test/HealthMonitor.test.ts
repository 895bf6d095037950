import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as STM from "effect/STM"
import * as TestClock from "effect/TestClock"
import * as TRef from "effect/TRef"
import * as Duration from "effect/Duration"
import type * as HealthMonitor from "effect-sql-router/HealthMonitor"
import type * as Node from "effect-sql-router/Node"
import * as Selection from "effect-sql-router/Selection"
import * as Topology from "effect-sql-router/Topology"
import * as Monitor from "../src/internal/healthMonitor.js"

// Pure logic under TestClock: the probe is a stub, so no server is involved.
// Only `id` of a node is read by the monitor.
const fakeNode = (id: string) => ({ id, role: id === "primary" ? "primary" : "replica" }) as unknown as Node.Node

const health = {
  interval: Duration.seconds(1),
  timeout: Duration.millis(500),
  failureThreshold: 2,
  successThreshold: 3,
  enabled: true
}

const good = { ok: true, replayLsn: 100n, lagBytes: 0, lagMillis: 0, error: undefined } as const

const setup = (replicaCount = 1) =>
  STM.commit(STM.gen(function*() {
    const replicas: Array<Topology.Replica> = []
    for (let i = 0; i < replicaCount; i++) replicas.push(yield* Topology.makeReplica(fakeNode(`replica-${i}`), true))
    return yield* Topology.make(fakeNode("primary"), replicas)
  }))

/** A probe whose outcome the test sets, counting its calls. */
const scriptedProbe = Effect.gen(function*() {
  const ok = yield* Ref.make(true)
  const calls = yield* Ref.make(0)
  const probe: HealthMonitor.ProbeFn = () =>
    Effect.zipRight(
      Ref.update(calls, (n) => n + 1),
      Effect.flatMap(Ref.get(ok), (up) => up ? Effect.succeed(good) : Effect.fail(new Error("connection refused")))
    )
  return { ok, calls, probe }
})

const healthy = (replica: Topology.Replica) => STM.commit(Topology.isHealthy(replica))

describe("HealthMonitor", () => {
  it.effect("probes at start and then exactly once per interval", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* STM.commit(TRef.get(topology.replicas)))[0]!
      const { calls, probe } = yield* scriptedProbe
      const fiber = yield* Effect.fork(Monitor.watchReplica(topology, replica, health, probe))
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

  it.effect("a replica leaves after failureThreshold consecutive failures and returns after successThreshold successes", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* STM.commit(TRef.get(topology.replicas)))[0]!
      const { ok, probe } = yield* scriptedProbe
      const fiber = yield* Effect.fork(Monitor.watchReplica(topology, replica, health, probe))
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
      const replica = (yield* STM.commit(TRef.get(topology.replicas)))[0]!
      const outcomes = [false, true, false, true, false]
      const probe: HealthMonitor.ProbeFn = () =>
        Effect.suspend(() => outcomes.shift() === false ? Effect.fail(new Error("x")) : Effect.succeed(good))
      const fiber = yield* Effect.fork(Monitor.watchReplica(topology, replica, health, probe))
      yield* TestClock.adjust("5 seconds")
      expect(yield* healthy(replica)).toBe(true)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a manual mark holds against good probes; lifting it restores rotation", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* STM.commit(TRef.get(topology.replicas)))[0]!
      const { probe } = yield* scriptedProbe
      yield* STM.commit(TRef.update(replica.health, (h) => ({ ...h, markedDown: true })))
      const fiber = yield* Effect.fork(Monitor.watchReplica(topology, replica, health, probe))
      yield* TestClock.adjust("10 seconds")
      expect(yield* healthy(replica)).toBe(false)
      expect((yield* STM.commit(TRef.get(replica.health))).up).toBe(true) // the probes' own view
      yield* STM.commit(TRef.update(replica.health, (h) => ({ ...h, markedDown: false })))
      expect(yield* healthy(replica)).toBe(true)
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a failed probe keeps the last known lag and records the error", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* STM.commit(TRef.get(topology.replicas)))[0]!
      const { ok, probe } = yield* scriptedProbe
      yield* Monitor.checkReplica(replica, probe, health)
      yield* Ref.set(ok, false)
      yield* TestClock.adjust("1 second")
      yield* Monitor.checkReplica(replica, probe, health)
      const recorded = yield* STM.commit(TRef.get(replica.probe))
      expect(recorded).toMatchObject({ ok: false, replayLsn: 100n, lagBytes: 0, at: 1000 })
      expect(recorded!.error).toContain("connection refused")
    }))

  it.effect("a removed replica stops being probed", () =>
    Effect.gen(function*() {
      const topology = yield* setup()
      const replica = (yield* STM.commit(TRef.get(topology.replicas)))[0]!
      const { calls, probe } = yield* scriptedProbe
      const fiber = yield* Effect.fork(Monitor.watchReplica(topology, replica, health, probe))
      yield* TestClock.adjust("1 second")
      yield* STM.commit(TRef.update(replica.health, (h) => ({ ...h, member: false })))
      yield* TestClock.adjust("1 second")
      const after = yield* Ref.get(calls)
      yield* TestClock.adjust("5 seconds")
      expect(yield* Ref.get(calls)).toBe(after)
      expect((yield* Fiber.await(fiber))._tag).toBe("Success")
    }))

  describe("lag", () => {
    const row = (replay: string, behindMs: number) => <A>() => Effect.succeed({ standby: true, replay, behind_ms: behindMs } as A)

    it.effect("a replica that replayed everything has no lag, however old its last commit", () =>
      Effect.gen(function*() {
        const probe = yield* Monitor.probeReplica(row("0/3000060", 3_600_000), Effect.succeed(Monitor.parseLsn("0/3000060")))
        expect(probe).toMatchObject({ ok: true, lagBytes: 0, lagMillis: 0, replayLsn: 0x3000060n })
      }))

    it.effect("a replica behind has byte and time lag", () =>
      Effect.gen(function*() {
        const probe = yield* Monitor.probeReplica(row("0/3000000", 1500), Effect.succeed(Monitor.parseLsn("0/3000100")))
        expect(probe).toMatchObject({ lagBytes: 256, lagMillis: 1500 })
      }))

    it.effect("a server that is not a standby fails the probe", () =>
      Effect.gen(function*() {
        const query = <A>() => Effect.succeed({ standby: false, replay: null, behind_ms: null } as A)
        const error = yield* Effect.flip(Monitor.probeReplica(query, Effect.succeed(undefined)))
        expect(String(error)).toContain("not a standby")
      }))

    it("LSNs parse and print like PostgreSQL's", () => {
      expect(Monitor.parseLsn("16/B374D848")).toBe((0x16n << 32n) + 0xb374d848n)
      expect(Monitor.formatLsn(Monitor.parseLsn("16/B374D848")!)).toBe("16/B374D848")
      expect(Monitor.parseLsn(null)).toBeUndefined()
    })

    it.effect("maxLag excludes a replica whose last probe is beyond the bound (or unknown)", () =>
      Effect.gen(function*() {
        const topology = yield* setup(3)
        const [fresh, stale, unknown] = yield* STM.commit(TRef.get(topology.replicas))
        yield* STM.commit(TRef.set(fresh!.probe, { ...good, at: 0, lagMillis: 100 }))
        yield* STM.commit(TRef.set(stale!.probe, { ...good, at: 0, lagMillis: 5000, lagBytes: 10_000 }))
        void unknown
        const requirement = { maxLagMillis: 1000, maxLagBytes: undefined, minLsn: undefined }
        const picks = yield* Effect.forEach([1, 2, 3], () => STM.commit(Selection.roundRobin(topology, requirement)))
        expect(picks.map((p) => Option.map(p, (r) => r.node.id))).toEqual([
          Option.some("replica-0"),
          Option.some("replica-0"),
          Option.some("replica-0")
        ])
        const leastLag = yield* STM.commit(Selection.leastLag(topology, Selection.anyHealthy))
        expect(Option.map(leastLag, (r) => r.node.id)).toEqual(Option.some("replica-0"))
      }))
  })
})
