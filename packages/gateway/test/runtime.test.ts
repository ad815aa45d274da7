import { spawnSync } from 'node:child_process'
import t from 'tap'
import { gatewayV8Flags, primeNextTick, registerApi, tuneGatewayRuntime } from '@faultline/gateway'
import Fastify from 'fastify'
import core from '@faultline/core'

// v8.setFlagsFromString ignores a flag it does not know: a Node upgrade that dropped one would
// silently undo the tuning. Node itself refuses an unknown flag on its command line.
t.test('every V8 flag the gateway applies exists in this Node', async (t) => {
  t.ok(gatewayV8Flags.length > 0)
  for (const flag of gatewayV8Flags) {
    const run = spawnSync(process.execPath, [flag, '-e', '0'], { encoding: 'utf8' })
    t.equal(run.status, 0, `${flag}: ${run.stderr}`)
    t.equal(run.stderr, '', flag)
  }
})

t.test('tuneGatewayRuntime can be called more than once', async (t) => {
  t.doesNotThrow(() => { tuneGatewayRuntime(); tuneGatewayRuntime() })
})

t.test('a made-up flag is refused by node, so the check above can fail', async (t) => {
  const run = spawnSync(process.execPath, ['--no-such-v8-flag-for-faultline', '-e', '0'], { encoding: 'utf8' })
  t.not(run.status, 0)
})

t.test('primeNextTick runs nextTick hot once per process, before registerApi adds the first routes', async (t) => {
  const original = process.nextTick
  let calls = 0
  process.nextTick = function counted (this: unknown, ...args: Parameters<typeof process.nextTick>) {
    calls++
    return original.apply(this, args)
  } as typeof process.nextTick
  t.teardown(() => { process.nextTick = original })
  const app = Fastify({ logger: false })
  await app.register(core)
  await app.register(async (scope) => {
    await registerApi(scope, { name: 'one', prefix: '/one', upstream: { targets: ['http://127.0.0.1:9'] } } as never)
  })
  await app.ready()
  t.ok(calls >= 300_000, `registerApi primed nextTick first (${calls} calls)`)
  calls = 0
  await primeNextTick()
  t.ok(calls < 10, `a second time costs nothing (${calls} calls)`)
  await app.close()
})
