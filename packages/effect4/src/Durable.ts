/**
 * Subscriptions that survive lost connections, after Jane Street's
 * `Async_durable`. A durable subscription is a `Stream` of updates that say
 * what happened: `ConnectionSuccess` when an attempt is established,
 * `ConnectionLost` (with the cause) when it failed or ended, `State` (a
 * snapshot) and `Update` (an item). After a loss it waits `resubscribeDelay`
 * (on the `Clock`, so `TestClock` drives it) and subscribes again, for ever.
 * Stopping the consumer (interrupting the fiber that runs the stream, or
 * `Stream.take`/`Stream.takeUntil` on it) closes the subscription for good
 * and releases its connection.
 *
 * Items sent while no attempt is established are not delivered: PostgreSQL
 * keeps no NOTIFY for a session that is not listening. A consumer that must
 * not miss anything uses `subscribe`, which reads a snapshot after every
 * (re)subscription and so catches up on what happened while disconnected.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import * as internal from "./internal/durable.js"
import type * as SqlRouter from "./SqlRouter.js"

// -----------------------------------------------------------------------------
// Updates
// -----------------------------------------------------------------------------

/**
 * An attempt is established: the source is subscribed from now on. From
 * `subscribe`, always immediately followed by `State`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionSuccess {
  readonly _tag: "ConnectionSuccess"
}

/**
 * An attempt failed or ended; its resources are released already. `cause` is
 * the failure (an empty cause when the source ended without one). The next
 * attempt comes `resubscribeDelay` later.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectionLost<E> {
  readonly _tag: "ConnectionLost"
  readonly cause: Cause.Cause<E>
}

/**
 * The snapshot read right after an attempt was established.
 *
 * @since 0.1.0
 * @category models
 */
export interface State<S> {
  readonly _tag: "State"
  readonly state: S
}

/**
 * The `Update` variant: one item from the source.
 *
 * @since 0.1.0
 * @category models
 */
export interface Item<A> {
  readonly _tag: "Update"
  readonly update: A
}

/**
 * What a durable subscription emits: `S` is the snapshot, `A` an item, `E`
 * the failure of an attempt.
 *
 * @since 0.1.0
 * @category models
 */
export type Update<S, A, E> = ConnectionSuccess | ConnectionLost<E> | State<S> | Item<A>

/**
 * The `ConnectionSuccess` update.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connectionSuccess: ConnectionSuccess = internal.connectionSuccess

/**
 * A `ConnectionLost` update with the cause of the loss.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connectionLost: <E>(cause: Cause.Cause<E>) => ConnectionLost<E> = internal.connectionLost

/**
 * A `State` update with a snapshot.
 *
 * @since 0.1.0
 * @category constructors
 */
export const state: <S>(state: S) => State<S> = internal.state

/**
 * An `Update` with one item.
 *
 * @since 0.1.0
 * @category constructors
 */
export const update: <A>(update: A) => Item<A> = internal.update

/**
 * Whether the update is `ConnectionSuccess`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isConnectionSuccess: <S, A, E>(self: Update<S, A, E>) => self is ConnectionSuccess =
  internal.isConnectionSuccess

/**
 * Whether the update is `ConnectionLost`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isConnectionLost: <S, A, E>(self: Update<S, A, E>) => self is ConnectionLost<E> =
  internal.isConnectionLost

/**
 * Whether the update is `State`.
 *
 * @since 0.1.0
 * @category guards
 */
export const isState: <S, A, E>(self: Update<S, A, E>) => self is State<S> = internal.isState

/**
 * Whether the update is an item (`Update`).
 *
 * @since 0.1.0
 * @category guards
 */
export const isUpdate: <S, A, E>(self: Update<S, A, E>) => self is Item<A> = internal.isUpdate

/**
 * One handler per variant, for `match`.
 *
 * @since 0.1.0
 * @category models
 */
export interface MatchCases<S, A, E, B, C, D, F> {
  readonly onConnectionSuccess: () => B
  readonly onConnectionLost: (cause: Cause.Cause<E>) => C
  readonly onState: (state: S) => D
  readonly onUpdate: (update: A) => F
}

/**
 * Folds an update by its variant.
 *
 * @since 0.1.0
 * @category pattern matching
 */
export const match: {
  /**
   * @since 0.1.0
   * @category pattern matching
   */
  <S, A, E, B, C, D, F>(cases: MatchCases<S, A, E, B, C, D, F>): (self: Update<S, A, E>) => B | C | D | F
  /**
   * @since 0.1.0
   * @category pattern matching
   */
  <S, A, E, B, C, D, F>(self: Update<S, A, E>, cases: MatchCases<S, A, E, B, C, D, F>): B | C | D | F
} = internal.match

