import { describe, expect, it } from "vitest"
import * as Catalog from "../src/Catalog.js"
import * as Probing from "../src/Probing.js"

const cadence: Probing.Cadence = { base: 1_000, max: 16_000 }

describe("Probing.nextDelay", () => {
  it("doubles after a calm look, up to the ceiling", () => {
    const delays = [1_000]
    for (let i = 0; i < 6; i++) delays.push(Probing.nextDelay(cadence, delays[delays.length - 1]!, true))
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 16_000, 16_000])
  })

  it("falls back to the base after anything unusual", () => {
    expect(Probing.nextDelay(cadence, 16_000, false)).toBe(1_000)
  })

  it("a ceiling equal to the base is a fixed interval", () => {
    expect(Probing.nextDelay({ base: 500, max: 500 }, 500, true)).toBe(500)
  })
})

describe("Probing.suspicious", () => {
  it("a failed connection, or statements running while none completed, is reason to look", () => {
    expect(Probing.suspicious({ completed: 10, failed: 1, inFlight: 0 })).toBe(true)
    expect(Probing.suspicious({ completed: 0, failed: 0, inFlight: 3 })).toBe(true)
  })

  it("statements that complete, or no traffic at all, are not", () => {
    expect(Probing.suspicious({ completed: 5, failed: 0, inFlight: 3 })).toBe(false)
    expect(Probing.suspicious(Probing.quiet)).toBe(false)
  })

  it("statements that only wait for a connection (a cold pool under a burst) are not; one on a connection is", () => {
    expect(Probing.suspicious({ completed: 0, failed: 0, inFlight: 30, waiting: 30 })).toBe(false)
    expect(Probing.suspicious({ completed: 0, failed: 0, inFlight: 3, waiting: 5 })).toBe(false)
    expect(Probing.suspicious({ completed: 0, failed: 0, inFlight: 30, waiting: 29 })).toBe(true)
    // A connection that fails to open is reason enough, waiting or not.
    expect(Probing.suspicious({ completed: 0, failed: 1, inFlight: 30, waiting: 30 })).toBe(true)
  })
})

const row = (over: Partial<Catalog.StandbyReport> = {}): Catalog.StandbyReport => ({
  name: "replica-1",
  state: "streaming",
  replayLsn: 0x3000000n,
  replayLagMillis: 12,
  replyAgeMillis: 800,
  ...over
})
const report = (standbys: ReadonlyArray<Catalog.StandbyReport>, at = 10_000): Probing.Report => ({
  at,
  primaryLsn: 0x3000100n,
  standbys
})
const signals = (over: Partial<Probing.ReplicaSignals> = {}): Probing.ReplicaSignals => ({
  now: 10_500,
  lastCheckAt: 9_000,
  delay: 4_000,
  traffic: Probing.quiet,
  up: true,
  walName: "replica-1",
  report: report([row(), row({ name: "replica-2" })]),
  replyStaleAfter: 25_000,
  ...over
})

describe("Probing.planReplica", () => {
  it("takes the verdict of a newer report that names the replica streaming with a fresh reply: no statement to it", () => {
    expect(Probing.planReplica(signals())).toEqual({
      _tag: "Report",
      at: 10_000,
      probe: {
        ok: true,
        replayLsn: 0x3000000n,
        lagBytes: 256,
        lagMillis: 12,
        error: undefined,
        state: { _tag: "Following", verified: true }
      }
    })
  })

  it("probes a replica never looked at", () => {
    expect(Probing.planReplica(signals({ lastCheckAt: undefined }))).toEqual({ _tag: "Probe", reason: "first" })
  })

  it("probes at once when its traffic fails or hangs, whatever the report says", () => {
    expect(Probing.planReplica(signals({ traffic: { completed: 0, failed: 0, inFlight: 2 } })))
      .toEqual({ _tag: "Probe", reason: "suspect" })
    expect(Probing.planReplica(signals({ traffic: { completed: 9, failed: 1, inFlight: 0 } })))
      .toEqual({ _tag: "Probe", reason: "suspect" })
  })

  it("takes the report while every statement in flight waits for a connection (no probe for a pool's acquisition)", () => {
    expect(Probing.planReplica(signals({ traffic: { completed: 0, failed: 0, inFlight: 20, waiting: 20 } })))
      .toEqual(Probing.planReplica(signals({ traffic: Probing.quiet })))
  })

  it("probes a replica out of rotation every tick: the report does not bring it back", () => {
    expect(Probing.planReplica(signals({ up: false }))).toEqual({ _tag: "Probe", reason: "out" })
  })

  it("probes when the report shows it not streaming, or its last reply stale (a frozen standby keeps its row)", () => {
    expect(Probing.planReplica(signals({ report: report([row({ state: "catchup" })]) })))
      .toEqual({ _tag: "Probe", reason: "suspect" })
    expect(Probing.planReplica(signals({ report: report([row({ replyAgeMillis: 30_000 })]) })))
      .toEqual({ _tag: "Probe", reason: "suspect" })
    expect(Probing.planReplica(signals({ report: report([row({ replyAgeMillis: undefined })]) })))
      .toEqual({ _tag: "Probe", reason: "suspect" })
  })

  it("probes when the report no longer names it (its WAL sender ended: a killed standby)", () => {
    expect(Probing.planReplica(signals({ report: report([row({ name: "replica-2" })]) })))
      .toEqual({ _tag: "Probe", reason: "suspect" })
  })

  it("names shared by two standbys vouch for neither: it is probed when due, else waits", () => {
    const shared = report([row({ name: "walreceiver" }), row({ name: "walreceiver" })])
    expect(Probing.planReplica(signals({ walName: "walreceiver", report: shared }))).toEqual({ _tag: "Wait" })
    expect(Probing.planReplica(signals({ walName: "walreceiver", report: shared, now: 13_000 })))
      .toEqual({ _tag: "Probe", reason: "due" })
  })

  it("a report already taken that still vouches for it: waits for the next one, however long its delay", () => {
    expect(Probing.planReplica(signals({ report: report([row()], 9_000), now: 60_000 }))).toEqual({ _tag: "Wait" })
  })

  it("a row the router's role cannot see (no pg_read_all_stats) proves nothing: probed when due", () => {
    const hidden = report([row({ state: undefined, replayLsn: undefined, replyAgeMillis: undefined })])
    expect(Probing.planReplica(signals({ report: hidden }))).toEqual({ _tag: "Wait" })
    expect(Probing.planReplica(signals({ report: hidden, now: 13_000 }))).toEqual({ _tag: "Probe", reason: "due" })
  })

  it("no report, or no name to find it by, leaves it to its delay", () => {
    expect(Probing.planReplica(signals({ report: undefined, now: 12_999 }))).toEqual({ _tag: "Wait" })
    expect(Probing.planReplica(signals({ report: undefined, now: 13_000 }))).toEqual({ _tag: "Probe", reason: "due" })
    expect(Probing.planReplica(signals({ walName: undefined, now: 13_000 }))).toEqual({ _tag: "Probe", reason: "due" })
  })
})

