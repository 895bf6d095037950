/**
 * A real PostgreSQL primary with streaming replicas, as a scoped resource, for
 * testing code that routes between them. Servers come from the embedded
 * binaries on npm by default (no system install, no Docker), from Docker via
 * testcontainers, or from URLs you already run.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/cluster.js"

/**
 * Where the servers come from: `embedded` (default) runs the npm binaries
 * locally, `testcontainers` runs the official image in Docker, `external` uses
 * `PG_CLUSTER_PRIMARY_URL` and `PG_CLUSTER_REPLICA_URLS`.
 *
 * @since 0.1.0
 * @category models
 */
export type Backend = "embedded" | "testcontainers" | "external"

/**
 * The role a cluster node started with.
 *
 * @since 0.1.0
 * @category models
 */
export type Role = "primary" | "replica"

/**
 * One server of the cluster. `role` is the role it started with; after
 * `promote` ask the cluster (`primary`, `replicas`) or the server itself.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClusterNode {
  readonly name: string
  readonly role: Role
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
  readonly url: Redacted.Redacted<string>
}

/**
 * A harness operation that failed: a server that did not start, a control the
 * backend cannot perform, replication that did not catch up in time.
 *
 * @since 0.1.0
 * @category errors
 */
export class ClusterError extends Schema.TaggedError<ClusterError>("effect-sql-router/ClusterError")(
  "ClusterError",
  {
    operation: Schema.String,
    node: Schema.optional(Schema.String),
    /** The `settings` entry refused before anything started. */
    setting: Schema.optional(Schema.String),
    reason: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `PgCluster ${this.operation}${this.node ? ` on ${this.node}` : ""} failed: ${this.reason}`
  }
}

/**
 * Options of `awaitReplication`: which replicas to wait for, and for how long.
 *
 * @since 0.1.0
 * @category models
 */
