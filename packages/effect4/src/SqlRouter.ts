/**
 * The router: one primary and any number of streaming replicas used as one
 * database. Writes and transactions go to the primary; reads go to a healthy
 * replica picked by the configured strategy, and to the primary when none is
 * available. The API follows repodb's Cqrs module (`withRead`, `withWrite`,
 * `withPrimary`, `withReplica`, `transaction`, `markReplicaUnhealthy`, `stats`).
 *
 * @since 0.1.0
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Consistency from "./Consistency.js"
import * as Metrics from "./internal/metrics.js"
import * as internal from "./internal/sqlRouter.js"
import * as RoutedClient from "./RoutedClient.js"
import type * as HealthMonitor from "./HealthMonitor.js"
import type * as Node from "./Node.js"
import type * as RouterConfig from "./RouterConfig.js"
import type {
  CommitFailed,
  InvalidConfig,
  NoReplicaAvailable,
  PrimaryUnavailable,
  PromotionRefused,
  ReplicaNotCaughtUp,
  UnknownReplica
} from "./RouterError.js"
import type * as Topology from "./Topology.js"

/**
 * Where a leased connection came from, so it goes back to its own pool
 * (repodb's `conn_origin`).
 *
 * @since 0.1.0
 * @category models
 */
export type Origin = { readonly _tag: "Primary" } | { readonly _tag: "Replica"; readonly index: number }

/**
 * A connection held until its Scope closes, with a `SqlClient` whose every
 * statement runs on it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lease {
  readonly origin: Origin
  readonly node: Node.Node
  readonly client: SqlClient.SqlClient
}

/**
 * One node's pool occupancy and what the router sent it.
 *
 * @since 0.1.0
 * @category models
 */
export interface NodeStats {
  readonly id: string
  readonly role: Node.Role
  readonly address: string
  readonly pool: Node.PoolStats
  /** Statements and regions this router sent to the node, by intent. */
  readonly served: { readonly reads: number; readonly writes: number }
}

/**
 * Pool and traffic figures for every node, with the replicas' health and in-flight
 * reads.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly primary: NodeStats
  readonly replicas: ReadonlyArray<NodeStats & { readonly healthy: boolean; readonly inFlight: number }>
  readonly healthyReplicaCount: number
  /**
   * The DDL barrier while it is up: the primary's WAL position (as
   * `pg_lsn` text) that a replica must have replayed to serve reads after the
   * last routed schema change; `undefined` when reads go anywhere.
   */
  readonly schemaBarrier: string | undefined
}

/**
 * What the layer can fail with when it is built.
 *
 * @since 0.1.0
 * @category errors
 */
export type BuildError = InvalidConfig | PrimaryUnavailable

/** The services a routed region provides to the effect inside it. */
type Provided = SqlClient.SqlClient | PgClient.PgClient

/**
 * The router: routes regions and connections to the primary or a replica, and
 * reports and changes the topology.
 *
 * @since 0.1.0
 * @category models
 */
