import * as CoreSelection from "@effect-sql-router/core/Selection"
import type * as Node from "@effect-sql-router/effect4/Node"
import * as Selection from "@effect-sql-router/effect4/Selection"
import type * as Topology from "@effect-sql-router/effect4/Topology"
import * as Health from "@effect-sql-router/core/Health"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TxRef from "effect/TxRef"
import * as SelectionInternal from "../src/internal/routing/selection.js"

// The strategies' drivers over the topology's TxRefs, on fake nodes: the
// choices themselves are the core's, unit-tested there.

const fakeNode = (id: string) => ({ id, role: "replica" }) as unknown as Node.Node

const replica = (id: string, up = true): Topology.Replica => ({
  node: fakeNode(id),
  health: TxRef.makeUnsafe<Topology.Health>(Health.initial(up)),
  inFlight: TxRef.makeUnsafe(0),
  probe: TxRef.makeUnsafe<Topology.Probe | undefined>(undefined)
})

const topologyOf = (replicas: ReadonlyArray<Topology.Replica>): Topology.Topology => ({
  primary: TxRef.makeUnsafe(fakeNode("primary")),
  replicas: TxRef.makeUnsafe(replicas),
  cursor: TxRef.makeUnsafe(0),
  primaryLsn: TxRef.makeUnsafe<bigint | undefined>(undefined),
  conflict: TxRef.makeUnsafe<ReadonlyArray<string>>([])
})

const idOf = (chosen: Option.Option<Topology.Replica>) => Option.getOrElse(Option.map(chosen, (r) => r.node.id), () => "none")

const probe = (lagMillis: number, lagBytes: number): Topology.Probe => ({
  at: 0,
  ok: true,
  replayLsn: 1n,
  lagBytes,
  lagMillis,
  error: undefined
})

