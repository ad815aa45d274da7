/**
 * What the Faultline rows send and configure, shared by the harness (run.mjs) and the instruction
 * counts (callgrind.mjs), so that both measure the same gateway.
 */
import { apiKey } from './keys.mjs'

/** The path every single-API row requests (the upstream answers the same body for any path). */
export const PATH = '/api/items/42'
/** The one consumer's key of the full chain. */
export const KEY = { 'x-api-key': apiKey(0) }

/**
 * The full chain of one API (API-key auth, rate limit, quota, breaker), as sut.mjs takes it. Its
 * limits are far above what a run sends: the rows measure the cost of counting.
 */
export const fullChain = (target, extra = {}) => ({
  name: 'bench',
  prefix: '/api',
  target,
  keys: 1,
  rateLimit: { max: 1_000_000_000, timeWindow: '1 minute' },
  quota: { max: 1_000_000_000_000, period: 'month' },
  breaker: { errorThresholdPercentage: 50, volumeThreshold: 10, resetTimeout: 30_000 },
  ...extra
})

/** `count` full-chain APIs `api-<i>` under the prefixes `/api-<i>`: the scale rows' gateway. */
export const manyApis = (target, count) => Array.from({ length: count }, (_, i) => fullChain(target, { name: `api-${i}`, prefix: `/api-${i}` }))

/** A request to the API `api-<i>` of manyApis (with the full chain's key). */
export const apiRequest = (i) => ({ path: `/api-${i}/items/42`, headers: KEY })

/** `count` indexes below `of`, spread deterministically (the same keys and APIs every run). */
export const spread = (count, of) => Array.from({ length: count }, (_, i) => Math.floor((i * 2654435761) % of))

/** A request to the single-API full chain with the key `apiKey(i)` (its gateway holds that many keys or more). */
const keyRequest = (i) => ({ path: PATH, headers: { 'x-api-key': apiKey(i) } })

/**
 * The key-scale traffic: requests from 1,000 keys of a gateway holding `held` keys, spread over its
 * table (with 1,000 held, every key once: the spread of 1,000 over 1,000 is a permutation).
 */
export const keyTraffic = (held) => spread(1000, held).map(keyRequest)