export interface SqlRouter {
  readonly config: RouterConfig.Resolved
  /** The cluster's `system_identifier` (shared by the primary and its replicas). */
  readonly systemIdentifier: string
  readonly topology: Topology.Topology
  /** The current primary. */
  readonly primary: Effect.Effect<Node.Node>
  readonly replicas: Effect.Effect<ReadonlyArray<Node.Node>>
  /**
   * Runs `effect` with the `SqlClient` of a replica (the primary when none is
   * eligible). `ReplicaNotCaughtUp` only in a causal session whose policy is `fail`.
   */
  readonly withRead: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | ReplicaNotCaughtUp, Exclude<R, Provided>>
  /** Runs `effect` with the `SqlClient` of a replica, or fails with `NoReplicaAvailable`. */
  readonly withReplica: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | NoReplicaAvailable | ReplicaNotCaughtUp, Exclude<R, Provided>>
  /**
   * Runs `effect` with the primary's `SqlClient`. `PrimaryUnavailable` when
   * the primary turned read-only (failover) or several nodes accept writes.
   */
  readonly withWrite: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | PrimaryUnavailable, Exclude<R, Provided>>
  /** Runs `effect` with the primary's `SqlClient`, for reads that must see the latest writes. */
  readonly withPrimary: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | PrimaryUnavailable, Exclude<R, Provided>>
  /**
   * BEGIN … COMMIT on one pinned primary connection. Failure, defect or
   * interruption rolls back; nested calls use savepoints; a refused COMMIT is
   * `CommitFailed`.
   */
  readonly transaction: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | SqlError | CommitFailed | PrimaryUnavailable, Exclude<R, Provided>>
  /** `BEGIN READ ONLY` on one pinned replica connection (the primary when none is eligible). */
  readonly readTransaction: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | SqlError | CommitFailed | ReplicaNotCaughtUp, Exclude<R, Provided>>
  /** A replica connection (or the primary's) held until the Scope closes. */
  readonly acquireRead: Effect.Effect<Lease, SqlError | ReplicaNotCaughtUp | PrimaryUnavailable, Scope.Scope>
  /** A primary connection held until the Scope closes. */
  readonly acquireWrite: Effect.Effect<Lease, SqlError | PrimaryUnavailable, Scope.Scope>
  /**
   * The configuration with the live topology (current primary and replicas),
   * e.g. for `RouterConfig.save`.
   */
  readonly currentConfig: Effect.Effect<RouterConfig.RouterConfig>
  /**
   * Adds a replica while traffic flows: its pool lives in the router's scope,
   * and it enters rotation after its first good probe. Default id: the next
   * free `replica-N`. `direct`: the server's direct URL when `url` is a
   * pooler's (as `RouterConfig` `direct`).
   */
  readonly addReplica: (
    url: Redacted.Redacted<string>,
    options?: { readonly id?: string | undefined; readonly direct?: Redacted.Redacted<string> | undefined }
  ) => Effect.Effect<Node.Node, InvalidConfig>
  /** Takes a replica out of rotation at once, lets its in-flight work finish, then closes its pool. */
  readonly removeReplica: (replica: number | string) => Effect.Effect<void, UnknownReplica>
  /**
   * Promotes a replica to primary: refuses (`PromotionRefused`) when it is
   * behind the primary by more than `maxLag` bytes (default 0: no lost
   * writes); otherwise runs `pg_promote()`, waits until it leaves recovery and
   * sends writes to it. Fencing the old primary and re-pointing the other
   * standbys remain the operator's job.
   */
  readonly promote: (
    replica: number | string,
    options?: { readonly maxLag?: number | undefined }
  ) => Effect.Effect<Node.Node, UnknownReplica | PromotionRefused>
  /** Lifts a manual mark and puts the replica back in rotation now. */
  readonly markReplicaHealthy: (replica: number | string) => Effect.Effect<void, UnknownReplica>
  /** Takes the replica out of rotation until `markReplicaHealthy`; probes do not override it. */
  readonly markReplicaUnhealthy: (replica: number | string) => Effect.Effect<void, UnknownReplica>
  readonly countHealthyReplicas: Effect.Effect<number>
  readonly hasReplicas: Effect.Effect<boolean>
  readonly stats: Effect.Effect<Stats>
  /** Per node: role, health, lag, in-flight reads, last error and probe time (the seed's `getReplicaStatus`). */
  readonly replicaStatus: Effect.Effect<ReadonlyArray<HealthMonitor.NodeStatus>>
}

/**
 * The router service.
 *
 * @since 0.1.0
 * @category tags
 */
export const SqlRouter: Context.Service<SqlRouter, SqlRouter> = internal.tag

