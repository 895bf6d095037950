/**
 * Patroni as the source of truth: the documented `GET /cluster` answer of
 * its REST API as a type, a decoder from unknown JSON, and the verdicts the
 * router takes from it (who the leader is, whether a member may serve reads,
 * which member is which of the router's nodes). Asking Patroni (HTTP,
 * timeouts, the schedule) is each line's business: it hands the decoded
 * answer to these functions.
 *
 * @since 0.1.0
 */
import { address } from "./Catalog.js"
import { parseLsn } from "./Lsn.js"

/**
 * One member of a Patroni cluster as `GET /cluster` lists it. `role` is one
 * of `leader`, `standby_leader`, `sync_standby`, `quorum_standby` or
 * `replica` (kept as text: a later Patroni may add one). `state` is, for a
 * replica, its replication state when it has one (`streaming`, `in archive
 * recovery`), else PostgreSQL's state as Patroni runs it (`running`,
 * `starting`, `stopped`, `crashed`, …). `lag` and `lsn` (and their
 * `receive_`/`replay_` variants) are given for members other than the
 * leader: bytes behind the leader's position as last published in the DCS,
 * or `"unknown"`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Member {
  readonly name: string
  readonly role: string
  readonly state: string
  readonly api_url?: string | undefined
  /** PostgreSQL's host, from `postgresql.connect_address`. */
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly timeline?: number | undefined
  readonly tags?: Readonly<Record<string, unknown>> | undefined
  readonly lsn?: string | undefined
  readonly lag?: number | "unknown" | undefined
  readonly receive_lsn?: string | undefined
  readonly receive_lag?: number | "unknown" | undefined
  readonly replay_lsn?: string | undefined
  readonly replay_lag?: number | "unknown" | undefined
}

/**
 * The answer of `GET /cluster`: the members, sorted by name; `pause` when the
 * cluster is in maintenance mode; a switchover that is scheduled.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cluster {
  readonly members: ReadonlyArray<Member>
  readonly scope?: string | undefined
  readonly pause?: boolean | undefined
  readonly scheduled_switchover?: {
    readonly at: string
    readonly from?: string | undefined
    readonly to?: string | undefined
  } | undefined
}

/**
 * A decoded answer, or the field that is not as documented.
 *
 * @since 0.1.0
 * @category models
 */
export type Decoded =
  | { readonly _tag: "Valid"; readonly cluster: Cluster }
  | { readonly _tag: "Invalid"; readonly field: string; readonly reason: string }

class Bad {
  constructor(readonly field: string, readonly reason: string) {}
}

const isObject = (u: unknown): u is Readonly<Record<string, unknown>> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const string = (o: Readonly<Record<string, unknown>>, key: string, at: string, required: boolean) => {
  const value = o[key]
  if (value === undefined && !required) return undefined
  if (typeof value !== "string") throw new Bad(`${at}.${key}`, required ? "must be a string" : "must be a string when given")
  return value
}

const wholeNumber = (o: Readonly<Record<string, unknown>>, key: string, at: string) => {
  const value = o[key]
  if (value === undefined) return undefined
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new Bad(`${at}.${key}`, "must be a whole number of 0 or more when given")
  }
  return value
}

const lag = (o: Readonly<Record<string, unknown>>, key: string, at: string) => {
  const value = o[key]
  if (value === undefined || value === "unknown") return value
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new Bad(`${at}.${key}`, "must be a whole number of bytes or \"unknown\" when given")
  }
  return value
}

const lsn = (o: Readonly<Record<string, unknown>>, key: string, at: string) => {
  const value = o[key]
  if (value === undefined) return undefined
  // "unknown" is documented; otherwise `X/Y` in hexadecimal.
  if (typeof value !== "string" || (value !== "unknown" && !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(value))) {
    throw new Bad(`${at}.${key}`, "must be a WAL position (\"0/4000060\") or \"unknown\" when given")
  }
  return value
}

