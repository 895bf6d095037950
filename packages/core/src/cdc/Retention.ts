/**
 * A rule's WAL retention bound (`maxRetainedWalBytes`): whether a slot is
 * over it, and what the rule's stats say when its slot is dropped for it.
 *
 * A slot holds WAL from its `restart_lsn`, which the server moves only at its
 * next running-transactions record (every 15 s while WAL flows), so a
 * consumer that has confirmed everything can still hold more than the bound
 * for a while on a busy server. Dropping that slot would throw away a
 * caught-up consumer's position and force a new snapshot for WAL the server
 * is about to free anyway. A slot is therefore over its bound only when it
 * holds more than the bound **and** its consumer has confirmed less than the
 * bound's worth of the WAL written since: a stopped or stuck consumer, not a
 * busy server.
 *
 * @since 0.1.0
 */
import { parseLsn } from "../Lsn.js"

/**
 * A slot's positions as `pg_replication_slots` gives them: the WAL it holds
 * (from `restart_lsn`), the position its consumer confirmed, and the
 * server's current WAL position.
 *
 * @since 0.1.0
 * @category models
 */
export interface SlotPositions {
  readonly retainedBytes: number | null
  readonly confirmed: string | null
  readonly currentLsn: string
}

/**
 * The bytes of WAL written since the consumer's confirmed position; a slot
 * with no confirmed position (never consumed) is behind by all it holds.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const behindBytes = (slot: SlotPositions): number => {
  const current = parseLsn(slot.currentLsn)
  const confirmed = parseLsn(slot.confirmed)
  if (current === undefined || confirmed === undefined) return slot.retainedBytes ?? 0
  return current > confirmed ? Number(current - confirmed) : 0
}

/**
 * Whether the slot is over `bound`: it holds more WAL than the bound and its
 * consumer is more than the bound behind.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const overBound = (slot: SlotPositions, bound: number): boolean =>
  (slot.retainedBytes ?? 0) > bound && behindBytes(slot) > bound

/**
 * The rule's `lastError` after its slot was dropped for its bound.
 *
 * @since 0.1.0
 * @category messages
 */
export const droppedMessage = (slotName: string, slot: SlotPositions, bound: number): string =>
  `slot ${slotName} held ${slot.retainedBytes} bytes of WAL and its consumer was ${behindBytes(slot)} bytes behind, ` +
  `over the rule's bound of ${bound}: dropped; the next session starts over with a snapshot`
