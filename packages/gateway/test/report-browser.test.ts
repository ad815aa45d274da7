// The HTML report in a real browser (headless Chromium over the DevTools protocol): no console
// error, no blocked fetch, the charts drawn, hostile log values inert, printable to PDF.
// Saves test/artifacts/report.png and report.pdf. Fails (does not skip) without Chromium.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'
import { main } from '@faultline/gateway'
import { errorLine, okLine } from '../../../test/helpers/access-lines.js'
import { Browser, findChromium } from '../../../test/helpers/chromium.js'

const artifacts = fileURLToPath(new URL('../../../test/artifacts/', import.meta.url))

/** Two months of traffic with an upstream incident, auth and rate-limit refusals, and one hostile line. */
function sampleLog (): string {
  const lines: string[] = []
  const start = Date.UTC(2026, 9, 20, 9, 0, 0)
  for (let day = 0; day < 40; day++) {
    const t0 = start + day * 86_400_000
    for (let i = 0; i < 20; i++) lines.push(okLine(t0 + i * 60_000, i % 3 === 0 ? 'Payments' : 'Orders', 8 + (i % 7)))
    if (day % 5 === 0) lines.push(errorLine(t0 + 30_000, 'AKI', { api_name: 'Payments' }))
    if (day % 4 === 0) lines.push(errorLine(t0 + 90_000, 'RLT'))
    if (day === 33) {
      for (let i = 0; i < 30; i++) lines.push(errorLine(t0 + 3_600_000 + i * 20_000, 'URT', { upstream_latency: 5000 + i * 3, latency_total: 5001 + i * 3 }))
      for (let i = 0; i < 12; i++) lines.push(errorLine(t0 + 4_000_000 + i * 20_000, 'UCF'))
    }
  }
  lines.push(errorLine(start + 5000, 'NRF', {
    api_name: '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>',
    error_target: '"><svg onload="window.__xss=3">'
  }))
  return lines.join('\n') + '\n'
}

async function renderHtml (log: string): Promise<string> {
  let out = ''
  const code = await main(['report', '--format', 'html', '-'], {
    stdout: { write: (text: string) => { out += text } },
    stderr: { write: () => {} },
    stdin: Readable.from([Buffer.from(log)])
  })
  if (code !== 0) throw new Error(`report exited ${code}`)
  return out
}

t.test('the HTML report in headless Chromium', async (t) => {
  const chromium = findChromium()
  if (chromium === undefined) {
    t.fail('Chromium is needed for this test: apt-get install chromium (scripts/setup.mjs --test does it as root)')
    return
  }
  const dir = t.testdir({})
  const file = join(dir, 'report.html')
  writeFileSync(file, await renderHtml(sampleLog()))

  const browser = await Browser.launch(chromium)
  t.teardown(() => browser.close())
  await browser.open(pathToFileURL(file).href)

  const page = await browser.evaluate<{
    title: string
    svgs: number
    timelineBars: number
    monthly: boolean
    flagRows: string[]
    injected: number
    xss: unknown
    hostileText: boolean
    kpiRequests: string
  }>(`(() => ({
    title: document.title,
    svgs: document.querySelectorAll('svg').length,
    timelineBars: document.querySelectorAll('#timeline svg rect.bar').length,
    monthly: document.querySelector('#monthly svg') !== null,
    flagRows: [...document.querySelectorAll('#flags tr[data-flag]')].map((tr) => tr.dataset.flag),
    injected: document.querySelectorAll('script, img, iframe, svg[onload]').length,
    xss: window.__xss,
    hostileText: document.body.textContent.includes('<img src=x onerror="window.__xss=1">'),
    kpiRequests: document.querySelector('#kpi-requests b').textContent
  }))()`)

  t.same(browser.problems, [], 'no console error, exception or blocked request')
  t.match(page.title, /^Faultline report 2026-10-20$/)
  t.ok(page.svgs >= 4, `charts present (${page.svgs} svg elements)`)
  t.ok(page.timelineBars > 10, `the timeline has bars (${page.timelineBars})`)
  t.ok(page.monthly, 'two months of logs: the monthly chart')
  t.same(page.flagRows, ['URT', 'UCF', 'RLT', 'AKI', 'NRF'])
  t.equal(page.kpiRequests, '861')
  t.equal(page.injected, 0, 'no element from the log')
  t.equal(page.xss, undefined, 'no script from the log ran')
  t.ok(page.hostileText, 'the hostile value is shown as text')

  mkdirSync(artifacts, { recursive: true })
  const png = await browser.screenshot()
  t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG')
  t.ok(png.length > 20_000, `a real picture (${png.length} bytes)`)
  writeFileSync(join(artifacts, 'report.png'), png)

  const pdf = await browser.pdf()
  t.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-')
  const pages = pdf.toString('latin1').match(/\/Type\s*\/Page[^s]/g)?.length ?? 0
  t.ok(pages >= 1 && pages <= 8, `printable on a few A4 pages (${pages})`)
  writeFileSync(join(artifacts, 'report.pdf'), pdf)
  t.same(browser.problems, [], 'still no problem after printing')
})
