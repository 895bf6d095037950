/** @internal */
import * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Durable from "../Durable.js"
import type * as SqlRouter from "../SqlRouter.js"
import { describe } from "./errors.js"
import { tag as SqlRouterTag } from "./sqlRouter.js"

// -----------------------------------------------------------------------------
// Updates
// -----------------------------------------------------------------------------

/** @internal */
export const connectionSuccess: Durable.ConnectionSuccess = { _tag: "ConnectionSuccess" }

/** @internal */
export const connectionLost = <E>(cause: Cause.Cause<E>): Durable.ConnectionLost<E> => ({ _tag: "ConnectionLost", cause })

/** @internal */
export const state = <S>(state: S): Durable.State<S> => ({ _tag: "State", state })

/** @internal */
export const update = <A>(update: A): Durable.Item<A> => ({ _tag: "Update", update })

/** @internal */
export const isConnectionSuccess = <S, A, E>(self: Durable.Update<S, A, E>): self is Durable.ConnectionSuccess =>
  self._tag === "ConnectionSuccess"

/** @internal */
export const isConnectionLost = <S, A, E>(self: Durable.Update<S, A, E>): self is Durable.ConnectionLost<E> =>
  self._tag === "ConnectionLost"

/** @internal */
export const isState = <S, A, E>(self: Durable.Update<S, A, E>): self is Durable.State<S> => self._tag === "State"

/** @internal */
export const isUpdate = <S, A, E>(self: Durable.Update<S, A, E>): self is Durable.Item<A> => self._tag === "Update"

/** @internal */
export const match: {
  <S, A, E, B, C, D, F>(
    cases: Durable.MatchCases<S, A, E, B, C, D, F>
  ): (self: Durable.Update<S, A, E>) => B | C | D | F
  <S, A, E, B, C, D, F>(
    self: Durable.Update<S, A, E>,
    cases: Durable.MatchCases<S, A, E, B, C, D, F>
  ): B | C | D | F
} = dual(2, <S, A, E, B, C, D, F>(
  self: Durable.Update<S, A, E>,
  cases: Durable.MatchCases<S, A, E, B, C, D, F>
): B | C | D | F => {
  switch (self._tag) {
    case "ConnectionSuccess":
      return cases.onConnectionSuccess()
    case "ConnectionLost":
      return cases.onConnectionLost(self.cause)
    case "State":
      return cases.onState(self.state)
    case "Update":
      return cases.onUpdate(self.update)
  }
})

// -----------------------------------------------------------------------------
// The durable loop
// -----------------------------------------------------------------------------

/**
 * One subscription attempt: acquires in the Scope, then gives the updates of
 * that attempt, `ConnectionSuccess` (and `State`) first.
 */
type Session<S, A, E, R, EC, RC> = Effect.Effect<Stream.Stream<Durable.Update<S, A, E>, E, R>, EC, RC>

const pause = (delay: Duration.Input): Stream.Stream<never> => Stream.drain(Stream.fromEffect(Effect.sleep(delay)))

/**
 * Ends an attempt's updates with `ConnectionLost`: the cause of the failure,
 * or an empty cause when the source just ended. Whoever calls this closes the
 * attempt's scope before the end, so `ConnectionLost` means "released".
 */
const settle = <S, A, E, R>(
  updates: Stream.Stream<Durable.Update<S, A, E>, E, R>
): Stream.Stream<Durable.Update<S, A, E>, never, R> =>
  updates.pipe(
    Stream.concat(Stream.succeed(connectionLost<E>(Cause.empty))),
    Stream.catchCause((cause) => Stream.succeed(connectionLost(cause)))
  )

/** One attempt: its Scope lives as long as its stream, and is closed before `ConnectionLost`. */
const attempt = <S, A, E, R, EC, RC>(
  session: Session<S, A, E, R, EC, RC>
): Stream.Stream<Durable.Update<S, A, E | EC>, never, R | Exclude<RC, Scope.Scope>> =>
  settle(Stream.unwrap(session))

