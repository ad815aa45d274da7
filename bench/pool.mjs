/**
 * Pools the paired rounds of several runs of the same code, for targets that one run leaves
 * unsettled (the goal inside the interval of the paired median):
 *
 *   node bench/pool.mjs bench/results/2026-12-03T0923.json bench/results/2026-12-03T1002.json
 *
 * Every valid paired round of a target's two rows, from every file, counts as one more round: the
 * rounds of runs made an hour apart are as independent as those of one run. Prints, per target,
 * the rounds pooled, the pooled median with its 95% interval (lib/stats.mjs) and the verdict, as a
 * markdown table. The targets are those of the files written since targets name their rows
 * (`pair`); the rounds of older files count too, once one file names their target. Only results of
 * the same code mean anything together: a warning names the commits when the files' differ (or
 * when a file does not say which it measured).
 */
import { readFileSync } from 'node:fs'
import { summariseRatios, verdict } from './lib/stats.mjs'

const fmt = (n) => (n === undefined || Number.isNaN(n) ? 'n/a' : n.toFixed(2))

/** Pooled verdicts of the targets found in `results` (parsed results files). */
function poolTargets (results) {
  const targets = new Map()
  const rounds = new Map()
  for (const result of results) {
    for (const t of result.targets ?? []) {
      if (t.pair === undefined) continue
      const key = t.pair.join(':')
      if (!targets.has(key)) targets.set(key, { text: t.text, op: t.op, goal: t.goal, pair: t.pair })
    }
    for (const p of result.paired ?? []) {
      if (!p.valid) continue
      const key = `${p.a}:${p.b}`
      const list = rounds.get(key) ?? []
      for (const r of p.rounds) list.push(r.a.rps / r.b.rps)
      rounds.set(key, list)
    }
  }
  const pooled = []
  for (const [key, t] of targets) {
    const values = rounds.get(key)
    if (values === undefined || values.length === 0) continue
    const ratio = summariseRatios(values)
    pooled.push({ ...t, rounds: values.length, ratio, verdict: verdict(ratio, t.op, t.goal) })
  }
  return pooled
}

/** The pooled verdicts as a markdown table. */
function poolMarkdown (pooled, files) {
  const lines = [
    `Paired rounds pooled from ${files.length} run${files.length === 1 ? '' : 's'}: ${files.join(', ')}`,
    '',
    '| target | paired rounds | paired median [interval] | goal | verdict |',
    '|---|---:|---:|---:|---|'
  ]
  for (const p of pooled) {
    const v = p.verdict === 'missed' ? '**missed**' : p.verdict
    lines.push(`| ${p.text} | ${p.rounds} | ${fmt(p.ratio.median)} [${fmt(p.ratio.low)}, ${fmt(p.ratio.high)}] (${(p.ratio.confidence * 100).toFixed(1)}%) | ${p.op} ${p.goal} | ${v} |`)
  }
  return lines.join('\n') + '\n'
}

const files = process.argv.slice(2)
if (files.length === 0) {
  process.stderr.write('usage: node bench/pool.mjs RESULTS.json [RESULTS.json ...]\n')
  process.exit(2)
}
const results = files.map((file) => JSON.parse(readFileSync(file, 'utf8')))
const commits = new Set(results.map((r) => r.commit ?? 'unrecorded'))
if (commits.size > 1 || commits.has('unrecorded')) {
  process.stderr.write(`bench/pool.mjs: warning: these runs measured ${commits.size > 1 ? 'different' : 'unrecorded'} code (${[...commits].join(', ')}); pool runs of one commit\n`)
}
const pooled = poolTargets(results)
if (pooled.length === 0) {
  process.stderr.write('bench/pool.mjs: no paired rounds of a target in these files (results written before targets named their rows cannot be pooled)\n')
  process.exit(1)
}
process.stdout.write(poolMarkdown(pooled, files))
