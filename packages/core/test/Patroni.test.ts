import { describe, expect, it } from "vitest"
import * as Catalog from "../src/Catalog.js"
import * as Patroni from "../src/Patroni.js"

// The documented example of `GET /cluster` (docs/rest_api.rst), a leader and a streaming replica.
const documented = {
  members: [
    {
      name: "patroni1",
      role: "leader",
      state: "running",
      api_url: "http://10.89.0.4:8008/patroni",
      host: "10.89.0.4",
      port: 5432,
      timeline: 5,
      tags: { clonefrom: true }
    },
    {
      name: "patroni2",
      role: "replica",
      state: "streaming",
      api_url: "http://10.89.0.6:8008/patroni",
      host: "10.89.0.6",
      port: 5433,
      timeline: 5,
      tags: { clonefrom: true },
      receive_lag: 0,
      receive_lsn: "0/4000060",
      replay_lag: 0,
      replay_lsn: "0/4000060",
      lag: 0,
      lsn: "0/4000060"
    }
  ],
  scope: "demo",
  scheduled_switchover: { at: "2023-09-24T10:36:00+02:00", from: "patroni1", to: "patroni3" }
}

const valid = (json: unknown): Patroni.Cluster => {
  const decoded = Patroni.decodeCluster(json)
  if (decoded._tag === "Invalid") throw new Error(`${decoded.field} ${decoded.reason}`)
  return decoded.cluster
}

const replica = (extra: Partial<Patroni.Member> = {}): Patroni.Member => ({
  name: "r",
  role: "replica",
  state: "streaming",
  host: "db2",
  port: 5432,
  lag: 100,
  lsn: "0/100",
  ...extra
})

describe("decodeCluster", () => {
  it("decodes the documented answer", () => {
    const cluster = valid(documented)
    expect(cluster.members.map((m) => [m.name, m.role, m.state])).toEqual([
      ["patroni1", "leader", "running"],
      ["patroni2", "replica", "streaming"]
    ])
    expect(cluster.members[1]!.port).toBe(5433)
    expect(cluster.scope).toBe("demo")
    expect(cluster.scheduled_switchover?.to).toBe("patroni3")
  })
  it("accepts \"unknown\" positions and lags, pause, and fields it does not know", () => {
    const cluster = valid({
      members: [{ name: "a", role: "replica", state: "stopped", lag: "unknown", lsn: "unknown", pending_restart: true }],
      pause: true
    })
    expect(cluster.pause).toBe(true)
    expect(cluster.members[0]!.lag).toBe("unknown")
  })
  it("names the first bad field and what it must be, never its value", () => {
    const cases: Array<[unknown, string]> = [
      [[], "cluster"],
      [{}, "members"],
      [{ members: {} }, "members"],
      [{ members: [null] }, "members[0]"],
      [{ members: [{ role: "leader", state: "running" }] }, "members[0].name"],
      [{ members: [{ name: "a", role: 1, state: "running" }] }, "members[0].role"],
      [{ members: [{ name: "a", role: "leader", state: "running" }, { name: "b", role: "replica", state: "streaming", port: "5432" }] }, "members[1].port"],
      [{ members: [{ name: "a", role: "replica", state: "streaming", lag: -1 }] }, "members[0].lag"],
      [{ members: [{ name: "a", role: "replica", state: "streaming", replay_lsn: "secret-ish" }] }, "members[0].replay_lsn"],
      [{ members: [{ name: "a", role: "replica", state: "streaming", tags: [] }] }, "members[0].tags"],
      [{ members: [], pause: "yes" }, "pause"],
      [{ members: [], scheduled_switchover: { from: "a" } }, "scheduled_switchover.at"]
    ]
    for (const [json, field] of cases) {
      const decoded = Patroni.decodeCluster(json)
      expect(decoded._tag).toBe("Invalid")
      if (decoded._tag === "Invalid") {
        expect(decoded.field).toBe(field)
        expect(decoded.reason).toMatch(/^must be/)
        expect(decoded.reason).not.toContain("secret-ish")
      }
    }
  })
})

