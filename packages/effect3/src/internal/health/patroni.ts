/** @internal */
import * as Patroni from "@effect-sql-router/core/Patroni"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type * as HealthMonitor from "../../HealthMonitor.js"
import type * as RouterConfig from "../../RouterConfig.js"
import type { RouterState } from "../routerState.js"
import * as Membership from "./membership.js"

// Patroni as the source of truth: one `GET /cluster` per round (the first
// member that answers), the leader it names made the primary, and replica
// health taken from it. The verdicts live in the core (`Patroni`); this is
// the I/O and the state: what the last round learnt, and whether the router
// trusts it now.

/** One REST API URL, made ready once: the request target and headers, and a name free of credentials. */
interface Endpoint {
  readonly target: URL
  readonly headers: Readonly<Record<string, string>>
  /** `patroni.urls[i] (host:port)`: for logs and errors. */
  readonly name: string
}

const endpointOf = (url: Redacted.Redacted<string>, i: number): Endpoint => {
  const parsed = new URL(Redacted.value(url))
  // fetch refuses a URL with credentials: they travel as Basic authentication.
  const headers: Record<string, string> = { accept: "application/json" }
  if (parsed.username !== "" || parsed.password !== "") {
    const user = decodeURIComponent(parsed.username)
    const password = decodeURIComponent(parsed.password)
    headers["authorization"] = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`
  }
  parsed.username = ""
  parsed.password = ""
  parsed.search = ""
  parsed.hash = ""
  if (!parsed.pathname.endsWith("/")) parsed.pathname = `${parsed.pathname}/`
  return { target: new URL("cluster", parsed), headers, name: `patroni.urls[${i}] (${parsed.host})` }
}

/** A failure whose message is ours (no URL, no body). */
class Refused extends Error {}

/** Why a request failed, in words that hold no URL and no credentials. */
const reasonOf = (error: unknown, timeout: Duration.Duration): string => {
  if (error instanceof Refused) return error.message
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `no answer within ${Duration.format(timeout)}`
  }
  const code = error instanceof Error ? (error.cause as { readonly code?: unknown } | undefined)?.code : undefined
  return typeof code === "string" ? `the request failed (${code})` : "the request failed"
}

const ask = (endpoint: Endpoint, timeout: Duration.Duration): Effect.Effect<Patroni.Cluster, string> =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(endpoint.target, {
        headers: endpoint.headers,
        signal: AbortSignal.any([signal, AbortSignal.timeout(Duration.toMillis(timeout))])
      })
      if (!response.ok) {
        await response.body?.cancel()
        throw new Refused(`HTTP ${response.status}`)
      }
      const json = await response.json().catch(() => {
        throw new Refused("the answer is not JSON")
      })
      const decoded = Patroni.decodeCluster(json)
      if (decoded._tag === "Invalid") throw new Refused(`the answer's ${decoded.field} ${decoded.reason}`)
      return decoded.cluster
    },
    catch: (error) => `${endpoint.name}: ${reasonOf(error, timeout)}`
  })

/** What the router makes of Patroni now: what it logs once per change. */
type Standing =
  | { readonly _tag: "Leads"; readonly leader: string }
  | { readonly _tag: "Defers"; readonly reason: string }
  | { readonly _tag: "Silent" }

/** The Patroni source of one router. @internal */
export interface Source {
  /** The last round's answer while Patroni names the router's primary; undefined: PostgreSQL decides. */
  readonly trusted: () => Patroni.Cluster | undefined
  /**
   * One round: `GET /cluster` from the first member that answers; when it
   * names a leader that is one of the router's nodes, that node is the
   * primary (a split brain is settled in its favour) and the round returns
   * true. False: discovery by PostgreSQL decides this round.
   */
  readonly round: (internals: RouterState) => Effect.Effect<boolean>
}

