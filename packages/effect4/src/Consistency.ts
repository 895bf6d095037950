/**
 * Read-your-writes on top of eventually consistent replicas.
 *
 * A causal session remembers, after each commit it makes on the primary, the
 * commit's WAL position (LSN). Its reads then go only to replicas that have
 * replayed at least that position; when none has, the read waits up to
 * `maxWait` for one and then goes to the primary (or fails with
 * `ReplicaNotCaughtUp`, if so configured). Outside a session, reads are
 * eventually consistent. Sessions cross processes as signed `CausalToken`s,
 * e.g. in an HTTP header with `Consistency.middleware`.
 *
 * Two lighter tools: `withMaxStaleness(d)` sends a region's reads only to
 * replicas at most `d` behind, and `stickyPrimaryAfterWrite` (config) sends a
 * session's reads to the primary for a while after each of its writes,
 * without any LSN.
 *
 * @since 0.1.0
 */
import type * as CoreConsistency from "@effect-sql-router/core/Consistency"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as internal from "./internal/consistency.js"
import { tag as SqlRouterTag } from "./internal/sqlRouter.js"
import type { InvalidToken } from "./RouterError.js"
import type * as SqlRouter from "./SqlRouter.js"

/**
 * What a session knows: the position its reads must see, and when it last
 * wrote (epoch milliseconds from `Clock`): the core's `Consistency.SessionState`.
 *
 * @since 0.1.0
 * @category models
 */
export type SessionState = CoreConsistency.SessionState

/**
 * The identifier of the `Session` service: the current causal session's state.
 *
 * @since 0.1.0
 * @category models
 */
export interface Session {
  readonly _: unique symbol
}

/**
 * The current causal session, a `Ref` in the context.
 *
 * @since 0.1.0
 * @category tags
 */
export const Session: Context.Tag<Session, Ref.Ref<SessionState>> = internal.SessionTag

/**
 * What a session's read does when no replica has replayed its position.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadPolicy {
  readonly maxWait: Duration.Duration
  readonly onNotCaughtUp: "primary" | "fail"
}

/**
 * Runs `effect` in a causal session (joining the current one if there is
 * one): its reads see its own writes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "@effect/sql"
 * import { Consistency } from "@effect-sql-router/effect4"
 *
 * const placeOrder = Consistency.session(Effect.gen(function* () {
 *   const sql = yield* SqlClient.SqlClient
 *   yield* sql`INSERT INTO orders (id) VALUES (42)`
 *   // A replica that has replayed the insert, or the primary.
 *   return yield* sql`SELECT * FROM orders WHERE id = 42`
 * }))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const session = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, Session>> =>
  internal.session(effect)

/**
 * A fresh session for everything the layer is provided to (e.g. one request).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSession: Layer.Layer<Session> = Layer.effect(Session, Ref.make(internal.emptyState))

/**
 * Reads in `effect` go only to replicas whose replay lag is within `bound`
 * (as the health monitor last measured it), else to the primary.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withMaxStaleness: {
  (bound: Duration.DurationInput): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, bound: Duration.DurationInput): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, bound: Duration.DurationInput) =>
  Effect.locally(effect, internal.currentMaxStaleness, Option.some(Duration.decode(bound))))

/**
 * Overrides the configured read policy for the session reads in `effect`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withReadPolicy: {
  (policy: { readonly maxWait: Duration.DurationInput; readonly onNotCaughtUp: "primary" | "fail" }): <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    policy: { readonly maxWait: Duration.DurationInput; readonly onNotCaughtUp: "primary" | "fail" }
  ): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  policy: { readonly maxWait: Duration.DurationInput; readonly onNotCaughtUp: "primary" | "fail" }
) =>
  Effect.locally(
    effect,
    internal.currentReadPolicy,
    Option.some({ maxWait: Duration.decode(policy.maxWait), onNotCaughtUp: policy.onNotCaughtUp })
  ))

/**
 * The current session as a token, for another process to continue it.
 *
 * @since 0.1.0
 * @category tokens
 */
export const currentToken: Effect.Effect<string, never, SqlRouter.SqlRouter | Session> = Effect.gen(function*() {
  const router = yield* SqlRouterTag
  const state = yield* Ref.get(yield* Session)
  return internal.encodeToken(router, state)
})

/**
 * Runs `effect` in a session that continues the one `token` came from.
 * A malformed, forged or foreign token fails with `InvalidToken` and is never
 * used for routing.
 *
 * @since 0.1.0
 * @category tokens
 */
export const withToken: {
  (token: string): <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | InvalidToken, Exclude<R, Session> | SqlRouter.SqlRouter>
  <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    token: string
  ): Effect.Effect<A, E | InvalidToken, Exclude<R, Session> | SqlRouter.SqlRouter>
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, token: string) =>
  Effect.flatMap(SqlRouterTag, (router) =>
    Effect.flatMap(internal.decodeToken(router, token), (state) =>
      Effect.flatMap(Ref.make(state), (ref) => Effect.provideService(effect, Session, ref)))))

/**
 * Options of `middleware`.
 *
 * @since 0.1.0
 * @category models
 */
export interface MiddlewareOptions {
  /** Default `x-causal-token`. */
  readonly header?: string | undefined
}

/**
 * HTTP middleware: each request runs in a causal session that continues the
 * token in the request header (if any), and the response carries the updated
 * token in the same header. A bad token gets a 400 with the reason.
 *
 * @since 0.1.0
 * @category http
 */
export const middleware = (options: MiddlewareOptions = {}) => {
  const header = (options.header ?? "x-causal-token").toLowerCase()
  return HttpMiddleware.make((app) =>
    Effect.gen(function*() {
      const router = yield* SqlRouterTag
      const request = yield* HttpServerRequest.HttpServerRequest
      const given = request.headers[header]
      const initial = given === undefined
        ? Effect.succeed(internal.emptyState)
        : internal.decodeToken(router, given)
      return yield* Effect.matchEffect(initial, {
        onFailure: (error) =>
          Effect.succeed(HttpServerResponse.unsafeJson({ error: error._tag, message: error.message }, { status: 400 })),
        onSuccess: (state) =>
          Effect.gen(function*() {
            const ref = yield* Ref.make(state)
            const response = yield* Effect.provideService(app, Session, ref)
            return HttpServerResponse.setHeader(response, header, internal.encodeToken(router, yield* Ref.get(ref)))
          })
      })
    })
  )
}
