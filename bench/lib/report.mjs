/** Turns a results object into the markdown tables and the SVG chart of throughput ratios. */
import { median } from './stats.mjs'

const fmtInt = (n) => Math.round(n).toLocaleString('en-US')
const fmtRatio = (n) => (n === undefined || n === null || Number.isNaN(n) ? 'n/a' : n.toFixed(2))
const fmtMs = (n) => (n === undefined ? 'n/a' : n.toFixed(n < 10 ? 2 : 1))
const fmtMiB = (bytes) => (bytes / 1048576).toFixed(1)

export function markdown (results) {
  const { machine, versions, settings } = results
  const lines = []
  lines.push(`Run ${results.date} (${results.mode}), ${Math.round(results.elapsedSeconds)} s in all${results.commit === undefined ? '' : `, commit ${results.commit}`}.`)
  lines.push('')
  lines.push(`- Machine: ${machine.cores} cores (\`nproc\`), ${machine.cpuModel}, ${fmtMiB(machine.memoryBytes)} MiB RAM, ${machine.os}, kernel ${machine.kernel}, Node ${machine.node}.`)
  lines.push('- Everything shares those cores: the upstream, the system under test and the load generator each run in their own process.')
  lines.push(`- Versions: ${Object.entries(versions).map(([name, v]) => `${name} ${v}`).join(', ')}.`)
  lines.push(`- Load: autocannon ${versions.autocannon}, ${settings.connections} connections, no pipelining, ${settings.rounds} rounds of ${settings.duration} s per configuration, interleaved (a seeded shuffle of the order each round, rows compared with each other kept adjacent), after a ${settings.warmup} s warm-up${settings.settle > 0 ? ` and ${settings.settle} s of unmeasured load before each measured round` : ''}; figures are medians over rounds, ratios are medians of per-round ratios.`)
  lines.push(`- Upstream: node:http answering ${settings.upstreamBodyBytes} bytes of JSON. Access logs are written to a file.`)
  if (settings.nodeFlags?.length > 0) lines.push(`- Node flags of every Node system under test (\`--node-flags\`): \`${settings.nodeFlags.join(' ')}\`.`)
  if (results.skipped.length > 0) {
    for (const s of results.skipped) lines.push(`- Skipped: ${s.label}: ${s.reason}.`)
  }
  lines.push('')
  lines.push('| configuration | req/s | vs reply-from | p50 ms | p99 ms | p99 vs reply-from | CPU µs/req | RSS MiB | expected status |')
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---|')
  for (const row of results.rows) {
    const m = row.median
    lines.push(`| ${row.label} | ${fmtInt(m.rps)} | ${fmtRatio(row.ratio)} | ${fmtMs(m.p50)} | ${fmtMs(m.p99)} | ${fmtRatio(row.p99Ratio)} | ${m.cpuUsPerRequest === undefined ? 'n/a' : fmtInt(m.cpuUsPerRequest)} | ${row.rssBytes === undefined ? 'n/a' : fmtMiB(row.rssBytes)} | ${row.expect} ${(row.expectedShare * 100).toFixed(1)}%${row.valid ? '' : ' **INVALID**'} |`)
  }
  lines.push('')
  lines.push('CPU µs/req: CPU time of the system under test\'s process(es) (both nginx processes) per answered request.')
  lines.push('')
  for (const row of results.rows.filter((r) => r.scrapes !== undefined)) {
    const sc = row.scrapes
    lines.push(`${row.label}: @faultline/metrics (process metrics on) on a port of its own, scraped over HTTP every ${sc.everyMs / 1000} s while loaded (${fmtInt(sc.sent)} scrapes, ${sc.failed} failed); its last scrape counted ${fmtInt(sc.counted)} requests, warm-up included, for ${fmtInt(sc.answered)} answered in the measured rounds.`)
    lines.push('')
  }
  if (results.memory !== undefined) {
    const mem = results.memory
    lines.push(`Memory of the full chain under mixed traffic (${mem.mix}), after a full GC:`)
    lines.push('')
    lines.push('| after | requests | RSS MiB | heap used MiB | req/s |')
    lines.push('|---|---:|---:|---:|---:|')
    for (const s of mem.samples) lines.push(`| ${s.label} | ${fmtInt(s.requests)} | ${fmtMiB(s.rss)} | ${fmtMiB(s.heapUsed)} | ${s.rps === undefined ? '' : fmtInt(s.rps)} |`)
    lines.push('')
    lines.push(`Statuses over the mixed run: ${Object.entries(mem.statusCodes).map(([c, n]) => `${c}: ${fmtInt(n)}`).join(', ')}.`)
    lines.push('')
  }
  const extra = results.extra ?? {}
  if (extra.cboVsUcf !== undefined || extra.rltVsFull !== undefined) {
    lines.push(`Error paths against the path they replace: CBO ${fmtRatio(extra.cboVsUcf)}x the throughput of UCF (same dead upstream, no breaker); RLT ${fmtRatio(extra.rltVsFull)}x the full chain's success path.`)
    lines.push('')
  }
  if (extra.consumersVsOne !== undefined) {
    lines.push(`Keys: 1,000 keys held and used ${fmtRatio(extra.consumersVsOne)}x the throughput of 1 key (the full chain; each consumer has its own rate-limit and quota counters and its own name on the access line); 1,000,000 held, 1,000 used, ${fmtRatio(extra.millionKeysVsOne)}x.`)
    lines.push('')
  }
  if (extra.ucfDialVsSuccess !== undefined) {
    lines.push(`UCF with every request dialling the refused port (\`refusedBackoff: 0\`): ${fmtRatio(extra.ucfDialVsSuccess)}x the success path (proxy + access log).`)
    lines.push('')
  }
  const paired = results.paired ?? []
  if (paired.length > 0) {
    lines.push(`Paired: both configurations of a pair loaded at the same time, each by its own autocannon with ${Math.max(1, Math.floor(settings.connections / 2))} connections, ${settings.pairedRounds} rounds of ${settings.duration} s; medians of per-round ratios (lowest to highest round in brackets).`)
    lines.push('')
    lines.push('| a | b | throughput a / b | CPU µs/req b / a | CPU µs/req a, b (medians) |')
    lines.push('|---|---|---:|---:|---:|')
    const range = (r) => `${fmtRatio(r.median)} (${fmtRatio(r.min)} to ${fmtRatio(r.max)})`
    for (const p of paired) {
      const cpu = (side) => fmtInt(median(p.rounds.map((r) => r[side].cpuUsPerRequest)))
      lines.push(`| ${p.label.a} | ${p.label.b} | ${range(p.rpsRatio)} | ${range(p.cpuRatio)} | ${cpu('a')}, ${cpu('b')}${p.valid ? '' : ' **INVALID**'} |`)
    }
    lines.push('')
  }
  if (results.targets.length > 0) {
    const withPaired = results.targets.some((t) => t.paired !== undefined)
    lines.push(withPaired ? '| target | measured | paired | goal | met |' : '| target | measured | goal | met |')
    lines.push(withPaired ? '|---|---:|---:|---:|---|' : '|---|---:|---:|---|')
    for (const t of results.targets) {
      const met = t.met ? 'yes' : '**no**'
      if (!withPaired) {
        lines.push(`| ${t.text} | ${fmtRatio(t.value)} | ${t.op} ${t.goal} | ${met} |`)
        continue
      }
      const verdict = t.pairedVerdict === undefined ? '' : `; paired: ${t.pairedVerdict === 'missed' ? '**missed**' : t.pairedVerdict}`
      const interval = t.pairedInterval?.low === undefined ? '' : ` [${fmtRatio(t.pairedInterval.low)}, ${fmtRatio(t.pairedInterval.high)}]`
      lines.push(`| ${t.text} | ${fmtRatio(t.value)} | ${t.paired === undefined ? '' : fmtRatio(t.paired) + interval} | ${t.op} ${t.goal} | ${met}${verdict} |`)
    }
    lines.push('')
    const confidence = results.targets.find((t) => t.pairedInterval?.confidence !== undefined)?.pairedInterval.confidence
    if (confidence !== undefined) {
      lines.push(`Paired: the median of the paired rounds and, in brackets, the interval that holds the median with ${(confidence * 100).toFixed(1)}% confidence whatever the rounds' distribution (bench/lib/stats.mjs). A paired target is met when all of that interval meets the goal, missed when none of it does, and unsettled when the goal lies inside it.`)
      lines.push('')
    }
  }
  return lines.join('\n')
}

