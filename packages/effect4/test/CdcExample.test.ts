import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { runCdcExample } from "../examples/cdc.js"

// The CDC example runs for real: an embedded primary, a second database as the target, live clock.

describe("examples/cdc.ts", () => {
  it.live("mirrors the orders table into another database while it is written, printing the lag", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const summary = yield* runCdcExample({ seconds: 3, output: (line) => lines.push(line) })
      expect(summary.written).toBeGreaterThan(10)
      expect(summary.equal).toBe(true)
      expect(summary.inMirror).toBe(summary.onPrimary)
      expect(summary.stats.changesApplied).toBeGreaterThan(summary.written)
      expect(lines.some((line) => /lag +\d+ bytes/.test(line))).toBe(true)
      expect(lines.at(-1)).toMatch(/^summary: .* equal$/)
    }), 90_000)
})