/**
 * Builds a router in the current Scope: every pool is closed when it closes.
 * Fails with `InvalidConfig` (naming the field) or `PrimaryUnavailable` (after
 * the connect timeout); a replica that is down at start only starts unhealthy.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (config: RouterConfig.RouterConfig) => Effect.Effect<SqlRouter, BuildError, Scope.Scope> =
  internal.make

/**
 * The router as a Layer.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { SqlRouter } from "@effect-sql-router/effect4"
 *
 * const RouterLive = SqlRouter.layer({
 *   primary: Redacted.make("postgres://app@primary:5432/app"),
 *   replicas: [Redacted.make("postgres://app@replica:5432/app")]
 * })
 *
 * const users = SqlRouter.withRead(Effect.gen(function* () {
 *   const sql = yield* SqlClient.SqlClient
 *   return yield* sql`SELECT * FROM users`
 * }))
 *
 * // Run it where the app starts, e.g. NodeRuntime.runMain(main).
 * const main = users.pipe(Effect.provide(RouterLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (config: RouterConfig.RouterConfig): Layer.Layer<SqlRouter, BuildError> =>
  Layer.effect(SqlRouter, make(config))

/**
 * The router as a Layer, configured from Effect `Config`: either one
 * `Config` of the whole (e.g. `RouterConfig.fromEnv`) or, as in
 * `PgClient.layerConfig`, the options with a `Config` for each field.
 *
 * @example
 * ```ts
 * import { Config, Schema } from "effect"
 * import { SqlRouter } from "@effect-sql-router/effect4"
 *
 * const RouterLive = SqlRouter.layerConfig({
 *   primary: Config.Redacted("DATABASE_URL"),
 *   replicas: Config.Array(Schema.Redacted(Schema.String), "DATABASE_REPLICA_URLS"),
 *   selection: Config.Literals(["round-robin", "least-lag"], "DATABASE_REPLICA_SELECTION")
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Wrap<RouterConfig.RouterConfig>
): Layer.Layer<SqlRouter, BuildError | Config.ConfigError> =>
  Layer.effect(SqlRouter, Effect.flatMap(Config.unwrap(config), make))

/**
 * Runs `effect` with the `SqlClient` of a replica chosen by the strategy, or of
 * the primary when none is eligible.
 *
 * @since 0.1.0
 * @category accessors
 */
export const withRead = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | ReplicaNotCaughtUp, Exclude<R, Provided> | SqlRouter> =>
  Effect.flatMap(SqlRouter, (router) => router.withRead(effect))

/**
 * Runs `effect` with the `SqlClient` of a replica chosen by the strategy, or fails
 * with `NoReplicaAvailable`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const withReplica = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | NoReplicaAvailable | ReplicaNotCaughtUp, Exclude<R, Provided> | SqlRouter> =>
  Effect.flatMap(SqlRouter, (router) => router.withReplica(effect))

/**
 * Runs `effect` with the primary's `SqlClient`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const withWrite = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | PrimaryUnavailable, Exclude<R, Provided> | SqlRouter> =>
  Effect.flatMap(SqlRouter, (router) => router.withWrite(effect))

/**
 * Runs `effect` with the primary's `SqlClient`, for reads that must see the latest
 * writes.
 *
 * @since 0.1.0
 * @category accessors
 */
export const withPrimary = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | PrimaryUnavailable, Exclude<R, Provided> | SqlRouter> =>
  Effect.flatMap(SqlRouter, (router) => router.withPrimary(effect))

/**
 * Runs `effect` in `BEGIN … COMMIT` on one pinned primary connection; a COMMIT the
 * server refuses is `CommitFailed`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { SqlRouter } from "@effect-sql-router/effect4"
 *
 * const transfer = SqlRouter.transaction(Effect.gen(function* () {
 *   const sql = yield* SqlClient.SqlClient
 *   yield* sql`UPDATE accounts SET balance = balance - 10 WHERE id = 1`
 *   yield* sql`UPDATE accounts SET balance = balance + 10 WHERE id = 2`
 * })).pipe(
 *   // The router never retries a write; a refused COMMIT is a typed error,
 *   // and a serialization failure is worth running the transaction again.
 *   Effect.retry({ times: 3, while: (error) => error._tag === "CommitFailed" && error.retryable })
 * )
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const transaction = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError | CommitFailed | PrimaryUnavailable, Exclude<R, Provided> | SqlRouter> =>
  Effect.flatMap(SqlRouter, (router) => router.transaction(effect))

/**
 * Runs `effect` in `BEGIN READ ONLY` on one pinned replica connection (the
 * primary's when no replica is eligible).
 *
 * @since 0.1.0
 * @category accessors
 */
