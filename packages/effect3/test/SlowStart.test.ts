import { describe, expect, it } from "@effect/vitest"
import * as Health from "@effect-sql-router/core/Health"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type * as Node from "effect-sql-router/Node"
import * as RoutedClient from "effect-sql-router/RoutedClient"
import * as Selection from "effect-sql-router/Selection"
import { PgCluster } from "effect-sql-router/testing"
import * as Topology from "effect-sql-router/Topology"
import * as Monitor from "../src/internal/health/monitor.js"
import { configFor } from "./utils.js"

// Slow start: pure ramp logic on fake nodes, then one real cluster.

const fakeNode = (id: string) => ({ id, role: "replica" }) as unknown as Node.Node

const setup = (replicaCount: number) =>
  STM.commit(STM.gen(function*() {
    const replicas: Array<Topology.Replica> = []
    for (let i = 0; i < replicaCount; i++) replicas.push(yield* Topology.makeReplica(fakeNode(`replica-${i}`), true))
    return yield* Topology.make(fakeNode("primary"), replicas)
  }))

/** How many of `n` picks each replica gets, by node id. */
const tally = (topology: Topology.Topology, strategy: Selection.Name, n: number) =>
  Effect.gen(function*() {
    const counts: Record<string, number> = {}
    for (let i = 0; i < n; i++) {
      const chosen = yield* STM.commit(
        Selection.acquireWithSlowStart(strategy, topology, Selection.anyHealthy, (i * 0.37) % 1)
      )
      const id = Option.isSome(chosen) ? chosen.value.node.id : "none"
      counts[id] = (counts[id] ?? 0) + 1
      if (Option.isSome(chosen)) yield* STM.commit(Selection.release(chosen.value))
    }
    return counts
  })

const rampFor = (replica: Topology.Replica, from: number, millis: number) =>
  STM.commit(TRef.set(replica.health, { _tag: "InRotation", streak: 0, ramp: { from, millis } }))

