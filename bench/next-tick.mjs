/**
 * What `process.nextTick` costs in a gateway process once its APIs are built through
 * `registerApi` (which awaits `primeNextTick()` first, packages/gateway/src/runtime.ts): 1 API
 * against 1,000 with the full chain (API key, rate limit, quota, breaker). Each case is a process
 * of its own (V8's state is what is measured), the cases interleaved, several rounds. Before
 * primeNextTick, the 1,000-API process paid ~6x per call (BENCHMARKS.md, eighth pass).
 *
 *   node bench/next-tick.mjs [--rounds 3] [--apis 1000]
 *
 * Prints ns per call of a chain of ticks (median of the rounds) for each case, and their ratio.
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    apis: { type: 'string', default: '1000' },
    child: { type: 'string' }
  }
})

/** ns per call of `count` chained ticks (each tick schedules the next). */
function chainedTicks (count) {
  return new Promise((resolve) => {
    let left = count
    const start = process.hrtime.bigint()
    const step = () => {
      if (--left === 0) resolve(Number(process.hrtime.bigint() - start) / count)
      else process.nextTick(step)
    }
    process.nextTick(step)
  })
}

async function child (apiCount) {
  const { default: Fastify } = await import('fastify')
  const { default: core } = await import('@faultline/core')
  const { registerApi, tuneGatewayRuntime } = await import('@faultline/gateway')
  tuneGatewayRuntime()
  const app = Fastify({ logger: false })
  await app.register(core)
  // Composed as bench/lib/sut.mjs composes the gateway: every API in one scope.
  await app.register(async (scope) => {
    for (let i = 0; i < apiCount; i++) {
      await registerApi(scope, {
        name: `api-${i}`,
        prefix: `/api-${i}`,
        upstream: { targets: ['http://127.0.0.1:9'] },
        auth: { type: 'apiKey', keys: [{ id: 'consumer', key: 'bench-key-0123456789' }] },
        rateLimit: { max: 1_000_000, timeWindow: '1 minute' },
        quota: { max: 1_000_000, period: 'month' },
        circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 10, resetTimeout: 30_000 }
      })
    }
  })
  await app.ready()
  const samples = []
  for (let i = 0; i < 3; i++) samples.push(await chainedTicks(200_000))
  await app.close()
  process.stdout.write(`${Math.min(...samples)}\n`)
}

if (args.child !== undefined) {
  await child(Number(args.child))
} else {
  const rounds = Number(args.rounds)
  const apis = Number(args.apis)
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20 || !Number.isInteger(apis) || apis < 1 || apis > 5000) {
    process.stderr.write('usage: node bench/next-tick.mjs [--rounds 1..20] [--apis 1..5000]\n')
    process.exit(2)
  }
  const cases = [1, apis]
  const results = new Map(cases.map((c) => [c, []]))
  const script = fileURLToPath(import.meta.url)
  for (let round = 0; round < rounds; round++) {
    for (const count of cases) {
      const out = execFileSync(process.execPath, [script, '--child', String(count)], { encoding: 'utf8' })
      results.get(count).push(Number(out.trim()))
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  for (const count of cases) {
    const xs = results.get(count)
    process.stdout.write(`${String(count).padStart(5)} APIs: ${median(xs).toFixed(0).padStart(5)} ns per nextTick (rounds: ${xs.map((x) => x.toFixed(0)).join(', ')})\n`)
  }
  process.stdout.write(`${apis} APIs / 1 API: ${(median(results.get(apis)) / median(results.get(1))).toFixed(2)}\n`)
}
