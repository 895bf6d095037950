/**
 * Change data capture from the current primary over PostgreSQL's logical
 * replication (`pgoutput`): a typed change stream, and the seed's CDC rules
 * (`addRule`, `removeRule`, `listRules`, `sync`, `stats`) that apply each
 * source transaction to any `effect/sql` client or to a `Sink`, at least
 * once and idempotently.
 *
 * The replication protocol is spoken through the `pg` package (the native
 * driver of `@effect/sql-pg` 4 does not speak it): an optional peer
 * dependency, loaded when the first CDC connection opens. Install it to use
 * this module; nothing else in the package needs it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as Sink from "effect/Sink"
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Stream from "effect/Stream"
import * as internal from "./internal/cdc/make.js"
import * as source from "./internal/cdc/source.js"
import * as stream from "./internal/cdc/stream.js"
import * as apply from "./internal/cdc/apply.js"
import * as errors from "./internal/cdc/errors.js"
import * as CdcSchema from "./internal/cdc/schema.js"
import type { SqlRouter } from "./SqlRouter.js"
import * as Changes from "@effect-sql-router/core/cdc/Changes"
import type * as Snapshot from "@effect-sql-router/core/cdc/Snapshot"
import type { Change, Lsn, Transaction } from "@effect-sql-router/core/cdc/Changes"

// -----------------------------------------------------------------------------
// Changes
// -----------------------------------------------------------------------------

/**
 * The change stream's model (`Change`, `RowChange`, `Transaction`, `Relation`,
 * `Row`, …) is the core's (`@effect-sql-router/core/cdc/Changes`), shared by
 * every Effect line; named here as before.
 *
 * @since 0.1.0
 */
export type {
  Begin, Change, Column, Commit, Delete, Insert, Lsn, Relation, Row, RowChange, SchemaChange, Transaction, Truncate, Update
} from "@effect-sql-router/core/cdc/Changes"

/**
 * One column's change inside a {@link SchemaChange}: `kind` (`add`, `drop`,
 * `type`), `column`, `oldType`/`newType` in the target's terms (the source's
 * `format_type` for PostgreSQL targets and sinks, the storage type for SQLite),
 * and for an added column the `backfill` value the source's existing rows have.
 *
 * @since 0.1.0
 */
export type { ColumnChange } from "@effect-sql-router/core/cdc/Schema"

// -----------------------------------------------------------------------------
// Errors
// -----------------------------------------------------------------------------

/**
 * The source could not be reached, refused a command, or the replication
 * connection was lost. Retried by `run` with backoff.
 *
 * @since 0.1.0
 * @category errors
 */
export const ReplicationError: typeof errors.ReplicationError = errors.ReplicationError

/**
 * The type of a {@link ReplicationError} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type ReplicationError = errors.ReplicationError

/**
 * The target did not take a transaction (it is down, or refused a
 * statement). Nothing of the transaction was applied; retried with backoff.
 *
 * @since 0.1.0
 * @category errors
 */
export const TargetError: typeof errors.TargetError = errors.TargetError

/**
 * The type of a {@link TargetError} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type TargetError = errors.TargetError

/**
 * A column whose type the targets cannot take; found before anything is
 * applied (at rule start, or when a table's new definition arrives).
 *
 * @since 0.1.0
 * @category errors
 */
export const UnsupportedType: typeof errors.UnsupportedType = errors.UnsupportedType

/**
 * The type of a {@link UnsupportedType} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type UnsupportedType = errors.UnsupportedType

/**
 * A snapshot's progress in `stats`: rows copied, the source's estimate of
 * the rows to copy (`pg_class.reltuples`), rows per second, estimated
 * seconds left and the table being copied.
 *
 * @since 0.1.0
 * @category models
 */
export type SnapshotProgress = Snapshot.Progress

/**
 * A table without a primary key (or whose replica identity cannot name a
 * deleted row): upserts and deletes by key would be impossible.
 *
 * @since 0.1.0
 * @category errors
 */
export const MissingPrimaryKey: typeof errors.MissingPrimaryKey = errors.MissingPrimaryKey

/**
 * The type of a {@link MissingPrimaryKey} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type MissingPrimaryKey = errors.MissingPrimaryKey

/**
 * A rule names a table that the source does not have, or `resnapshot`
 * names a table that is not the rule's (`reason` says which).
 *
 * @since 0.1.0
 * @category errors
 */
export const UnknownTable: typeof errors.UnknownTable = errors.UnknownTable

/**
 * The type of a {@link UnknownTable} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type UnknownTable = errors.UnknownTable

/**
 * No rule has the given name.
 *
 * @since 0.1.0
 * @category errors
 */
