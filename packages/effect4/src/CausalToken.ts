/**
 * A causal session as a short opaque string, so that it can cross processes
 * (an HTTP header, a job payload). A token names the WAL position its reader
 * must see and the cluster it belongs to, and is signed with the router's
 * `consistency.tokenSecret` (HMAC-SHA256): every process that exchanges tokens
 * must share that secret. Decoding checks the format, the signature and the
 * cluster; a token that fails any check is rejected, never used for routing.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type { SessionState } from "./Consistency.js"
import * as internal from "./internal/consistency.js"
import { tag as SqlRouterTag } from "./internal/sqlRouter.js"
import type { InvalidToken } from "./RouterError.js"
import type * as SqlRouter from "./SqlRouter.js"

/**
 * The token of a session state, signed with the router's `tokenSecret`.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (state: SessionState): Effect.Effect<string, never, SqlRouter.SqlRouter> =>
  SqlRouterTag.useSync((router) => internal.encodeToken(router, state))

/**
 * The session state of a token, after checking its format, signature and
 * cluster. Exactly one spelling of a token is accepted: the one `encode`
 * gives (canonical base64url, no padding), so a token cannot be varied and
 * still pass.
 *
 * @since 0.1.0
 * @category encoding
 */
export const decode = (token: string): Effect.Effect<SessionState, InvalidToken, SqlRouter.SqlRouter> =>
  SqlRouterTag.use((router) => internal.decodeToken(router, token))
