import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { flagList } from '@faultline/core'
import { main } from '@faultline/gateway'

const execFileAsync = promisify(execFile)
const bin = fileURLToPath(new URL('../bin/faultline.js', import.meta.url))
const builtCli = fileURLToPath(new URL('../dist/cli.js', import.meta.url))

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs the CLI in-process, capturing what it writes. */
async function run (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, {
    stdout: { write: (text: string) => { stdout += text } },
    stderr: { write: (text: string) => { stderr += text } },
    env
  })
  return { code, stdout, stderr }
}

const validConfig = {
  apis: [
    { name: 'A', prefix: '/a', upstream: { targets: ['http://127.0.0.1:9'] } },
    { name: 'B', prefix: '/b', upstream: { targets: ['http://127.0.0.1:9'] } }
  ]
}

t.test('flags --json prints exactly the catalogue', async (t) => {
  const r = await run(['flags', '--json'])
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  const printed = JSON.parse(r.stdout) as Array<Record<string, unknown>>
  t.same(printed.map((f) => f.code), flagList.map((f) => f.code))
  t.same(printed, JSON.parse(JSON.stringify(flagList)), 'every field of every entry')
})

t.test('flags prints a table with every flag, its status, category, source, details, meaning and check', async (t) => {
  const r = await run(['flags'])
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  const lines = r.stdout.split('\n')
  t.match(lines[0], /^CODE\s+STATUS\s+CATEGORY\s+SOURCE\s+DETAILS$/)
  for (const flag of flagList) {
    const row = lines.findIndex((l) => l.startsWith(flag.code + ' '))
    t.not(row, -1, `${flag.code} has a row`)
    t.match(lines[row], flag.category)
    t.match(lines[row], flag.details)
    t.match(lines[row], flag.source)
    t.match(r.stdout, `meaning: ${flag.meaning}\n`)
    t.match(r.stdout, `check:   ${flag.check}\n`)
  }
  const ucf = lines.find((l) => l.startsWith('UCF '))
  t.match(ucf, /^UCF\s+502\s+upstream\s+UpstreamProxy\s+connection_refused$/)
  t.match(lines.find((l) => l.startsWith('RLT ')), /^RLT\s+429 \+ Retry-After\s+rate_limit\s+RateLimit\s+rate_limited$/)
  t.match(lines.find((l) => l.startsWith('URS ')), /^URS\s+upstream's\s+upstream\s+Upstream\s+upstream_response_status$/)
})

t.test('validate prints "ok: N APIs" and exits 0 for a valid config', async (t) => {
  const dir = t.testdir({ 'gateway.json': JSON.stringify(validConfig) })
  const r = await run(['validate', '--config', join(dir, 'gateway.json')])
  t.same(r, { code: 0, stdout: 'ok: 2 APIs\n', stderr: '' })
  const short = await run(['validate', '-c', join(dir, 'gateway.json')])
  t.equal(short.code, 0)
})

t.test('validate says "1 API" for one', async (t) => {
  const dir = t.testdir({ 'gateway.yaml': 'apis:\n  - { name: A, prefix: /a, upstream: { targets: ["${UP}"] } }\n' })
  const r = await run(['validate', '--config', join(dir, 'gateway.yaml')], { UP: 'http://127.0.0.1:9' })
  t.same(r, { code: 0, stdout: 'ok: 1 API\n', stderr: '' })
})

t.test('validate prints every problem to stderr and exits 1 for an invalid config', async (t) => {
  const dir = t.testdir({
    'gateway.yaml': 'server:\n  port: "80"\napis:\n  - name: A\n    prefix: /a\n    upstream: { targets: ["ftp://x", "${MISSING}"] }\n    rateLimit: { max: 1 }\n'
  })
  const r = await run(['validate', '--config', join(dir, 'gateway.yaml')])
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  const lines = r.stderr.trimEnd().split('\n')
  t.match(lines[0], /gateway\.yaml: invalid configuration \(4 problems\)$/)
  t.same(lines.slice(1).map((l) => l.trim()).sort(), [
    'apis[0].rateLimit.timeWindow: is required',
    'apis[0].upstream.targets[0]: must be an http(s) URL (got "ftp://x")',
    'apis[0].upstream.targets[1]: environment variable MISSING is not set',
    'server.port: must be an integer (got "80")'
  ])
})

t.test('validate on a missing file exits 1 and names it', async (t) => {
  const r = await run(['validate', '--config', '/nonexistent/gateway.yaml'])
  t.equal(r.code, 1)
  t.match(r.stderr, '/nonexistent/gateway.yaml: cannot be read: no such file')
})

t.test('usage errors exit 2 with a short message on stderr', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /^Usage: faultline <command>/],
    [['bogus'], /^faultline: unknown command "bogus"\nRun "faultline help" for usage\.\n$/],
    [['--bogus'], /^faultline: unknown option --bogus\n/],
    [['flags', '--jsn'], /^faultline: flags: unknown option --jsn\n/],
    [['flags', 'extra'], /^faultline: flags: unexpected argument "extra"\n/],
    [['validate'], /^faultline: validate: --config FILE is required\n/],
    [['serve'], /^faultline: serve: --config FILE is required\n/],
    [['validate', '--config'], /^faultline: validate: option -c, --config needs a value\n/],
    [['validate', 'gateway.yaml'], /^faultline: validate: unexpected argument "gateway\.yaml" \(did you mean --config gateway\.yaml\?\)\n/],
    [['validate', '--config', 'a.yaml', '--verbose'], /^faultline: validate: unknown option --verbose\n/]
  ]
  for (const [argv, expected] of cases) {
    const r = await run(argv)
    t.equal(r.code, 2, `exit code of ${JSON.stringify(argv)}`)
    t.equal(r.stdout, '', `no stdout for ${JSON.stringify(argv)}`)
    t.match(r.stderr, expected, `message of ${JSON.stringify(argv)}`)
  }
})