const loop = <S, A, E, R, EC, RC>(
  session: Session<S, A, E, R, EC, RC>,
  delay: Duration.Input
): Stream.Stream<Durable.Update<S, A, E | EC>, never, R | Exclude<RC, Scope.Scope>> =>
  Stream.forever(Stream.concat(attempt(session), pause(delay)))

/**
 * The first attempt runs now, in a child of the caller's Scope, so its
 * resources stay open until the stream has used them; later attempts are the
 * ordinary loop.
 */
const loopOrFail = <S, A, E, R, EC, RC>(
  session: Session<S, A, E, R, EC, RC>,
  delay: Duration.Input
): Effect.Effect<
  Stream.Stream<Durable.Update<S, A, E | EC>, never, R | Exclude<RC, Scope.Scope>>,
  EC,
  Exclude<RC, Scope.Scope> | Scope.Scope
> =>
  Effect.gen(function*() {
    const scope = yield* Scope.fork(yield* Effect.scope)
    const first = yield* session.pipe(
      Scope.provide(scope),
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
    )
    return settle(Stream.ensuring(first, Scope.close(scope, Exit.void))).pipe(
      Stream.concat(pause(delay)),
      Stream.concat(loop(session, delay))
    )
  })

const plain = <A, E, R, EC, RC>(
  connect: Effect.Effect<Stream.Stream<A, E, R>, EC, RC>
): Session<never, A, E, R, EC, RC> =>
  Effect.map(connect, (items) =>
    Stream.concat(Stream.succeed<Durable.Update<never, A, E>>(connectionSuccess), Stream.map(items, update)))

/**
 * The snapshot is read after `connect` succeeded, so the subscription is live
 * while it runs; items that arrive meanwhile wait in the source's buffer and
 * follow `State`. A failed snapshot fails the attempt before anything is
 * emitted, so `ConnectionSuccess` is always followed by `State`.
 */
const withSnapshot = <S, A, E, R, EC, RC, ES, RS>(
  connect: Effect.Effect<Stream.Stream<A, E, R>, EC, RC>,
  snapshot: Effect.Effect<S, ES, RS>
): Session<S, A, E, R, EC | ES, RC | RS> =>
  Effect.gen(function*() {
    const items = yield* connect
    const current = yield* snapshot
    return Stream.concat(
      Stream.make<[Durable.Update<S, A, E>, Durable.Update<S, A, E>]>(connectionSuccess, state(current)),
      Stream.map(items, update)
    )
  })

/** @internal */
export const make = <A, E, R, EC, RC>(
  options: Durable.MakeOptions<A, E, R, EC, RC>
): Stream.Stream<Durable.Update<never, A, E | EC>, never, R | Exclude<RC, Scope.Scope>> =>
  loop(plain(options.connect), options.resubscribeDelay)

/** @internal */
export const makeOrFail = <A, E, R, EC, RC>(
  options: Durable.MakeOptions<A, E, R, EC, RC>
): Effect.Effect<
  Stream.Stream<Durable.Update<never, A, E | EC>, never, R | Exclude<RC, Scope.Scope>>,
  EC,
  Exclude<RC, Scope.Scope> | Scope.Scope
> => loopOrFail(plain(options.connect), options.resubscribeDelay)

/** @internal */
export const subscribe = <S, A, E, R, EC, RC, ES, RS>(
  options: Durable.SubscribeOptions<S, A, E, R, EC, RC, ES, RS>
): Stream.Stream<Durable.Update<S, A, E | EC | ES>, never, R | Exclude<RC | RS, Scope.Scope>> =>
  loop(withSnapshot(options.updates, options.state), options.resubscribeDelay)

