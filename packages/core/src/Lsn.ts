/**
 * PostgreSQL WAL positions (LSNs): `16/B374D848` as text, a `bigint` in
 * arithmetic.
 *
 * @since 0.1.0
 */

/**
 * `16/B374D848` → bigint.
 *
 * @since 0.1.0
 * @category conversions
 */
export const parseLsn = (text: string | null | undefined): bigint | undefined => {
  if (!text) return undefined
  const slash = text.indexOf("/")
  if (slash < 0) return undefined
  return (BigInt(`0x${text.slice(0, slash)}`) << 32n) + BigInt(`0x${text.slice(slash + 1)}`)
}

/**
 * bigint → `16/B374D848`.
 *
 * @since 0.1.0
 * @category conversions
 */
export const formatLsn = (lsn: bigint): string =>
  `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`