const decodeMember = (u: unknown, at: string): Member => {
  if (!isObject(u)) throw new Bad(at, "must be an object")
  const tags = u["tags"]
  if (tags !== undefined && !isObject(tags)) throw new Bad(`${at}.tags`, "must be an object when given")
  const port = u["port"]
  if (port !== undefined && (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new Bad(`${at}.port`, "must be a port number (1 to 65535) when given")
  }
  return {
    name: string(u, "name", at, true)!,
    role: string(u, "role", at, true)!,
    state: string(u, "state", at, true)!,
    api_url: string(u, "api_url", at, false),
    host: string(u, "host", at, false),
    port: port as number | undefined,
    timeline: wholeNumber(u, "timeline", at),
    tags: tags as Readonly<Record<string, unknown>> | undefined,
    lsn: lsn(u, "lsn", at),
    lag: lag(u, "lag", at),
    receive_lsn: lsn(u, "receive_lsn", at),
    receive_lag: lag(u, "receive_lag", at),
    replay_lsn: lsn(u, "replay_lsn", at),
    replay_lag: lag(u, "replay_lag", at)
  }
}

const decodeSwitchover = (u: unknown): Cluster["scheduled_switchover"] => {
  if (u === undefined) return undefined
  if (!isObject(u)) throw new Bad("scheduled_switchover", "must be an object when given")
  return {
    at: string(u, "at", "scheduled_switchover", true)!,
    from: string(u, "from", "scheduled_switchover", false),
    to: string(u, "to", "scheduled_switchover", false)
  }
}

/**
 * Decodes the JSON body of `GET /cluster`. Fields the router does not use
 * may be absent; a field that is present must have its documented type.
 * Unknown fields are ignored. `Invalid` names the first bad field
 * (`members[1].port`) and what it must be, never its value.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeCluster = (json: unknown): Decoded => {
  try {
    if (!isObject(json)) throw new Bad("cluster", "must be a JSON object")
    const members = json["members"]
    if (!Array.isArray(members)) throw new Bad("members", "must be an array")
    const pause = json["pause"]
    if (pause !== undefined && typeof pause !== "boolean") throw new Bad("pause", "must be true or false when given")
    return {
      _tag: "Valid",
      cluster: {
        members: members.map((member, i) => decodeMember(member, `members[${i}]`)),
        scope: string(json, "scope", "cluster", false),
        pause: pause as boolean | undefined,
        scheduled_switchover: decodeSwitchover(json["scheduled_switchover"])
      }
    }
  } catch (error) {
    if (error instanceof Bad) {
      return { _tag: "Invalid", field: error.field.replace(/^cluster\./, ""), reason: error.reason }
    }
    throw error
  }
}

/**
 * Whether Patroni names the writable primary: `Leads` with the member that
 * holds the leader lock as `leader` (the primary writes go to, whatever any
 * other node says: this settles a split brain), or `Defers` with why the
 * router must decide by itself (asking PostgreSQL): the cluster is paused
 * (maintenance mode: a person may promote a node by hand, so the leader key
 * may be stale), no member leads, the leader is a `standby_leader` (the
 * leader of a standby cluster is in recovery, not a writable primary), or
 * more than one member claims the role.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const leaderOf = (
  cluster: Cluster
): { readonly _tag: "Leads"; readonly leader: Member } | { readonly _tag: "Defers"; readonly reason: string } => {
  if (cluster.pause === true) return { _tag: "Defers", reason: "the cluster is paused (maintenance mode)" }
  const leaders = cluster.members.filter((member) => member.role === "leader")
  if (leaders.length === 1) return { _tag: "Leads", leader: leaders[0]! }
  if (leaders.length > 1) {
    return { _tag: "Defers", reason: `${leaders.map((m) => m.name).join(" and ")} all have the role leader` }
  }
  return cluster.members.some((member) => member.role === "standby_leader")
    ? { _tag: "Defers", reason: "its leader is a standby_leader (a standby cluster has no writable primary)" }
    : { _tag: "Defers", reason: "no member holds the leader lock" }
}

/**
 * What Patroni says of a member for reads:
 * - `Healthy`: a replica that streams, with its replay lag in bytes (and
 *   replay position when given). The router needs no PostgreSQL probe.
 * - `Unhealthy`: Patroni reports it not serving (stopped, starting,
 *   crashed, replaying from the archive, tagged `noloadbalance`, absent from
 *   the member list, or the leader itself): it counts as a failed probe, so
 *   it leaves rotation by the usual hysteresis.
 * - `Unknown`: Patroni cannot tell (the lag is `"unknown"`, the state is one
 *   this module does not know, a replica reports `running` without a
 *   replication state, which Patroni older than 3.0.4 does for every replica,
 *   the cluster is paused, or the member is a `standby_leader`): the router
 *   probes it with PostgreSQL as it does without Patroni.
 *
 * @since 0.1.0
 * @category models
 */
export type MemberHealth =
  | { readonly _tag: "Healthy"; readonly lagBytes: number; readonly replayLsn: bigint | undefined }
  | { readonly _tag: "Unhealthy"; readonly reason: string }
  | { readonly _tag: "Unknown"; readonly reason: string }

const replicaRoles = new Set(["replica", "sync_standby", "quorum_standby"])

/** Replica states in which PostgreSQL does not serve reads, or serves them from a replica that is not streaming. */
const notServing = new Set([
  "stopped",
  "stopping",
  "stop failed",
  "starting",
  "start failed",
  "restarting",
  "restart failed",
  "crashed",
  "creating replica",
  "initializing new cluster",
  "initdb failed",
  "running custom bootstrap script",
  "custom bootstrap failed",
  "starting after custom bootstrap",
  "in archive recovery"
])

const isSet = (tag: unknown): boolean => tag === true || tag === "true"

/**
 * A member's health for reads (see `MemberHealth`); `member` undefined: it
 * is not in Patroni's member list. The lag is the replay lag when Patroni
 * gives one, else `lag`; either is measured against the leader's position as
 * Patroni last published it (every `loop_wait`), so it is approximate.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const healthOf = (member: Member | undefined, cluster: Cluster): MemberHealth => {
  if (member === undefined) return { _tag: "Unhealthy", reason: "Patroni does not list it as a member" }
  if (cluster.pause === true) return { _tag: "Unknown", reason: "the cluster is paused (maintenance mode)" }
  if (member.role === "leader") return { _tag: "Unhealthy", reason: "Patroni names it the leader, not a replica" }
  if (!replicaRoles.has(member.role)) return { _tag: "Unknown", reason: `its role is ${member.role}` }
  if (isSet(member.tags?.["noloadbalance"])) {
    return { _tag: "Unhealthy", reason: "Patroni reports it tagged noloadbalance (no read traffic)" }
  }
  if (notServing.has(member.state)) return { _tag: "Unhealthy", reason: `Patroni reports it ${member.state}` }
  if (member.state !== "streaming") return { _tag: "Unknown", reason: `Patroni reports it ${member.state}, not streaming` }
  const lagBytes = member.replay_lag ?? member.lag
  if (lagBytes === undefined || lagBytes === "unknown") {
    return { _tag: "Unknown", reason: "Patroni does not know its lag" }
  }
  return { _tag: "Healthy", lagBytes, replayLsn: parseLsn(positionOf(member.replay_lsn ?? member.lsn)) }
}

const positionOf = (text: string | undefined): string | undefined => text === "unknown" ? undefined : text

/**
 * A member's PostgreSQL address in the spelling of `Catalog.address`, or
 * undefined when Patroni gives no host and port.
 *
 * @since 0.1.0
 * @category conversions
 */
export const memberAddress = (member: Member): string | undefined =>
  member.host === undefined || member.port === undefined ? undefined : address(member.host, member.port)

/**
 * A `host:port` (as a connection URL gives them; an IPv6 host in brackets)
 * in the spelling of `Catalog.address`.
 *
 * @since 0.1.0
 * @category conversions
 */
export const spell = (hostPort: string): string => {
  const colon = hostPort.lastIndexOf(":")
  return colon < 0 || hostPort.endsWith("]") ? address(hostPort, "") : address(hostPort.slice(0, colon), hostPort.slice(colon + 1))
}

/**
 * The member at a router node's address (in the spelling of
 * `Catalog.address`, see `spell`): members and nodes are matched by
 * PostgreSQL `host:port`, so Patroni's `postgresql.connect_address` must
 * name each server as the router's URLs do (loopback names count as one).
 *
 * @since 0.1.0
 * @category verdicts
 */
export const memberAt = (cluster: Cluster, nodeAddress: string): Member | undefined =>
  cluster.members.find((member) => memberAddress(member) === nodeAddress)
