/**
 * The workloads' facts both lines' benchmarks share: the mix's table and its
 * keys, the statements' text, the pool size per server and the servers'
 * settings, so that the two lines' figures come from the same load.
 */

/** Rows of `bench_kv`; the mix picks keys uniformly in 1..keys. */
export const keys = 1000

/** Default pool size per server (P). */
export const defaultPoolSize = 10

/**
 * Server settings for the benchmark cluster: every system keeps its pools
 * open for the whole run (up to 3P connections per system and server, more
 * with pgpool-II): well above the default 100.
 */
export const serverSettings: Readonly<Record<string, string>> = { max_connections: "400" }

/** Run on the primary before any measurement, then replicated: the mix's table. */
export const setupStatements: ReadonlyArray<string> = [
  "CREATE TABLE bench_kv (k int PRIMARY KEY, v bigint NOT NULL DEFAULT 0)",
  `INSERT INTO bench_kv (k) SELECT generate_series(1, ${keys})`,
  "VACUUM ANALYZE bench_kv"
]

/** The statements, as a driver that takes `$1` parameters runs them. */
export const statements = {
  select1: "SELECT 1",
  sleep: "SELECT pg_sleep(0.005)",
  read: "SELECT v FROM bench_kv WHERE k = $1",
  write: "UPDATE bench_kv SET v = v + 1 WHERE k = $1"
} as const

/** One step of the 90/10 mix: a key uniform in 1..keys, a write with probability 0.1. */
export const mixStep = (random: () => number = Math.random): { readonly write: boolean; readonly k: number } => {
  const k = 1 + Math.floor(random() * keys)
  return { write: random() < 0.1, k }
}