/** @internal */
export const make = (config: RouterConfig.PatroniResolved): Source => {
  const endpoints = config.urls.map(endpointOf)
  let preferred = 0
  let trusted: Patroni.Cluster | undefined
  let standing: Standing | undefined

  /** The first member that answers, starting with the one that answered last. */
  const fetchCluster = Effect.gen(function*() {
    const failures: Array<string> = []
    for (let k = 0; k < endpoints.length; k++) {
      const i = (preferred + k) % endpoints.length
      const result = yield* Effect.either(ask(endpoints[i]!, config.timeout))
      if (result._tag === "Right") {
        preferred = i
        return { cluster: result.right, from: endpoints[i]!.name }
      }
      failures.push(result.left)
    }
    return { cluster: undefined, failures }
  })

  const round = (internals: RouterState): Effect.Effect<boolean> =>
    Effect.gen(function*() {
      // A change of standing is news: the watchers look again at `interval`, not after a calm backoff
      // (Patroni gone silent hands the watching back to PostgreSQL at once).
      const become = (next: Standing, log: Effect.Effect<void>): Effect.Effect<void> =>
        Effect.suspend(() => {
          const same = standing?._tag === next._tag && JSON.stringify(standing) === JSON.stringify(next)
          standing = next
          if (same) return Effect.void
          internals.probes.watch.changes++
          return log
        })
      const answer = yield* fetchCluster
      if (answer.cluster === undefined) {
        trusted = undefined
        yield* become(
          { _tag: "Silent" },
          Effect.logWarning(
            `no Patroni REST API answers (${answer.failures.join("; ")}): PostgreSQL probes and discovery decide until one does`
          )
        )
        return false
      }
      const verdict = Patroni.leaderOf(answer.cluster)
      if (verdict._tag === "Defers") {
        trusted = undefined
        yield* become(
          { _tag: "Defers", reason: verdict.reason },
          Effect.logWarning(`Patroni names no primary (${verdict.reason}): PostgreSQL probes and discovery decide`)
        )
        return false
      }
      const at = Patroni.memberAddress(verdict.leader)
      const nodes = yield* Membership.allNodes(internals.topology)
      const leader = nodes.find((node) => Patroni.spell(node.address) === at)
      if (leader === undefined) {
        trusted = undefined
        const reason = `its leader ${verdict.leader.name} (${at ?? "no host and port"}) is none of the router's hosts`
        yield* become(
          { _tag: "Defers", reason },
          Effect.logWarning(`Patroni answers, but ${reason}: PostgreSQL probes and discovery decide`)
        )
        return false
      }
      trusted = answer.cluster
      yield* become(
        { _tag: "Leads", leader: verdict.leader.name },
        Effect.logInfo(`Patroni (${answer.from}) names the primary: ${leader.id}, member ${verdict.leader.name}`)
      )
      const conflict = yield* STM.commit(TRef.getAndSet(internals.topology.conflict, []))
      if (conflict.length > 0) {
        yield* Effect.logWarning(
          `split brain (${conflict.join(" and ")}) settled by Patroni: writes go to its leader ${leader.id}`
        )
      }
      yield* Membership.switchPrimary(internals, leader, `Patroni names it the leader (member ${verdict.leader.name})`)
      // The primary's own position (what causal reads and lag need, exactly)
      // and the view replicas are judged against if Patroni goes silent.
      const lsn = yield* Effect.either(internals.probes.primary(leader))
      if (lsn._tag === "Right") yield* STM.commit(TRef.set(internals.topology.primaryLsn, lsn.right))
      return true
    })

  return { trusted: () => trusted, round }
}

const following = { _tag: "Following", verified: true } as const

/**
 * A replica's probe while Patroni is trusted: its health and lag as Patroni
 * reports them, with no statement on the replica; a member Patroni cannot
 * judge (`Unknown`), or no trusted answer, is probed with PostgreSQL.
 * @internal
 */
export const probeReplica = (source: Source, probe: HealthMonitor.ProbeFn): HealthMonitor.ProbeFn => (node) =>
  Effect.suspend(() => {
    const cluster = source.trusted()
    if (cluster === undefined) return probe(node)
    const health = Patroni.healthOf(Patroni.memberAt(cluster, Patroni.spell(node.address)), cluster)
    switch (health._tag) {
      case "Healthy":
        return Effect.succeed({
          ok: true,
          replayLsn: health.replayLsn,
          lagBytes: health.lagBytes,
          // Patroni measures bytes; a replica that has replayed everything has no lag in time either.
          lagMillis: health.lagBytes === 0 ? 0 : undefined,
          error: undefined,
          state: following
        })
      case "Unhealthy":
        // The reason names Patroni ("Patroni reports it stopped"); a failed probe for the hysteresis.
        return Effect.succeed({
          ok: false,
          replayLsn: undefined,
          lagBytes: undefined,
          lagMillis: undefined,
          error: health.reason,
          state: { _tag: "Detached", reason: health.reason }
        })
      case "Unknown":
        return probe(node)
    }
  })
