/**
 * Type tests for the public API, checked by `tsc -p tsconfig.json`: lines marked
 * @ts-expect-error must NOT compile (if one starts compiling, tsc fails). tap only loads the file.
 */
import Fastify from 'fastify'
import t from 'tap'
import core from '@faultline/core'
import breaker, {
  breakerDefaults,
  isUpstreamFailure,
  type BreakerStats,
  type CircuitBreakerState,
  type FaultlineBreaker,
  type FaultlineBreakerOptions
} from '@faultline/breaker'

export async function typeChecks (): Promise<unknown[]> {
  const app = Fastify()
  await app.register(core)
  await app.register(breaker)
  await app.register(breaker, {
    name: 'payments',
    errorThresholdPercentage: 50,
    volumeThreshold: 10,
    resetTimeout: 30000,
    rollingCountTimeout: 10000,
    rollingCountBuckets: 10,
    capacity: 100
  })
  // @ts-expect-error resetTimeout is a number of ms
  await app.register(breaker, { resetTimeout: '30s' })
  // @ts-expect-error there is no action timeout: the proxy's timeouts apply
  await app.register(breaker, { timeout: 1000 })
  const options: FaultlineBreakerOptions = { volumeThreshold: breakerDefaults.volumeThreshold }
  // @ts-expect-error the defaults are read-only
  breakerDefaults.volumeThreshold = 1

  const guard: FaultlineBreaker = app.faultlineBreaker
  const state: CircuitBreakerState = guard.state
  // @ts-expect-error the states are closed, open and half_open
  const wrong: CircuitBreakerState = 'halfOpen'
  // @ts-expect-error the state is read from the breaker, not set
  guard.state = 'open'
  const stats: BreakerStats = guard.stats()
  const failing: boolean = isUpstreamFailure('UCF')
  return [options, state, wrong, stats, failing]
}

t.test('the public types compile (checked by tsc -p tsconfig.json)', async (t) => {
  t.type(typeChecks, 'function')
})
