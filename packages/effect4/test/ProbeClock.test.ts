import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { TestClock } from "effect/testing"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"

// A user's `it.effect` test runs under TestClock. The probes keep real time
// by default (health.clock: "live"), so a real cluster's faults show up in
// health without anyone adjusting the clock.

/** Waiting in the test needs real time too: a sleep on TestClock never wakes. */
const waitFor = <A, E, R>(effect: Effect.Effect<A, E, R>, until: (a: A) => boolean) =>
  TestClock.withLive(effect.pipe(
    Effect.filterOrFail(until, () => "not yet" as const),
    Effect.retry({ schedule: Schedule.spaced("25 millis"), while: (e) => e === "not yet" }),
    Effect.timeout("30 seconds")
  ))

describe("probe clock", () => {
  it.effect("under TestClock, a killed replica leaves rotation through the probes (no traffic)", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 2 })
      const router = yield* SqlRouter.make({
        primary: cluster.primary.url,
        replicas: cluster.replicas.map((r) => r.url),
        connectTimeout: "1 second",
        health: { interval: "200 millis", timeout: "500 millis" }
      })
      expect(yield* router.countHealthyReplicas).toBe(2)
      const firstProbe = (yield* router.replicaStatus).find((s) => s.id === "replica-0")!.lastProbeAt!
      expect(firstProbe).toBeGreaterThan(0) // real epoch time, not TestClock's 0
      yield* cluster.kill(cluster.replicas[0]!)
      const status = yield* waitFor(
        Effect.map(router.replicaStatus, (all) => all.find((s) => s.id === "replica-0")!),
        (s) => !s.healthy
      )
      expect(status.state).toBe("Unreachable")
      expect(status.lastProbeAt).toBeGreaterThan(firstProbe)
      expect(yield* router.countHealthyReplicas).toBe(1)
      // The other replica went on being probed and stays in.
      expect((yield* router.replicaStatus).find((s) => s.id === "replica-1")!.healthy).toBe(true)
    }))
})