export interface AwaitReplicationOptions {
  /** Replicas to wait for; default: every replica that is running, not frozen and not paused. */
  readonly replicas?: ReadonlyArray<ClusterNode> | undefined
  /** Default 30 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * The running cluster and its fault controls. Controls act on the whole
 * server: `kill` and `freeze` signal the postmaster and every backend.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgCluster {
  readonly backend: Backend
  /** Where the data directories and server logs live (embedded backend); removed at scope close. */
  readonly directory: string | undefined
  /** The current primary (changes after `promote`). */
  readonly primary: ClusterNode
  /** The current replicas (a promoted one leaves, an added one joins). */
  readonly replicas: ReadonlyArray<ClusterNode>
  /** Every node ever started, primary first. */
  readonly nodes: ReadonlyArray<ClusterNode>
  /** Clean, fast shutdown of one server; its data directory stays. */
  readonly stop: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /** Starts a stopped or killed server and waits until it accepts connections. */
  readonly start: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /** SIGKILL to the server and its backends: a crash. */
  readonly kill: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /** SIGSTOP: the server keeps its sockets but answers nothing. */
  readonly freeze: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /** SIGCONT after `freeze`. */
  readonly thaw: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /**
   * `pg_wal_replay_pause()` on a replica, waiting until replay has stopped
   * (`pg_get_wal_replay_pause_state()` is `paused`): it stays behind while
   * the primary moves on.
   */
  readonly pauseReplay: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /** `pg_wal_replay_resume()`. */
  readonly resumeReplay: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /**
   * `pg_promote()` on a replica, waiting until it accepts writes; it becomes
   * the cluster's `primary`. Other replicas are not re-pointed.
   */
  readonly promote: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /**
   * Re-points a running standby at another node (the primary, or another
   * standby for cascading replication) and waits until it streams from it:
   * what an HA manager does to the other standbys around a failover. A
   * standby that follows a standby goes on to the timeline that standby is
   * promoted to (`recovery_target_timeline = latest`). The setting is kept
   * with `ALTER SYSTEM`, so it survives a restart.
   *
   * @since 0.1.0
   */
  readonly follow: (node: ClusterNode, upstream: ClusterNode) => Effect.Effect<void, ClusterError>
  /** Waits until the replicas have replayed the primary's current WAL position. */
  readonly awaitReplication: (options?: AwaitReplicationOptions) => Effect.Effect<void, ClusterError>
  /**
   * Starts one more streaming replica of the current primary, a base backup
   * of it with the cluster's settings (embedded backend; the primary must be
   * running).
   */
  readonly addReplica: () => Effect.Effect<ClusterNode, ClusterError>
  /**
   * Stops a node and starts it again as a standby of the current primary,
   * its data as it is (embedded backend). This is what an HA manager does to
   * an old primary before it rewinds it: a node that diverged (took writes
   * after another was promoted) then serves reads in recovery but cannot
   * stream. It joins `replicas`; `awaitReplication` with no `replicas`
   * option waits for it too, so name the replicas that can catch up.
   *
   * @since 0.1.0
   */
  readonly restartAsStandby: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /**
   * Re-clones a node from the current primary and starts it as its
   * streaming standby (embedded backend): the low-level backup API
   * (`pg_backup_start`, a copy of the running primary's files,
   * `pg_backup_stop` and its `backup_label`), as the embedded binaries have
   * no `pg_basebackup` or `pg_rewind`. The node keeps its name, port and
   * settings; whatever it held that the primary does not is gone. Typical
   * use: an old primary rejoining after a failover.
   *
   * @since 0.1.0
   */
  readonly rejoinAsStandby: (node: ClusterNode) => Effect.Effect<void, ClusterError>
  /** Runs one statement on one node over a fresh connection. */
  readonly query: <A = Record<string, unknown>>(
    node: ClusterNode,
    sql: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<A>, ClusterError>
  /** `pg_is_in_recovery()` as the server reports it. */
  readonly isInRecovery: (node: ClusterNode) => Effect.Effect<boolean, ClusterError>
}

/**
 * The running cluster, as a service.
 *
 * @since 0.1.0
 * @category tags
 */
export const PgCluster: Context.Tag<PgCluster, PgCluster> = Context.GenericTag<PgCluster>(
  "effect-sql-router/testing/PgCluster"
)

/**
 * How many replicas to start, on which backend, and with which server settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Number of streaming replicas; default 2. */
  readonly replicas?: number | undefined
  /** Default: `PG_CLUSTER` from the environment, else `embedded`. */
  readonly backend?: Backend | undefined
  /** `wal_level` of every node; default `replica`. `logical` lets `Cdc` stream changes. */
  readonly walLevel?: "replica" | "logical" | undefined
  /**
   * Extra `postgresql.conf` settings, the same on every node, e.g.
   * `{ max_connections: "50" }`. Replicas (also those added or rejoined
   * later) are base backups of the running primary, so settings a standby
   * must not set below its primary's (`max_connections`,
   * `max_worker_processes`, `max_wal_senders`, `max_prepared_transactions`,
   * `max_locks_per_transaction`) may be raised or lowered. A setting the
   * harness can tell is wrong (not an integer where one is needed, out of
   * range, a line break, `port`) fails `make` with a `ClusterError` naming
   * it in `setting`.
   */
  readonly settings?: Readonly<Record<string, string>> | undefined
  /** How long a server may take to accept connections; default 60 seconds. */
  readonly startTimeout?: Duration.DurationInput | undefined
  /** Docker image for the testcontainers backend; default `postgres:17-alpine`. */
  readonly image?: string | undefined
}

/**
 * Starts a primary and its replicas; closing the scope stops every server and
 * removes every directory it made, also on failure or interruption.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PgCluster } from "effect-sql-router/testing"
 *
 * const program = Effect.gen(function* () {
 *   const cluster = yield* PgCluster.make({ replicas: 2 })
 *   yield* cluster.query(cluster.primary, "CREATE TABLE t (id int)")
 *   yield* cluster.awaitReplication()
 *   yield* cluster.kill(cluster.replicas[0]!)
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<PgCluster, ClusterError, Scope.Scope> = internal.make

/**
 * The cluster as a Layer; one per test file is the intended use.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<PgCluster, ClusterError> =>
  Layer.scoped(PgCluster, make(options))
