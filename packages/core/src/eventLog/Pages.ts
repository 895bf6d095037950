/**
 * How an event log is read page by page: where the first page starts and
 * where the next one does.
 *
 * @since 0.1.0
 */

/**
 * The default page size of a stream.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultPageSize = 1000

/**
 * A stream's paging, its options checked, defaults filled in.
 *
 * @since 0.1.0
 * @category models
 */
export interface Paging {
  readonly reverse: boolean
  readonly pageSize: number
  /** The first page's first version. */
  readonly start: number
}

/**
 * The paging of a stream's options: forward from version 1, or backward
 * from the newest, in pages of {@link defaultPageSize}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const paging = (options: {
  readonly atVersion?: number | undefined
  readonly reverse?: boolean | undefined
  readonly pageSize?: number | undefined
}): Paging => {
  const reverse = options.reverse === true
  return {
    reverse,
    pageSize: options.pageSize ?? defaultPageSize,
    start: options.atVersion ?? (reverse ? Number.MAX_SAFE_INTEGER : 1)
  }
}

/**
 * Where the page after one that held `count` events, the last at
 * `lastVersion`, starts; undefined when there is none (a short page, or past
 * version 1 backwards).
 *
 * @since 0.1.0
 * @category verdicts
 */
export const nextPage = (paging: Paging, count: number, lastVersion: number | undefined): number | undefined => {
  if (lastVersion === undefined || count < paging.pageSize) return undefined
  const next = paging.reverse ? lastVersion - 1 : lastVersion + 1
  return next >= 1 ? next : undefined
}
