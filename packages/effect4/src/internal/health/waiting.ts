/** @internal */
import type * as Topology from "../../Topology.js"
import * as NodeInternal from "../node.js"

// Evict means release: the reads waiting on a replica that leaves rotation
// (probe, passive failure, manual mark, removal) give it up at once and run
// elsewhere, instead of waiting for their read timeout. The node's sockets are
// the router's own (see internal/node.ts): destroying them fails every
// statement still on them with a connection error, which the routed client
// reads as "the replica is gone" and runs once more on the node chosen now.
// No read registers itself anywhere, so the read path pays nothing for this.

/**
 * The replica left rotation: every statement waiting on it fails now, and
 * the routed reads among them run elsewhere. Call after the health change is
 * committed, so that their second pick no longer sees the replica. The pool
 * replaces the severed sessions when the replica is used again.
 * @internal
 */
export const releaseWaiting = (replica: Topology.Replica): void => NodeInternal.sever(replica.node)
