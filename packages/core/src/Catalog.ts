/**
 * Every question the router asks PostgreSQL about itself, as SQL text and the
 * decoder of its first row: recovery state, WAL positions, timelines, the WAL
 * receiver, the cluster's identity. Where and how a statement runs (a pool
 * checkout, a probe with a timeout, an Effect) is each line's business: it
 * runs `question.sql` and hands the row to `question.decode`.
 *
 * @since 0.1.0
 */
import { parseLsn } from "./Lsn.js"

/**
 * One statement and what its first row means.
 *
 * @since 0.1.0
 * @category models
 */
export interface Question<A> {
  readonly sql: string
  readonly decode: (row: any) => A
}

const loopback = new Set(["localhost", "127.0.0.1", "::1", "::ffff:127.0.0.1"])

/**
 * `host:port` in one spelling: lower case, every loopback name as one.
 *
 * @since 0.1.0
 * @category conversions
 */
export const address = (host: string, port: number | string): string => {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1")
  return `${loopback.has(h) ? "loopback" : h}:${port}`
}

/**
 * What a node says about itself: the question discovery and the primary's probe ask.
 *
 * @since 0.1.0
 * @category models
 */
export interface NodeRole {
  readonly standby: boolean
  /** Current WAL position on a primary, replay position on a standby. */
  readonly lsn: bigint | undefined
  /** The primary's timeline (undefined on a standby). */
  readonly timeline: number | undefined
  /** How the server names itself: the address our connection reached, with its port. */
  readonly self: string | undefined
}

interface RoleRow {
  readonly standby: boolean
  readonly lsn: string | null
  readonly timeline: number | null
  readonly server_host: string | null
  readonly server_port: string | null
}

const selfOf = (row: { readonly server_host: string | null; readonly server_port: string | null }) =>
  row.server_host && row.server_port ? address(row.server_host, row.server_port) : undefined

/**
 * Whether a node is in recovery, its WAL position, and (if writable) its timeline.
 *
 * @since 0.1.0
 * @category questions
 */
export const role: Question<NodeRole> = {
  // pg_walfile_name() names the segment by the timeline WAL is written on now;
  // pg_control_checkpoint() would lag a promotion until its first checkpoint.
  sql: `SELECT pg_is_in_recovery() AS standby,
  (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
  CASE WHEN pg_is_in_recovery() THEN NULL
       ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline,
  host(inet_server_addr()) AS server_host, current_setting('port') AS server_port`,
  decode: (row: RoleRow) => ({
    standby: row.standby,
    lsn: parseLsn(row.lsn),
    timeline: row.timeline ?? undefined,
    self: selfOf(row)
  })
}

/**
 * A standby's WAL receiver as `pg_stat_wal_receiver` shows it. Without
 * `pg_read_all_stats` (e.g. `pg_monitor`) only its pid is visible: `visible`
 * is then false and nothing else is known.
 *
 * @since 0.1.0
 * @category models
 */
export interface Receiver {
  readonly visible: boolean
  readonly status: string | undefined
  /** The sender's `host:port` (see `address`), as the standby's `primary_conninfo` names it. */
  readonly sender: string | undefined
  readonly timeline: number | undefined
}

/**
 * What a replica's probe learns.
 *
 * @since 0.1.0
 * @category models
 */
export interface StandbyState {
  readonly standby: boolean
  readonly replayLsn: bigint | undefined
  /** Age of the last replayed commit, in milliseconds. */
  readonly behindMillis: number | undefined
  /** Undefined when no WAL receiver runs (not connected to any sender). */
  readonly receiver: Receiver | undefined
  readonly self: string | undefined
  /**
   * The `application_name` its WAL receiver gives the sender: how the
   * primary's `pg_stat_replication` names this standby (see `walName`).
   * Undefined when no receiver runs or its connection string is not visible.
   */
  readonly walName?: string | undefined
}

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
  readonly conninfo?: string | null
  readonly cluster_name?: string | null
}

/**
 * A replica's probe: recovery state, replay position and age, WAL receiver.
 *
 * @since 0.1.0
 * @category questions
 */
export const standbyState: Question<StandbyState> = {
  sql: `SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS replay,
  (extract(epoch FROM (now() - pg_last_xact_replay_timestamp())) * 1000)::float8 AS behind_ms,
  r.pid AS receiver_pid, r.status, r.sender_host, r.sender_port, r.received_tli,
  host(inet_server_addr()) AS server_host, current_setting('port') AS server_port,
  r.conninfo, current_setting('cluster_name') AS cluster_name
FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true`,
  decode: (row: StandbyRow) => ({
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
    self: selfOf(row),
    walName: row.receiver_pid === null || row.receiver_pid === undefined || !row.conninfo
      ? undefined
      : walName(row.conninfo, row.cluster_name ?? undefined)
  })
}

/**
 * One keyword's value in a libpq `key=value` connection string (values may
 * be single-quoted, with `\\` escapes); undefined when it is absent.
 */
const conninfoValue = (conninfo: string, keyword: string): string | undefined => {
  const pattern = /\s*([A-Za-z_]+)\s*=\s*('((?:[^'\\]|\\.)*)'|(\S*))/gy
  let found: string | undefined
  for (let match = pattern.exec(conninfo); match !== null; match = pattern.exec(conninfo)) {
    if (match[1] === keyword) found = match[3] !== undefined ? match[3].replace(/\\(.)/g, "$1") : match[4]
  }
  return found
}

