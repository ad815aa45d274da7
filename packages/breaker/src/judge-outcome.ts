/**
 * What a finished request says about its upstream, read from its record (the access-log line):
 * a failure only when the upstream is to blame, a success when the upstream answered, and
 * inconclusive for everything the upstream had no part in.
 */
import { flagList, type FaultlineRecord } from '@faultline/core'

export const SUCCESS = 0
export const FAILURE = 1
export const INCONCLUSIVE = 2
export type Outcome = typeof SUCCESS | typeof FAILURE | typeof INCONCLUSIVE

/**
 * Upstream-category flags the gateway raises itself, without an upstream having failed: no healthy
 * target (the health marking already decided), its own in-flight limit, and the breaker's own answer.
 */
const GATEWAY_DECIDED = new Set(['NHU', 'UOF', 'CBO'])

/**
 * Flags that count against the upstream, read from the catalogue: every upstream-category flag
 * (transport and TLS failures, URS for an upstream 5xx) except the ones the gateway decides alone.
 */
export const upstreamFailureFlags: ReadonlySet<string> = new Set(
  flagList.filter((f) => f.category === 'upstream' && !GATEWAY_DECIDED.has(f.code)).map((f) => f.code)
)

/** Whether a response flag puts the blame on the upstream. */
export function isUpstreamFailure (flag: string): boolean {
  return upstreamFailureFlags.has(flag)
}

/**
 * The outcome of a finished request for the breaker:
 * - FAILURE: flagged with an upstream failure (UCF, URT, TLS flags, ..., URS).
 * - SUCCESS: not flagged and the status came from the upstream (2xx to 4xx: the upstream answered).
 * - INCONCLUSIVE: any other flag (client errors, auth, rate limits, CDC, gateway errors, NHU, UOF,
 *   CBO) or a reply the gateway produced itself: nothing was learned about the upstream.
 */
export function judgeOutcome (record: FaultlineRecord): Outcome {
  const flag = record.response_flag
  if (flag === undefined) return record.response_source === 'upstream' ? SUCCESS : INCONCLUSIVE
  return upstreamFailureFlags.has(flag) ? FAILURE : INCONCLUSIVE
}
