import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import { runDemo } from "../examples/demo.js"
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
    }), 60_000)

  it.live("quickstart: writes and read-your-writes on the primary, plain reads and withRead on replicas", () =>
    Effect.gen(function*() {
      const result = yield* program.pipe(
        Effect.provide(DatabaseLive),
        // No DATABASE_URL: the example starts its own cluster whatever the environment says.
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
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
})
