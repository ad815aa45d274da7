/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or `bench/run.mjs --cpu-prof id`): self time
 * by function and by package, so two profiles of the same load can be compared quickly.
 *
 *   node bench/profile-summary.mjs bench/results/profiles/fl-full.cpuprofile [top] [filter]
 *
 * With a filter (a regular expression on "function file:line"), it also lists the inclusive time
 * (self + callees) of the matching functions, e.g. 'faultline|access-log' for the plugins' own hooks.
 */
import { readFileSync } from 'node:fs'

const [file, topArg, filterArg] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile [top]\n')
  process.exit(2)
}
const top = Number(topArg ?? 30)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const selfUs = new Map()
// timeDeltas[i] is the time before samples[i]: attribute it to that sample's node.
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0)

function packageOf (url) {
  if (url === '') return '(native/V8)'
  const nm = url.lastIndexOf('node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  if (url.startsWith('node:')) return 'node core'
  const pkg = /packages\/([^/]+)\//.exec(url)
  if (pkg !== null) return `@faultline/${pkg[1]}`
  return url.split('/').slice(-2).join('/')
}

const fnTotals = new Map()
const pkgTotals = new Map()
for (const [id, us] of selfUs) {
  const { callFrame } = byId.get(id)
  const name = `${callFrame.functionName || '(anonymous)'} ${callFrame.url.split('/').slice(-2).join('/')}:${callFrame.lineNumber + 1}`
  fnTotals.set(name, (fnTotals.get(name) ?? 0) + us)
  const pkg = packageOf(callFrame.url)
  pkgTotals.set(pkg, (pkgTotals.get(pkg) ?? 0) + us)
}
const pct = (us) => `${(us * 100 / total).toFixed(1).padStart(5)}%`
process.stdout.write(`${file}: ${(total / 1000).toFixed(0)} ms sampled\n\nby package:\n`)
for (const [pkg, us] of [...pkgTotals].sort((a, b) => b[1] - a[1]).slice(0, 20)) process.stdout.write(`${pct(us)}  ${pkg}\n`)
process.stdout.write('\nby function (self time):\n')
for (const [name, us] of [...fnTotals].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${pct(us)}  ${name}\n`)

if (filterArg !== undefined) {
  const filter = new RegExp(filterArg)
  const children = new Map(profile.nodes.map((n) => [n.id, n.children ?? []]))
  const inclusive = new Map()
  const totalOf = (id) => {
    let t = inclusive.get(id)
    if (t !== undefined) return t
    t = selfUs.get(id) ?? 0
    for (const c of children.get(id)) t += totalOf(c)
    inclusive.set(id, t)
    return t
  }
  // Sum per function, counting a node only when no ancestor is the same function (recursion).
  const sums = new Map()
  const walk = (id, onStack) => {
    const { callFrame } = byId.get(id)
    const name = `${callFrame.functionName || '(anonymous)'} ${callFrame.url.split('/').slice(-2).join('/')}:${callFrame.lineNumber + 1}`
    const counted = !onStack.has(name) && filter.test(name)
    if (counted) sums.set(name, (sums.get(name) ?? 0) + totalOf(id))
    const next = counted ? new Set([...onStack, name]) : onStack
    for (const c of children.get(id)) walk(c, next)
  }
  walk(profile.nodes[0].id, new Set())
  process.stdout.write(`\ninclusive time of functions matching /${filterArg}/:\n`)
  for (const [name, us] of [...sums].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${pct(us)}  ${name}\n`)
}
