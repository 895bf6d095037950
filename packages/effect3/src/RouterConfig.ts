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
import type { Config as CdcConfig } from "./Cdc.js"
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
export interface HealthConfig {
  /** Time between probes of each node; default 1 second. */
  readonly interval?: Duration.DurationInput | undefined
  /** A probe that takes longer fails; default 1 second. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Default 1: a dead replica should cost no reads. */
  readonly failureThreshold?: number | undefined
  /** Default 2. */
  readonly successThreshold?: number | undefined
  /** Set false to run no background probes (tests, or health driven by hand); default true. */
  readonly enabled?: boolean | undefined
  /**
   * The clock the probe schedule runs on. `"live"` (default): real time, also
   * under `TestClock`, so an `it.effect` test against a real cluster sees
   * health change. `"ambient"`: the fiber's clock, for unit tests with stubbed
   * probes driven by `TestClock.adjust` (a real probe's I/O does not wait for
   * `TestClock`). Probe timeouts are always real time.
   */
  readonly clock?: "live" | "ambient" | undefined
  /**
   * Slow start: a replica that returns to rotation after a failure (probes,
   * or `markReplicaHealthy` after a mark) gets a share of reads that grows
   * linearly from none to its full share over this time, instead of all at
   * once (a cold cache, a replica catching up). Default: off.
   */
  readonly slowStart?: Duration.DurationInput | undefined
}

/**
 * Replicas further behind than this get no reads (the seed's `lagTolerance`).
 *
 * @since 0.1.0
 * @category models
 */
export interface MaxLag {
  /** Replay delay behind the primary's latest commit. */
  readonly time?: Duration.DurationInput | undefined
  /** WAL bytes not yet replayed. */
  readonly bytes?: number | undefined
}

/**
 * Read-your-writes settings for causal sessions (see `Consistency`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ConsistencyConfig {
  /**
   * How long a session's read may wait for a replica to replay the session's
   * last commit before the policy applies; default 0 (no waiting).
   */
  readonly maxWait?: Duration.DurationInput | undefined
  /** When no replica has caught up: read from the primary (default) or fail with `ReplicaNotCaughtUp`. */
  readonly onNotCaughtUp?: "primary" | "fail" | undefined
  /**
   * The cheap mode: no LSNs; a session's reads go to the primary for this long
   * after its last write (Rails' approach).
   */
  readonly stickyPrimaryAfterWrite?: Duration.DurationInput | undefined
  /**
   * For this long after the router routes a schema change, every write (in
   * any session, or none) moves the DDL barrier to its position, so that
   * reads right after it see it: `CREATE TABLE`, insert, select at once, as a
   * migration's or a test's setup does, without a causal session. Default 1
   * second; `0` turns it off (the barrier then only covers the schema change).
   */
  readonly afterSchemaChange?: Duration.DurationInput | undefined
  /**
   * Key that signs causal tokens, shared by every process that exchanges
   * them. Default: a random key per router (tokens only valid in this process).
   */
  readonly tokenSecret?: Redacted.Redacted<string> | undefined
}

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
export interface RouterConfig {
  /**
   * URL of the primary (`postgres://user:password@host:port/db`). Required
   * unless `discovery` is `auto` and `hosts` is given.
   */
  readonly primary?: Redacted.Redacted<string> | undefined
  /**
   * `manual` (default): `primary` is the primary. `auto`: every host
   * (`hosts`, or `primary` and `replicas`) is asked `pg_is_in_recovery()` at
   * start and on every probe; the one that accepts writes is the primary, so
   * the router follows an external failover.
   */
  readonly discovery?: "manual" | "auto" | undefined
  /** With `discovery: "auto"`: the servers, in any order. */
  readonly hosts?: ReadonlyArray<Redacted.Redacted<string>> | undefined
  /** Default 10. */
  readonly primaryMaxSize?: number | undefined
  /** URLs of the replicas; empty or absent: every query goes to the primary. */
  readonly replicas?: ReadonlyArray<Redacted.Redacted<string>> | undefined
  /** Default 10. */
  readonly replicaMaxSizeEach?: number | undefined
  /** Default `round-robin`. */
  readonly selection?: Selection | undefined
  /**
   * `fallback` (default): the primary serves reads only when no replica is
   * eligible. `overflow`: also when the chosen replica's pool is busy (no idle
   * connection, no room for another) and the primary's is not, so a burst of
   * reads uses the primary's spare connections instead of queueing. Writes
   * keep priority only as far as the primary's pool size allows.
   */
  readonly primaryReads?: "fallback" | "overflow" | undefined
  /**
   * A check run on a connection each time it is taken from a pool; a
   * connection that fails it is discarded and another one taken.
   */
  readonly validate?: ((connection: ValidationConnection) => Promise<boolean>) | undefined
  /** Time to open a connection or wait for a free one; default 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Idle connections are closed after this; default 30 seconds. */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** `application_name` of our connections; default `effect-sql-router`. */
  readonly applicationName?: string | undefined
  /**
   * A routed read that a replica has not answered within this time is given
   * up there: the replica leaves rotation (it may be frozen or partitioned)
   * and the read runs once more elsewhere. No default: set it above your
   * slowest legitimate replica read.
   */
  readonly readTimeout?: Duration.DurationInput | undefined
  /**
   * Hedged reads (default off): a routed read that its replica has not
   * answered within this time also starts on another replica eligible for it
   * (same session position, staleness bound and DDL barrier; the one with the
   * fewest reads in flight; never the primary). The first answer wins and the
   * other statement is cancelled on the server. A read with no other replica
   * to go to is not hedged. Writes, transactions, regions and streams are
   * never hedged. Set it above your usual read time: each hedge runs the read
   * twice. Off, it costs the read path nothing. Keep the health probes on: a
   * replica that stops answering then leaves rotation by its probes (or a
   * connection error), not by `readTimeout`, as the hedge answers first and
   * the slow statement is cancelled before its timeout.
   */
  readonly hedgeAfter?: Duration.DurationInput | undefined
  /**
   * Function names (beyond the built-in list) whose call makes a statement a
   * write; or `"catalog"`: the routed client reads `pg_proc` on the primary at
   * start and after every schema change it routes, and treats a call of any
   * `VOLATILE` function outside `pg_catalog` and `information_schema` as a
   * write (the check stays one set lookup per called name, and only for a
   * text not yet classified).
   */
  readonly sideEffectFunctions?: ReadonlyArray<string> | "catalog" | undefined
  readonly health?: HealthConfig | undefined
  readonly maxLag?: MaxLag | undefined
  readonly consistency?: ConsistencyConfig | undefined
  /** CDC rules (see `Cdc`), saved and loaded with the rest. */
  readonly cdc?: CdcConfig | undefined
}