t.test('help prints the usage to stdout and exits 0', async (t) => {
  for (const argv of [['help'], ['--help'], ['-h'], ['validate', '--help'], ['flags', '-h']]) {
    const r = await run(argv)
    t.equal(r.code, 0)
    t.equal(r.stderr, '')
    t.match(r.stdout, /^Usage: faultline <command> \[options\]/)
    t.match(r.stdout, 'serve --config FILE')
    t.match(r.stdout, 'validate --config FILE')
    t.match(r.stdout, 'flags [--json]')
  }
})

t.test('report is a command (its behaviour: report-*.test.ts)', async (t) => {
  const r = await run(['report', '/nonexistent/access.log'])
  t.same(r, { code: 1, stdout: '', stderr: 'faultline report: cannot read /nonexistent/access.log: no such file\n' })
  t.match((await run(['help'])).stdout, /^ {2}report \[FILE\.\.\.\] +summarise access logs/m)
})

t.test('--version prints the package version', async (t) => {
  const r = await run(['--version'])
  t.equal(r.code, 0)
  t.match(r.stdout, /^\d+\.\d+\.\d+\n$/)
})

t.test('serve with an invalid config exits 1 without listening', async (t) => {
  const dir = t.testdir({ 'gateway.json': JSON.stringify({ apis: [] }) })
  const r = await run(['serve', '--config', join(dir, 'gateway.json')])
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  t.match(r.stderr, 'apis: must list at least one item (got [])')
  t.notMatch(r.stderr, 'faultline listening on')
})

t.test('the real binary prints the catalogue as JSON', async (t) => {
  if (!existsSync(builtCli)) {
    t.fail('packages/gateway/dist/cli.js is missing: run `npx tsc -b packages/gateway` before the tests')
    return
  }
  const { stdout, stderr } = await execFileAsync(process.execPath, [bin, 'flags', '--json'])
  t.equal(stderr, '')
  const printed = JSON.parse(stdout) as Array<{ code: string }>
  t.same(printed.map((f) => f.code), flagList.map((f) => f.code))
})

t.test('the real binary exits 2 on a usage error', async (t) => {
  if (!existsSync(builtCli)) {
    t.fail('packages/gateway/dist/cli.js is missing: run `npx tsc -b packages/gateway` before the tests')
    return
  }
  const err = await execFileAsync(process.execPath, [bin, 'nope']).catch((e: unknown) => e) as { code: number, stderr: string }
  t.equal(err.code, 2)
  t.match(err.stderr, 'unknown command "nope"')
})