export const UnknownRule: typeof errors.UnknownRule = errors.UnknownRule

/**
 * The type of a {@link UnknownRule} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type UnknownRule = errors.UnknownRule

/**
 * A rule that cannot work: a bad field (named), an unknown target, a name
 * already taken, or a rule already running.
 *
 * @since 0.1.0
 * @category errors
 */
export const InvalidRule: typeof errors.InvalidRule = errors.InvalidRule

/**
 * The type of a {@link InvalidRule} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type InvalidRule = errors.InvalidRule

/**
 * A table's definition changed on the source (a column added, dropped or
 * retyped, named with its old and new type) and the rule's `schemaChanges`
 * is `"fail"`, or the target cannot follow it (`reason`: a SQLite type
 * change, a key column dropped). Not retried: the rule stops, and starts
 * again once the target has the new columns or the rule says `"apply"`.
 *
 * @since 0.1.0
 * @category errors
 */
export const SchemaChanged: typeof errors.SchemaChanged = errors.SchemaChanged

/**
 * The type of a {@link SchemaChanged} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type SchemaChanged = errors.SchemaChanged

/**
 * A `TRUNCATE` of the named tables reached a rule whose `truncate` is
 * `"fail"`. Not retried: the rule stops before the truncating transaction.
 *
 * @since 0.1.0
 * @category errors
 */
export const TruncateRefused: typeof errors.TruncateRefused = errors.TruncateRefused

/**
 * The type of a {@link TruncateRefused} failure.
 *
 * @since 0.1.0
 * @category errors
 */
export type TruncateRefused = errors.TruncateRefused

/**
 * Every failure of the CDC module.
 *
 * @since 0.1.0
 * @category errors
 */
export type CdcError =
  | ReplicationError
  | TargetError
  | UnsupportedType
  | MissingPrimaryKey
  | UnknownTable
  | UnknownRule
  | InvalidRule
  | SchemaChanged
  | TruncateRefused

// -----------------------------------------------------------------------------
// The change stream
// -----------------------------------------------------------------------------

/**
 * Where the primary is: a URL, or an effect asked again on every
 * (re)connection, so the stream follows a failover.
 *
 * @since 0.1.0
 * @category models
 */
export type Primary = Redacted.Redacted<string> | Effect.Effect<Redacted.Redacted<string>>

/**
 * Options of the raw change stream: the slot and publication, and what to create or adopt.
 *
 * @since 0.1.0
 * @category models
 */
export interface StreamOptions {
  readonly primary: Primary
  /** The logical slot to read; created (without snapshot) if missing, adopted if present. */
  readonly slot: string
  /** The publication to read; created for `tables` if missing, adopted if present. */
  readonly publication: string
  /** Needed only when the publication has to be created. */
  readonly tables?: ReadonlyArray<string> | undefined
  /** Create the slot with `failover` (PostgreSQL 17+: standbys with `sync_replication_slots` keep a copy). */
  readonly failover?: boolean | undefined
  /** How often the position is reported to the server; default 1 second. */
  readonly statusInterval?: Duration.Input | undefined
  /** Default `effect-sql-router-cdc`. */
  readonly applicationName?: string | undefined
}

/**
 * The slot's changes as a stream. Columns of any type come through (a type
 * outside the README's mapping as the server's text); `tables` without a
 * primary key are refused. A `Commit` is acknowledged (the slot may
 * forget the transaction) when the element after it is pulled, that is once
 * your processing of the commit finished; a stream that ends or fails before
 * then gets the transaction again next time.
 *
 * @example
 * ```ts
 * import { Effect, Redacted, Stream } from "effect"
 * import { Cdc } from "@effect-sql-router/effect4"
 *
 * const program = Cdc.changes({
 *   primary: Redacted.make("postgres://app@db:5432/app"),
 *   slot: "audit",
 *   publication: "audit",
 *   tables: ["users"]
 * }).pipe(
 *   Stream.runForEach((change) => Effect.log(change._tag))
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const changes: (
  options: StreamOptions
) => Stream.Stream<Change, ReplicationError | UnknownTable | MissingPrimaryKey | UnsupportedType> = stream.changes

/**
 * Drops a slot and, if this library created it, a publication.
 *
 * @since 0.1.0
 * @category constructors
 */
export const drop: (options: {
  readonly primary: Primary
  readonly slot: string
  readonly publication?: string | undefined
}) => Effect.Effect<void, ReplicationError> = stream.drop

/**
 * An LSN as a number of bytes, for comparing and subtracting positions.
 *
 * @since 0.1.0
 * @category utils
 */