function escapeXml (s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]))
}

/** Horizontal bars: each configuration's throughput as a ratio of bare reply-from's (same run). */
export function chartSvg (results) {
  const rows = results.rows.filter((r) => typeof r.ratio === 'number' && Number.isFinite(r.ratio))
  const labelWidth = 330
  const plotWidth = 420
  const barHeight = 18
  const gap = 8
  const top = 48
  const height = top + rows.length * (barHeight + gap) + 40
  const width = labelWidth + plotWidth + 70
  const max = Math.max(1.5, ...rows.map((r) => r.ratio)) * 1.05
  const x = (v) => labelWidth + (v / max) * plotWidth
  const colour = (row) => row.group === 'peer' ? '#7f8c8d' : row.group === 'error' ? '#d35400' : row.group === 'ceiling' ? '#bdc3c7' : '#2e86c1'
  const out = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="10" y="20" font-size="14" font-weight="bold">Throughput relative to bare @fastify/reply-from (same run, median of ${results.settings.rounds} rounds)</text>`)
  out.push(`<text x="10" y="36" fill="#555">${escapeXml(`${results.machine.cores} cores, Node ${results.machine.node}, autocannon ${results.versions.autocannon}, ${results.settings.connections} connections, ${results.date}`)}</text>`)
  for (const tick of [0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].filter((t) => t <= max)) {
    out.push(`<line x1="${x(tick)}" y1="${top - 4}" x2="${x(tick)}" y2="${height - 30}" stroke="${tick === 1 ? '#333' : '#e5e5e5'}"${tick === 1 ? ' stroke-dasharray="4 3"' : ''}/>`)
    out.push(`<text x="${x(tick)}" y="${height - 16}" text-anchor="middle" fill="#555">${tick}</text>`)
  }
  rows.forEach((row, i) => {
    const y = top + i * (barHeight + gap)
    out.push(`<text x="${labelWidth - 8}" y="${y + barHeight * 0.72}" text-anchor="end">${escapeXml(row.label)}</text>`)
    out.push(`<rect x="${labelWidth}" y="${y}" width="${Math.max(1, x(row.ratio) - labelWidth)}" height="${barHeight}" fill="${colour(row)}"/>`)
    out.push(`<text x="${x(row.ratio) + 4}" y="${y + barHeight * 0.72}">${row.ratio.toFixed(2)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
