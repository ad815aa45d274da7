/**
 * The harness's statistics: medians of per-round ratios, how far a median can be trusted, and
 * whether a target is met, missed, or not settled by the rounds run.
 *
 * The interval is the distribution-free one for a median: with n independent rounds, the k-th
 * lowest and the k-th highest value bracket the true median unless at least n - k + 1 rounds fell
 * on the same side of it, which happens with probability 2 * P(Binomial(n, 1/2) <= k - 1). Nothing
 * is assumed about how the rounds are distributed (a noisy neighbour makes them anything but
 * normal). With 9 rounds the 95% interval runs from the 2nd to the 8th value (96.1%); with 5 or
 * fewer no pair of rounds reaches 95%, and the widest (lowest to highest) is given with its own,
 * lower, confidence.
 */

/** Median of the finite numbers in `values`; undefined when there are none. */
export function median (values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return undefined
  const mid = Math.floor(v.length / 2)
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

/** P(Binomial(n, 1/2) <= j), exactly (n is a count of rounds: small). */
function binomialHalfCdf (n, j) {
  let term = 1 // C(n, 0)
  let sum = 0
  for (let i = 0; i <= j; i++) {
    sum += term
    term = (term * (n - i)) / (i + 1)
  }
  return sum / 2 ** n
}

/**
 * The interval that holds the median of the distribution the rounds came from with at least
 * `confidence` (default 0.95): `{ low, high, confidence }`, confidence being the interval's own
 * (at least the one asked for, or the most n rounds can give). Undefined without finite values.
 */
export function medianInterval (values, confidence = 0.95) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  const n = v.length
  if (n === 0) return undefined
  // k = 1 is the lowest to the highest round; a higher k narrows the interval while it still holds.
  let k = 1
  while (k + 1 <= Math.ceil(n / 2) && 1 - 2 * binomialHalfCdf(n, k) >= confidence) k++
  const own = n === 1 ? 0 : 1 - 2 * binomialHalfCdf(n, k - 1)
  return { low: v[k - 1], high: v[n - k], confidence: own }
}

/**
 * `met` when the whole interval meets the goal, `missed` when none of it does, `unsettled` when
 * the goal lies inside it (more rounds, or a quieter machine, would tell).
 */
export function verdict (interval, op, goal) {
  if (interval === undefined) return undefined
  const { low, high } = interval
  if (op === '>=') return low >= goal ? 'met' : high < goal ? 'missed' : 'unsettled'
  return high <= goal ? 'met' : low > goal ? 'missed' : 'unsettled'
}

/**
 * Per-round ratios summed up: the median, the lowest and highest round, and the median's interval
 * (`low`, `high`, `confidence`, as medianInterval).
 */
export function summariseRatios (values) {
  const interval = medianInterval(values)
  return {
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    low: interval?.low,
    high: interval?.high,
    confidence: interval?.confidence
  }
}
