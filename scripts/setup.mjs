// Installs the workspace (pnpm through npx, no global install) and builds every package.
// Idempotent and quick when nothing changed: the README's demo and test commands call it first.
// With --test it also makes sure the system tools the test suite uses are there (redis-server,
// prometheus and promtool, chromium, iproute2, unshare, valgrind), installing them with apt-get when it can (root on
// Debian); the tests that need them fail with a clear message otherwise.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const pnpm = ['--yes', 'pnpm@10']
const frozen = existsSync('pnpm-lock.yaml') ? ['--frozen-lockfile'] : []

function run (command, args, what) {
  const r = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, npm_config_update_notifier: 'false' } })
  if (r.status !== 0) {
    process.stderr.write(`setup: ${what} failed (exit ${r.status})\n`)
    process.exit(r.status ?? 1)
  }
}

function has (command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

if (process.argv.includes('--test')) {
  const packages = new Set()
  if (!has('redis-server')) packages.add('redis-server')
  if (!has('chromium')) packages.add('chromium')
  if (!has('prometheus') || !has('promtool')) packages.add('prometheus')
  if (!has('ip') || !has('ss')) packages.add('iproute2')
  if (!has('unshare')) packages.add('util-linux')
  if (!has('valgrind')) packages.add('valgrind')
  if (packages.size > 0) {
    const list = [...packages].join(' ')
    if (has('apt-get') && process.getuid?.() === 0) {
      process.stderr.write(`setup: installing ${list} for the test suite\n`)
      run('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${list}`], `apt-get install ${list}`)
    } else {
      process.stderr.write(`setup: the test suite needs ${list} (Debian: apt-get install ${list}); tests that use them will fail\n`)
    }
  }
}

run('npx', [...pnpm, 'install', ...frozen, '--reporter=append-only'], 'pnpm install')
run('npx', [...pnpm, 'run', 'build'], 'build')
