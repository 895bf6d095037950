import { describe, expect, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as Cdc from "effect-sql-router/Cdc"

// The pure parts of the public Cdc module: LSN text and the rule schema. The
// column types and the pgoutput decoder are the core's (packages/core/test/cdc);
// the mapping end to end is test/CdcTypeMapping.test.ts.

describe("Cdc types", () => {
  it("LSNs print as PostgreSQL 18 does and parse both widths", () => {
    expect(Cdc.formatLsn(0x16b3748n)).toBe("0/016B3748")
    expect(Cdc.formatLsn((0xabn << 32n) | 0xffffffffn)).toBe("AB/FFFFFFFF")
    expect(Cdc.parseLsn("0/16B3748")).toBe(0x16b3748n)
    expect(Cdc.parseLsn("00000000/016B3748")).toBe(0x16b3748n)
    expect(Cdc.parseLsn(Cdc.formatLsn(123456789012345n))).toBe(123456789012345n)
  })

  it("the rule schema names the bad field", () => {
    const decode = Schema.decodeUnknownEither(Cdc.Rule)
    expect(decode({ name: "ok_1", tables: ["a", "s.b"], target: "t" })._tag).toBe("Right")
    expect(decode({ name: "1bad", tables: ["a"], target: "t" })._tag).toBe("Left")
    expect(decode({ name: "ok", tables: ["a;drop"], target: "t" })._tag).toBe("Left")
    expect(decode({ name: "ok", tables: ["a"], target: "t", slot: "Upper" })._tag).toBe("Left")
    expect(decode({ name: "ok", tables: ["a"], target: "t", maxRetainedWalBytes: 0 })._tag).toBe("Left")
    expect(decode({ name: "ok", tables: ["a"], target: "t", unsupportedTypes: "text" })._tag).toBe("Right")
    expect(decode({ name: "ok", tables: ["a"], target: "t", unsupportedTypes: "skip" })._tag).toBe("Left")
  })
})
