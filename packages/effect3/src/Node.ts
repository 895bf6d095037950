/**
 * One PostgreSQL server as the router sees it: its own `pg.Pool` (so pool
 * statistics are readable), a `PgClient` over that pool for code that wants
 * an `@effect/sql` client, and a lean per-statement connection for the routed
 * client's hot path.
 *
 * @since 0.1.0
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as Connection from "@effect/sql/SqlConnection"
import type * as Reactivity from "@effect/experimental/Reactivity"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type Pg from "pg"
import * as internal from "./internal/node.js"
import type { ValidationConnection } from "./RouterConfig.js"

/**
 * What a node is to the router: the primary or a replica.
 *
 * @since 0.1.0
 * @category models
 */
export type Role = "primary" | "replica"

/**
 * Pool occupancy, as `pg.Pool` counts it.
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
 * One server of the router. Logged, inspected, stringified or turned into
 * JSON, a node shows its `id`, `role` and `address` only: its pool's options
 * hold the connection string, password included.
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
  readonly pool: Pg.Pool
  /** An `@effect/sql-pg` client over this node's pool; a replica's transactions are `BEGIN READ ONLY`. */
  readonly client: PgClient.PgClient
  /** One statement, one pooled connection: no reserve/scope round trip. */
  readonly connection: Connection.Connection
  /** Statements served through the router, by intent. */
  readonly served: { reads: number; writes: number }
  readonly stats: () => PoolStats
}

/**
 * How to build a node: its id and role, the server's URL, and the pool's size and
 * timeouts.
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
  /** Connections the pool keeps open once opened, however idle (pg-pool's `min`); default 0. */
  readonly minSize?: number | undefined
  readonly connectTimeout: Duration.Duration
  readonly idleTimeout: Duration.Duration
  readonly applicationName: string
  readonly validate?: ((connection: ValidationConnection) => Promise<boolean>) | undefined
  /** `pg` type parsers for this node's connections. */
  readonly types?: Pg.CustomTypesConfig | undefined
  /** As in `PgClient`: applied by the node's client (regions) and the routed client alike. */
  readonly transformResultNames?: ((s: string) => string) | undefined
  readonly transformQueryNames?: ((s: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  /** Extra attributes on this node's `sql.execute` spans. */
  readonly spanAttributes?: Record<string, unknown> | undefined
}

/**
 * Creates the node's pool and clients; closing the scope ends the pool (time-boxed).
 * No connection is opened here: a replica that is down at start is not an error.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Node, never, Scope.Scope | Reactivity.Reactivity> =
  internal.make
