/**
 * Deterministic pseudo-random numbers (mulberry32): the same seed gives the same sequence on every
 * run, so orders and generated logs are comparable from run to run.
 * @param {number} seed
 * @returns {() => number} numbers in [0, 1)
 */
export function seededRandom (seed) {
  let a = seed | 0
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