/**
 * The validated configuration with every default filled in.
 *
 * @since 0.1.0
 * @category models
 */
export interface Resolved {
  readonly discovery: "manual" | "auto"
  /** Manual: the primary. Auto: the first host (a hint; discovery decides). */
  readonly primary: Redacted.Redacted<string>
  readonly primaryMaxSize: number
  /** Manual: the replicas. Auto: the other hosts. */
  readonly replicas: ReadonlyArray<Redacted.Redacted<string>>
  readonly replicaMaxSizeEach: number
  readonly selection: Selection
  readonly primaryReads: "fallback" | "overflow"
  readonly validate: ((connection: ValidationConnection) => Promise<boolean>) | undefined
  readonly connectTimeout: Duration.Duration
  readonly idleTimeout: Duration.Duration
  readonly applicationName: string
  readonly readTimeout: Duration.Duration | undefined
  /** Off when undefined. */
  readonly hedgeAfter: Duration.Duration | undefined
  readonly sideEffectFunctions: ReadonlyArray<string>
  /** `sideEffectFunctions: "catalog"`: the user's volatile functions are read from `pg_proc`. */
  readonly sideEffectCatalog: boolean
  readonly health: {
    readonly interval: Duration.Duration
    readonly timeout: Duration.Duration
    readonly failureThreshold: number
    readonly successThreshold: number
    readonly enabled: boolean
    readonly clock: "live" | "ambient"
    /** Off when undefined. */
    readonly slowStart?: Duration.Duration | undefined
  }
  readonly maxLag: {
    readonly time: Duration.Duration | undefined
    readonly bytes: number | undefined
  }
  readonly consistency: {
    readonly maxWait: Duration.Duration
    readonly onNotCaughtUp: "primary" | "fail"
    readonly stickyPrimaryAfterWrite: Duration.Duration | undefined
    readonly afterSchemaChange: Duration.Duration
    readonly tokenSecret: Redacted.Redacted<string>
  }
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
