/** @internal */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { Cdc, Options } from "../../Cdc.js"
import type { InvalidRule } from "./errors.js"
import { makeContext } from "./context.js"
import { enforceRetention } from "./retention.js"
import * as Rules from "./rules.js"
import * as Session from "./session.js"

// The CDC service, assembled from its parts in this folder: `rules` (the
// registry, its validation and persistence), `session` (one rule's sync/run
// with retries, and its stats), `retention` (slots over their WAL bound),
// `stream` (the raw change stream), `replication` (the source's connections,
// catalog and slots), `monitor` (the connection kept for `stats`), `apply`
// (targets), `schema` (the persisted rules) and `source` (where the primary
// is). `context` is what they share. The pure parts (pgoutput decoding, the
// replication protocol's side, changes, types, apply SQL) are the core's
// `cdc/*`.

/** @internal */
export const make = (options: Options): Effect.Effect<Cdc, InvalidRule, Scope.Scope> =>
  Effect.gen(function*() {
    const context = makeContext(options, yield* Effect.scope)
    const cdc: Cdc = {
      addRule: (rule) => Effect.andThen(Rules.add(context, rule), Rules.persist(context)),
      removeRule: (name, removeOptions) => Rules.remove(context, name, removeOptions),
      listRules: Effect.sync(() => Rules.rules(context)),
      config: Effect.sync(() => ({ rules: Rules.rules(context) })),
      sync: (name) => Session.sync(context, name),
      run: (name) => Session.run(context, name),
      stats: (name) => Session.stats(context, name),
      resnapshot: (name, tables) => Session.resnapshot(context, name, tables),
      enforceRetention: enforceRetention(context)
    }

    for (const rule of options.rules ?? []) yield* Rules.add(context, rule)
    yield* cdc.enforceRetention.pipe(
      Effect.schedule(Schedule.spaced(options.retentionCheckInterval ?? "30 seconds")),
      Effect.forkScoped
    )
    if (options.autoRun) {
      for (const state of context.states.values()) {
        if (state.rule.enabled ?? true) yield* cdc.run(state.rule.name).pipe(Effect.catchTag("UnknownRule", Effect.die))
      }
    }
    return cdc
  })
