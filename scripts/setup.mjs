// Installs the workspace (pnpm through npx, no global install) and builds every package.
// Idempotent and quick when nothing changed: the README's demo and test commands call it first.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const pnpm = ['--yes', 'pnpm@10']
const frozen = existsSync('pnpm-lock.yaml') ? ['--frozen-lockfile'] : []

function run (args, what) {
  const r = spawnSync('npx', [...pnpm, ...args], { stdio: 'inherit', env: { ...process.env, npm_config_update_notifier: 'false' } })
  if (r.status !== 0) {
    process.stderr.write(`setup: ${what} failed (exit ${r.status})\n`)
    process.exit(r.status ?? 1)
  }
}

run(['install', ...frozen, '--reporter=append-only'], 'pnpm install')
run(['run', 'build'], 'build')
