import { spawnSync } from 'node:child_process'
import t from 'tap'
import { gatewayV8Flags, tuneGatewayRuntime } from '@faultline/gateway'

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
