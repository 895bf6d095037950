/** @internal */
import type * as Topology from "../../Topology.js"

// Evict means release: the routed client's reads waiting on a replica, so
// that a replica leaving rotation (probe, passive failure, manual mark,
// removal) can give them up at once and run them elsewhere, instead of
// leaving them to the read timeout. One Set per replica; a read adds one
// entry when it starts and removes it when it settles.

const waitingReads = new WeakMap<Topology.Replica, Set<() => void>>()

/**
 * The reads waiting on `replica` now: each entry gives its read up (in-flight
 * count back, statement cancelled) and runs it once more elsewhere.
 * @internal
 */
export const readsWaitingOn = (replica: Topology.Replica): Set<() => void> => {
  let waiting = waitingReads.get(replica)
  if (waiting === undefined) {
    waiting = new Set()
    waitingReads.set(replica, waiting)
  }
  return waiting
}

/**
 * The replica left rotation: every read waiting on it is given up and runs
 * elsewhere now. Call after the health change is committed, so that the
 * reads' second pick no longer sees the replica.
 * @internal
 */
export const releaseWaiting = (replica: Topology.Replica): number => {
  const waiting = waitingReads.get(replica)
  if (waiting === undefined || waiting.size === 0) return 0
  const evicted = Array.from(waiting)
  waiting.clear()
  for (const evict of evicted) evict()
  return evicted.length
}

/**
 * How many reads wait on `replica` now.
 * @internal
 */
export const waitingCount = (replica: Topology.Replica): number => waitingReads.get(replica)?.size ?? 0