describe("Selection", () => {
  it("the strategies are one record over the core's names", () => {
    expect(Object.keys(Selection.strategies)).toEqual([...Selection.names])
    for (const name of Selection.names) {
      expect(Selection.strategies[name].name).toBe(name)
      expect(Selection.strategies[name].usesRandom).toBe(CoreSelection.strategies[name].usesRandom)
    }
  })

  it.effect("round-robin takes the replicas in turn from the cursor TxRef, skipping one out of rotation", () =>
    Effect.gen(function*() {
      const topology = topologyOf([replica("replica-0"), replica("replica-1", false), replica("replica-2")])
      const picks = yield* Effect.forEach([1, 2, 3, 4], () => Selection.roundRobin(topology, Selection.anyHealthy))
      expect(picks.map(idOf)).toEqual(["replica-0", "replica-2", "replica-0", "replica-2"])
      expect(yield* TxRef.get(topology.cursor)).toBe(3)
    }))

  it.effect("acquire counts the read in flight, least-connections avoids the busy replica, release gives it back", () =>
    Effect.gen(function*() {
      const [first, second] = [replica("replica-0"), replica("replica-1")]
      const topology = topologyOf([first!, second!])
      const a = yield* Selection.acquire("least-connections", topology, Selection.anyHealthy, 0)
      const b = yield* Selection.acquire("least-connections", topology, Selection.anyHealthy, 0)
      expect([idOf(a), idOf(b)]).toEqual(["replica-0", "replica-1"])
      expect([yield* TxRef.get(first!.inFlight), yield* TxRef.get(second!.inFlight)]).toEqual([1, 1])
      yield* Selection.release(first!)
      expect(idOf(yield* Selection.select("least-connections", topology, Selection.anyHealthy, 0))).toBe("replica-0")
      expect(yield* TxRef.get(first!.inFlight)).toBe(0)
    }))

  it.effect("a lag bound excludes a replica whose last probe is beyond it, or unknown", () =>
    Effect.gen(function*() {
      const [fresh, stale, unknown] = [replica("replica-0"), replica("replica-1"), replica("replica-2")]
      yield* TxRef.set(fresh!.probe, probe(100, 10))
      yield* TxRef.set(stale!.probe, probe(5_000, 10_000))
      void unknown
      const topology = topologyOf([fresh!, stale!, unknown!])
      const bound = { maxLagMillis: 1_000, maxLagBytes: undefined, minLsn: undefined }
      const picks = yield* Effect.forEach([1, 2, 3], () => Selection.roundRobin(topology, bound))
      expect(picks.map(idOf)).toEqual(["replica-0", "replica-0", "replica-0"])
      expect(idOf(yield* Selection.leastLag(topology, Selection.anyHealthy))).toBe("replica-0")
      expect(yield* Selection.isEligible(stale!, bound)).toBe(false)
      expect(yield* Selection.isEligible(stale!, Selection.anyHealthy)).toBe(true)
    }))

  it.effect("with slow start, a replica at the start of its ramp is still taken when no other fits", () =>
    Effect.gen(function*() {
      const ramping = replica("replica-0")
      yield* TxRef.update(ramping.health, (health) => ({ ...health, ramp: { from: Date.now(), millis: 3_600_000 } }))
      const topology = topologyOf([ramping])
      expect(idOf(yield* Selection.acquire("round-robin", topology, Selection.anyHealthy, 0))).toBe("none")
      const chosen = yield* Selection.acquireWithSlowStart("round-robin", topology, Selection.anyHealthy, 0)
      expect(idOf(chosen)).toBe("replica-0")
      expect(yield* TxRef.get(ramping.inFlight)).toBe(1)
    }))

  it.effect("the read path's pick outside a transaction makes the same choice and counts it", () =>
    Effect.gen(function*() {
      const topology = topologyOf([replica("replica-0"), replica("replica-1", false), replica("replica-2")])
      const strategy = CoreSelection.strategies["round-robin"]
      const outside = [1, 2, 3].map(() =>
        SelectionInternal.unsafeAcquire(strategy, topology, Selection.anyHealthy, 0, false)?.node.id
      )
      expect(outside).toEqual(["replica-0", "replica-2", "replica-0"])
      const [first, , third] = yield* TxRef.get(topology.replicas)
      expect([yield* TxRef.get(first!.inFlight), yield* TxRef.get(third!.inFlight)]).toEqual([2, 1])
      expect(idOf(yield* Selection.roundRobin(topology, Selection.anyHealthy))).toBe("replica-2")
    }))

  it.effect("a write outside a transaction makes a transaction that read the old value run again", () =>
    Effect.gen(function*() {
      const count = TxRef.makeUnsafe(0)
      const other = TxRef.makeUnsafe("x")
      let attempts = 0
      const seen = yield* Effect.tx(Effect.gen(function*() {
        attempts++
        const value = yield* TxRef.get(count)
        // Between the read and the commit, the read path writes the count.
        if (attempts === 1) SelectionInternal.unsafeSet(count, 5)
        yield* TxRef.set(other, "y")
        return value
      }))
      expect(seen).toBe(5)
      expect(attempts).toBe(2)
    }))

  it.effect("a transaction waiting on an in-flight count wakes when the read path gives it back", () =>
    Effect.gen(function*() {
      const busy = replica("replica-0")
      const topology = topologyOf([busy])
      const strategy = CoreSelection.strategies["round-robin"]
      expect(SelectionInternal.unsafeAcquire(strategy, topology, Selection.anyHealthy, 0, false)).toBe(busy)
      const drained = yield* Effect.forkChild(Effect.tx(Effect.gen(function*() {
        const n = yield* TxRef.get(busy.inFlight)
        if (n > 0) return yield* Effect.txRetry
        return "drained" as const
      })))
      // Waiting: the transaction has registered on the reference.
      while (busy.inFlight.pending.size === 0) yield* Effect.yieldNow
      SelectionInternal.unsafeRelease(busy)
      expect(yield* Fiber.join(drained)).toBe("drained")
    }))
})
