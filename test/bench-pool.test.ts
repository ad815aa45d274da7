/**
 * bench/pool.mjs: the paired rounds of several runs pooled per target, and the verdict of the
 * pooled median's interval (what one run of 5 or 9 rounds leaves unsettled, more rounds settle).
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** A results file as bench/run.mjs writes it, reduced to what pooling reads. */
function results (pairs: Array<{ pair: string, valid?: boolean, ratios: number[] }>): object {
  return {
    commit: 'abc123def456',
    targets: [
      { text: 'spread vs one', op: '>=', goal: 0.95, pair: ['scale-apis', 'scale-base'] },
      { text: 'full vs bare', op: '>=', goal: 0.85, pair: ['fl-full', 'reply-from'] },
      { text: 'p99 (not paired)', op: '<=', goal: 1.5 }
    ],
    paired: pairs.map(({ pair, valid = true, ratios }) => {
      const [a, b] = pair.split(':')
      return { a, b, valid, rounds: ratios.map((r) => ({ a: { rps: 1000 * r }, b: { rps: 1000 } })) }
    })
  }
}

async function pool (files: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    execFile(process.execPath, ['bench/pool.mjs', ...files], { cwd: root, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, stdout, stderr })
    })
  })
}

t.test('pooling two runs settles what each left unsettled', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faultline-pool-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = path.join(dir, 'first.json')
  const second = path.join(dir, 'second.json')
  writeFileSync(first, JSON.stringify(results([
    { pair: 'scale-apis:scale-base', ratios: [0.90, 0.96, 0.97, 0.98, 0.99] },
    { pair: 'fl-full:reply-from', ratios: [0.80, 0.82, 0.84, 0.86, 0.78] }
  ])))
  writeFileSync(second, JSON.stringify(results([
    { pair: 'scale-apis:scale-base', ratios: [1.00, 1.01, 1.02, 1.03] },
    { pair: 'fl-full:reply-from', ratios: [0.81, 0.79, 0.83, 0.80] },
    // An invalid pair (answers without the expected status) counts for nothing.
    { pair: 'scale-apis:scale-base', valid: false, ratios: [0.1, 0.1, 0.1] }
  ])))

  const one = await pool([first])
  t.equal(one.code, 0, one.stderr)
  t.match(one.stdout, '| spread vs one | 5 | 0.97 [0.90, 0.99] (93.8%) | >= 0.95 | unsettled |')
  t.match(one.stdout, '| full vs bare | 5 | 0.82 [0.78, 0.86] (93.8%) | >= 0.85 | unsettled |')

  const both = await pool([first, second])
  t.equal(both.code, 0, both.stderr)
  t.equal(both.stderr, '', 'runs of one commit: no warning')
  // 9 rounds: the 2nd to the 8th lowest.
  t.match(both.stdout, '| spread vs one | 9 | 0.99 [0.96, 1.02] (96.1%) | >= 0.95 | met |')
  t.match(both.stdout, '| full vs bare | 9 | 0.81 [0.79, 0.84] (96.1%) | >= 0.85 | **missed** |')
  t.notMatch(both.stdout, 'p99', 'a target without paired rows is not pooled')
  t.match(both.stdout, `pooled from 2 runs: ${first}, ${second}`)
})

t.test('runs of different commits are pooled with a warning that names them', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faultline-pool-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const a = path.join(dir, 'a.json')
  const b = path.join(dir, 'b.json')
  writeFileSync(a, JSON.stringify(results([{ pair: 'scale-apis:scale-base', ratios: [0.9, 0.95, 1] }])))
  writeFileSync(b, JSON.stringify({ ...results([{ pair: 'scale-apis:scale-base', ratios: [0.9, 0.95, 1] }]), commit: '0123456789ab+dirty' }))
  const r = await pool([a, b])
  t.equal(r.code, 0)
  t.match(r.stderr, 'warning: these runs measured different code (abc123def456, 0123456789ab+dirty)')
  t.match(r.stdout, '| spread vs one | 6 |')
})

t.test('files without targets that name their rows: a clear error, exit code 1', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'faultline-pool-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const old = path.join(dir, 'old.json')
  writeFileSync(old, JSON.stringify({ targets: [{ text: 'spread vs one', op: '>=', goal: 0.95, paired: 0.9 }], paired: [] }))
  const r = await pool([old])
  t.equal(r.code, 1)
  t.match(r.stderr, /no paired rounds of a target/)
  const none = await pool([])
  t.equal(none.code, 2)
  t.match(none.stderr, /usage: node bench\/pool\.mjs/)
})
