/** @internal */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { Primary } from "../../Cdc.js"
import { SqlRouter } from "../../SqlRouter.js"

// Where the source is: a fixed address, or an effect asked at each connection
// (it may follow the router's primary).

/** @internal */
export const defaultApplicationName = "effect-sql-router-cdc"

/** @internal */
export const resolvePrimary = (primary: Primary): Effect.Effect<Redacted.Redacted<string>> =>
  Redacted.isRedacted(primary) ? Effect.succeed(primary) : primary

/** @internal */
export const primaryFromRouter = SqlRouter.use((router) =>
  // Replication and snapshots need the server itself: its direct URL when the pooled one is a pooler's.
  Effect.map(router.primary, (node) => node.direct ?? node.url)
)
