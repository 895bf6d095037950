/** @internal */
// The health monitor, one job a module: `probeQuery` (one probe statement on a
// node), `verdicts` (a probe judged and a look recorded), `probes` (the real
// probes and the primary's report), `watchers` (the loops and their start).
import * as Catalog from "./catalog.js"

/** @internal */
export const parseLsn = Catalog.parseLsn

/** @internal */
export const formatLsn = Catalog.formatLsn

export * from "./probeQuery.js"
export * from "./probes.js"
export * from "./verdicts.js"
export * from "./watchers.js"
