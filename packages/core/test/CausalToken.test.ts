import { describe, expect, it } from "vitest"
import * as CausalToken from "../src/CausalToken.js"

const secret = "a secret of at least thirty-two characters"
const system = "7312345678901234567"

describe("CausalToken", () => {
  it("round-trips a position, and no position", () => {
    const token = CausalToken.encode(secret, system, 0x16b374d848n)
    expect(token).toMatch(/^v1\.16b374d848\.[0-9a-z]+\.[A-Za-z0-9_-]{22}$/)
    expect(CausalToken.decode(secret, system, token)).toEqual({ _tag: "Valid", lsn: 0x16b374d848n })
    expect(CausalToken.decode(secret, system, CausalToken.encode(secret, system, undefined)))
      .toEqual({ _tag: "Valid", lsn: undefined })
  })

  it("rejects another secret, another cluster, a changed position and every other spelling", () => {
    const token = CausalToken.encode(secret, system, 100n)
    const reason = (t: string, s = secret, c = system) => {
      const decoded = CausalToken.decode(s, c, t)
      return decoded._tag === "Invalid" ? decoded.reason : "valid"
    }
    expect(reason(token, "another secret of at least thirty-two chars")).toContain("bad signature")
    expect(reason(token, secret, "7312345678901234568")).toBe("issued for another cluster")
    const [v, , c, sig] = token.split(".")
    expect(reason(`${v}.65.${c}.${sig}`)).toContain("bad signature")
    expect(reason(`${token}=`)).toBe("malformed signature")
    expect(reason(`v2.64.${c}.${sig}`)).toBe("not a v1 token")
    expect(reason(`v1.XYZ.${c}.${sig}`)).toBe("malformed")
    expect(reason("x".repeat(201))).toBe("too long")
  })
})
