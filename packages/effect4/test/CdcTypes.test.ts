import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Sink from "effect/Sink"
import { vi } from "vitest"
import * as Cdc from "@effect-sql-router/effect4/Cdc"

// The pure parts of the public Cdc module: LSN text and the rule schema. The
// column types and the pgoutput decoder are the core's (packages/core/test/cdc);
// the mapping end to end is test/CdcTypeMapping.test.ts.
// And `pg`, an optional peer needed by Cdc alone: this file runs as if it
// were not installed.

vi.mock("pg", () => {
  throw new Error("Cannot find package 'pg'")
})

describe("Cdc types", () => {
  it("LSNs print as PostgreSQL 18 does and parse both widths", () => {
    expect(Cdc.formatLsn(0x16b3748n)).toBe("0/016B3748")
    expect(Cdc.formatLsn((0xabn << 32n) | 0xffffffffn)).toBe("AB/FFFFFFFF")
    expect(Cdc.parseLsn("0/16B3748")).toBe(0x16b3748n)
    expect(Cdc.parseLsn("00000000/016B3748")).toBe(0x16b3748n)
    expect(Cdc.parseLsn(Cdc.formatLsn(123456789012345n))).toBe(123456789012345n)
  })

  it("the rule schema refuses a bad name, table, slot or WAL bound", () => {
    const decode = Schema.decodeUnknownResult(Cdc.Rule)
    expect(decode({ name: "ok_1", tables: ["a", "s.b"], target: "t" })._tag).toBe("Success")
    expect(decode({ name: "1bad", tables: ["a"], target: "t" })._tag).toBe("Failure")
    expect(decode({ name: "ok", tables: ["a;drop"], target: "t" })._tag).toBe("Failure")
    expect(decode({ name: "ok", tables: ["a"], target: "t", slot: "Upper" })._tag).toBe("Failure")
    expect(decode({ name: "ok", tables: ["a"], target: "t", maxRetainedWalBytes: 0 })._tag).toBe("Failure")
    expect(decode({ name: "ok", tables: ["a"], target: "t", unsupportedTypes: "text" })._tag).toBe("Success")
    expect(decode({ name: "ok", tables: ["a"], target: "t", unsupportedTypes: "skip" })._tag).toBe("Failure")
  })

  it.effect("a rule is refused naming the bad field and what is wrong with it", () =>
    Effect.gen(function*() {
      const cdc = yield* Cdc.make({ primary: Redacted.make("postgres://u@127.0.0.1:1/d"), targets: { t: Cdc.sinkTarget(Sink.drain) } })
      const refused = (rule: unknown) => Effect.flip(cdc.addRule(rule as Cdc.Rule))
      expect(yield* refused({ name: "ok", tables: ["a"], target: "t", slot: "Upper" })).toMatchObject({
        _tag: "InvalidRule",
        name: "ok",
        field: "slot",
        reason: "slot must be 1 to 63 lowercase letters, digits or underscores, not starting with a digit"
      })
      expect(yield* refused({ name: "ok", tables: ["a", "b c"], target: "t" })).toMatchObject({ field: "tables.1" })
      expect(yield* refused({ name: "ok", tables: ["a"], target: "t", maxRetainedWalBytes: 1.5 })).toMatchObject({
        field: "maxRetainedWalBytes",
        reason: "must be a whole number of bytes above 0"
      })
      expect(yield* refused({ name: "ok", tables: ["a"], target: "t", snapshots: true })).toMatchObject({
        field: "snapshots",
        reason: "is not a known option"
      })
      expect(yield* refused({ name: "ok", tables: ["a"] })).toMatchObject({ field: "target", reason: "is missing" })
      expect(yield* refused({ name: "ok", tables: ["a"], target: 1 })).toMatchObject({
        field: "target",
        reason: "must be the name of a target given to the Cdc layer"
      })
      expect(yield* refused({ name: "ok", tables: ["a"], target: "elsewhere" })).toMatchObject({
        field: "target",
        reason: "names no target (known: t)"
      })
      expect(yield* cdc.listRules).toEqual([])
    }).pipe(Effect.scoped))

  // This file imported Cdc (and with it the router) with `pg` missing; the
  // packaging check (test/Package.test.ts) installs and loads the built package without it.
  it.effect("without pg, Cdc loads and fails at its first connection with a ReplicationError naming the missing peer", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Cdc.drop({ primary: Redacted.make("postgres://u:s3cret@127.0.0.1:1/d"), slot: "s" }))
      expect(error).toMatchObject({ _tag: "ReplicationError", operation: "connect" })
      expect(error.reason).toContain("optional peer dependency pg (npm install pg)")
      expect(error.message).not.toContain("s3cret")
    }))
})
