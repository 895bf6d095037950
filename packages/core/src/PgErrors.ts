/**
 * What a failed statement tells about its server: a lost connection, a
 * read-only standby, its SQLSTATE; and a description of a failure with every
 * password taken out. Shared by each line's routed client (safety net),
 * health monitor (passive detection) and transactions.
 *
 * @since 0.1.0
 */

const connectionCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, shutting down, recovery)
  "53300" // too_many_connections
])

const connectionMessages = [
  "Connection terminated",
  "timeout exceeded when trying to connect",
  "Connection ended unexpectedly",
  "is not queryable",
  "Client was closed",
  "Query read timeout",
  "router read timeout",
  // The router cut a node's connections (it stopped being the primary, or left rotation).
  "were severed"
]

/**
 * The next link of a failure's chain: its `cause`, or, for an Effect 4
 * `SqlError` (whose driver error sits under a `reason`), its reason.
 */
const next = (error: unknown): unknown => {
  if (error === null || typeof error !== "object") return undefined
  const cause = (error as { cause?: unknown }).cause
  if (cause !== undefined && cause !== null) return cause
  const reason = (error as { reason?: unknown }).reason
  return reason !== null && typeof reason === "object" ? reason : undefined
}

/**
 * Follows `cause` links (and an Effect 4 `SqlError`'s `reason`): SqlError
 * wraps the driver's error.
 *
 * @since 0.1.0
 * @category classification
 */
export const rootCause = (error: unknown): unknown => {
  let current = error
  for (let i = 0; i < 6; i++) {
    const link = next(current)
    if (link === undefined || link === current) return current
    current = link
  }
  return current
}

/**
 * The SQLSTATE (or Node error code) of the deepest cause.
 *
 * @since 0.1.0
 * @category classification
 */
export const errorCode = (error: unknown): string | undefined => {
  let current: unknown = error
  for (let i = 0; i < 7 && current !== undefined && current !== null; i++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string") return code
    current = next(current)
  }
  return undefined
}

/**
 * True when the failure says the server or the link is gone (not that the
 * statement was wrong): SQLSTATE class 08, shutdowns, refused or reset sockets,
 * timeouts opening a connection.
 *
 * @since 0.1.0
 * @category classification
 */
export const isConnectionError = (error: unknown): boolean => {
  let current: unknown = error
  for (let i = 0; i < 7 && current !== undefined && current !== null; i++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string" && (code.startsWith("08") || connectionCodes.has(code))) return true
    const message = (current as { message?: unknown }).message
    if (typeof message === "string" && connectionMessages.some((m) => message.includes(m))) return true
    current = next(current)
  }
  return false
}

const connectTimeoutMessages = [
  // pg-pool: a checkout that waited its connection timeout; a new client that did not connect in time.
  "timeout exceeded when trying to connect",
  "Connection terminated due to connection timeout",
  // The Effect 4 native driver's connect timeout.
  "PgConnection: Connection timed out"
]

/**
 * True when a connection-class failure is only a connection that was not
 * ready in time (a pool's checkout or a new connection outlasting the
 * connect timeout): on a crowded host a live server looks like this, so it
 * is reason to probe the node, not proof that it is gone (a refused or reset
 * connection, a shutdown, a read timeout are).
 *
 * @since 0.1.0
 * @category classification
 */
export const isConnectTimeout = (error: unknown): boolean => {
  let current: unknown = error
  for (let i = 0; i < 7 && current !== undefined && current !== null; i++) {
    const message = (current as { message?: unknown }).message
    if (typeof message === "string" && connectTimeoutMessages.some((m) => message.includes(m))) return true
    current = next(current)
  }
  return false
}

/**
 * SQLSTATE 25006: a write met a read-only transaction (a standby).
 *
 * @since 0.1.0
 * @category classification
 */
export const isReadOnlyViolation = (error: unknown): boolean => errorCode(error) === "25006"

/**
 * A short, password-free description of a failure, for logs and status.
 *
 * @since 0.1.0
 * @category classification
 */
export const describe = (error: unknown): string => {
  const root = rootCause(error) as { message?: unknown; code?: unknown }
  const message = typeof root?.message === "string" ? root.message : String(root)
  const code = typeof root?.code === "string" ? ` (${root.code})` : ""
  return redactUrls(message + code)
}

/**
 * Removes `user:password@` and `password=…` from any connection string inside a text.
 *
 * @since 0.1.0
 * @category classification
 */
export const redactUrls = (text: string): string =>
  text
    .replace(/(postgres(?:ql)?:\/\/)[^/\s]*@/gi, "$1***@")
    .replace(/([?&](?:ssl)?password=)[^&\s]*/gi, "$1***")
