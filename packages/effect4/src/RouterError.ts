/**
 * The typed failures of the router. Each names what a caller needs to decide
 * what to do next, keeps the underlying cause, and never carries a password.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A configuration value that cannot work, found when the router's layer is
 * built; `field` is the path of the value (`replicas[1]`, `primaryMaxSize`)
 * and `reason` says what it must be (every allowed value, for an enum). The
 * reason never quotes the value: a password put in the wrong field stays out
 * of errors and logs.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>("effect-sql-router/InvalidConfig")(
  "InvalidConfig",
  {
    field: Schema.String,
    reason: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Invalid router config at ${this.field}: ${this.reason}`
  }
}

/**
 * No usable primary: unreachable at layer build (after the connect timeout),
 * a write met a node that turned read-only (a failover happened; the router
 * re-discovers at once), or several nodes accept writes (split brain:
 * `conflicting` names them, sorted; reads meanwhile follow the node on the
 * newest timeline). Writes are never retried by the router; retrying
 * the whole operation later may succeed.
 *
 * @since 0.1.0
 * @category errors
 */
export class PrimaryUnavailable extends Schema.TaggedError<PrimaryUnavailable>(
  "effect-sql-router/PrimaryUnavailable"
)("PrimaryUnavailable", {
  node: Schema.String,
  reason: Schema.String,
  /** Split brain: every node that accepts writes. */
  conflicting: Schema.optional(Schema.Array(Schema.String)),
  cause: Schema.optional(Schema.Defect())
}) {
  /**
   * Always true: the operation may succeed later, on the same primary once it
   * is back or on the node that replaced it.
   *
   * @since 0.1.0
   */
  readonly retryable = true

  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Primary ${this.node} is unavailable: ${this.reason}`
  }
}

/**
 * `withReplica` found no healthy replica within bounds (it does not fall back
 * to the primary; `withRead` does).
 *
 * @since 0.1.0
 * @category errors
 */
export class NoReplicaAvailable extends Schema.TaggedError<NoReplicaAvailable>(
  "effect-sql-router/NoReplicaAvailable"
)("NoReplicaAvailable", {
  configured: Schema.Number,
  healthy: Schema.Number
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return this.configured === 0
      ? "No replica is configured"
      : `No replica is available (${this.healthy} of ${this.configured} healthy, none eligible)`
  }
}

/**
 * A COMMIT that the server refused, e.g. a serialization failure (SQLSTATE
 * 40001) or a deferred constraint. The transaction was rolled back; `retryable`
 * says whether running the whole transaction again may succeed.
 *
 * @since 0.1.0
 * @category errors
 */
export class CommitFailed extends Schema.TaggedError<CommitFailed>("effect-sql-router/CommitFailed")(
  "CommitFailed",
  {
    node: Schema.String,
    sqlState: Schema.optional(Schema.String),
    reason: Schema.String,
    cause: Schema.optional(Schema.Defect())
  }
) {
  /**
   * Serialization failures and deadlocks are worth retrying; anything else is not.
   *
   * @since 0.1.0
   */
  get retryable(): boolean {
    return this.sqlState === "40001" || this.sqlState === "40P01"
  }

  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `COMMIT on ${this.node} failed${this.sqlState ? ` (SQLSTATE ${this.sqlState})` : ""}: ${this.reason}`
  }
}

/**
 * A replica name or index that the router does not know.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownReplica extends Schema.TaggedError<UnknownReplica>("effect-sql-router/UnknownReplica")(
  "UnknownReplica",
  {
    replica: Schema.Union([Schema.String, Schema.Number])
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Unknown replica: ${this.replica}`
  }
}

/**
 * A read in a causal session found no replica that has replayed the
 * session's last commit within `maxWait`, and the policy is `fail`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ReplicaNotCaughtUp extends Schema.TaggedError<ReplicaNotCaughtUp>(
  "effect-sql-router/ReplicaNotCaughtUp"
)("ReplicaNotCaughtUp", {
  /** The session's position, as `16/B374D848`. */
  required: Schema.String,
  waitedMillis: Schema.Number
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `No replica has replayed ${this.required} after waiting ${this.waitedMillis} ms`
  }
}

/**
 * A causal token that is malformed, signed with another key, or from another
 * cluster. It is never used for routing.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidToken extends Schema.TaggedError<InvalidToken>("effect-sql-router/InvalidToken")(
  "InvalidToken",
  {
    reason: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Invalid causal token: ${this.reason}`
  }
}

/**
 * `promote` refused: the replica is further behind the primary than allowed,
 * so promoting it would lose committed writes.
 *
 * @since 0.1.0
 * @category errors
 */
export class PromotionRefused extends Schema.TaggedError<PromotionRefused>("effect-sql-router/PromotionRefused")(
  "PromotionRefused",
  {
    replica: Schema.String,
    reason: Schema.String,
    behindBytes: Schema.optional(Schema.Number),
    cause: Schema.optional(Schema.Defect())
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Promotion of ${this.replica} refused: ${this.reason}`
  }
}

/**
 * A routed write got no answer within `writeTimeout`. The server was asked to
 * cancel it, but whether it took effect is unknown: a COMMIT (or an
 * autocommit statement) may have happened, e.g. while it waited for a
 * synchronous standby. The router never retries it; `retryable` says that
 * trying again is reasonable only for idempotent writes.
 *
 * @since 0.1.0
 * @category errors
 */
export class WriteOutcomeUnknown extends Schema.TaggedError<WriteOutcomeUnknown>(
  "effect-sql-router/WriteOutcomeUnknown"
)("WriteOutcomeUnknown", {
  node: Schema.String,
  timeoutMillis: Schema.Number
}) {
  /**
   * The caller may retry, knowing the first attempt may have taken effect.
   *
   * @since 0.1.0
   */
  readonly retryable = true

  /**
   * What happened, and that the outcome is unknown.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `No answer from ${this.node} within ${this.timeoutMillis} ms: the write was cancelled, ` +
      "but whether it took effect is unknown (never retried automatically)"
  }
}
