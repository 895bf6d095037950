/**
 * A `SqlClient` (and `PgClient`) that routes every statement: outside a
 * transaction, statements the `Classifier` calls reads go to a replica and
 * everything else to the primary; inside `withTransaction`, every statement
 * runs on the transaction's primary connection. Existing `@effect/sql`
 * programs run unchanged on it.
 *
 * Safety net: a read that a replica refuses as a write (SQLSTATE 25006) runs
 * again on the primary; a read that meets a dead replica takes that replica out
 * of rotation and runs once more on another node. Writes are never retried.
 *
 * @since 0.1.0
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Duration from "effect/Duration"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/routedClient.js"
import * as RouterInternal from "./internal/sqlRouter.js"
import type * as RouterConfig from "./RouterConfig.js"
import type * as SqlRouter from "./SqlRouter.js"

/**
 * Options of the routed client.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Applied to identifiers written with `sql(name)`, as in `PgClient`. */
  readonly transformQueryNames?: ((s: string) => string) | undefined
  /** Applied to the column names of result rows (e.g. `snake_case` to `camelCase`), as in `PgClient`. */
  readonly transformResultNames?: ((s: string) => string) | undefined
  /** Whether the name transforms also apply inside JSON values (default `true`), as in `PgClient`. */
  readonly transformJson?: boolean | undefined
  /** Extra attributes on every `sql.execute` span. */
  readonly spanAttributes?: Record<string, unknown> | undefined
  /** `application_name` of every node's connections (default: the router configuration's). */
  readonly applicationName?: string | undefined
  /**
   * How long a routed write (outside a transaction) may wait for the primary.
   * On expiry the server is asked to cancel it and the statement fails with
   * `WriteOutcomeUnknown` (as the `SqlError`'s cause): a commit may or may not
   * have happened, so it is never retried. Unlike PostgreSQL's
   * `statement_timeout` it also bounds a commit waiting for a synchronous
   * standby and a server that does not answer at all. Off by default.
   */
  readonly writeTimeout?: Duration.Input | undefined
}

/**
 * Builds the router and a routed client over it, in the current Scope. The
 * options apply on every node, so regions (`SqlRouter.withRead`…) see the same
 * transforms as routed statements; `client.withoutTransforms()` drops both
 * name transforms.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  config: RouterConfig.RouterConfig,
  options: Options = {}
): Effect.Effect<
  { readonly router: SqlRouter.SqlRouter; readonly client: PgClient.PgClient & SqlClient.SqlClient },
  SqlRouter.BuildError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const state = yield* RouterInternal.makeState(config, options)
    const client = yield* internal.make(state, options)
    return { router: RouterInternal.fromState(state), client }
  })

/**
 * The router, its routed `SqlClient` and `PgClient`, as one Layer.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { RoutedClient } from "@effect-sql-router/effect4"
 *
 * const Db = RoutedClient.layer({
 *   primary: Redacted.make("postgres://app@primary/app"),
 *   replicas: [Redacted.make("postgres://app@replica/app")]
 * })
 *
 * const program = Effect.gen(function* () {
 *   const sql = yield* SqlClient.SqlClient
 *   yield* sql`INSERT INTO users (name) VALUES ('ada')` // primary
 *   return yield* sql`SELECT * FROM users`              // a replica
 * })
 *
 * // Run it where the app starts, e.g. NodeRuntime.runMain(main).
 * const main = program.pipe(Effect.provide(Db))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  config: RouterConfig.RouterConfig,
  options: Options = {}
): Layer.Layer<SqlRouter.SqlRouter | SqlClient.SqlClient | PgClient.PgClient, SqlRouter.BuildError> =>
  Layer.effectContext(
    Effect.map(make(config, options), ({ client, router }) =>
      RouterInternal.context(router, client))
  )
