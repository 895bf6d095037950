/**
 * The event log's payload checks: what PostgreSQL's `jsonb` gives back as it
 * was given, the JSON text of a payload, raw JSON text validated, and where
 * in a payload a problem is (`$`, then `.key` or `["key"]` and `[index]`).
 * Reasons describe a value's kind, never its content: a payload may hold
 * secrets, and errors are logged.
 *
 * @since 0.1.0
 */

/**
 * Deeper payloads are refused: far beyond any event's needs, and well within
 * what PostgreSQL's jsonb parser and this checker's recursion accept.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxPayloadDepth = 1000

/**
 * Where in a payload, and what is wrong there.
 *
 * @since 0.1.0
 * @category models
 */
export interface JsonProblem {
  /** `$`, then `.key` or `["key"]` and `[index]`. */
  readonly path: string
  readonly reason: string
}

/**
 * A payload as JSON text: `text` is what is stored, `value` what it holds.
 *
 * @since 0.1.0
 * @category models
 */
export interface JsonText {
  readonly _tag: "Json"
  readonly text: string
  readonly value: unknown
}

/**
 * A payload refused: where, why, and what was thrown, if anything was.
 *
 * @since 0.1.0
 * @category models
 */
export interface JsonRefusal extends JsonProblem {
  readonly _tag: "Refused"
  readonly cause?: unknown
}

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Why PostgreSQL would not store a string unchanged (text and jsonb alike),
 * if it would not: U+0000, or a lone UTF-16 surrogate.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const textProblem = (text: string): string | undefined =>
  text.includes("\u0000")
    ? "contains U+0000, which PostgreSQL text and jsonb cannot hold"
    : loneSurrogate.test(text)
    ? "contains a lone UTF-16 surrogate, which is not Unicode text (it would be stored as U+FFFD or refused)"
    : undefined

const plainKey = /^[A-Za-z_$][A-Za-z0-9_$]*$/

