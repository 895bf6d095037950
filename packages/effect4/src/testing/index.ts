/**
 * Test support: a real replicated PostgreSQL cluster for your own tests.
 *
 * @since 0.1.0
 */
export * as PgCluster from "./PgCluster.js"
