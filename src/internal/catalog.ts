/** @internal */
import * as Effect from "effect/Effect"

// Every question the router asks PostgreSQL about itself lives here: recovery
// state, WAL positions, timelines, the WAL receiver, the cluster's identity.
// Callers pass a `Query` (first row of one statement) so that where the
// statement runs (a pool checkout, a probe with a timeout) stays theirs.

/** Runs one statement and gives its first row. @internal */
export type Query = <A>(sql: string) => Effect.Effect<A, unknown>

/** `16/B374D848` → bigint. @internal */
export const parseLsn = (text: string | null | undefined): bigint | undefined => {
  if (!text) return undefined
  const slash = text.indexOf("/")
  if (slash < 0) return undefined
  return (BigInt(`0x${text.slice(0, slash)}`) << 32n) + BigInt(`0x${text.slice(slash + 1)}`)
}

/** bigint → `16/B374D848`. @internal */
export const formatLsn = (lsn: bigint): string =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`

const loopback = new Set(["localhost", "127.0.0.1", "::1", "::ffff:127.0.0.1"])

/**
 * `host:port` in one spelling: lower case, every loopback name as one.
 * @internal
 */
export const address = (host: string, port: number | string): string => {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1")
  return `${loopback.has(h) ? "loopback" : h}:${port}`
}

/** What a node says about itself: the question discovery and the primary's probe ask. @internal */
export interface NodeRole {
  readonly standby: boolean
  /** Current WAL position on a primary, replay position on a standby. */
  readonly lsn: bigint | undefined
  /** The primary's timeline (undefined on a standby). */
  readonly timeline: number | undefined
  /** How the server names itself: the address our connection reached, with its port. */
  readonly self: string | undefined
}

// pg_walfile_name() names the segment by the timeline WAL is written on now;
// pg_control_checkpoint() would lag a promotion until its first checkpoint.
const roleSql = `SELECT pg_is_in_recovery() AS standby,
  (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
  CASE WHEN pg_is_in_recovery() THEN NULL
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline,
  host(inet_server_addr()) AS server_host, current_setting('port') AS server_port`

interface RoleRow {
  readonly standby: boolean
  readonly lsn: string | null
  readonly timeline: number | null
  readonly server_host: string | null
  readonly server_port: string | null
}

const selfOf = (row: { readonly server_host: string | null; readonly server_port: string | null }) =>
  row.server_host && row.server_port ? address(row.server_host, row.server_port) : undefined

/** @internal */
export const role = (query: Query): Effect.Effect<NodeRole, unknown> =>
  Effect.map(query<RoleRow>(roleSql), (row) => ({
    standby: row.standby,
    lsn: parseLsn(row.lsn),
    timeline: row.timeline ?? undefined,
    self: selfOf(row)
  }))

/**
 * A standby's WAL receiver as `pg_stat_wal_receiver` shows it. Without
 * `pg_read_all_stats` (e.g. `pg_monitor`) only its pid is visible: `visible`
 * is then false and nothing else is known.
 * @internal
 */
export interface Receiver {
  readonly visible: boolean
  readonly status: string | undefined
  /** The sender's `host:port` (see `address`), as the standby's `primary_conninfo` names it. */
  readonly sender: string | undefined
  readonly timeline: number | undefined
}

/** @internal */
export interface StandbyState {
  readonly standby: boolean
  readonly replayLsn: bigint | undefined
  /** Age of the last replayed commit, in milliseconds. */
  readonly behindMillis: number | undefined
  /** Undefined when no WAL receiver runs (not connected to any sender). */
  readonly receiver: Receiver | undefined
  readonly self: string | undefined
}

const standbySql = `SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS replay,
  (extract(epoch FROM (now() - pg_last_xact_replay_timestamp())) * 1000)::float8 AS behind_ms,
  r.pid AS receiver_pid, r.status, r.sender_host, r.sender_port, r.received_tli,
  host(inet_server_addr()) AS server_host, current_setting('port') AS server_port
FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true`

interface StandbyRow {
  readonly standby: boolean
  readonly replay: string | null
  readonly behind_ms: number | null
  readonly receiver_pid: number | null
  readonly status: string | null
  readonly sender_host: string | null
  readonly sender_port: number | null
  readonly received_tli: number | null
  readonly server_host: string | null
  readonly server_port: string | null
}

/** @internal */
export const standbyState = (query: Query): Effect.Effect<StandbyState, unknown> =>
  Effect.map(query<StandbyRow>(standbySql), (row) => ({
    standby: row.standby,
    replayLsn: parseLsn(row.replay),
    behindMillis: row.behind_ms ?? undefined,
    receiver: row.receiver_pid === null || row.receiver_pid === undefined
      ? undefined
      : {
        visible: row.status !== null && row.status !== undefined,
        status: row.status ?? undefined,
        sender: row.sender_host && row.sender_port ? address(row.sender_host, row.sender_port) : undefined,
        timeline: row.received_tli ?? undefined
      },
    self: selfOf(row)
  }))

/** The primary's WAL position now. @internal */
export const currentLsn = (query: Query): Effect.Effect<bigint | undefined, unknown> =>
  Effect.map(query<{ lsn: string | null }>("SELECT pg_current_wal_lsn()::text AS lsn"), (row) => parseLsn(row.lsn))

/** A standby's replay position now. @internal */
export const replayLsn = (query: Query): Effect.Effect<{ standby: boolean; replay: bigint | undefined }, unknown> =>
  Effect.map(
    query<{ standby: boolean; replay: string | null }>(
      "SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS replay"
    ),
    (row) => ({ standby: row.standby, replay: parseLsn(row.replay) })
  )

/** Whether a node is a standby, and its cluster's system identifier: asked once at start. @internal */
export const identitySql =
  "SELECT pg_is_in_recovery() AS standby, system_identifier::text AS system FROM pg_control_system()"

/** @internal */
export const promoteSql = "SELECT pg_promote(true, 60) AS ok"

/**
 * The user's functions that may write: `VOLATILE` ordinary functions outside
 * the system schemas, by qualified name. Procedures are reached with CALL,
 * which is a write anyway.
 * @internal
 */
export const volatileFunctionsSql = `SELECT n.nspname || '.' || p.proname AS name
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.provolatile = 'v' AND p.prokind = 'f'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`