const keyPath = (path: string, key: string) =>
  plainKey.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)}]`

/**
 * A path of keys and indexes as a payload path: `["a", 0, "b c"]` →
 * `$.a[0]["b c"]` (a long key cut at 64 characters).
 *
 * @since 0.1.0
 * @category conversions
 */
export const payloadPath = (keys: ReadonlyArray<PropertyKey>): string =>
  keys.reduce<string>((at, key) => typeof key === "number" ? `${at}[${key}]` : keyPath(at, String(key)), "$")

const kindOf = (value: object): string => {
  const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name
  return typeof name === "string" && name !== "" && name !== "Object" ? `a ${name}` : "an object with a custom prototype"
}

const primitiveProblem = (value: unknown, path: string): JsonProblem | undefined => {
  switch (typeof value) {
    case "string": {
      const problem = textProblem(value)
      return problem === undefined ? undefined : { path, reason: `a string that ${problem}` }
    }
    case "number":
      return Number.isFinite(value)
        ? undefined
        : { path, reason: "a number that is not finite (NaN, ±Infinity, or beyond the double range): JSON has none" }
    case "bigint":
      return {
        path,
        reason: "a bigint, which JSON cannot hold: convert it (to a string or number), or give the type a payload Schema " +
          "that encodes it (Schema.BigInt)"
      }
    case "undefined":
      return {
        path,
        reason: "undefined, which JSON cannot hold (JSON.stringify would drop the property or write null): " +
          "omit the property or use null"
      }
    case "function":
      return { path, reason: "a function, which JSON cannot hold" }
    case "symbol":
      return { path, reason: "a symbol, which JSON cannot hold" }
    default:
      return undefined
  }
}

/**
 * Why `value` would not come back from `jsonb` as it went in, if it would
 * not: the first offending place and what is there. Accepted: null,
 * booleans, finite numbers, strings PostgreSQL can hold, arrays without holes
 * and plain objects (prototype `Object.prototype` or null) of those, without
 * cycles, at most {@link maxPayloadDepth} deep. Everything `JSON.stringify`
 * would throw on (bigint, cycles), drop (undefined, functions and symbols as
 * properties, symbol keys) or change (NaN and ±Infinity to null, a Date to a
 * string, a Map to `{}`) is refused. It reads the value: a getter that
 * throws makes it throw.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const jsonProblem = (payload: unknown): JsonProblem | undefined => {
  const ancestors: Array<{ readonly value: object; readonly path: string }> = []
  const visit = (value: unknown, path: string): JsonProblem | undefined => {
    if (typeof value !== "object" || value === null) return primitiveProblem(value, path)
    const cycle = ancestors.find((ancestor) => ancestor.value === value)
    if (cycle !== undefined) return { path, reason: `a circular reference (to ${cycle.path}), which JSON cannot hold` }
    if (ancestors.length >= maxPayloadDepth) {
      return { path, reason: `nesting deeper than ${maxPayloadDepth} levels` }
    }
    ancestors.push({ value, path })
    const problem = Array.isArray(value) ? visitArray(value, path) : visitObject(value, path)
    ancestors.pop()
    return problem
  }
  const visitArray = (array: ReadonlyArray<unknown>, path: string): JsonProblem | undefined => {
    for (let i = 0; i < array.length; i++) {
      if (!(i in array)) return { path: `${path}[${i}]`, reason: "an empty array slot (JSON.stringify would write null)" }
      const problem = visit(array[i], `${path}[${i}]`)
      if (problem !== undefined) return problem
    }
    return undefined
  }
  const visitObject = (object: object, path: string): JsonProblem | undefined => {
    const prototype = Object.getPrototypeOf(object)
    if (prototype !== Object.prototype && prototype !== null) {
      return {
        path,
        reason: `${kindOf(object)}, not a plain object: JSON would not keep it as it is; convert it, or give the type ` +
          "a payload Schema that encodes it (e.g. Schema.Date)"
      }
    }
    if (Object.getOwnPropertySymbols(object).length > 0) {
      return { path, reason: "an object with symbol keys, which JSON.stringify would drop" }
    }
    for (const key of Object.keys(object)) {
      const at = keyPath(path, key)
      const keyProblem = textProblem(key)
      if (keyProblem !== undefined) return { path: at, reason: `a key that ${keyProblem}` }
      const problem = visit((object as Record<string, unknown>)[key], at)
      if (problem !== undefined) return problem
    }
    return undefined
  }
  return visit(payload, "$")
}

const refused = (path: string, reason: string, cause?: unknown): JsonRefusal =>
  cause === undefined ? { _tag: "Refused", path, reason } : { _tag: "Refused", path, reason, cause }

/**
 * The JSON text of a payload that {@link jsonProblem} accepts (so
 * `JSON.stringify` cannot throw or drop anything), or its refusal. A payload
 * that cannot be read (a getter that throws, a Proxy that refuses) is refused
 * at `$`, with what it threw.
 *
 * @since 0.1.0
 * @category conversions
 */
export const toJson = (value: unknown): JsonText | JsonRefusal => {
  try {
    const problem = jsonProblem(value)
    return problem === undefined
      ? { _tag: "Json", text: JSON.stringify(value), value }
      : refused(problem.path, problem.reason)
  } catch (cause) {
    return refused("$", "reading the payload threw", cause)
  }
}

/**
 * Raw JSON text, kept as it is (jsonb normalises whitespace and key order),
 * once it parses and holds only what {@link jsonProblem} accepts; `value` is
 * what it parsed to. The parser's message, which quotes the text, is only
 * the refusal's cause, never its reason.
 *
 * @since 0.1.0
 * @category conversions
 */
export const fromRawJson = (text: unknown): JsonText | JsonRefusal => {
  if (typeof text !== "string") return refused("$", "EventLog.rawJson needs a string")
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (cause) {
    return refused("$", "the raw text is not valid JSON", cause)
  }
  // Parsed JSON has no getters: reading it cannot throw.
  const problem = jsonProblem(value)
  return problem === undefined ? { _tag: "Json", text, value } : refused(problem.path, problem.reason)
}
