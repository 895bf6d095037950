/**
 * The causal token's codec: a session's WAL position and its cluster as a
 * short signed string, `v1.<lsn hex>.<system identifier base36>.<signature>`,
 * the signature being the first 16 bytes of HMAC-SHA256 over the rest, in
 * base64url. Decoding checks the format, the signature and the cluster; a
 * token that fails any check is rejected with its reason. Exactly one
 * spelling of a token is accepted: the one `encode` gives.
 *
 * @since 0.1.0
 */
import * as Crypto from "node:crypto"

/**
 * A decoded token: the position its reader must see (undefined: none), or
 * why it was rejected.
 *
 * @since 0.1.0
 * @category models
 */
export type Decoded =
  | { readonly _tag: "Valid"; readonly lsn: bigint | undefined }
  | { readonly _tag: "Invalid"; readonly reason: string }

const sign = (secret: string, payload: string): Buffer =>
  Crypto.createHmac("sha256", secret).update(payload).digest().subarray(0, 16)

const clusterOf = (systemIdentifier: string): string => BigInt(systemIdentifier).toString(36)

/**
 * The token of a position in the cluster named by `systemIdentifier`
 * (`pg_control_system().system_identifier`), signed with `secret`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (secret: string, systemIdentifier: string, lsn: bigint | undefined): string => {
  const payload = `v1.${(lsn ?? 0n).toString(16)}.${clusterOf(systemIdentifier)}`
  return `${payload}.${sign(secret, payload).toString("base64url")}`
}

const invalid = (reason: string): Decoded => ({ _tag: "Invalid", reason })

/**
 * The position of a token, after checking its format, its signature (with
 * `secret`) and its cluster (`systemIdentifier`).
 *
 * @since 0.1.0
 * @category encoding
 */
export const decode = (secret: string, systemIdentifier: string, token: string): Decoded => {
  if (token.length > 200) return invalid("too long")
  const parts = token.split(".")
  if (parts.length !== 4 || parts[0] !== "v1") return invalid("not a v1 token")
  const [version, lsnHex, system, signature] = parts as [string, string, string, string]
  if (!/^[0-9a-f]{1,16}$/.test(lsnHex) || !/^[0-9a-z]{1,14}$/.test(system)) return invalid("malformed")
  const expected = sign(secret, `${version}.${lsnHex}.${system}`)
  const given = Buffer.from(signature, "base64url")
  // Buffer's decoder is lenient (padding, the standard alphabet, spare bits): one spelling only.
  if (given.toString("base64url") !== signature) return invalid("malformed signature")
  if (given.length !== expected.length || !Crypto.timingSafeEqual(given, expected)) {
    return invalid("bad signature (tampered, or signed with another tokenSecret)")
  }
  if (system !== clusterOf(systemIdentifier)) return invalid("issued for another cluster")
  const lsn = BigInt(`0x${lsnHex}`)
  return { _tag: "Valid", lsn: lsn === 0n ? undefined : lsn }
}
