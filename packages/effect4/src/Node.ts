/**
 * One PostgreSQL server as the router sees it: its own `@effect/sql-pg` 4
 * pool and client (the native wire-protocol driver, pipelined when
 * `multiplex` is on for its role), its pool statistics, and what the router
 * served on it.
 *
 * @since 0.1.0
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as SqlError from "effect/sql/SqlError"
import * as internal from "./internal/node.js"

/**
 * What a node is to the router: the primary or a replica.
 *
 * @since 0.1.0
 * @category models
 */
export type Role = "primary" | "replica"

/**
 * Pool occupancy, as the node's `PgPool` counts it.
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolStats {
  readonly total: number
  readonly inUse: number
  readonly idle: number
  readonly waiting: number
  readonly max: number
}

/**
 * A node: its identity, its client and what the router served on it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Node {
  /** `primary`, `replica-0`, `replica-1`, … */
  readonly id: string
  /** The role as last known: it changes when a replica is promoted or discovery sees a failover. */
  readonly role: Role
  /** Host and port, for display; never the password. */
  readonly address: string
  readonly url: Redacted.Redacted<string>
  /** The server's direct URL (`RouterConfig` `direct`), when `url` is a pooler's: LISTEN and CDC use it. */
  readonly direct?: Redacted.Redacted<string> | undefined
  /**
   * The node's own `@effect/sql-pg` 4 client over its pool. A replica's
   * transactions begin `BEGIN READ ONLY`. Statements on it bypass the router.
   */
  readonly client: PgClient.PgClient
  /** Statements served through the router, by intent. */
  readonly served: { reads: number; writes: number }
  /** The pool's occupancy now. */
  readonly stats: Effect.Effect<PoolStats>
}

/**
 * What a node is made from: the resolved per-node settings of the router's
 * config.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly id: string
  readonly role: Role
  readonly url: Redacted.Redacted<string>
  /** The server's direct URL, when `url` is a pooler's: LISTEN and CDC use it. */
  readonly direct?: Redacted.Redacted<string> | undefined
  readonly maxSize: number
  readonly minSize?: number | undefined
  readonly connectTimeout: Duration.Duration
  readonly idleTimeout: Duration.Duration
  readonly applicationName: string
  /** Pipeline statements on shared connections (`@effect/sql-pg`'s `multiplex`). */
  readonly multiplex?: boolean | undefined
  readonly multiplexConcurrency?: number | undefined
  /** Named prepared statements; off behind PgBouncer in transaction mode. */
  readonly prepare?: boolean | undefined
  /** As in `PgClient`: applied by the node's client and the routed client alike. */
  readonly transformResultNames?: ((s: string) => string) | undefined
  readonly transformQueryNames?: ((s: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  /** Extra attributes on this node's `sql.execute` spans. */
  readonly spanAttributes?: Record<string, unknown> | undefined
}

/**
 * Opens a node's pool in the current scope; closing the scope closes it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Node, SqlError.SqlError, Scope.Scope> = internal.make
