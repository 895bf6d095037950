/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import Pg from "pg"

// A dedicated connection: a pg.Client of our own, outside every pool, for
// what a pooled connection cannot do: a probe of a saturated pool, a LISTEN
// session, a replication stream, a CancelRequest. Every one is built here,
// from a node's settings or a URL, and (but for the CancelRequest, which the
// server answers by closing) held as a scoped resource.

/** The name a connection gives the server when its pool names none. */
const defaultApplicationName = "effect-sql-router"

type PoolSettings = Pg.PoolConfig & { readonly application_name?: string | undefined }

/** @internal */
export interface NodeSettings {
  /** The name the server shows for this connection, in place of the pool's. */
  readonly applicationName?: string | undefined
  /** Appended to the pool's name (`:probe`): which job of the node's holds the connection. */
  readonly suffix?: string | undefined
  readonly connectTimeout?: Duration.Duration | undefined
}

/**
 * A node's connection settings (its pool's), copied: the pool keeps its own.
 * @internal
 */
export const fromPool = (pool: Pg.Pool, options: NodeSettings = {}): Pg.ClientConfig => {
  const base = pool.options as PoolSettings
  const applicationName = options.applicationName ??
    (options.suffix === undefined
      ? base.application_name
      : `${base.application_name ?? defaultApplicationName}${options.suffix}`)
  const settings: Pg.ClientConfig & { application_name?: string | undefined } = {
    ...base,
    application_name: applicationName,
    ...(options.connectTimeout === undefined ? {} : { connectionTimeoutMillis: Duration.toMillis(options.connectTimeout) })
  }
  // pg-pool hides a password given apart from the URL (not enumerable), so
  // the spread above misses it: carry it over, hidden the same way.
  if ("password" in base) {
    Object.defineProperty(settings, "password", { value: base.password, enumerable: false, writable: true, configurable: true })
  }
  return settings
}

/**
 * The settings of a server named by URL. The URL is unwrapped here, at the
 * driver's door, and nowhere else.
 * @internal
 */
export const fromUrl = (
  url: Redacted.Redacted<string>,
  options: { readonly applicationName: string; readonly connectTimeout: Duration.Duration }
): Pg.ClientConfig => ({
  connectionString: Redacted.value(url),
  application_name: options.applicationName,
  connectionTimeoutMillis: Duration.toMillis(options.connectTimeout)
})

/**
 * What a dedicated connection reports while it is held. Detached before the
 * connection is closed, so that our own close is never reported as a loss.
 * @internal
 */
export interface Listeners {
  readonly error?: ((error: Error) => void) | undefined
  readonly end?: (() => void) | undefined
  readonly notification?: ((message: Pg.Notification) => void) | undefined
}

/** @internal */
export interface Options {
  readonly on?: Listeners | undefined
  /**
   * Close by dropping the socket, not with a Terminate the server would have
   * to read: for a server that may be frozen (a probe).
   */
  readonly abrupt?: boolean | undefined
  /**
   * Called once at the server's first bytes (its answer to the startup or
   * SSL request): its backend is alive, however slow the rest of the login.
   */
  readonly answered?: (() => void) | undefined
}

const ignore = () => {}

/**
 * Drops a connection's socket. `end()` waits for the server; a frozen one
 * never answers.
 * @internal
 */
export const destroy = (client: Pg.Client): void => {
  ;(client as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.()
}

const attach = (client: Pg.Client, on: Listeners) => {
  if (on.error) client.on("error", on.error)
  if (on.end) client.on("end", on.end)
  if (on.notification) client.on("notification", on.notification)
}

const detach = (client: Pg.Client, on: Listeners) => {
  if (on.error) client.off("error", on.error)
  if (on.end) client.off("end", on.end)
  if (on.notification) client.off("notification", on.notification)
}

const open = (settings: Pg.ClientConfig, on: Listeners | undefined, answered?: () => void): Pg.Client => {
  const client = new Pg.Client(settings)
  // Always one listener: a connection that dies, before, while or after we
  // care, is never an uncaught 'error'.
  client.on("error", ignore)
  if (on) attach(client, on)
  if (answered) (client as unknown as { connection?: { stream?: NodeJS.EventEmitter } }).connection?.stream?.once("data", answered)
  return client
}

/** Ends the connection, time-boxed; a Terminate not answered in time becomes a dropped socket. */
const close = (client: Pg.Client, options: Options): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (options.on) detach(client, options.on)
    if (options.abrupt) destroy(client)
    return Effect.promise(() => client.end().catch(ignore)).pipe(
      Effect.interruptible,
      Effect.timeoutOption("2 seconds"),
      Effect.flatMap((ended) => Option.isNone(ended) ? Effect.sync(() => destroy(client)) : Effect.void)
    )
  })

/**
 * A connection of its own with these settings, connected, and closed with
 * the scope. Connecting is interruptible (closing the scope drops a
 * connection attempt). Fails with the driver's error, which never quotes the
 * settings' password; callers name the operation in their own error.
 * @internal
 */
export const connect = (settings: Pg.ClientConfig, options: Options = {}): Effect.Effect<Pg.Client, unknown, Scope.Scope> =>
  Effect.flatMap(
    Effect.acquireRelease(
      // The constructor parses the connection string, and may refuse it.
      Effect.try({ try: () => open(settings, options.on, options.answered), catch: identity }),
      (client) => close(client, options)
    ),
    (client) => Effect.as(Effect.tryPromise({ try: () => client.connect(), catch: identity }), client)
  )

interface CancelTarget {
  readonly processID: number
  readonly secretKey: number
}

/**
 * Asks the server to cancel the statement running on the pooled connection
 * `target`, with the protocol's CancelRequest on a connection of its own (so
 * it works when the pool is exhausted); the server answers by closing it.
 * Fire and forget: nobody waits for it, so it holds no scope.
 * @internal
 */
export const cancel = (pool: Pg.Pool, target: CancelTarget): void => {
  // A Client only to read the node's settings into host and port; its
  // connection sends the CancelRequest.
  const canceller = new Pg.Client(fromPool(pool)) as unknown as {
    host: string
    port: number
    connection: {
      on: (event: string, f: () => void) => void
      connect: (portOrPath: number | string, host?: string) => void
      cancel: (processID: number, secretKey: number) => void
    }
  }
  const connection = canceller.connection
  connection.on("error", ignore)
  connection.on("connect", () => connection.cancel(target.processID, target.secretKey))
  if (canceller.host && canceller.host.startsWith("/")) connection.connect(`${canceller.host}/.s.PGSQL.${canceller.port}`)
  else connection.connect(canceller.port, canceller.host)
}
