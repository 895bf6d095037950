import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import { runDemo } from "../examples/demo.js"
import * as EventLogExample from "../examples/event-log.js"
import { DatabaseLive, program } from "../examples/quickstart.js"

// The examples run for real: an embedded cluster each, on the live clock.

describe("examples", () => {
  it.live("demo: reads reach both replicas and the primary through both faults; none fails, no write is lost", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const summary = yield* runDemo({ seconds: 4, output: (line) => lines.push(line) })
      const reads = Object.fromEntries(summary.nodes.map((node) => [node.id, node.reads]))
      expect(reads["primary"]).toBeGreaterThan(0)
      expect(reads["replica-0"]).toBeGreaterThan(0)
      expect(reads["replica-1"]).toBeGreaterThan(0)
      expect(summary.failures).toEqual([])
      expect(summary.readFailures).toBe(0)
      expect(summary.writeFailures).toBe(0)
      expect(summary.committedInserts).toBeGreaterThan(0)
      expect(summary.missingOnPrimary).toBe(0)
      expect(summary.ok).toBe(true)
      // The timeline shows the router's own account of the crash.
      expect(lines.some((line) => line.includes("replica replica-1 left rotation"))).toBe(true)
      expect(lines.some((line) => line.startsWith("summary:"))).toBe(true)
      // The replicas run pipelined, and the demo says so.
      expect(lines).toContain("sessions (statements per server session): replicas multiplex ≤32, primary one at a time")
    }), 60_000)

  it.live("quickstart: writes and read-your-writes on the primary, plain reads and withRead on replicas", () =>
    Effect.gen(function*() {
      const result = yield* program.pipe(
        Effect.provide(DatabaseLive),
        // No DATABASE_URL: the example starts its own cluster whatever the environment says.
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: {} }))
      )
      expect(result.readBack).toBe("hello, replicas")
      expect(result.listing.on_replica).toBe(true)
      expect(result.shouted).toBe("HELLO, REPLICAS")
      const replicaReads = result.stats.replicas.reduce((n, node) => n + node.served.reads, 0)
      const replicaWrites = result.stats.replicas.reduce((n, node) => n + node.served.writes, 0)
      expect(replicaReads).toBe(2) // the plain read and the withRead region
      expect(replicaWrites).toBe(0)
      expect(result.stats.primary.served).toEqual({ reads: 1, writes: 2 }) // read-your-write; INSERT, transaction
    }), 60_000)

  it.live("event-log: commands append on the primary after deciding on replicas; the projection follows the listener", () =>
    Effect.gen(function*() {
      const summary = yield* EventLogExample.program.pipe(
        Effect.provide(EventLogExample.EventLogLive),
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: {} }))
      )
      expect(summary.balances).toEqual({ ada: 70, bob: 75 })
      expect(summary.systemVersion).toBe(4)
      expect(summary.projectionVersion).toBe(4)
      expect(summary.rejected).toEqual(["bob: balance 75, asked 1000"])
      expect(summary.conflicts).toBe(1)
      const where = (prefix: string) =>
        summary.placements.filter((p) => p.what.startsWith(prefix)).map((p) => p.where.split(" ")[0])
      expect(new Set(where("append"))).toEqual(new Set(["primary"]))
      expect(new Set(where("decide"))).toEqual(new Set(["replica"]))
      expect(new Set(where("projection stored"))).toEqual(new Set(["primary"]))
      expect(where("projection read")).toContain("replica")
    }), 60_000)
})