describe("Probing.fromReport", () => {
  it("a standby that replayed everything has no lag, whatever replay_lag said last", () => {
    const judged = Probing.fromReport(row({ replayLsn: 0x3000100n, replayLagMillis: undefined }), 0x3000100n)
    expect([judged.lagBytes, judged.lagMillis]).toEqual([0, 0])
  })

  it("without the primary's position the lag is not known", () => {
    const judged = Probing.fromReport(row(), undefined)
    expect([judged.lagBytes, judged.lagMillis]).toEqual([undefined, 12])
  })
})

describe("Probing.calm", () => {
  it("a following replica without a transition is calm; a transition or any other state is not", () => {
    const following = { state: { _tag: "Following", verified: true } as const }
    expect(Probing.calm(following, undefined)).toBe(true)
    expect(Probing.calm(following, "up")).toBe(false)
    expect(Probing.calm({ state: { _tag: "Busy" } }, undefined)).toBe(false)
    expect(Probing.calm(undefined, undefined)).toBe(false)
  })
})

describe("Catalog.walName", () => {
  it("reads application_name, else fallback_application_name, else cluster_name, else walreceiver", () => {
    expect(Catalog.walName("user=rep password=******** host=db1 port=5432 application_name=replica_a", "x"))
      .toBe("replica_a")
    expect(Catalog.walName("user=rep host=db1 fallback_application_name='replica b' sslmode=prefer", "x"))
      .toBe("replica b")
    expect(Catalog.walName("user=rep host=db1 application_name='it\\'s' dbname=replication", undefined)).toBe("it's")
    expect(Catalog.walName("user=rep host=db1", "replica-2")).toBe("replica-2")
    expect(Catalog.walName("user=rep host=db1", "")).toBe("walreceiver")
  })
})

describe("Catalog.primaryReport", () => {
  it("decodes the role and every standby row, from parsed JSON or its text", () => {
    const standbys = [{ name: "replica-1", state: "streaming", replay: "0/3000000", replay_lag_ms: null, reply_age_ms: 420.5 }]
    const base = { standby: false, lsn: "0/3000100", timeline: 1, server_host: "127.0.0.1", server_port: "5432" }
    const expected = {
      standby: false,
      lsn: 0x3000100n,
      timeline: 1,
      self: "loopback:5432",
      standbys: [{ name: "replica-1", state: "streaming", replayLsn: 0x3000000n, replayLagMillis: undefined, replyAgeMillis: 420.5 }]
    }
    expect(Catalog.primaryReport.decode({ ...base, standbys })).toEqual(expected)
    expect(Catalog.primaryReport.decode({ ...base, standbys: JSON.stringify(standbys) })).toEqual(expected)
  })

  it("asks the role question and pg_stat_replication in one statement", () => {
    expect(Catalog.primaryReport.sql.startsWith(Catalog.role.sql)).toBe(true)
    expect(Catalog.primaryReport.sql).toContain("FROM pg_stat_replication")
  })
})

describe("Probing.crowded", () => {
  const quietAround: Probing.ProbeFailure = { timedOut: true, sentElsewhere: false, loginAnswered: false, connected: false }

  it("a time-out while the server answered the node's other connections, or the probe's login, gives no verdict", () => {
    expect(Probing.crowded({ ...quietAround, sentElsewhere: true })).toBe(
      "the server answered the node's other connections while the probe waited"
    )
    expect(Probing.crowded({ ...quietAround, loginAnswered: true })).toBe(
      "the server answered the probe's login but did not finish it in time"
    )
  })

  it("a time-out with nothing from the server counts (a frozen one sends nothing)", () => {
    expect(Probing.crowded(quietAround)).toBeUndefined()
    // Connected, then no answer to the statement on its own connection: the server froze.
    expect(Probing.crowded({ ...quietAround, loginAnswered: true, connected: true })).toBeUndefined()
  })

  it("a failure that is not a time-out counts, whatever the server sent elsewhere", () => {
    expect(Probing.crowded({ timedOut: false, sentElsewhere: true, loginAnswered: true, connected: false }))
      .toBeUndefined()
  })
})
