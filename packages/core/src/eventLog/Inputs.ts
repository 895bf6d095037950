/**
 * The rules an event log's arguments follow, as plain predicates with the
 * rule text a refusal gives: versions, counts, projection ids, type names
 * and revisions. A refusal never quotes the value.
 *
 * @since 0.1.0
 */
import { textProblem } from "./Payload.js"

/**
 * The longest type name, in UTF-16 code units.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxTypeNameLength = 256

/**
 * The longest revision (`revisionVcs`), in UTF-16 code units.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxRevisionVcsLength = 256

/**
 * The smallest projection id: ids are `integer` (the seed's int32).
 *
 * @since 0.1.0
 * @category constants
 */
export const minProjectionId = -2147483648

/**
 * The largest projection id.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxProjectionId = 2147483647

/**
 * Whether `value` is a type name: 1 to {@link maxTypeNameLength}
 * characters PostgreSQL can hold.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isTypeName = (value: unknown): value is string =>
  typeof value === "string" && value.length >= 1 && value.length <= maxTypeNameLength && textProblem(value) === undefined

/**
 * What {@link isTypeName} asks.
 *
 * @since 0.1.0
 * @category rules
 */
export const typeNameRule = `must be 1 to ${maxTypeNameLength} characters, without U+0000 or lone surrogates`

/**
 * Whether `value` is a revision: at most {@link maxRevisionVcsLength}
 * characters PostgreSQL can hold (empty is allowed).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isRevisionVcs = (value: unknown): value is string =>
  typeof value === "string" && value.length <= maxRevisionVcsLength && textProblem(value) === undefined

/**
 * What {@link isRevisionVcs} asks.
 *
 * @since 0.1.0
 * @category rules
 */
export const revisionVcsRule =
  `must be a string of at most ${maxRevisionVcsLength} characters, without U+0000 or lone surrogates`

/**
 * Whether `value` is an integer from `minimum` to 2^53 - 1: versions are
 * `bigint` in the table, and exact in JavaScript up to 2^53 - 1.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isCount = (value: unknown, minimum: number): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= minimum

/**
 * What {@link isCount} asks.
 *
 * @since 0.1.0
 * @category rules
 */
export const countRule = (minimum: number): string => `must be an integer from ${minimum} to 2^53 - 1`

/**
 * Whether `value` is a version (a count from 0).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isVersion = (value: unknown): value is number => isCount(value, 0)

/**
 * What {@link isVersion} asks.
 *
 * @since 0.1.0
 * @category rules
 */
export const versionRule: string = countRule(0)

/**
 * Whether `value` is a projection id: an int32.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isProjectionId = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= minProjectionId && value <= maxProjectionId

/**
 * What {@link isProjectionId} asks.
 *
 * @since 0.1.0
 * @category rules
 */
export const projectionIdRule = "must be an integer from -2^31 to 2^31 - 1 (int32)"

/**
 * What a flag (`reverse`) asks.
 *
 * @since 0.1.0
 * @category rules
 */
export const booleanRule = "must be a boolean"

/**
 * How a listener learns of new events.
 *
 * @since 0.1.0
 * @category constants
 */
export const listenModes = ["notify", "poll"] as const

/**
 * What a listener's `mode` asks.
 *
 * @since 0.1.0
 * @category rules
 */
export const listenModeRule = "must be \"notify\" or \"poll\""

/**
 * What an options argument asks when it is not an object at all (each field
 * has its own rule).
 *
 * @since 0.1.0
 * @category rules
 */
export const shapeRules = {
  newEvent: "must be an object { typeName, payload, revisionVcs? }",
  readEvents: "must be an object { atVersion, limit, reverse? }",
  options: "must be an object"
} as const
