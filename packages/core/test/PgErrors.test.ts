import { describe, expect, it } from "vitest"
import * as PgErrors from "../src/PgErrors.js"

// The shapes the two lines' SQL errors come in: Effect 3's SqlError has the
// driver's error as its `cause`; Effect 4's has it under `reason.cause`.
const driverError = (code: string, message: string) => Object.assign(new Error(message), { code })
const effect3 = (error: Error) => ({ _tag: "SqlError", message: "Failed to execute statement", cause: error })
const effect4 = (error: Error, reason = "UnknownError") => ({
  _tag: "SqlError",
  reason: { _tag: reason, message: "PgConnection: Query failed", cause: error }
})

describe("PgErrors", () => {
  it("finds the SQLSTATE through either line's SqlError", () => {
    const e = driverError("25006", "cannot execute INSERT in a read-only transaction")
    expect(PgErrors.errorCode(effect3(e))).toBe("25006")
    expect(PgErrors.errorCode(effect4(e))).toBe("25006")
    expect(PgErrors.isReadOnlyViolation(effect4(e))).toBe(true)
    expect(PgErrors.rootCause(effect4(e))).toBe(e)
  })

  it("classifies a connection failure through either shape, and a statement error as none", () => {
    expect(PgErrors.isConnectionError(effect4(driverError("57P01", "terminating connection due to administrator command")))).toBe(true)
    expect(PgErrors.isConnectionError(effect3(driverError("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432")))).toBe(true)
    // The router cut the node's connections (a switch of primary) before the statement was sent.
    expect(PgErrors.isConnectionError(effect3(new Error("the node's connections were severed (it stopped being the primary) before this statement was sent")))).toBe(true)
    expect(PgErrors.isConnectionError(effect4(driverError("42P01", "relation \"x\" does not exist"), "SqlSyntaxError")))
      .toBe(false)
  })

  it("describes the driver's error, never a password in a URL", () => {
    const e = driverError("08006", "connection to postgres://app:s3cret@db:5432/app lost")
    const text = PgErrors.describe(effect4(e))
    expect(text).toContain("connection to postgres://***@db:5432/app lost (08006)")
    expect(text).not.toContain("s3cret")
  })

  it("stops at a cycle and at a chain without links", () => {
    const cyclic: { cause?: unknown } = {}
    cyclic.cause = cyclic
    expect(PgErrors.rootCause(cyclic)).toBe(cyclic)
    expect(PgErrors.errorCode("plain text")).toBeUndefined()
    expect(PgErrors.rootCause(undefined)).toBeUndefined()
  })

  it("isConnectTimeout: a connection not ready in time (pg-pool's, the native driver's) is one; a refused or reset one is not", () => {
    expect(PgErrors.isConnectTimeout(new Error("timeout exceeded when trying to connect"))).toBe(true)
    expect(PgErrors.isConnectTimeout(new Error("x", { cause: new Error("Connection terminated due to connection timeout") })))
      .toBe(true)
    expect(PgErrors.isConnectTimeout({ message: "wrapped", reason: { message: "PgConnection: Connection timed out" } })).toBe(true)
    expect(PgErrors.isConnectTimeout(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }))).toBe(false)
    expect(PgErrors.isConnectTimeout(new Error("Connection terminated unexpectedly"))).toBe(false)
    expect(PgErrors.isConnectTimeout(new Error("router read timeout"))).toBe(false)
    // Still a connection-class failure: the statement may run again elsewhere.
    expect(PgErrors.isConnectionError(new Error("timeout exceeded when trying to connect"))).toBe(true)
  })
})
