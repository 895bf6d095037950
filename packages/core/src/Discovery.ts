/**
 * Discovery's verdicts: given what each node says about itself, who the
 * router should treat as primary.
 *
 * @since 0.1.0
 */

/**
 * Of the writable nodes of a split brain, the one whose reads can be trusted:
 * the only one on the newest timeline. A node that was promoted is on a later
 * timeline than the one it left behind, so the newest timeline is the history
 * the cluster keeps; an old primary that still accepts writes holds rows that
 * will be lost. Undefined when that cannot be told (a timeline unknown, or a
 * tie): then nothing changes.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const newestTimeline = <A extends { readonly timeline: number | undefined }>(
  writable: ReadonlyArray<A>
): A | undefined => {
  let newest: A | undefined
  let tie = false
  for (const candidate of writable) {
    if (candidate.timeline === undefined) return undefined
    if (newest === undefined || candidate.timeline > newest.timeline!) {
      newest = candidate
      tie = false
    } else if (candidate.timeline === newest.timeline) {
      tie = true
    }
  }
  return tie ? undefined : newest
}
