/** @internal */
// The real probes over each node's own pool, and what they learn of the primary (its report of the standbys).
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as TxRef from "effect/TxRef"
import type * as HealthMonitor from "../../HealthMonitor.js"
import type * as Node from "../../Node.js"
import type * as Topology from "../../Topology.js"
import * as Catalog from "./catalog.js"
import { nodeQuery, PoolBusy } from "./probeQuery.js"
import { judge, type Context, type PrimaryView } from "./verdicts.js"
import { makeWatch, type Watch } from "./watchers.js"

/** @internal */
export interface Probes {
  readonly replica: HealthMonitor.ProbeFn
  /** Probes the primary and records what replicas must follow; its WAL position. */
  readonly primary: (node: Node.Node) => Effect.Effect<bigint | undefined, unknown>
  /** Whether the node is in recovery, its WAL position and (if writable) timeline. */
  readonly role: (node: Node.Node) => Effect.Effect<Catalog.NodeRole, unknown>
  /**
   * `role` of the current primary, in the same statement as its report of
   * the standbys (kept in `watch` when it answers as writable, dropped when
   * it does not answer): discovery's question to the current primary.
   */
  readonly primaryRole: (node: Node.Node) => Effect.Effect<Catalog.NodeRole, unknown>
  /** What the watchers share: the primary's latest report. */
  readonly watch: Watch
  /** Records what discovery learnt of the current primary (undefined: it did not answer as writable). */
  readonly recordPrimary: (node: Node.Node, role: Catalog.NodeRole | undefined) => Effect.Effect<void>
  /** A node left the topology: forget what its probes learnt. */
  readonly forget: (node: Node.Node) => Effect.Effect<void>
}

const configuredAddress = (node: Node.Node): string => {
  const colon = node.address.lastIndexOf(":")
  return Catalog.address(node.address.slice(0, colon), node.address.slice(colon + 1))
}

/**
 * Real probes over each node's own pool; what they learn of the primary is
 * the view replicas are judged against.
 * @internal
 */
export const makeProbes = (
  topology: Topology.Topology,
  timeout: Duration.Duration
): Probes => {
  let view: PrimaryView | undefined
  const watch = makeWatch()
  /** How each node names itself (`inet_server_addr()` and its port), learnt by its probes. */
  const selves = new Map<Node.Node, string>()
  const learn = (node: Node.Node, self: string | undefined) => {
    if (self !== undefined) selves.set(node, self)
  }
  const queryOf = (node: Node.Node) => nodeQuery(node, timeout)
  const record = (node: Node.Node, role: Catalog.NodeRole | undefined) =>
    Effect.sync(() => {
      if (role !== undefined && !role.standby) {
        view = { node, ok: true, lsn: role.lsn, timeline: role.timeline }
      } else if (view?.node === node) {
        view = { ...view, ok: false }
      } else {
        view = { node, ok: false, lsn: undefined, timeline: undefined }
      }
    })
  const role = (node: Node.Node) =>
    Effect.tap(Catalog.role(queryOf(node)), (answer) => Effect.sync(() => learn(node, answer.self)))
  // The primary's look: its role and its report of the standbys, in one statement.
  const primaryRole = (node: Node.Node): Effect.Effect<Catalog.NodeRole, unknown> =>
    Catalog.primaryReport(queryOf(node)).pipe(
      Effect.flatMap((answer) =>
        Effect.map(Clock.currentTimeMillis, (at) => {
          learn(node, answer.self)
          watch.report = answer.standby ? undefined : { at, primaryLsn: answer.lsn, standbys: answer.standbys }
          watch.reportFrom = node
          if (!answer.standby) watch.timeline = answer.timeline
          return answer
        })
      ),
      Effect.tapError((error) => Effect.sync(() => {
        // Crowded out (it answered, slowly): the last report stands.
        if (!(error instanceof PoolBusy)) watch.report = undefined
      }))
    )
  const currentPrimary = TxRef.get(topology.primary)
  // Replica probes that need the primary's position now share one question,
  // as long as it was asked after their own read: the primary answers about
  // once per interval, not once per replica.
  let asked: { readonly at: number; readonly lsn: Deferred.Deferred<bigint | undefined> } | undefined
  const primaryLsnAfter = (readAt: number): Effect.Effect<bigint | undefined> =>
    Effect.suspend(() => {
      if (asked !== undefined && asked.at >= readAt) return Deferred.await(asked.lsn)
      const lsn = Deferred.makeUnsafe<bigint | undefined>()
      asked = { at: performance.now(), lsn }
      // Uninterruptible: others may wait on it (the query has its own timeout).
      return Effect.andThen(
        Effect.uninterruptible(Effect.flatMap(
          Effect.flatMap(currentPrimary, (primary) =>
            Catalog.currentLsn(queryOf(primary)).pipe(Effect.orElseSucceed(() => undefined))),
          (answer) => Deferred.succeed(lsn, answer)
        )),
        Deferred.await(lsn)
      )
    })
  const context: Omit<Context, "primaryLsnNow"> = {
    primary: Effect.map(currentPrimary, (primary) => view?.node === primary ? view : undefined),
    nodeAt: (address) =>
      Effect.map(Effect.tx(Effect.zip(TxRef.get(topology.primary), TxRef.get(topology.replicas))), ([primary, replicas]) =>
        [primary, ...replicas.map((r) => r.node)].find((node) =>
          configuredAddress(node) === address || selves.get(node) === address
        ))
  }
  return {
    replica: (node) =>
      Effect.flatMap(
        Effect.tap(Catalog.standbyState(queryOf(node)), (state) =>
          Effect.sync(() => {
            learn(node, state.self)
            if (state.walName !== undefined) watch.walNames.set(node, state.walName)
            else watch.walNames.delete(node)
          })),
        (state) => judge(state, { ...context, primaryLsnNow: primaryLsnAfter(performance.now()) })
      ),
    primary: (node) =>
      primaryRole(node).pipe(
        Effect.tap((answer) => record(node, answer)),
        Effect.tapError((error) => error instanceof PoolBusy ? Effect.void : record(node, undefined)),
        Effect.flatMap((answer) =>
          answer.standby ? Effect.fail(new Error("the primary is a standby (in recovery)")) : Effect.succeed(answer.lsn)
        )
      ),
    role,
    primaryRole,
    watch,
    recordPrimary: record,
    forget: (node) =>
      Effect.sync(() => {
        selves.delete(node)
        watch.walNames.delete(node)
      })
  }
}