// -----------------------------------------------------------------------------
// Durable subscriptions
// -----------------------------------------------------------------------------

/**
 * Options of `make`: how to subscribe once, and how long to wait before
 * subscribing again.
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions<A, E, R, EC, RC> {
  /**
   * One subscription attempt: acquires its resources in the `Scope` (they are
   * released when the attempt ends) and gives the stream of items. The source
   * must be subscribed when `connect` succeeds and buffer what arrives until
   * the stream is pulled (a `Queue` behind the stream does).
   * The stream failing or ending means the attempt is lost.
   */
  readonly connect: Effect.Effect<Stream.Stream<A, E, R>, EC, RC>
  /** How long to wait after a loss (or a failed attempt) before the next attempt. */
  readonly resubscribeDelay: Duration.Input
}

/**
 * Options of `subscribe`: the subscription, the snapshot read after it, and the
 * delay between attempts.
 *
 * @since 0.1.0
 * @category models
 */
export interface SubscribeOptions<S, A, E, R, EC, RC, ES, RS> {
  /** The snapshot, read after every successful `updates` attempt. */
  readonly state: Effect.Effect<S, ES, RS>
  /** One subscription attempt, as `MakeOptions.connect`. */
  readonly updates: Effect.Effect<Stream.Stream<A, E, R>, EC, RC>
  /** How long to wait after a loss (or a failed attempt) before the next attempt. */
  readonly resubscribeDelay: Duration.Input
}

/**
 * A durable subscription over any source. Each attempt emits
 * `ConnectionSuccess` then its items as `Update`; when the attempt fails or
 * its stream fails or ends, its scope is closed, `ConnectionLost` is emitted,
 * and the next attempt starts `resubscribeDelay` later. A failed attempt also
 * emits `ConnectionLost` (without a `ConnectionSuccess` before it). The stream
 * itself never fails and never ends: the consumer decides when to stop.
 *
 * @example
 * ```ts
 * import { Effect, Queue, Stream } from "effect"
 * import * as Durable from "@effect-sql-router/effect4/Durable"
 *
 * // One attempt: subscribe to the source in the attempt's Scope (here a
 * // queue; in practice a socket or a LISTEN connection) and give its items.
 * const connect = Effect.acquireRelease(
 *   Queue.unbounded<string>(),
 *   (queue) => Queue.shutdown(queue)
 * ).pipe(Effect.map((queue) => Stream.fromQueue(queue)))
 *
 * const program = Durable.make({ connect, resubscribeDelay: "1 second" }).pipe(
 *   Stream.runForEach((u) => Effect.log(u._tag))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <A, E, R, EC, RC>(
  options: MakeOptions<A, E, R, EC, RC>
) => Stream.Stream<Update<never, A, E | EC>, never, R | Exclude<RC, Scope.Scope>> = internal.make

/**
 * Like `make`, but the first attempt runs now and its failure is this
 * effect's failure (typed as `connect`'s error; a defect stays a defect)
 * instead of a retry. On success the first attempt's resources stay open in
 * the current `Scope` until the returned stream has used them; the stream is
 * meant to be run once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeOrFail: <A, E, R, EC, RC>(
  options: MakeOptions<A, E, R, EC, RC>
) => Effect.Effect<
  Stream.Stream<Update<never, A, E | EC>, never, R | Exclude<RC, Scope.Scope>>,
  EC,
  Exclude<RC, Scope.Scope> | Scope.Scope
> = internal.makeOrFail

/**
 * A durable subscription in the state-RPC shape: every `ConnectionSuccess`
 * is immediately followed by `State`, then the items as `Update`. The snapshot
 * is read after the subscription is established, and items arriving while it
 * runs are buffered and follow `State`, so a projection that applies `State`
 * (replace) then `Update`s (apply) misses nothing, also across reconnections:
 * what was sent while disconnected is in the next snapshot. A snapshot that
 * fails fails the attempt (`ConnectionLost`, then a retry).
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import * as SqlClient from "effect/sql/SqlClient"
 * import * as Durable from "@effect-sql-router/effect4/Durable"
 * import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
 *
 * const orders = Durable.subscribe({
 *   // LISTEN first, then the snapshot: nothing between them is missed.
 *   updates: Durable.notifications("orders"),
 *   state: SqlRouter.withPrimary(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT * FROM orders`)),
 *   resubscribeDelay: "1 second"
 * })
 *
 * const follow = orders.pipe(
 *   Stream.runForEach(Durable.match({
 *     onConnectionSuccess: () => Effect.log("connected"),
 *     onConnectionLost: (cause) => Effect.logWarning("lost", cause),
 *     onState: (rows) => Effect.log(`snapshot: ${rows.length} orders`),
 *     onUpdate: (payload) => Effect.log(`changed: ${payload}`)
 *   }))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const subscribe: <S, A, E, R, EC, RC, ES, RS>(
  options: SubscribeOptions<S, A, E, R, EC, RC, ES, RS>
) => Stream.Stream<Update<S, A, E | EC | ES>, never, R | Exclude<RC | RS, Scope.Scope>> = internal.subscribe

/**
 * Like `subscribe`, but the first attempt (subscription and snapshot) runs
 * now and its failure is this effect's failure instead of a retry. On success
 * the first attempt's resources stay open in the current `Scope` until the
 * returned stream has used them; the stream is meant to be run once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const subscribeOrFail: <S, A, E, R, EC, RC, ES, RS>(
  options: SubscribeOptions<S, A, E, R, EC, RC, ES, RS>
) => Effect.Effect<
  Stream.Stream<Update<S, A, E | EC | ES>, never, R | Exclude<RC | RS, Scope.Scope>>,
  EC | ES,
  Exclude<RC | RS, Scope.Scope> | Scope.Scope
> = internal.subscribeOrFail

// -----------------------------------------------------------------------------
// LISTEN
// -----------------------------------------------------------------------------

/**
 * A LISTEN that could not be set up, or whose connection was lost (`reason`
 * says which; it never carries a password). `node` is the router node that
 * was the primary at that attempt.
 *
 * @since 0.1.0
 * @category errors
 */