export const readTransaction = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError | CommitFailed | ReplicaNotCaughtUp, Exclude<R, Provided> | SqlRouter> =>
  Effect.flatMap(SqlRouter, (router) => router.readTransaction(effect))

/**
 * A replica connection (or the primary's) held until the Scope closes.
 *
 * @since 0.1.0
 * @category accessors
 */
export const acquireRead: Effect.Effect<
  Lease,
  SqlError | ReplicaNotCaughtUp | PrimaryUnavailable,
  Scope.Scope | SqlRouter
> = Effect.flatMap(
  SqlRouter,
  (router) => router.acquireRead
)

/**
 * A primary connection held until the Scope closes.
 *
 * @since 0.1.0
 * @category accessors
 */
export const acquireWrite: Effect.Effect<Lease, SqlError | PrimaryUnavailable, Scope.Scope | SqlRouter> = Effect.flatMap(
  SqlRouter,
  (router) => router.acquireWrite
)

/**
 * Lifts a manual mark and puts the replica back in rotation now.
 *
 * @since 0.1.0
 * @category accessors
 */
export const markReplicaHealthy = (replica: number | string): Effect.Effect<void, UnknownReplica, SqlRouter> =>
  Effect.flatMap(SqlRouter, (router) => router.markReplicaHealthy(replica))

/**
 * Takes the replica out of rotation until `markReplicaHealthy`; probes do not
 * override it.
 *
 * @since 0.1.0
 * @category accessors
 */
export const markReplicaUnhealthy = (replica: number | string): Effect.Effect<void, UnknownReplica, SqlRouter> =>
  Effect.flatMap(SqlRouter, (router) => router.markReplicaUnhealthy(replica))

/**
 * The number of replicas in rotation.
 *
 * @since 0.1.0
 * @category accessors
 */
export const countHealthyReplicas: Effect.Effect<number, never, SqlRouter> = Effect.flatMap(
  SqlRouter,
  (router) => router.countHealthyReplicas
)

/**
 * Whether the router has any replica configured, healthy or not.
 *
 * @since 0.1.0
 * @category accessors
 */
export const hasReplicas: Effect.Effect<boolean, never, SqlRouter> = Effect.flatMap(
  SqlRouter,
  (router) => router.hasReplicas
)

/**
 * Pool and traffic figures for every node.
 *
 * @since 0.1.0
 * @category accessors
 */
export const stats: Effect.Effect<Stats, never, SqlRouter> = Effect.flatMap(SqlRouter, (router) => router.stats)

/**
 * Per node: role, health, lag, in-flight reads, last error and last probe time.
 *
 * @since 0.1.0
 * @category accessors
 */
export const replicaStatus: Effect.Effect<ReadonlyArray<HealthMonitor.NodeStatus>, never, SqlRouter> = Effect.flatMap(
  SqlRouter,
  (router) => router.replicaStatus
)

/**
 * Where reads go in a region: `auto` (replicas, by the rules), `primary`
 * (everything on the primary, e.g. to read your own writes), `replica`
 * (reads on replicas even where the region around says otherwise). Writes
 * always go to the primary.
 *
 * @since 0.1.0
 * @category models
 */
export type Route = "auto" | "primary" | "replica"

/**
 * The route of the current fiber.
 *
 * @since 0.1.0
 * @category fiber refs
 */
export const currentRoute: Context.Reference<Route> = internal.currentRoute

/**
 * Runs `effect` with reads routed as `route` says.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withRoute: {
  (route: Route): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(effect: Effect.Effect<A, E, R>, route: Route): Effect.Effect<A, E, R>
} = dual(2, <A, E, R>(effect: Effect.Effect<A, E, R>, route: Route) => Effect.provideService(effect, internal.currentRoute, route))

/**
 * Sets the route for everything the layer is provided to.
 *
 * @since 0.1.0
 * @category layers
 */
export const setRoute = (route: Route): Layer.Layer<never> => Layer.succeed(internal.currentRoute, route)