/** @internal */
export const subscribeOrFail = <S, A, E, R, EC, RC, ES, RS>(
  options: Durable.SubscribeOptions<S, A, E, R, EC, RC, ES, RS>
): Effect.Effect<
  Stream.Stream<Durable.Update<S, A, E | EC | ES>, never, R | Exclude<RC | RS, Scope.Scope>>,
  EC | ES,
  Exclude<RC | RS, Scope.Scope> | Scope.Scope
> => loopOrFail(withSnapshot(options.updates, options.state), options.resubscribeDelay)

// -----------------------------------------------------------------------------
// LISTEN
// -----------------------------------------------------------------------------

/** @internal */
export class ListenFailed extends Schema.TaggedError<ListenFailed>("effect-sql-router/ListenFailed")(
  "ListenFailed",
  {
    channel: Schema.String,
    node: Schema.String,
    reason: Schema.String,
    cause: Schema.optional(Schema.Defect())
  }
) {
  override get message(): string {
    return `LISTEN ${this.channel} on ${this.node} failed: ${this.reason}`
  }
}

/**
 * Closes the LISTEN session's scope (UNLISTEN, then Terminate), waiting at
 * most two seconds: a frozen server never answers, and the driver's own
 * bounds (UNLISTEN five seconds, Terminate one) finish the job in the
 * background.
 */
const closeBounded = (scope: Scope.Closeable): Effect.Effect<void> =>
  Effect.forkDetach(Scope.close(scope, Exit.void)).pipe(
    Effect.flatMap((closing) => Effect.timeoutOption(Fiber.await(closing), "2 seconds")),
    Effect.asVoid
  )

/** @internal */
export const notifications = (
  channel: string,
  options: Durable.NotificationsOptions = {}
): Effect.Effect<Stream.Stream<string, ListenFailed>, ListenFailed, SqlRouter.SqlRouter | Scope.Scope> =>
  Effect.gen(function*() {
    const router = yield* SqlRouterTag
    const node = yield* router.primary
    const failed = (reason: string, cause?: unknown) => new ListenFailed({ channel, node: node.id, reason, cause })
    const session = yield* Scope.make()
    yield* Effect.addFinalizer(() => closeBounded(session))
    // A dedicated session, not a pooled one: LISTEN belongs to a session and
    // must not be handed to other statements. It connects as the node's pool
    // does (same URL, credentials, socket and timeouts), under its own name.
    // Behind a transaction-mode pooler, the session must be the server's own: the direct URL.
    const applicationName = options.applicationName ?? `${router.config.applicationName}-listen`
    const connection = yield* PgConnection.make(
      node.direct === undefined
        ? { ...node.client.config, applicationName, multiplex: false }
        : { url: node.direct, applicationName, connectTimeout: router.config.connectTimeout, multiplex: false }
    ).pipe(
      Scope.provide(session),
      Effect.mapError((cause) => failed(`cannot connect: ${describe(cause)}`, cause))
    )
    // The driver's queue is unbounded: the server does not wait for us
    // either, what arrives is kept. A lost session fails it.
    const queue = yield* connection.listen(channel).pipe(
      Scope.provide(session),
      Effect.mapError((cause) => failed(describe(cause), cause))
    )
    return Stream.fromQueue(queue).pipe(
      Stream.map((notification) => notification.payload),
      Stream.mapError((cause) => failed(describe(cause), cause))
    )
  })

/** @internal */
export const listen = (
  channel: string,
  options: Durable.ListenOptions
): Stream.Stream<Durable.Update<never, string, ListenFailed>, never, SqlRouter.SqlRouter> =>
  make({ connect: notifications(channel, options), resubscribeDelay: options.resubscribeDelay })

/** @internal */
export const listenOrFail = (
  channel: string,
  options: Durable.ListenOptions
): Effect.Effect<
  Stream.Stream<Durable.Update<never, string, ListenFailed>, never, SqlRouter.SqlRouter>,
  ListenFailed,
  SqlRouter.SqlRouter | Scope.Scope
> => makeOrFail({ connect: notifications(channel, options), resubscribeDelay: options.resubscribeDelay })