export const ListenFailed: typeof internal.ListenFailed = internal.ListenFailed

/**
 * The type of `ListenFailed` errors.
 *
 * @since 0.1.0
 * @category errors
 */
export type ListenFailed = internal.ListenFailed

/**
 * Options of `notifications`.
 *
 * @since 0.1.0
 * @category models
 */
export interface NotificationsOptions {
  /** `application_name` of the LISTEN connection; default: the router's, suffixed `-listen`. */
  readonly applicationName?: string | undefined
}

/**
 * Options of `listen`: those of `notifications` and the delay between attempts.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions extends NotificationsOptions {
  /** How long to wait after a loss (or a failed attempt) before listening again. */
  readonly resubscribeDelay: Duration.Input
}

/**
 * One LISTEN attempt, for `make` and `subscribe`: a dedicated
 * `PgConnection` to the router's current primary (not a pooled one, and
 * connected as the primary's pool connects), held until the Scope closes,
 * with `LISTEN "channel"` active when this succeeds. The stream gives the
 * payloads sent to `channel` and fails with `ListenFailed` when the
 * connection errors or ends. Closing the Scope ends the connection (waiting
 * at most two seconds, also when the server is gone).
 *
 * A server that stops answering without closing the socket (frozen host,
 * broken network) is only noticed when TCP gives up.
 *
 * @since 0.1.0
 * @category constructors
 */
export const notifications: (
  channel: string,
  options?: NotificationsOptions
) => Effect.Effect<Stream.Stream<string, ListenFailed>, ListenFailed, SqlRouter.SqlRouter | Scope.Scope> =
  internal.notifications

/**
 * A durable LISTEN on the primary: each (re)subscription emits
 * `ConnectionSuccess` once `LISTEN` is active, then every payload sent to
 * `channel` as `Update`. Each attempt connects to the router's primary of that
 * moment. Notifications sent while the connection is down are lost; use
 * `subscribe` with `notifications` when they must be accounted for.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import * as Durable from "@effect-sql-router/effect4/Durable"
 *
 * const invalidations = Durable.listen("cache_invalidation", { resubscribeDelay: "500 millis" }).pipe(
 *   Stream.filter(Durable.isUpdate),
 *   Stream.runForEach(({ update }) => Effect.log(`invalidate ${update}`))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const listen: (
  channel: string,
  options: ListenOptions
) => Stream.Stream<Update<never, string, ListenFailed>, never, SqlRouter.SqlRouter> = internal.listen

/**
 * Like `listen`, but the first LISTEN is set up now and fails with
 * `ListenFailed` instead of being retried; it stays open in the current
 * `Scope` until the returned stream has used it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const listenOrFail: (
  channel: string,
  options: ListenOptions
) => Effect.Effect<
  Stream.Stream<Update<never, string, ListenFailed>, never, SqlRouter.SqlRouter>,
  ListenFailed,
  SqlRouter.SqlRouter | Scope.Scope
> = internal.listenOrFail