/**
 * The name a standby's WAL receiver gives its sender (`application_name` on
 * the primary's `pg_stat_replication`): the receiver's connection string's
 * `application_name`, else its `fallback_application_name`, else the
 * standby's `cluster_name`, else `walreceiver` (PostgreSQL's own rule).
 * Only the names are read; the connection string is not kept.
 *
 * @since 0.1.0
 * @category conversions
 */
export const walName = (conninfo: string, clusterName: string | undefined): string =>
  conninfoValue(conninfo, "application_name") ||
  conninfoValue(conninfo, "fallback_application_name") ||
  clusterName ||
  "walreceiver"

/**
 * One standby as the primary's `pg_stat_replication` shows it. Without
 * `pg_read_all_stats` (e.g. `pg_monitor`) only rows of the connected role's
 * own senders are complete: the rest read as `state` undefined.
 *
 * @since 0.1.0
 * @category models
 */
export interface StandbyReport {
  /** The standby's `application_name` (see `walName`). */
  readonly name: string
  /** `streaming`, `catchup`, `startup`, `backup` or `stopping`; undefined when not visible. */
  readonly state: string | undefined
  readonly replayLsn: bigint | undefined
  /** PostgreSQL's `replay_lag`; undefined once the standby has caught up and no WAL flows. */
  readonly replayLagMillis: number | undefined
  /** Time since the standby's last reply (`reply_time`), on the primary's clock. */
  readonly replyAgeMillis: number | undefined
}

/**
 * The primary's probe, and its report of every standby streaming from it.
 *
 * @since 0.1.0
 * @category models
 */
export interface PrimaryReport extends NodeRole {
  readonly standbys: ReadonlyArray<StandbyReport>
}

interface StandbyReportRow {
  readonly name: string | null
  readonly state: string | null
  readonly replay: string | null
  readonly replay_lag_ms: number | null
  readonly reply_age_ms: number | null
}

const decodeStandbys = (value: unknown): ReadonlyArray<StandbyReport> => {
  const rows = typeof value === "string" ? JSON.parse(value) as unknown : value
  if (!Array.isArray(rows)) return []
  return (rows as ReadonlyArray<StandbyReportRow>).map((row) => ({
    name: row.name ?? "",
    state: row.state ?? undefined,
    replayLsn: parseLsn(row.replay),
    replayLagMillis: row.replay_lag_ms ?? undefined,
    replyAgeMillis: row.reply_age_ms ?? undefined
  }))
}

/**
 * The primary's probe (the `role` question) and `pg_stat_replication` in one
 * statement: the replay position and lag of every standby that streams from
 * it, so that no standby needs a statement of its own to be watched.
 *
 * @since 0.1.0
 * @category questions
 */
export const primaryReport: Question<PrimaryReport> = {
  sql: `${role.sql},
  (SELECT coalesce(json_agg(json_build_object(
     'name', application_name, 'state', state, 'replay', replay_lsn::text,
     'replay_lag_ms', (extract(epoch FROM replay_lag) * 1000)::float8,
     'reply_age_ms', (extract(epoch FROM (now() - reply_time)) * 1000)::float8)), '[]'::json)
   FROM pg_stat_replication) AS standbys`,
  decode: (row: RoleRow & { readonly standbys: unknown }) => ({
    ...role.decode(row),
    standbys: decodeStandbys(row.standbys)
  })
}

/**
 * The primary's WAL position now.
 *
 * @since 0.1.0
 * @category questions
 */
export const currentLsn: Question<bigint | undefined> = {
  sql: "SELECT pg_current_wal_lsn()::text AS lsn",
  decode: (row: { lsn: string | null }) => parseLsn(row.lsn)
}

/**
 * A standby's replay position now.
 *
 * @since 0.1.0
 * @category questions
 */
export const replayLsn: Question<{ readonly standby: boolean; readonly replay: bigint | undefined }> = {
  sql: "SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS replay",
  decode: (row: { standby: boolean; replay: string | null }) => ({ standby: row.standby, replay: parseLsn(row.replay) })
}

/**
 * Whether a node is a standby, and its cluster's system identifier: asked once at start.
 *
 * @since 0.1.0
 * @category sql
 */
export const identitySql =
  "SELECT pg_is_in_recovery() AS standby, system_identifier::text AS system FROM pg_control_system()"

/**
 * Promotes a standby and waits (up to 60 s) until it accepts writes.
 *
 * @since 0.1.0
 * @category sql
 */
export const promoteSql = "SELECT pg_promote(true, 60) AS ok"

/**
 * The user's functions that may write: `VOLATILE` ordinary functions outside
 * the system schemas, by qualified name. Procedures are reached with CALL,
 * which is a write anyway.
 *
 * @since 0.1.0
 * @category sql
 */
export const volatileFunctionsSql = `SELECT n.nspname || '.' || p.proname AS name
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.provolatile = 'v' AND p.prokind = 'f'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`

/**
 * `lsn`: the WAL position this read's snapshot is at most, as a decimal
 * byte count: a replica's replay position, the primary's insert position.
 * Run as the transaction's first snapshot-taking statement, the position is
 * read while it runs, after its snapshot was taken, so every commit the
 * snapshot sees lies below it. (A standby publishes its replay position just
 * after applying a record: a snapshot taken in that instant may see one
 * commit past the position read.)
 *
 * @since 0.1.0
 * @category sql
 */
export const snapshotPosition = `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
  ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn)::text AS lsn`
