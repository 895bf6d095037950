/**
 * What the router needs to know: the primary, the replicas, pool sizes, how to
 * pick a replica, and how long to wait. Validated when the router's layer is
 * built, with errors that name the field and never show a password.
 *
 * @since 0.1.0
 */
import type * as PlatformError from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Config from "effect/Config"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Schema from "effect/Schema"
import * as internal from "./internal/routerConfig.js"
import type { InvalidConfig } from "./RouterError.js"

/**
 * Every replica selection strategy, in one tuple: the `Selection` type and its
 * validation are built from it.
 *
 * @since 0.1.0
 * @category models
 */
export const selections: readonly ["round-robin", "random", "least-connections", "least-lag"] = internal.selections

/**
 * How `withRead` picks among eligible replicas. `least-lag` prefers the
 * replica that has replayed the most WAL (see the health monitor).
 *
 * @since 0.1.0
 * @category models
 */
export type Selection = typeof selections[number]

/**
 * A connection offered to `validate` at checkout.
 *
 * @since 0.1.0
 * @category models
 */
export interface ValidationConnection {
  readonly query: (sql: string) => Promise<ReadonlyArray<Record<string, unknown>>>
}

/**
 * Health probing and hysteresis. A replica leaves rotation after
 * `failureThreshold` consecutive failed probes and returns after
 * `successThreshold` consecutive good ones.
 *
 * @since 0.1.0
 * @category models
 */
export interface HealthConfig extends Schema.Schema.Type<typeof internal.routerOptions.health.schema> {}

/**
 * Patroni as the source of truth (with `discovery: "auto"`): the members'
 * REST API URLs (Redacted: they may hold credentials) and the timeout of one
 * request. See the README's "Patroni" section.
 *
 * @since 0.1.0
 * @category models
 */
export interface PatroniConfig extends Schema.Schema.Type<typeof internal.routerOptions.patroni.schema> {}

/**
 * The Patroni source as resolved: its URLs, and the timeout of one request.
 *
 * @since 0.1.0
 * @category models
 */
export interface PatroniResolved {
  readonly urls: ReadonlyArray<Redacted.Redacted<string>>
  readonly timeout: Duration.Duration
}

/**
 * Replicas further behind than this get no reads (the seed's `lagTolerance`).
 *
 * @since 0.1.0
 * @category models
 */
export interface MaxLag extends Schema.Schema.Type<typeof internal.routerOptions.maxLag.schema> {}

/**
 * Direct URLs of the servers, for LISTEN (`Durable`) and CDC when the
 * `primary`/`replicas`/`hosts` URLs point at a transaction-mode pooler such as
 * PgBouncer: each list has one URL per entry of its counterpart, in order.
 *
 * @since 0.1.0
 * @category models
 */
export interface DirectConfig extends Schema.Schema.Type<typeof internal.routerOptions.direct.schema> {}

/**
 * Read-your-writes settings for causal sessions (see `Consistency`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ConsistencyConfig extends Schema.Schema.Type<typeof internal.routerOptions.consistency.schema> {}

/**
 * How one role's pools keep their connections: `minConnections` (default 0,
 * at most the role's pool size). Set per role with `primaryPool` and
 * `replicaPool`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolConfig extends Schema.Schema.Type<typeof internal.routerOptions.primaryPool.schema> {}

/**
 * The router's configuration, as written by users. Only `primary` is required.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type { RouterConfig } from "effect-sql-router"
 *
 * const config: RouterConfig.RouterConfig = {
 *   primary: Redacted.make("postgres://app@db-primary:5432/app"),
 *   replicas: [Redacted.make("postgres://app@db-replica-1:5432/app")],
 *   selection: "least-connections"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface RouterConfig extends internal.Input {
  /**
   * A check run on a connection each time it is taken from a pool; a
   * connection that fails it is discarded and another one taken.
   */
  readonly validate?: ((connection: ValidationConnection) => Promise<boolean>) | undefined
}

/**
 * The validated configuration with every default filled in.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved
  extends Omit<internal.ResolvedOptions, "primary" | "hosts" | "replicas" | "sideEffectFunctions" | "cdc" | "direct" | "patroni" | "health">
{
  /** The direct URLs, aligned with `primary` and `replicas` (undefined: that node has none). */
  readonly direct: {
    readonly primary: Redacted.Redacted<string> | undefined
    readonly replicas: ReadonlyArray<Redacted.Redacted<string> | undefined>
  }
  /** Set: Patroni names the primary and reports replica health while it answers. */
  readonly patroni?: PatroniResolved | undefined
  /** `maxInterval` resolved: the user's, else 15 seconds or `interval` if longer. */
  readonly health: internal.ResolvedOptions["health"] & { readonly maxInterval: Duration.Duration }
  /** Manual: the primary. Auto: the first host (a hint; discovery decides). */
  readonly primary: Redacted.Redacted<string>
  /** Manual: the replicas. Auto: the other hosts. */
  readonly replicas: ReadonlyArray<Redacted.Redacted<string>>
  readonly validate: ((connection: ValidationConnection) => Promise<boolean>) | undefined
  readonly sideEffectFunctions: ReadonlyArray<string>
  /** `sideEffectFunctions: "catalog"`: the user's volatile functions are read from `pg_proc`. */
  readonly sideEffectCatalog: boolean
}

