/**
 * The harness's statistics (bench/lib/stats.mjs): the median of per-round ratios, the interval
 * that holds it with 95% confidence, and the met / missed / unsettled verdict of a target.
 */
import t from 'tap'
import { median, medianInterval, verdict } from '../bench/lib/stats.mjs'
import { seededRandom } from '../bench/lib/random.mjs'

interface Interval { low: number, high: number, confidence: number }
const interval = medianInterval as (values: number[], confidence?: number) => Interval | undefined

t.test('median: odd and even counts, non-finite values ignored, none at all', async (t) => {
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.equal(median([NaN, 5, Infinity, 1, undefined]), 3)
  t.equal(median([]), undefined)
})

t.test('the 95% interval of a median of 9 rounds runs from the 2nd to the 8th lowest', async (t) => {
  const rounds = [0.91, 0.84, 0.99, 0.87, 0.95, 0.80, 0.93, 0.89, 1.02]
  t.same(interval(rounds), { low: 0.84, high: 0.99, confidence: 1 - 2 * 10 / 512 })
  // Other counts: the narrowest pair of order statistics that still holds 95%.
  const ranks = (n: number): Interval | undefined => interval(Array.from({ length: n }, (_, i) => i + 1))
  t.same(ranks(6), { low: 1, high: 6, confidence: 1 - 2 / 64 })
  t.same(ranks(11), { low: 2, high: 10, confidence: 1 - 2 * 12 / 2048 })
  // P(Binomial(20, 1/2) <= 5) = (1 + 20 + 190 + 1,140 + 4,845 + 15,504) / 2^20
  t.same(ranks(20), { low: 6, high: 15, confidence: 1 - 2 * 21_700 / 2 ** 20 })
  t.equal(interval([]), undefined)
})

t.test('with 5 rounds or fewer no interval reaches 95%: the widest is given with its own confidence', async (t) => {
  t.same(interval([5, 1, 3, 2, 4]), { low: 1, high: 5, confidence: 1 - 2 / 32 })
  t.same(interval([2, 1]), { low: 1, high: 2, confidence: 0.5 })
  t.same(interval([7]), { low: 7, high: 7, confidence: 0 })
})

t.test('the interval holds the true median at least 95% of the time, for a skewed distribution too', async (t) => {
  // Exponential rounds (median ln 2): far from normal, like rounds a noisy neighbour slows down.
  const random = seededRandom(7)
  const trueMedian = Math.LN2
  for (const n of [7, 9, 15]) {
    const trials = 4000
    let held = 0
    let stated = 0
    for (let i = 0; i < trials; i++) {
      const rounds = Array.from({ length: n }, () => -Math.log(1 - random()))
      const found = interval(rounds) as Interval
      stated = found.confidence
      if (found.low <= trueMedian && trueMedian <= found.high) held++
    }
    // Binomial noise of 4,000 trials: about 0.003 either way.
    t.ok(held / trials >= stated - 0.015, `n=${n}: held ${held / trials} of the time, stated ${stated}`)
    t.ok(stated >= 0.95, `n=${n}: stated confidence ${stated}`)
  }
})

t.test('verdict: met when the whole interval meets the goal, missed when none of it does', async (t) => {
  const check = verdict as (i: { low: number, high: number } | undefined, op: '>=' | '<=', goal: number) => string | undefined
  t.equal(check({ low: 0.96, high: 1.04 }, '>=', 0.95), 'met')
  t.equal(check({ low: 0.95, high: 1.04 }, '>=', 0.95), 'met')
  t.equal(check({ low: 0.80, high: 0.93 }, '>=', 0.95), 'missed')
  t.equal(check({ low: 0.90, high: 0.99 }, '>=', 0.95), 'unsettled')
  t.equal(check({ low: 1.1, high: 1.4 }, '<=', 1.5), 'met')
  t.equal(check({ low: 1.6, high: 1.9 }, '<=', 1.5), 'missed')
  t.equal(check({ low: 1.3, high: 1.7 }, '<=', 1.5), 'unsettled')
  t.equal(check(undefined, '>=', 1), undefined)
})
