/**
 * "Who do I page?": the side that owns an error, from the flag catalogue.
 *
 * - `upstream`: the upstream failed or answered 5xx itself (category `upstream`);
 * - `gateway`: the gateway itself (category `gateway`), or a service it depends on that failed
 *   with a 5xx: the external auth service (EAE), the rate-limit store (RLE);
 * - `client`: the request was refused on its merits (bad credentials, too many requests, bad body,
 *   no route): the caller has to change something.
 */
import { flags } from '@faultline/core'

export const SIDES = ['upstream', 'gateway', 'client'] as const
export type Side = typeof SIDES[number]

function sideFor (category: string | undefined, status: number): Side {
  if (category === 'upstream') return 'upstream'
  if (category === 'gateway') return 'gateway'
  return status >= 500 ? 'gateway' : 'client'
}

/** The side of a flagged line: the catalogue's facts for a known flag, the line's own otherwise. */
export function sideOf (flag: string, category: string | undefined, status: number): Side {
  const def = Object.hasOwn(flags, flag) ? flags[flag] : undefined
  if (def !== undefined) return sideFor(def.category, def.status ?? status)
  return sideFor(category, status)
}

export function sideIndex (side: Side): number {
  return side === 'upstream' ? 0 : side === 'gateway' ? 1 : 2
}
