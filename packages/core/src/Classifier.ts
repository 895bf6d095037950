/**
 * Decides whether a PostgreSQL statement may run on a streaming replica.
 *
 * The classifier is conservative: misrouting a write to a replica is a bug,
 * misrouting a read to the primary only costs load, so anything it does not
 * understand is a write. It lexes the statement once (comments, nested block
 * comments, every kind of string literal, dollar quotes and quoted identifiers
 * are skipped) and never parses it, so it assumes `standard_conforming_strings`
 * is on (the default since PostgreSQL 9.1).
 *
 * @since 0.1.0
 */
import * as internal from "./internal/classifier.js"

/**
 * Where a statement may run: `"read"` on a replica, `"write"` on the primary.
 *
 * @since 0.1.0
 * @category models
 */
export type Intent = "read" | "write"

/**
 * Why a statement got its intent.
 *
 * Reads:
 * - `read-statement`: a `SELECT`, `WITH`, `VALUES`, `TABLE` or `SHOW` with nothing that writes.
 * - `explain-only`: `EXPLAIN` without `ANALYZE`, which plans but does not run its statement.
 * - `explain-analyze-read`: `EXPLAIN ANALYZE` of a read.
 * - `copy-to-stdout`: `COPY … TO STDOUT`.
 *
 * Writes:
 * - `empty`: no statement at all (blank, only comments or `;`).
 * - `not-a-read`: the first keyword is not one of the read keywords; `detail` is the keyword.
 * - `schema-change`: the statement starts with `CREATE`, `ALTER`, `DROP`, `COMMENT`, `GRANT`,
 *   `REVOKE`, `SECURITY LABEL`, `IMPORT FOREIGN SCHEMA` or `DO`; `detail` is the keyword.
 * - `unparseable`: an unterminated literal, identifier or comment, unbalanced parentheses,
 *   a `U&"…"` identifier (its escapes can spell any function name) or another shape the
 *   classifier does not understand; `detail` says which.
 * - `locking-clause`: `FOR UPDATE`, `FOR NO KEY UPDATE`, `FOR SHARE` or `FOR KEY SHARE` anywhere.
 * - `select-into`: an `INTO` keyword anywhere.
 * - `data-modifying-statement`: an `INSERT`, `UPDATE`, `DELETE` or `MERGE` keyword anywhere,
 *   as in a data-modifying CTE or `WITH … INSERT`.
 * - `multiple-statements`: something other than comments or `;` after a `;`.
 * - `side-effect-function`: a call of a side-effecting function; `detail` is its name.
 * - `explain-analyze-write`: `EXPLAIN ANALYZE` of a write; `detail` is the inner reason.
 * - `copy-from`: `COPY … FROM`.
 * - `copy-to-server`: `COPY … TO 'file'` or `TO PROGRAM`, which act on the server that runs them.
 *
 * @since 0.1.0
 * @category models
 */
export type Reason =
  | "read-statement"
  | "explain-only"
  | "explain-analyze-read"
  | "copy-to-stdout"
  | "empty"
  | "not-a-read"
  | "schema-change"
  | "unparseable"
  | "locking-clause"
  | "select-into"
  | "data-modifying-statement"
  | "multiple-statements"
  | "side-effect-function"
  | "explain-analyze-write"
  | "copy-from"
  | "copy-to-server"

/**
 * What the router needs to know of a statement: a `"read"`, a `"write"`, or a
 * `"schema-change"` (a write that may change the schema, anywhere in the
 * text: DDL, `GRANT`/`REVOKE`, `COMMENT`, `DO`). After a schema change the
 * router reads only from replicas that replayed it.
 *
 * @since 0.1.0
 * @category models
 */
export type StatementKind = "read" | "write" | "schema-change"

/**
 * A statement's intent with the reason for it and, for some reasons, a detail
 * such as the function name or the locking clause.
 *
 * @since 0.1.0
 * @category models
 */
export interface Classification {
  readonly intent: Intent
  readonly reason: Reason
  readonly detail?: string | undefined
}

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Extra side-effecting function names, matched case-insensitively. A
   * qualified name such as `audit.log_access` also matches unqualified and
   * otherwise qualified calls of `log_access`, since `search_path` decides
   * which schema a call reaches.
   */
  readonly sideEffectFunctions?: Iterable<string> | undefined
  /**
   * How many SQL texts `classify` remembers (default 4096); 0 disables the
   * cache. When full, the oldest entry is evicted.
   */
  readonly cacheSize?: number | undefined
}

/**
 * A statement classifier with its own function list and cache.
 *
 * @since 0.1.0
 * @category models
 */
export interface Classifier {
  /** The intent of a statement, remembered per SQL text: the routing hot path. */
  readonly classify: (sql: string) => Intent
  /** The kind of a statement (a read, a write, a schema change), remembered per SQL text. */
  readonly kind: (sql: string) => StatementKind
  /**
   * Replaces the functions found to write (for example the user's `VOLATILE`
   * functions read from `pg_proc`), kept beside the built-in and configured
   * ones, and forgets every remembered text.
   */
  readonly setDiscoveredFunctions: (names: Iterable<string>) => void
  /** The intent of a statement with its reason, computed afresh each time. */
  readonly explain: (sql: string) => Classification
  /** How many SQL texts the cache holds now, never more than `Options.cacheSize`. */
  readonly cacheSize: () => number
}

/**
 * Creates a classifier that also treats the given functions as side-effecting.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import * as Classifier from "@effect-sql-router/core/Classifier"
 *
 * const classifier = Classifier.make({ sideEffectFunctions: ["audit.log_access"] })
 *
 * classifier.classify("SELECT audit.log_access('report')") // "write"
 * classifier.explain("SELECT * FROM t FOR SHARE")
 * // { intent: "write", reason: "locking-clause", detail: "for share" }
 * ```
 */
export const make: (options?: Options | undefined) => Classifier = internal.make

/**
 * The built-in side-effecting function names; every name starting with
 * `pg_advisory_`, `pg_try_advisory_`, `lo_` or `pg_stat_reset` is one too.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultSideEffectFunctions: ReadonlySet<string> = internal.defaultSideEffectFunctions

/**
 * Classifies a statement with the built-in function list and the default cache.
 *
 * @since 0.1.0
 * @category utils
 * @example
 * ```ts
 * import * as Classifier from "@effect-sql-router/core/Classifier"
 *
 * Classifier.routeQueryType("SELECT * FROM users WHERE id = $1") // "read"
 * Classifier.routeQueryType("SELECT nextval('users_id_seq')") // "write"
 * Classifier.routeQueryType("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d") // "write"
 * ```
 */
export const routeQueryType: (sql: string) => Intent = internal.routeQueryType

/**
 * Classifies a statement with the built-in function list and tells why, without caching.
 *
 * @since 0.1.0
 * @category utils
 */
export const explain: (sql: string) => Classification = internal.explain

/**
 * Whether a statement may change the schema (see {@link StatementKind}).
 *
 * @since 0.1.0
 * @category utils
 * @example
 * ```ts
 * import * as Classifier from "@effect-sql-router/core/Classifier"
 *
 * Classifier.isSchemaChange("CREATE TABLE users (id int)") // true
 * Classifier.isSchemaChange("INSERT INTO users VALUES (1); DROP TABLE old") // true
 * Classifier.isSchemaChange("INSERT INTO users VALUES (1)") // false
 * ```
 */
export const isSchemaChange: (sql: string) => boolean = internal.isSchemaChange
