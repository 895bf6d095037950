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
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as HttpMiddleware from "effect/http/HttpMiddleware"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
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
 * @category services
 */
export const Session: Context.Service<Session, Ref.Ref<SessionState>> = internal.SessionTag

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
 * A read policy as `withReadPolicy` and `setReadPolicy` take it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadPolicyInput {
  readonly maxWait: Duration.Input
  readonly onNotCaughtUp: "primary" | "fail"
}

/**
 * Runs `effect` in a causal session (joining the current one if there is
 * one): its reads see its own writes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
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
 * The staleness bound of the reads in scope (none: any lag the configuration
 * allows), as `withMaxStaleness` and `setMaxStaleness` set it.
 *
 * @since 0.1.0
 * @category references
 */
export const currentMaxStaleness: Context.Reference<Option.Option<Duration.Duration>> = internal.currentMaxStaleness

/**
 * The read policy of the session reads in scope (none: the configuration's),
 * as `withReadPolicy` and `setReadPolicy` set it.
 *
 * @since 0.1.0
 * @category references
 */
export const currentReadPolicy: Context.Reference<Option.Option<ReadPolicy>> = internal.currentReadPolicy

/**
 * Reads in `effect` go only to replicas whose replay lag is within `bound`
 * (as the health monitor last measured it), else to the primary.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { Consistency } from "@effect-sql-router/effect4"
 *
 * const prices = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT * FROM prices`).pipe(
 *   Consistency.withMaxStaleness("500 millis")
 * )
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const withMaxStaleness: {
  (bound: Duration.Input): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, bound: Duration.Input): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, bound: Duration.Input) =>
  Effect.provideService(effect, internal.currentMaxStaleness, Option.some(Duration.fromInputUnsafe(bound))))

/**
 * `withMaxStaleness` as a layer: the bound holds for every read of what the
 * layer is provided to.
 *
 * @since 0.1.0
 * @category layers
 */
export const setMaxStaleness = (bound: Duration.Input): Layer.Layer<never> =>
  Layer.succeed(internal.currentMaxStaleness, Option.some(Duration.fromInputUnsafe(bound)))

const decodePolicy = (policy: ReadPolicyInput): ReadPolicy => ({
  maxWait: Duration.fromInputUnsafe(policy.maxWait),
  onNotCaughtUp: policy.onNotCaughtUp
})

/**
 * Overrides the configured read policy for the session reads in `effect`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withReadPolicy: {
  (policy: ReadPolicyInput): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, policy: ReadPolicyInput): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, policy: ReadPolicyInput) =>
  Effect.provideService(effect, internal.currentReadPolicy, Option.some(decodePolicy(policy))))

/**
 * `withReadPolicy` as a layer: the policy holds for every session read of
 * what the layer is provided to.
 *
 * @since 0.1.0
 * @category layers
 */
export const setReadPolicy = (policy: ReadPolicyInput): Layer.Layer<never> =>
  Layer.succeed(internal.currentReadPolicy, Option.some(decodePolicy(policy)))

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
    Effect.flatMap(internal.decodeToken(router, token), (state) => internal.inNewSession(effect, state))))

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
 * The middleware `middleware` makes: an `effect/http` `HttpMiddleware` that
 * provides the `Session` and needs the `SqlRouter`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Middleware extends HttpMiddleware.HttpMiddleware {
  <E, R>(
    app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ): Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    E,
    Exclude<R, Session> | SqlRouter.SqlRouter | HttpServerRequest.HttpServerRequest
  >
}

/**
 * HTTP middleware (`effect/http`): each request runs in a causal session that
 * continues the token in the request header (if any), and the response
 * carries the updated token in the same header. A bad token gets a 400 with
 * the reason.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { HttpEffect, HttpServerRequest, HttpServerResponse } from "effect/http"
 * import { Consistency, SqlRouter } from "@effect-sql-router/effect4"
 *
 * const app = Effect.succeed(HttpServerResponse.text("ok"))
 * // A fetch-style handler whose requests run in causal sessions.
 * const handler = Effect.map(Effect.context<SqlRouter.SqlRouter>(), (context) =>
 *   HttpEffect.toWebHandlerWith<SqlRouter.SqlRouter, SqlRouter.SqlRouter | HttpServerRequest.HttpServerRequest>(
 *     context
 *   )(Consistency.middleware()(app)))
 * ```
 *
 * @since 0.1.0
 * @category http
 */
export const middleware = (options: MiddlewareOptions = {}): Middleware => {
  const header = (options.header ?? "x-causal-token").toLowerCase()
  return HttpMiddleware.make(<E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
    Effect.gen(function*() {
      const router = yield* SqlRouterTag
      const request = yield* HttpServerRequest.HttpServerRequest
      const given = request.headers[header]
      const initial = given === undefined ? Effect.succeed(internal.emptyState) : internal.decodeToken(router, given)
      return yield* Effect.matchEffect(initial, {
        onFailure: (error) =>
          Effect.succeed(
            HttpServerResponse.jsonUnsafe({ error: error._tag, message: error.message }, { status: 400 })
          ),
        onSuccess: (state) =>
          Effect.gen(function*() {
            const ref = yield* Ref.make(state)
            const response = yield* Effect.provideService(app, Session, ref)
            return HttpServerResponse.setHeader(response, header, internal.encodeToken(router, yield* Ref.get(ref)))
          })
      })
    }) as Effect.Effect<
      HttpServerResponse.HttpServerResponse,
      E,
      Exclude<R, Session> | SqlRouter.SqlRouter | HttpServerRequest.HttpServerRequest
    >
  )
}