export const parseLsn: (lsn: Lsn) => bigint = Changes.parseLsn

/**
 * A byte position printed as PostgreSQL 18 prints an LSN (`0/016B3748`).
 *
 * @since 0.1.0
 * @category utils
 */
export const formatLsn: (lsn: bigint) => Lsn = Changes.formatLsn

// -----------------------------------------------------------------------------
// Targets
// -----------------------------------------------------------------------------

/**
 * Where a rule applies transactions. Build one with `sqlTarget` or
 * `sinkTarget`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Target {
  readonly _tag: "SqlTarget" | "SinkTarget"
  /** @internal */
  readonly open: apply.Open
  /** @internal */
  readonly request: apply.Request
}

/**
 * Options of a SQL target: the dialect and where the applied position is recorded.
 *
 * @since 0.1.0
 * @category models
 */
export interface SqlTargetOptions {
  /** `CREATE TABLE IF NOT EXISTS` each table with the mapped types; default true. */
  readonly createTables?: boolean | undefined
  /**
   * The table where the target records, in the same transaction as the
   * changes, the last LSN applied per rule; default `effect_sql_router_cdc`.
   */
  readonly stateTable?: string | undefined
}

/**
 * Any `effect/sql` client (PostgreSQL and SQLite dialects): each source
 * transaction is one target transaction (with the rule's `atomicity`
 * `"batch"`, one per batch of a source transaction larger than its
 * `batchSize`); inserts and updates are upserts on
 * the primary key, deletes are by key, a truncate deletes every row. The
 * target's own record of the last applied LSN makes a replay skip what is
 * already there.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sqlTarget: (client: SqlClient.SqlClient, options?: SqlTargetOptions) => Target = apply.sqlTarget

/**
 * Anything else: each transaction is run through the sink on its own; it
 * counts as delivered when the sink finishes. The sink must be idempotent
 * (the same transaction can come twice after a crash). A source transaction
 * larger than the rule's `batchSize` arrives in parts (`Transaction.part`),
 * each run through the sink as it is read, whatever the rule's `atomicity`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const sinkTarget: <E>(sink: Sink.Sink<unknown, Transaction, unknown, E>) => Target = apply.sinkTarget

// -----------------------------------------------------------------------------
// Rules
// -----------------------------------------------------------------------------

/**
 * The persisted form of a rule (the seed's `addReplicationRule`). `target`
 * names a target given to the layer; `slot` and `publication` default to
 * `cdc_<name>`; `snapshot` (default true) copies existing rows, in chunks
 * of `snapshotChunkSize` rows (default 5000) by primary key while the
 * stream flows;
 * `maxRetainedWalBytes` bounds the WAL the slot may hold on the primary
 * while its consumer is behind (a caught-up consumer whose slot has not yet
 * released WAL at the server's next running-transactions record keeps it);
 * `schemaChanges` (`"fail"` by default, or `"apply"`) says whether a column
 * added, dropped or retyped on the source stops the rule with
 * `SchemaChanged` or is applied to the target; `truncate` (`"apply"` by
 * default, or `"fail"`) whether a `TRUNCATE` empties the target's tables or
 * stops the rule with `TruncateRefused`; `unsupportedTypes` (default `"fail"`)
 * says whether a column of a type that is not mapped refuses the rule or
 * passes through as its text form (`"text"`).
 * `batchSize` (default 2 000) is the most changes of a source transaction
 * held in memory: a larger one is streamed to the target in batches of that
 * size, and `atomicity` says what the target sees of it: `"transaction"`
 * (default) writes every batch into one target transaction committed with
 * the source commit; `"batch"` commits each batch (shorter locks, the target
 * shows the source transaction in part until its last batch).
 *
 * @since 0.1.0
 * @category models
 */
export const Rule = CdcSchema.Rule

/**
 * A CDC rule (the seed's replication rule): its name, tables, target and conflict resolution.
 *
 * @since 0.1.0
 * @category models
 */
export type Rule = typeof CdcSchema.Rule.Type

/**
 * The rules as `RouterConfig` embeds them (`cdc` field): saved by
 * `RouterConfig.save`, restored by `load`.
 *
 * @since 0.1.0
 * @category models
 */
export const Config = CdcSchema.Config

/**
 * The CDC part of a saved router configuration: its rules.
 *
 * @since 0.1.0
 * @category models
 */
export type Config = typeof CdcSchema.Config.Type

