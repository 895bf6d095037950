import { describe, expect, it } from "vitest"
import * as Inputs from "../../src/eventLog/Inputs.js"

describe("argument rules", () => {
  it("type names: 1 to 256 characters PostgreSQL can hold", () => {
    expect(Inputs.isTypeName("OrderPlaced")).toBe(true)
    expect(Inputs.isTypeName("x".repeat(Inputs.maxTypeNameLength))).toBe(true)
    expect(Inputs.isTypeName("x".repeat(Inputs.maxTypeNameLength + 1))).toBe(false)
    expect(Inputs.isTypeName("")).toBe(false)
    expect(Inputs.isTypeName("a\u0000")).toBe(false)
    expect(Inputs.isTypeName("a\uDC00")).toBe(false)
    expect(Inputs.isTypeName(1)).toBe(false)
    expect(Inputs.typeNameRule).toBe("must be 1 to 256 characters, without U+0000 or lone surrogates")
  })

  it("revisions: at most 256 characters, empty allowed", () => {
    expect(Inputs.isRevisionVcs("")).toBe(true)
    expect(Inputs.isRevisionVcs("r".repeat(Inputs.maxRevisionVcsLength))).toBe(true)
    expect(Inputs.isRevisionVcs("r".repeat(Inputs.maxRevisionVcsLength + 1))).toBe(false)
    expect(Inputs.isRevisionVcs("\uD800")).toBe(false)
    expect(Inputs.isRevisionVcs(undefined)).toBe(false)
  })

  it("versions: integers from 0 to 2^53 - 1", () => {
    expect(Inputs.isVersion(0)).toBe(true)
    expect(Inputs.isVersion(Number.MAX_SAFE_INTEGER)).toBe(true)
    expect(Inputs.isVersion(Number.MAX_SAFE_INTEGER + 1)).toBe(false)
    expect(Inputs.isVersion(-1)).toBe(false)
    expect(Inputs.isVersion(1.5)).toBe(false)
    expect(Inputs.isVersion(NaN)).toBe(false)
    expect(Inputs.isVersion("1")).toBe(false)
    expect(Inputs.versionRule).toBe("must be an integer from 0 to 2^53 - 1")
  })

  it("counts start at their minimum", () => {
    expect(Inputs.isCount(0, 1)).toBe(false)
    expect(Inputs.isCount(1, 1)).toBe(true)
    expect(Inputs.countRule(1)).toBe("must be an integer from 1 to 2^53 - 1")
  })

  it("projection ids: int32", () => {
    expect(Inputs.isProjectionId(-2147483648)).toBe(true)
    expect(Inputs.isProjectionId(2147483647)).toBe(true)
    expect(Inputs.isProjectionId(2147483648)).toBe(false)
    expect(Inputs.isProjectionId(-2147483649)).toBe(false)
    expect(Inputs.isProjectionId(0.5)).toBe(false)
  })
})