/**
 * Checks every field and fills in defaults. Fails with `InvalidConfig`
 * naming the first bad field and what it must be; the message never quotes
 * the value (it may be a password put in the wrong place).
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve: (config: RouterConfig) => Effect.Effect<Resolved, InvalidConfig> = internal.resolve

/**
 * The configuration read from the environment, checked as it is read (a
 * `ConfigError` names the variable and what it must be, never its value):
 *
 * | variable | field | default |
 * |---|---|---|
 * | `DATABASE_URL` | `primary` | required |
 * | `DATABASE_REPLICA_URLS` (comma-separated) | `replicas` | none |
 * | `DATABASE_REPLICA_SELECTION` | `selection` (`round-robin`, `random`, `least-connections`, `least-lag`) | `round-robin` |
 * | `DATABASE_DISCOVERY` | `discovery` (`manual`, `auto`) | `manual` |
 * | `DATABASE_PRIMARY_READS` | `primaryReads` (`fallback`, `overflow`) | `fallback` |
 * | `DATABASE_POOL_SIZE` | `primaryMaxSize` (1–10000) | 10 |
 * | `DATABASE_REPLICA_POOL_SIZE` | `replicaMaxSizeEach` (1–10000) | 10 |
 *
 * URLs stay `Redacted`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEnv: Config.Config<RouterConfig> = internal.fromEnv

/**
 * The JSON form of a configuration, as `save` writes it: URLs as strings,
 * durations as milliseconds (a text such as `"5 seconds"` is read too).
 *
 * @since 0.1.0
 * @category persistence
 */
export type Json = Schema.Schema.Encoded<typeof internal.Json>

/**
 * The configuration as saved: every option except `validate`.
 *
 * @since 0.1.0
 * @category persistence
 */
export type Stored = Omit<RouterConfig, "validate">

/**
 * The one Schema between a configuration and its JSON form: `save`/`toJson`
 * encode with it, `load`/`fromJson` decode with it (URLs become `Redacted`).
 * Use it to embed the router's configuration in a larger config file.
 *
 * @since 0.1.0
 * @category persistence
 */
export const JsonSchema: Schema.Schema<Stored, Json> = internal.Json

/**
 * Reads a configuration saved as JSON with the caller's `FileSystem` (e.g.
 * `NodeFileSystem.layer` from `@effect/platform-node`), and validates it
 * like the layer does: errors name the field. A file that cannot be read
 * fails with the `PlatformError`; a file that is not JSON with
 * `InvalidConfig` at `file`.
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { RouterConfig, SqlRouter } from "effect-sql-router"
 *
 * const RouterLive = RouterConfig.load("router.json").pipe(
 *   Effect.map(SqlRouter.layer),
 *   Effect.provide(NodeFileSystem.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category persistence
 */
export const load: (
  path: string
) => Effect.Effect<RouterConfig, InvalidConfig | PlatformError.PlatformError, FileSystem.FileSystem> = internal.load

/**
 * Writes a configuration as JSON, e.g. the live topology from
 * `SqlRouter.currentConfig`, so it can be restored on restart. Passwords in
 * URLs (user part or `password=` parameter) and the token secret are left
 * out unless `includeSecrets` is true; `validate` (a function) is never
 * written. The file is written whole (mode 0600) and then renamed into place.
 *
 * @since 0.1.0
 * @category persistence
 */
export const save: (
  config: RouterConfig,
  path: string,
  options?: { readonly includeSecrets?: boolean | undefined }
) => Effect.Effect<void, InvalidConfig | PlatformError.PlatformError, FileSystem.FileSystem> = internal.save

/**
 * The JSON form `save` writes and `load` reads. Fails with `InvalidConfig`
 * naming the field when a value cannot be written (e.g. an unparsable URL).
 *
 * @since 0.1.0
 * @category persistence
 */
export const toJson: (
  config: RouterConfig,
  options?: { readonly includeSecrets?: boolean | undefined }
) => Effect.Effect<Json, InvalidConfig> = internal.toJson

/**
 * Parses the JSON form (as `load` does, without the file).
 *
 * @since 0.1.0
 * @category persistence
 */
export const fromJson: (json: unknown) => Effect.Effect<RouterConfig, InvalidConfig> = internal.fromJson
