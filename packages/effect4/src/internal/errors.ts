/** @internal */
import * as Core from "@effect-sql-router/core/PgErrors"
import * as SqlError from "effect/sql/SqlError"

// The failure classes live in the effect-free core; the native driver adds a
// classification of its own (`SqlError.reason`), read first.
export { describe, errorCode, isConnectTimeout, isReadOnlyViolation, redactUrls, rootCause } from "@effect-sql-router/core/PgErrors"

/** The `SqlError` reason of a failure, looked for along its `cause` links. @internal */
export const reasonOf = (error: unknown): SqlError.SqlErrorReason | undefined => {
  let current = error
  for (let i = 0; i < 6 && current !== undefined && current !== null; i++) {
    if (SqlError.isSqlError(current)) return current.reason
    if (SqlError.isSqlErrorReason(current)) return current
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/**
 * The server or the link is gone, not the statement wrong: the driver's
 * `ConnectionError` reason, or what the core recognises (SQLSTATE class 08,
 * shutdowns 57P01-57P03, too many connections, refused or reset sockets,
 * the router's own read timeout), which the driver files under other reasons.
 * @internal
 */
export const isConnectionError = (error: unknown): boolean =>
  reasonOf(error)?._tag === "ConnectionError" || Core.isConnectionError(error)