describe("leaderOf", () => {
  it("the member with the role leader", () => {
    const verdict = Patroni.leaderOf(valid(documented))
    expect(verdict._tag === "Leads" && verdict.leader.name).toBe("patroni1")
  })
  it("defers when paused, leaderless, a standby cluster, or two leaders", () => {
    const leader = { name: "a", role: "leader", state: "running" }
    const reasons = [
      { members: [leader], pause: true },
      { members: [replica()] },
      { members: [{ ...leader, role: "standby_leader" }] },
      { members: [leader, { ...leader, name: "b" }] }
    ].map((cluster) => {
      const verdict = Patroni.leaderOf(cluster)
      return verdict._tag === "Defers" ? verdict.reason : "leads"
    })
    expect(reasons).toEqual([
      "the cluster is paused (maintenance mode)",
      "no member holds the leader lock",
      "its leader is a standby_leader (a standby cluster has no writable primary)",
      "a and b all have the role leader"
    ])
  })
})

describe("healthOf", () => {
  const cluster = { members: [] }
  it("a streaming replica with a known lag is healthy, with its replay lag and position", () => {
    expect(Patroni.healthOf(replica({ replay_lag: 7, replay_lsn: "0/4000060" }), cluster)).toEqual({
      _tag: "Healthy",
      lagBytes: 7,
      replayLsn: 0x4000060n
    })
    expect(Patroni.healthOf(replica({ role: "sync_standby" }), cluster)).toEqual({
      _tag: "Healthy",
      lagBytes: 100,
      replayLsn: 0x100n
    })
    expect(Patroni.healthOf(replica({ role: "quorum_standby", lsn: undefined }), cluster)._tag).toBe("Healthy")
  })
  it("stopped, starting, crashed, archive recovery, noloadbalance, the leader, absent: unhealthy", () => {
    for (const state of ["stopped", "starting", "crashed", "restarting", "creating replica", "in archive recovery"]) {
      expect(Patroni.healthOf(replica({ state }), cluster)).toEqual({ _tag: "Unhealthy", reason: `Patroni reports it ${state}` })
    }
    expect(Patroni.healthOf(replica({ tags: { noloadbalance: true } }), cluster)._tag).toBe("Unhealthy")
    expect(Patroni.healthOf(replica({ role: "leader" }), cluster)._tag).toBe("Unhealthy")
    expect(Patroni.healthOf(undefined, cluster)).toEqual({
      _tag: "Unhealthy",
      reason: "Patroni does not list it as a member"
    })
  })
  it("unknown lag, running without a replication state, a paused cluster, a standby leader: unknown (probe it)", () => {
    expect(Patroni.healthOf(replica({ lag: "unknown" }), cluster)._tag).toBe("Unknown")
    expect(Patroni.healthOf(replica({ lag: undefined }), cluster)._tag).toBe("Unknown")
    expect(Patroni.healthOf(replica({ replay_lag: "unknown", lag: 0 }), cluster)._tag).toBe("Unknown")
    expect(Patroni.healthOf(replica({ state: "running" }), cluster)).toEqual({
      _tag: "Unknown",
      reason: "Patroni reports it running, not streaming"
    })
    expect(Patroni.healthOf(replica(), { members: [], pause: true })._tag).toBe("Unknown")
    expect(Patroni.healthOf(replica({ role: "standby_leader" }), cluster)._tag).toBe("Unknown")
    expect(Patroni.healthOf(replica({ state: "some future state" }), cluster)._tag).toBe("Unknown")
  })
})

describe("matching members to nodes", () => {
  it("by host:port in Catalog.address's spelling", () => {
    const cluster = valid({
      members: [
        { name: "a", role: "leader", state: "running", host: "127.0.0.1", port: 5432 },
        { name: "b", role: "replica", state: "streaming", host: "DB2.example", port: 5433 },
        { name: "c", role: "replica", state: "streaming", host: "::1", port: 5434 },
        { name: "d", role: "replica", state: "stopped" }
      ]
    })
    expect(Patroni.memberAt(cluster, Patroni.spell("localhost:5432"))?.name).toBe("a")
    expect(Patroni.memberAt(cluster, Patroni.spell("db2.example:5433"))?.name).toBe("b")
    expect(Patroni.memberAt(cluster, Patroni.spell("[::1]:5434"))?.name).toBe("c")
    expect(Patroni.memberAt(cluster, Catalog.address("db2.example", 5432))).toBeUndefined()
    expect(Patroni.memberAddress(cluster.members[3]!)).toBeUndefined()
  })
})