/**
 * A rule's progress (the seed's `getSyncStats`). Lag and retained WAL are
 * read from the primary when asked (undefined when it cannot be reached).
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly rule: string
  readonly running: boolean
  readonly changesApplied: number
  readonly transactionsApplied: number
  readonly lastAppliedLsn: Lsn | undefined
  /** Source commit time of the last applied transaction. */
  readonly lastCommitTime: Date | undefined
  /** From that commit on the source to its apply on the target. */
  readonly applyLagMillis: number | undefined
  /** WAL on the primary not yet confirmed by the slot. */
  readonly lagBytes: number | undefined
  /** WAL the slot keeps on the primary's disk. */
  readonly retainedWalBytes: number | undefined
  readonly retries: number
  readonly errors: number
  readonly restarts: number
  readonly lastError: string | undefined
  /**
   * The last snapshot started in this process (undefined if none): running
   * or finished, with rows copied, the source's row estimate, rows per
   * second and estimated seconds left.
   */
  readonly snapshot: SnapshotProgress | undefined
}

/**
 * What one `sync` did.
 *
 * @since 0.1.0
 * @category models
 */
export interface SyncResult {
  readonly transactions: number
  readonly changes: number
  readonly lsn: Lsn
  /** True when snapshot chunks were applied in this session (new slot, resumed snapshot, or `resnapshot`). */
  readonly snapshot: boolean
}

/**
 * The CDC rules of one application.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cdc {
  readonly addRule: (rule: Rule) => Effect.Effect<void, InvalidRule>
  /** Stops the rule, drops its slot and (if ours) its publication unless `keepSlot`. */
  readonly removeRule: (
    name: string,
    options?: { readonly keepSlot?: boolean | undefined }
  ) => Effect.Effect<void, UnknownRule | ReplicationError>
  readonly listRules: Effect.Effect<ReadonlyArray<Rule>>
  /** The rules in `RouterConfig`'s form, for `RouterConfig.save`. */
  readonly config: Effect.Effect<Config>
  /** Applies what the primary has now (its current LSN at the call), then returns. */
  readonly sync: (name: string) => Effect.Effect<SyncResult, CdcError>
  /**
   * Follows the rule for ever in a fiber of the current scope: lost
   * connections and target failures are retried with backoff (counted in
   * `stats`); the fiber fails only on what a retry cannot fix (unsupported
   * type, missing key, unknown table, a schema change or truncate the rule refuses).
   */
  readonly run: (name: string) => Effect.Effect<Fiber.Fiber<never, CdcError>, UnknownRule | InvalidRule, Scope.Scope>
  /**
   * The rule's counters and, from the source, its slot's lag and retained
   * WAL (undefined when the source cannot be asked). The source is asked on
   * one connection the service keeps: opened at the first call, replaced
   * when lost or when the primary moves, closed with the service's scope.
   */
  readonly stats: (name: string) => Effect.Effect<Stats, UnknownRule>
  /**
   * Copies tables of a rule again (all of them by default), chunk by chunk
   * while the stream flows: by the running session, else by the next
   * `sync` or `run`. Each table is emptied on the target before its first
   * chunk. A SQL target keeps the request (in `<stateTable>_resnapshot`)
   * before this returns, until a session takes it: the next session of any
   * process takes it if this one stops first; a sink keeps no state, so its
   * requests live in this process only. Fails with `UnknownTable` for a
   * table the rule does not have, `TargetError` when the target could not
   * keep the request (nothing is asked then).
   */
  readonly resnapshot: (
    name: string,
    tables?: ReadonlyArray<string>
  ) => Effect.Effect<void, UnknownRule | UnknownTable | TargetError>
  /**
   * Drops the slot of every rule whose slot holds more WAL than its
   * `maxRetainedWalBytes` while its consumer is more than that behind (its
   * next run starts over with a snapshot);
   * returns their names. The layer runs it every `retentionCheckInterval`.
   */
  readonly enforceRetention: Effect.Effect<ReadonlyArray<string>>
}