/**
 * Every statement of the region, reads included, runs on the primary: read
 * what you have just written.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SqlClient } from "effect/sql"
 * import { SqlRouter } from "@effect-sql-router/effect4"
 *
 * const createAndShow = Effect.gen(function* () {
 *   const sql = yield* SqlClient.SqlClient
 *   yield* sql`INSERT INTO users (name) VALUES ('ada')`
 *   return yield* SqlRouter.primary(sql`SELECT * FROM users WHERE name = 'ada'`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const primary = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => withRoute(effect, "primary")

/**
 * Reads of the region go to replicas again inside a region that forces the
 * primary. Writes still go to the primary.
 *
 * @since 0.1.0
 * @category combinators
 */
export const replica = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => withRoute(effect, "replica")

/**
 * The router with its routed `SqlClient` and `PgClient`: existing `@effect/sql`
 * programs get read/write splitting without changes. See `RoutedClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient: (
  config: RouterConfig.RouterConfig,
  options?: RoutedClient.Options
) => Layer.Layer<SqlRouter | SqlClient.SqlClient | PgClient.PgClient, BuildError> = RoutedClient.layer

/**
 * `layerClient` configured from Effect `Config`: one `Config` of the whole
 * (e.g. `RouterConfig.fromEnv`) or a `Config` for each field, as
 * `layerConfig` takes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClientConfig = (
  config: Config.Wrap<RouterConfig.RouterConfig>,
  options?: RoutedClient.Options
): Layer.Layer<SqlRouter | SqlClient.SqlClient | PgClient.PgClient, BuildError | Config.ConfigError> =>
  Layer.unwrap(Effect.map(Config.unwrap(config), (c) => RoutedClient.layer(c, options)))

/**
 * The router's metrics: `statements` (counter; tags `node`, `intent`),
 * `healthTransitions` (counter; tag `to`), `probeFailures` (counter; tag
 * `node`), `healthyReplicas` (gauge), `replicaLagBytes` and
 * `replicaLagMillis` (gauges; tag `node`), `hedgedReads` (counter; tag
 * `node`: the replica a hedged read also started on).
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  statements: Metrics.statements,
  healthTransitions: Metrics.healthTransitions,
  probeFailures: Metrics.probeFailures,
  healthyReplicas: Metrics.healthyReplicas,
  replicaLagBytes: Metrics.replicaLagBytes,
  replicaLagMillis: Metrics.replicaLagMillis,
  hedgedReads: Metrics.hedgedReads
} as const

/**
 * Runs `effect` in a causal session: after its commits, its reads go only to
 * replicas that have replayed them (see `Consistency.session`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const session: <A, E, R>(
  effect: Effect.Effect<A, E, R>
) => Effect.Effect<A, E, Exclude<R, Consistency.Session>> = Consistency.session

/**
 * Reads in `effect` go only to replicas whose replay lag is within the bound,
 * else to the primary (see `Consistency.withMaxStaleness`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withMaxStaleness: typeof Consistency.withMaxStaleness = Consistency.withMaxStaleness

/**
 * Adds a replica while traffic flows; it enters rotation after its first good
 * probe.
 *
 * @since 0.1.0
 * @category accessors
 */
export const addReplica = (
  url: Redacted.Redacted<string>,
  options?: { readonly id?: string | undefined }
): Effect.Effect<Node.Node, InvalidConfig, SqlRouter> => Effect.flatMap(SqlRouter, (router) => router.addReplica(url, options))

/**
 * Takes a replica out of rotation at once, lets its in-flight work finish, then
 * closes its pool.
 *
 * @since 0.1.0
 * @category accessors
 */
export const removeReplica = (replica: number | string): Effect.Effect<void, UnknownReplica, SqlRouter> =>
  Effect.flatMap(SqlRouter, (router) => router.removeReplica(replica))

/**
 * Promotes a replica to primary, unless it is behind the primary by more than
 * `maxLag` bytes (`PromotionRefused`).
 *
 * @since 0.1.0
 * @category accessors
 */
export const promote = (
  replica: number | string,
  options?: { readonly maxLag?: number | undefined }
): Effect.Effect<Node.Node, UnknownReplica | PromotionRefused, SqlRouter> =>
  Effect.flatMap(SqlRouter, (router) => router.promote(replica, options))
