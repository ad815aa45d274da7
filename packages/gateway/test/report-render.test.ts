// `faultline report` building blocks and renderers: latency histogram, timeline, progress bar,
// the monthly breakdown, and the escaping of hostile log values in every format.
import { Readable } from 'node:stream'
import t from 'tap'
import { main } from '@faultline/gateway'
import {
  BoundedCounter, csvCell, escapeHtml, escapeMarkdown, cleanText, LatencyHistogram, meanUpstreamLatency, ProgressBar, Timeline,
  type ReportSummary
} from '@faultline/gateway/report'
import { errorLine, okLine } from '../../../test/helpers/access-lines.js'

async function report (args: string[], stdin: string): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(['report', ...args, '-'], {
    stdout: { write: (text: string) => { stdout += text } },
    stderr: { write: (text: string) => { stderr += text } },
    stdin: Readable.from([Buffer.from(stdin)])
  })
  return { code, stdout, stderr }
}

const T0 = Date.UTC(2026, 10, 23, 10, 0, 0)

/** A deterministic pseudo-random sequence (mulberry32). */
function random (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('the latency histogram: percentiles within 5% of the exact ones, in fixed memory', async (t) => {
  const rnd = random(7)
  const h = new LatencyHistogram()
  const values: number[] = []
  for (let i = 0; i < 20_000; i++) {
    // Log-normal-ish latencies from 0.05 ms to a few seconds.
    const v = Math.exp(rnd() * 11 - 3)
    values.push(v)
    h.record(v)
  }
  values.sort((a, b) => a - b)
  for (const q of [0.5, 0.9, 0.99]) {
    const exact = values[Math.ceil(q * values.length) - 1]
    const got = h.quantile(q)
    t.ok(Math.abs(got - exact) / exact < 0.05, `p${q * 100}: ${got} vs exact ${exact}`)
  }
  t.equal(h.counts.length, 290, 'the bucket array does not grow')
  const p = h.percentiles()
  t.equal(p?.count, 20_000)
  t.equal(p?.min, Math.round(values[0] * 1000) / 1000)
  t.equal(p?.max, Math.round(values[values.length - 1] * 1000) / 1000)
})

t.test('the latency histogram: identical values come back exactly; empty is null; merge adds up', async (t) => {
  const a = new LatencyHistogram()
  for (let i = 0; i < 5; i++) a.record(150.125)
  t.same(a.percentiles(), { count: 5, min: 150.125, p50: 150.125, p90: 150.125, p99: 150.125, max: 150.125 })
  t.equal(new LatencyHistogram().percentiles(), null)
  a.record(NaN)
  a.record(-1)
  t.equal(a.count, 5, 'NaN and negative values are not latencies')
  const b = new LatencyHistogram()
  b.record(0)
  b.record(1e9)
  a.merge(b)
  const p = a.percentiles()
  t.match(p, { count: 7, min: 0, p90: 1e9, p99: 1e9, max: 1e9 }, 'past the last bucket: the maximum')
  t.ok(Math.abs((p?.p50 ?? 0) - 150.125) / 150.125 < 0.05, `p50 ${p?.p50}`)
})

t.test('a bounded counter folds keys past its cap', async (t) => {
  const c = new BoundedCounter(2)
  for (const k of ['a', 'b', 'a', 'c', 'd', 'c']) c.add(k)
  t.same(c.top(), [{ key: 'a', count: 2 }, { key: 'b', count: 1 }, { key: '(other)', count: 3 }])
  t.same(c.top(1), [{ key: 'a', count: 2 }, { key: '(other)', count: 4 }])
})

t.test('the timeline: per minute, coarsened to hours past two weeks, merged for display', async (t) => {
  const tl = new Timeline()
  tl.add(T0, 0, 10)
  tl.add(T0 + 30_000, 1, 30)
  tl.add(T0 + 5 * 60_000, 3, NaN)
  const minutes = tl.series(100)
  t.equal(minutes.bucketMs, 60_000)
  t.same(minutes.buckets.map((b) => [b.requests, b.errors[0], b.errors[2]]), [[2, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 0, 1]])
  t.same(minutes.buckets.map(meanUpstreamLatency), [20, null, null, null, null, null], 'mean upstream latency, where an upstream was reached')
  const merged = tl.series(2)
  t.equal(merged.bucketMs, 5 * 60_000)
  t.same(merged.buckets.map((b) => b.requests), [2, 1])

  const long = new Timeline()
  for (let m = 0; m < 21 * 24 * 60; m += 1) long.add(T0 + m * 60_000, m % 2 === 0 ? 0 : 1, m)
  t.equal(long.bucketMs, 3_600_000, 'three weeks of minutes became hours')
  t.ok(long.buckets.size <= 21 * 24 + 1)
  const series = long.series(1000)
  t.equal(series.buckets.reduce((a, b) => a + b.requests, 0), 21 * 24 * 60, 'nothing lost')
  t.equal(meanUpstreamLatency(series.buckets[0]), 29.5, 'the first hour: mean of 0..59')
})

t.test('the progress bar: only on a terminal, only after a moment, erased at the end', async (t) => {
  t.equal(ProgressBar.for({ write: () => {} }, 100), null, 'not a terminal: no bar')
  t.equal(ProgressBar.for({ write: () => {}, isTTY: false }, 100), null)
  let clock = 0
  let out = ''
  const bar = new ProgressBar({ write: (s: string) => { out += s }, isTTY: true, columns: 80 }, 1000, () => clock)
  bar.update(100, 1000)
  t.equal(out, '', 'nothing in the first 300 ms')
  clock = 500
  bar.update(500, 250_000)
  t.equal(out, '\r\u001b[2Kreading [###############...............]  50%  250.0k lines  500.0k lines/s')
  clock = 550
  bar.update(600, 300_000)
  t.equal(out.split('\r').length, 2, 'redrawn at most every 100 ms')
  bar.done()
  t.ok(out.endsWith('\r\u001b[2K'), 'erased')
  out = ''
  const stdin = new ProgressBar({ write: (s: string) => { out += s }, isTTY: true }, undefined, () => clock)
  clock = 2000
  stdin.update(5_000_000, 10_000)
  t.match(out, /reading 5\.0MB {2}10\.0k lines/, 'unknown size: bytes and lines')
})

t.test('logs spanning months get a monthly breakdown by error source (md and html)', async (t) => {
  const lines: string[] = []
  const months = [Date.UTC(2026, 8, 10), Date.UTC(2026, 9, 10), Date.UTC(2026, 10, 10)]
  months.forEach((start, i) => {
    for (let k = 0; k <= i; k++) lines.push(errorLine(start + k * 1000, 'UCF'))
    lines.push(errorLine(start + 5000, 'AKI'))
    lines.push(okLine(start + 6000))
  })
  const json = JSON.parse((await report(['--format', 'json'], lines.join('\n'))).stdout) as ReportSummary
  t.same(json.months.map((m) => [m.month, m.requests, m.errors, m.sides.upstream, m.sides.client, m.errorSources]), [
    ['2026-09', 3, 2, 1, 1, [{ key: 'ApiKeyAuth', count: 1 }, { key: 'UpstreamProxy', count: 1 }]],
    ['2026-10', 4, 3, 2, 1, [{ key: 'UpstreamProxy', count: 2 }, { key: 'ApiKeyAuth', count: 1 }]],
    ['2026-11', 5, 4, 3, 1, [{ key: 'UpstreamProxy', count: 3 }, { key: 'ApiKeyAuth', count: 1 }]]
  ])
  const md = (await report(['--format', 'md'], lines.join('\n'))).stdout
  t.match(md, /^\| 2026-10 \| 4 \| 3 \| 75\.0% \| 2 \| 0 \| 1 \| UpstreamProxy 2, ApiKeyAuth 1 \|$/m)
  const html = (await report(['--format', 'html'], lines.join('\n'))).stdout
  t.match(html, /<section id="monthly"/)
  t.match(html, /<tr><td class="t">2026-11<\/td><td class="n">5<\/td><td class="n">4<\/td><td class="n">80\.0%<\/td>\s*<td class="n">3<\/td><td class="n">0<\/td><td class="n">1<\/td>\s*<td class="n">3<\/td><td class="n">1<\/td><\/tr>/)
  t.ok(json.timeline.buckets.length <= 720 && json.timeline.bucketMs >= 3_600_000, 'two months of timeline: hours wide or more')

  const oneDay = (await report(['--format', 'html'], [okLine(T0), errorLine(T0 + 1000, 'UCF')].join('\n'))).stdout
  t.notMatch(oneDay, /id="monthly"/, 'no monthly section for a day of logs')
})

const HOSTILE = '\u001b[31m<script>alert(1)</script><img src=x onerror=alert(2)>"\'&|*_[x](javascript:alert(3))=cmd|'

t.test('values from a log cannot inject markup, formulas or terminal escapes', async (t) => {
  const lines = [
    errorLine(T0, 'UCF', { api_name: HOSTILE, error_target: HOSTILE, error_source: HOSTILE }),
    errorLine(T0 + 1000, 'UCF', { response_flag: '<b>X</b>', error_category: '<i>', api_name: '=HYPERLINK("http://evil")' }),
    okLine(T0 + 2000, HOSTILE)
  ].join('\n')

  const html = (await report(['--format', 'html', '--by', 'api'], lines)).stdout
  t.notMatch(html, /<script|<img|<b>X|<i>/i, 'no element from the log')
  t.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&#39;&amp;'), 'shown as text')
  t.ok(html.includes('&lt;b&gt;X&lt;/b&gt;'))
  t.match(html, /Content-Security-Policy" content="default-src 'none'/)

  const md = (await report(['--format', 'md'], lines)).stdout
  t.notMatch(md, /<script|<img|<b>/)
  t.ok(md.includes('&lt;script&gt;'))
  t.ok(md.includes('\\[x\\](javascript:alert(3))'), 'no link')
  t.notMatch(md, /[^\\]\|x\]/)
  t.notOk(md.includes('\u001b'))

  const text = (await report([], lines)).stdout
  t.notOk(text.includes('\u001b'), 'no escape character reaches the terminal')
  t.ok(text.includes('\ufffd[31m'), 'shown as a replacement character')

  const csv = (await report(['--format', 'csv', '--by', 'api'], lines)).stdout
  t.ok(csv.includes('"\'=HYPERLINK(""http://evil"")"'), 'a formula is defused and quoted')
  t.notOk(csv.includes('\n=') || csv.includes(',='), 'no cell starts with =')

  t.equal(escapeHtml('<a href="x">\'&'), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;')
  t.equal(escapeMarkdown('a|b*c_d`e<f'), 'a\\|b\\*c\\_d\\`e&lt;f')
  t.equal(cleanText('ok\u001b[2J\u202eevil', 100), 'ok\ufffd[2J\ufffdevil')
  t.equal(csvCell('@SUM(A1)'), "'@SUM(A1)")
  t.equal(csvCell('-2+3'), "'-2+3")
  t.equal(csvCell('a,b'), '"a,b"')
  t.equal(csvCell(12.5), '12.5')
})
