import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { renderCdc, runCdcBench } from "../bench/cdc.js"

// A smoke test of the CDC benchmark (Effect 4 line): a tiny run end to end. It checks that the
// harness runs and reports, never how fast anything is.
describe("bench/cdc.ts", () => {
  it.live("catches up a small backlog on both targets, samples lag, and renders both tables", () =>
    Effect.gen(function*() {
      const result = yield* runCdcBench({ changes: 297, seconds: 1, rate: 50, rounds: 1, warmupRounds: 0, warmup: 0.5 })
      expect(result.throughput.map((t) => [t.target, t.changes, t.transactions])).toEqual([
        ["PostgreSQL", 297, 3],
        ["SQLite", 297, 3]
      ])
      expect(result.lag.map((l) => l.target)).toEqual(["PostgreSQL", "SQLite"])
      for (const lag of result.lag) expect(lag.transactions).toBeGreaterThan(0)
      const markdown = renderCdc(result)
      expect(markdown).toMatch(/\| PostgreSQL \| 1 \| [\d,]+ \| [\d,]+–[\d,]+ \| [\d.]+k \| 20,000 \| (yes|no) \|/)
      expect(markdown).toMatch(/\| SQLite \| [\d,]+ \| [\d,]+ \| [\d–]+ \|/)
    }), 120_000)
})
