/**
 * effect-sql-router: one PostgreSQL primary and many streaming replicas used
 * as one database from Effect and `@effect/sql`.
 *
 * @since 0.1.0
 */

/**
 * Decides whether a PostgreSQL statement may run on a streaming replica.
 *
 * @since 0.1.0
 */
export * as Classifier from "./Classifier.js"

/**
 * Subscriptions that survive lost connections, as a `Stream` (LISTEN included).
 *
 * @since 0.1.0
 */
export * as Durable from "./Durable.js"

/**
 * A causal session as a short signed string, so that it can cross processes.
 *
 * @since 0.1.0
 */
export * as CausalToken from "./CausalToken.js"

/**
 * Read-your-writes on top of eventually consistent replicas: causal sessions and
 * bounded staleness.
 *
 * @since 0.1.0
 */
export * as Consistency from "./Consistency.js"

/**
 * Background health and lag probes of every node.
 *
 * @since 0.1.0
 */
export * as HealthMonitor from "./HealthMonitor.js"

/**
 * One PostgreSQL server as the router sees it: its pool and clients.
 *
 * @since 0.1.0
 */
export * as Node from "./Node.js"

/**
 * A `SqlClient` (and `PgClient`) that routes every statement to the primary or a
 * replica.
 *
 * @since 0.1.0
 */
export * as RoutedClient from "./RoutedClient.js"

/**
 * What the router needs to know, validated when its layer is built.
 *
 * @since 0.1.0
 */
export * as RouterConfig from "./RouterConfig.js"

/**
 * The typed failures of the router.
 *
 * @since 0.1.0
 */
export * as RouterError from "./RouterError.js"

/**
 * Replica selection strategies as pure STM functions over the topology.
 *
 * @since 0.1.0
 */
export * as Selection from "./Selection.js"

/**
 * The router: one primary and any number of streaming replicas used as one
 * database.
 *
 * @since 0.1.0
 */
export * as SqlRouter from "./SqlRouter.js"

/**
 * The router's shared state, in STM.
 *
 * @since 0.1.0
 */
export * as Topology from "./Topology.js"

/**
 * The Conductor's event log on the router: typed read-only and read-write
 * transactions, optimistic appends, projection versions and a listener.
 *
 * @since 0.1.0
 */
export * as EventLog from "./EventLog.js"

/**
 * Change data capture from the primary over logical replication, and CDC
 * rules that apply it to another store.
 *
 * @since 0.1.0
 */
export * as Cdc from "./Cdc.js"