describe("slow start: the ramp", () => {
  it("admits no read at the start, a share equal to the elapsed fraction, and every read after the ramp", () => {
    const ramp: Topology.Ramp = { from: 1_000, millis: 10_000 }
    expect(Topology.rampAdmits(ramp, 1_000, 0)).toBe(false)
    expect(Topology.rampAdmits(ramp, 1_000, 0.999)).toBe(false)
    // A quarter of the way: draws below 0.25 are admitted.
    expect(Topology.rampAdmits(ramp, 3_500, 0.2)).toBe(true)
    expect(Topology.rampAdmits(ramp, 3_500, 0.3)).toBe(false)
    expect(Topology.rampAdmits(ramp, 11_000, 0.999)).toBe(true)
    expect(Topology.rampAdmits(ramp, 50_000, 0.999)).toBe(true)
  })

  it("a replica put back by hand ramps only with a positive slow start", () => {
    const out = Health.initial(false)
    expect(Health.rampOf(Health.mark(out, false, undefined, 5))).toBeUndefined()
    expect(Health.rampOf(Health.mark(out, false, 0, 5))).toBeUndefined()
    expect(Health.rampOf(Health.mark(out, false, 2_000, 5))).toEqual({ from: 5, millis: 2_000 })
  })

  it.effect("round-robin: a replica at the start of its ramp gets no reads while another fits", () =>
    Effect.gen(function*() {
      const topology = yield* setup(2)
      const [ramping] = yield* STM.commit(TRef.get(topology.replicas))
      yield* rampFor(ramping!, Date.now(), 3_600_000)
      const counts = yield* tally(topology, "round-robin", 100)
      expect(counts).toEqual({ "replica-1": 100 })
    }))

  it.effect("a ramping replica halfway through gets about half its share (every strategy)", () =>
    Effect.gen(function*() {
      for (const strategy of Selection.names) {
        const topology = yield* setup(2)
        const [ramping] = yield* STM.commit(TRef.get(topology.replicas))
        // Half of a very long ramp has elapsed: the share stays at one half during the test.
        yield* rampFor(ramping!, Date.now() - 1_800_000_000, 3_600_000_000)
        const counts = yield* tally(topology, strategy, 1000)
        // Full share would be 500 (least-lag sees equal lag, so it also alternates by cursor).
        expect(counts["replica-0"] ?? 0, strategy).toBeLessThan(400)
        expect(counts["replica-0"] ?? 0, strategy).toBeGreaterThan(100)
        expect((counts["replica-0"] ?? 0) + (counts["replica-1"] ?? 0), strategy).toBe(1000)
      }
    }))

  it.effect("the only replica in rotation is still chosen within its ramp (no fallback to none)", () =>
    Effect.gen(function*() {
      const topology = yield* setup(1)
      const [ramping] = yield* STM.commit(TRef.get(topology.replicas))
      yield* rampFor(ramping!, Date.now(), 3_600_000)
      expect(yield* tally(topology, "round-robin", 10)).toEqual({ "replica-0": 10 })
      expect(yield* tally(topology, "least-connections", 10)).toEqual({ "replica-0": 10 })
    }))

  it.effect("a probe that brings a replica back starts its ramp; without slowStart none", () =>
    Effect.gen(function*() {
      const good = { at: 0, ok: true, replayLsn: 1n, lagBytes: 0, lagMillis: 0, error: undefined }
      for (const slowStart of [Duration.seconds(30), undefined]) {
        const topology = yield* setup(1)
        const [replica] = yield* STM.commit(TRef.get(topology.replicas))
        yield* STM.commit(TRef.set(replica!.health, { _tag: "OutOfRotation", streak: -1 }))
        const thresholds = { failureThreshold: 1, successThreshold: 1, slowStart }
        expect(yield* STM.commit(Monitor.applyProbe(replica!, good, thresholds))).toBe("up")
        const health = yield* STM.commit(TRef.get(replica!.health))
        expect(Health.probesUp(health)).toBe(true)
        expect(Health.rampOf(health)?.millis).toBe(slowStart === undefined ? undefined : 30_000)
      }
    }))

  it.effect("the first probe after the ramp ends drops it", () =>
    Effect.gen(function*() {
      const good = { at: 0, ok: true, replayLsn: 1n, lagBytes: 0, lagMillis: 0, error: undefined }
      const topology = yield* setup(1)
      const [replica] = yield* STM.commit(TRef.get(topology.replicas))
      yield* rampFor(replica!, Date.now() - 10_000, 5_000)
      yield* STM.commit(Monitor.applyProbe(replica!, good, { failureThreshold: 1, successThreshold: 1 }))
      expect(Health.rampOf(yield* STM.commit(TRef.get(replica!.health)))).toBeUndefined()
    }))
})

describe("slow start on a real cluster", () => {
  it.live("a replica marked down and back gets fewer reads than the other during its ramp; all reads succeed", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 2 })
      const { client, router } = yield* RoutedClient.make(configFor(cluster, {
        health: { enabled: false, slowStart: "1 hour" }
      }))
      const read = client`SELECT current_setting('cluster_name') AS name`.pipe(
        Effect.map((rows) => rows[0]!.name as string)
      )
      yield* router.markReplicaUnhealthy("replica-0")
      yield* router.markReplicaHealthy("replica-0")
      const before = yield* router.stats
      const names = yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), () => read, { concurrency: 4 })
      const after = yield* router.stats
      const served = (id: string) =>
        after.replicas.find((r) => r.id === id)!.served.reads - before.replicas.find((r) => r.id === id)!.served.reads
      expect(names).toHaveLength(200)
      expect(names.every((name) => name === "replica-0" || name === "replica-1")).toBe(true)
      expect(served("replica-0") + served("replica-1")).toBe(200)
      expect(served("replica-0")).toBeLessThan(served("replica-1"))
      expect(after.healthyReplicaCount).toBe(2)
    }).pipe(Effect.scoped), 120_000)
})
