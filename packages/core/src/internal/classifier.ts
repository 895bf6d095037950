/** @internal */
import type * as Classifier from "../Classifier.js"
import { classifyText } from "./classifier/rules.js"
import { isSchemaChange } from "./classifier/schemaChange.js"
import { addConfiguredName, defaultSideEffectFunctions } from "./classifier/sideEffects.js"

/** @internal */
export { classifyText, defaultSideEffectFunctions, isSchemaChange }

const defaultCacheSize = 4096

/** @internal */
export const make = (options?: Classifier.Options | undefined): Classifier.Classifier => {
  const configured = options?.sideEffectFunctions ?? []
  // a lone string is an Iterable<string> of its characters
  const base = new Set(defaultSideEffectFunctions)
  for (const name of typeof configured === "string" ? [configured] : configured) addConfiguredName(base, name)
  const names = new Set(base)
  const limit = options?.cacheSize === undefined ? defaultCacheSize : Math.max(0, Math.floor(options.cacheSize)) || 0
  const cache = new Map<string, Classifier.StatementKind>()
  const explain = (sql: string): Classifier.Classification => classifyText(sql, names)
  const kind = (sql: string): Classifier.StatementKind => {
    const cached = cache.get(sql)
    if (cached !== undefined) return cached
    const result: Classifier.StatementKind = classifyText(sql, names).intent === "read"
      ? "read"
      : isSchemaChange(sql)
      ? "schema-change"
      : "write"
    if (limit > 0) {
      if (cache.size >= limit) cache.delete(cache.keys().next().value!)
      cache.set(sql, result)
    }
    return result
  }
  const classify = (sql: string): Classifier.Intent => kind(sql) === "read" ? "read" : "write"
  const setDiscoveredFunctions = (discovered: Iterable<string>): void => {
    names.clear()
    for (const name of base) names.add(name)
    for (const name of discovered) addConfiguredName(names, name)
    // A text remembered as a read may call a function that is now known to write.
    cache.clear()
  }
  return { classify, kind, explain, setDiscoveredFunctions, cacheSize: () => cache.size }
}

const defaultClassifier = make()

/** @internal */
export const routeQueryType = defaultClassifier.classify

/** @internal */
export const explain = defaultClassifier.explain
