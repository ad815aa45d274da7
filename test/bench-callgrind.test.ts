/**
 * bench/callgrind.mjs: instruction and cache-miss counts per request under valgrind. The reading of
 * callgrind_annotate's output and V8's perf map (bench/lib/callgrind.mjs) on fixed text, then one
 * short run end to end (a gateway under valgrind, a few hundred requests) and its report read
 * again from its files (--from).
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { diffFunctions, functionName, isRuntimeWork, lookupAddress, parseAnnotate, parsePerfMap, perRequest } from '../bench/lib/callgrind.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

interface Parsed { events: string[], totals: number[], functions: Array<{ name: string, counts: number[] }> }

// callgrind_annotate --auto=no output with a simulated cache: a count of 0 has no share, and "."
// stands for an event never seen in that function.
const annotated = `--------------------------------------------------------------------------------
Profile data file 'x.callgrind.1' (creator: callgrind-3.19.0)
--------------------------------------------------------------------------------
D1 cache: 49152 B, 64 B, 12-way associative
Events recorded:  Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
Events shown:     Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
Thresholds:       100 0 0 0 0 0 0 0 0

--------------------------------------------------------------------------------
Ir                 Dr               Dw              I1mr           D1mr           D1mw          ILmr        DLmr          DLmw
--------------------------------------------------------------------------------
1,111,000 (100.0%) 300,000 (100.0%) 100,000 (100.0%) 5,000 (100.0%) 4,000 (100.0%) 1,000 (100.0%) 50 (100.0%) 700 (100.0%) 300 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                 Dr               Dw              I1mr           D1mr           D1mw          ILmr        DLmr          DLmw            file:function
--------------------------------------------------------------------------------
  600,000 (54.0%)  150,000 (50.0%)  50,000 (50.0%)  1,000 (20.0%)  2,000 (50.0%)    500 (50.0%)  10 (20.0%)  400 (57.1%)   100 (33.3%)  ???:v8::internal::Scavenger::ScavengeObject(v8::internal::HeapObject) [/usr/bin/node]
  400,000 (36.0%)  100,000 (33.3%)  40,000 (40.0%)  3,000 (60.0%)  1,500 (37.5%)    400 (40.0%)  30 (60.0%)  250 (35.7%)   150 (50.0%)  ???:0x00000000000a1000 [???]
  100,000 ( 9.0%)   50,000 (16.7%)  10,000 (10.0%)  1,000 (20.0%)    500 (12.5%)    100 (10.0%)  10 (20.0%)   50 ( 7.1%)    50 (16.7%)  ???:Builtins_LoadIC [/usr/bin/node]
   11,000 ( 1.0%)        0               0              0              0              0            0           .             .           ???:0x00000000000ff000 [???]
`

const perfMapText = [
  'a2000 100 JS:*proxyHandler file:///repo/packages/proxy/dist/plugin.js:279:26',
  'a1000 800 JS:*find /repo/node_modules/.pnpm/find-my-way@9.10.1/node_modules/find-my-way/index.js:618:39',
  'not a line of the map',
  'b0000 40 Builtin:RecordWriteSaveFP'
].join('\n')

t.test('parseAnnotate: the events, the totals, and every function, "." and shareless 0 counted as 0', async (t) => {
  const parsed = parseAnnotate(annotated) as Parsed
  t.same(parsed.events, ['Ir', 'Dr', 'Dw', 'I1mr', 'D1mr', 'D1mw', 'ILmr', 'DLmr', 'DLmw'])
  t.same(parsed.totals, [1111000, 300000, 100000, 5000, 4000, 1000, 50, 700, 300])
  t.equal(parsed.functions.length, 4)
  t.same(parsed.functions[3], { name: '???:0x00000000000ff000 [???]', counts: [11000, 0, 0, 0, 0, 0, 0, 0, 0] })
  // Nothing is lost: the functions add up to the program's totals, event by event.
  parsed.events.forEach((event, i) => {
    t.equal(parsed.functions.reduce((sum, fn) => sum + fn.counts[i], 0), parsed.totals[i], event)
  })
  t.throws(() => parseAnnotate('no counts here\n'), /Events shown/)
})

t.test('the perf map: entries sorted, an address found from its start up to its end (exclusive)', async (t) => {
  const entries = parsePerfMap(perfMapText)
  t.same(entries.map((e: { start: number }) => e.start), [0xa1000, 0xa2000, 0xb0000])
  t.match(lookupAddress(entries, 0xa1000), { name: /find-my-way/ })
  t.match(lookupAddress(entries, 0xa17ff), { name: /find-my-way/ })
  t.equal(lookupAddress(entries, 0xa1800), undefined, 'between two entries')
  t.match(lookupAddress(entries, 0xa2000), { name: /proxyHandler/ })
  t.equal(lookupAddress(entries, 0x1000), undefined, 'before the first')
  t.equal(lookupAddress(entries, 0xc0000), undefined, 'after the last')
  t.equal(lookupAddress([], 0xa1000), undefined)
})

t.test('functionName: JIT code named from the map, with package@version or the repository path', async (t) => {
  const entries = parsePerfMap(perfMapText)
  t.equal(functionName('???:0x00000000000a1010 [???]', entries, '/repo'), 'JS *find find-my-way@9.10.1:find-my-way/index.js:618:39')
  t.equal(functionName('???:0x00000000000a2010 [???]', entries, '/repo'), 'JS *proxyHandler packages/proxy/dist/plugin.js:279:26')
  t.equal(functionName('???:0x00000000000ff000 [???]', entries, '/repo'), 'JS (unnamed JIT code)')
  t.equal(functionName('???:Builtins_LoadIC [/usr/bin/node]', entries, '/repo'), 'Builtins_LoadIC')
  t.equal(functionName('./malloc/malloc.c:_int_malloc [/usr/lib/libc.so.6]', entries, '/repo'), './malloc/malloc.c:_int_malloc [/usr/lib/libc.so.6]')
})

t.test('the runtime (collector, compilers) is told apart from the request path', async (t) => {
  for (const name of ['v8::internal::Scavenger::ScavengeObject(v8::internal::HeapObject)', 'v8::internal::ConcurrentMarking::RunMajor(v8::JobDelegate*)',
    'v8::internal::Sweeper::RawSweep(v8::internal::Page*)', 'v8::internal::compiler::GraphReducer::ReduceTop()', '__popcountdi2 [/usr/lib/libgcc_s.so.1]']) {
    t.ok(isRuntimeWork(name), name)
  }
  for (const name of ['Builtins_LoadIC', 'Builtins_StringAdd_CheckNone', 'JS *find find-my-way@9.10.1:find-my-way/index.js:618:39', 'v8::base::FastDtoa(double)']) {
    t.notOk(isRuntimeWork(name), name)
  }
})

function named (): Parsed {
  const parsed = parseAnnotate(annotated) as Parsed
  const entries = parsePerfMap(perfMapText)
  return { ...parsed, functions: parsed.functions.map((fn) => ({ name: functionName(fn.name, entries, '/repo'), counts: fn.counts })) }
}

t.test('perRequest: each event per request, request path (and its JS) apart from the runtime', async (t) => {
  const r = perRequest(named(), 100)
  t.same(r.all, { Ir: 11110, D1miss: 50, LLmiss: 10 })
  t.same(r.runtime, { Ir: 6000, D1miss: 25, LLmiss: 5 })
  t.same(r.requestPath, { Ir: 5110, D1miss: 25, LLmiss: 5 })
  t.same(r.js, { Ir: 4110, D1miss: 19, LLmiss: 4 })
  // Without --cache-sim the miss events are not there, and not reported.
  const instructionsOnly = { events: ['Ir'], totals: [1000], functions: [{ name: 'JS *f x.js:1:1', counts: [1000] }] }
  t.same(perRequest(instructionsOnly, 10).requestPath, { Ir: 100 })
})

t.test('diffFunctions: per request, b minus a, largest first, runtime left out', async (t) => {
  const a = named()
  const b = named()
  // b counted twice the requests with the same per-request cost, except the find-my-way lookup.
  b.functions = b.functions.map((fn) => ({ name: fn.name, counts: fn.counts.map((c) => c * 2) }))
  b.functions[1].counts[0] = 2 * 400000 + 200 * 300
  b.functions.push({ name: 'JS *only-in-b x.js:1:1', counts: [20000, 0, 0, 0, 0, 0, 0, 0, 0] })
  const rows = diffFunctions(a, 100, b, 200, 'Ir', 10) as Array<{ name: string, a: number, b: number, diff: number }>
  t.same(rows[0], { name: 'JS *find find-my-way@9.10.1:find-my-way/index.js:618:39', a: 4000, b: 4300, diff: 300 })
  t.same(rows[1], { name: 'JS *only-in-b x.js:1:1', a: 0, b: 100, diff: 100 })
  t.equal(rows.find((r) => r.name.includes('Scavenger')), undefined)
  t.equal(rows.find((r) => r.name === 'Builtins_LoadIC')?.diff, 0)
  t.equal(diffFunctions(a, 100, b, 200, 'Ir', 1).length, 1, 'top')
})

function run (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bench/callgrind.mjs', ...args], { cwd: root, timeout: 300_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, stdout, stderr })
    })
  })
}

interface Counts {
  commit?: string
  requests: number
  scenarios: Array<{ name: string, requests: number, perRequest: { requestPath: { Ir: number }, js: { Ir: number }, runtime: { Ir: number } } }>
}

t.test('a short run end to end: two gateways under valgrind, counted, compared, and read again', async (t) => {
  const out = mkdtempSync(path.join(tmpdir(), 'faultline-callgrind-test-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  const first = await run(['--scenarios', 'api,apis-one', '--apis', '2', '--warmup', '200', '--requests', '100', '--no-cache', '--top', '100', '--out', out])
  t.equal(first.code, 0, first.stderr)
  const work = /callgrind's files: (\S+)/.exec(first.stderr)?.[1]
  t.ok(work, 'names the directory of callgrind\'s files')
  if (work !== undefined) t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const json = readdirSync(out).find((f) => f.endsWith('.json')) as string
  const counts = JSON.parse(readFileSync(path.join(out, json), 'utf8')) as Counts
  t.equal(counts.requests, 100)
  t.same(counts.scenarios.map((s) => s.name), ['api', 'apis-one'])
  for (const s of counts.scenarios) {
    // A proxied request through the full chain runs well over ten thousand instructions, part of
    // them in JIT code named from the perf map.
    t.ok(s.perRequest.requestPath.Ir > 10_000, `${s.name}: ${s.perRequest.requestPath.Ir} instructions per request`)
    t.ok(s.perRequest.js.Ir > 1_000, `${s.name}: ${s.perRequest.js.Ir} of them in named JavaScript`)
  }
  t.match(first.stdout, /## apis-one against api/)
  t.match(first.stdout, /Ir on the request path: [\d.]+x/)
  t.match(first.stdout, /`JS [*^~]/, 'JavaScript functions by name in the comparison')
  // Timer callbacks run by the clock: what runs under Node's RunTimers is not counted, only the
  // few instructions of the function itself around the toggles (a timer callback alone is
  // thousands).
  const dump = readdirSync(work as string).find((f) => /^apis-one\.\d+\.callgrind\.1$/.test(f)) as string
  const inclusive = await new Promise<string>((resolve, reject) => {
    execFile('callgrind_annotate', ['--inclusive=yes', '--auto=no', '--threshold=100', path.join(work as string, dump)], { maxBuffer: 1 << 26 }, (err, stdout) => err === null ? resolve(stdout) : reject(err))
  })
  const timers = (parseAnnotate(inclusive) as Parsed).functions.filter((fn) => fn.name.includes('node::Environment::RunTimers'))
  t.ok(timers.every((fn) => fn.counts[0] < 1_000), `RunTimers, with all it calls: ${timers.map((fn) => fn.counts[0]).join(', ') || 0} instructions`)

  // The same files reported again, without running anything.
  const again = await run(['--from', work as string, '--scenarios', 'api,apis-one', '--compare', 'apis-one:api', '--top', '3', '--out', out])
  t.equal(again.code, 0, again.stderr)
  t.match(again.stdout, /## api against apis-one/)
  const table = again.stdout.split('## api against apis-one')[1].split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| Ir'))
  t.equal(table.length, 3, '--top 3')
  const [, apiRow] = /\| api \(full chain, 1 API\) \| ([\d,.]+) \|/.exec(again.stdout) ?? []
  t.equal(Number(apiRow?.replace(/,/g, '')), Math.round(counts.scenarios[0].perRequest.requestPath.Ir), 'the same counts')
  // Without a simulated cache there are no misses to order the functions by.
  const noMisses = await run(['--from', work as string, '--scenarios', 'api,apis-one', '--sort', 'LLmiss', '--out', out])
  t.not(noMisses.code, 0)
  t.match(noMisses.stderr, /--sort takes one of Ir, got LLmiss/)
})

t.test('bad arguments are refused before anything starts', async (t) => {
  const unknown = await run(['--scenarios', 'api,nope'])
  t.not(unknown.code, 0)
  t.match(unknown.stderr, /unknown scenario "nope"/)
  const pair = await run(['--scenarios', 'api,apis-one', '--compare', 'api:apis-ten'])
  t.match(pair.stderr, /--compare takes pairs/)
  const count = await run(['--requests', '0'])
  t.match(count.stderr, /--requests must be a positive integer/)
})