/**
 * The CDC service's tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const Cdc: Context.Service<Cdc, Cdc> = Context.Service<Cdc>("effect-sql-router/Cdc")

/**
 * Options of {@link make} and {@link layer}: the source, the targets by name and the rules.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Where the primary is; `layerRouter` takes it from the `SqlRouter`. */
  readonly primary: Primary
  readonly targets: Readonly<Record<string, Target>>
  /** Rules to start with, e.g. `RouterConfig.load(path)`'s `cdc.rules`. */
  readonly rules?: ReadonlyArray<Rule> | undefined
  /**
   * Called with the rule set after every `addRule` and `removeRule` (the
   * seed's `enableAutoPersist`), e.g.
   * `(cdc) => RouterConfig.save({ ...routerConfig, cdc }, path)`. A failure
   * is logged, not raised.
   */
  readonly persist?: ((config: Config) => Effect.Effect<void, unknown>) | undefined
  /** Rules run at layer start (default: none; call `run`). */
  readonly autoRun?: boolean | undefined
  /** First retry delay; doubles up to `maxRetryDelay`. Default 100 millis. */
  readonly retryDelay?: Duration.Input | undefined
  /** Default 5 seconds. */
  readonly maxRetryDelay?: Duration.Input | undefined
  /** How often the position is reported to the server; default 1 second. */
  readonly statusInterval?: Duration.Input | undefined
  /** Default 30 seconds. */
  readonly retentionCheckInterval?: Duration.Input | undefined
  /** Default `effect-sql-router-cdc`. */
  readonly applicationName?: string | undefined
}

/**
 * Builds the service; rules run by `run` (or `autoRun`) stop when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Cdc, InvalidRule, Scope.Scope> = internal.make

/**
 * The CDC service as a layer (see {@link make}).
 *
 * @example
 * ```ts
 * import { SqlClient } from "effect/sql"
 * import { Effect, Layer, Redacted } from "effect"
 * import { Cdc } from "@effect-sql-router/effect4"
 *
 * const CdcLive = Layer.unwrap(Effect.map(SqlClient.SqlClient, (analytics) =>
 *   Cdc.layer({
 *     primary: Redacted.make("postgres://app@db:5432/app"),
 *     targets: { analytics: Cdc.sqlTarget(analytics) },
 *     rules: [{ name: "users_to_analytics", tables: ["users"], target: "analytics" }]
 *   })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<Cdc, InvalidRule> => Layer.effect(Cdc, make(options))

/**
 * The primary as the router knows it now (it follows `SqlRouter.promote` and
 * automatic discovery).
 *
 * @since 0.1.0
 * @category constructors
 */
export const primaryFromRouter: Effect.Effect<Redacted.Redacted<string>, never, SqlRouter> = source.primaryFromRouter

/**
 * The service with the router's current primary as its source.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRouter = (options: Omit<Options, "primary">): Layer.Layer<Cdc, InvalidRule, SqlRouter> =>
  Layer.effect(
    Cdc,
    Effect.flatMap(Effect.context<SqlRouter>(), (context) =>
      make({ ...options, primary: Effect.provideContext(primaryFromRouter, context) }))
  )

/**
 * Adds a rule (validated against its target and the source) to the service.
 *
 * @since 0.1.0
 * @category accessors
 */
export const addRule = (rule: Rule): Effect.Effect<void, InvalidRule, Cdc> => Cdc.use((cdc) => cdc.addRule(rule))

/**
 * Stops a rule and drops its slot (and the publication it created).
 *
 * @since 0.1.0
 * @category accessors
 */
export const removeRule = (
  name: string,
  options?: { readonly keepSlot?: boolean | undefined }
): Effect.Effect<void, UnknownRule | ReplicationError, Cdc> => Cdc.use((cdc) => cdc.removeRule(name, options))

/**
 * The rules the service holds.
 *
 * @since 0.1.0
 * @category accessors
 */
export const listRules: Effect.Effect<ReadonlyArray<Rule>, never, Cdc> = Cdc.use((cdc) => cdc.listRules)

/**
 * Catches a rule up to the primary's current LSN once, then stops.
 *
 * @since 0.1.0
 * @category accessors
 */
export const sync = (name: string): Effect.Effect<SyncResult, CdcError, Cdc> => Cdc.use((cdc) => cdc.sync(name))

/**
 * Follows a rule for ever, as a fiber of the current scope.
 *
 * @since 0.1.0
 * @category accessors
 */
export const run = (
  name: string
): Effect.Effect<Fiber.Fiber<never, CdcError>, UnknownRule | InvalidRule, Cdc | Scope.Scope> =>
  Cdc.use((cdc) => cdc.run(name))

/**
 * A rule's statistics: changes and transactions applied, last LSN, lag, retries, errors and restarts.
 *
 * @since 0.1.0
 * @category accessors
 */
export const stats = (name: string): Effect.Effect<Stats, UnknownRule, Cdc> => Cdc.use((cdc) => cdc.stats(name))

/**
 * Copies tables of a rule again (all by default), in chunks while the stream flows.
 *
 * @since 0.1.0
 * @category accessors
 */
export const resnapshot = (
  name: string,
  tables?: ReadonlyArray<string>
): Effect.Effect<void, UnknownRule | UnknownTable | TargetError, Cdc> => Cdc.use((cdc) => cdc.resnapshot(name, tables))
