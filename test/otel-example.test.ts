import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { MetricReader } from '@opentelemetry/sdk-metrics'
import { startGateway } from '../examples/otel/gateway.js'
import { LogCapture } from './helpers/log-capture.js'
import { httpRequest } from './helpers/http-client.js'

class PullReader extends MetricReader {
  protected override async onForceFlush (): Promise<void> {}
  protected override async onShutdown (): Promise<void> {}
}

t.test('the OpenTelemetry example reports the gateway\'s requests through the SDK and to Prometheus', async (t) => {
  const upstream = http.createServer((req, res) => {
    res.statusCode = req.url === '/fail' ? 503 : 200
    res.end('{}')
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { upstream.closeAllConnections(); upstream.close() })

  const reader = new PullReader()
  const log = new LogCapture()
  const gw = await startGateway({ upstreamUrl: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, reader, port: 0, metricsPort: 0, accessLogDestination: log })
  t.teardown(() => gw.close())
  const url = `http://127.0.0.1:${(gw.app.server.address() as AddressInfo).port}`
  t.equal((await httpRequest(`${url}/api/ok`)).status, 200)
  t.equal((await httpRequest(`${url}/api/fail`)).status, 503)
  await log.waitFor(2)

  const { resourceMetrics } = await reader.collect()
  const requests = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === 'faultline.requests')
  const byFlag = Object.fromEntries((requests?.dataPoints ?? []).map((p) => [p.attributes.response_flag, p.value]))
  t.same(byFlag, { '': 1, URS: 1 })

  const scrape = await httpRequest(`http://127.0.0.1:${gw.app.faultlineMetrics.address?.port ?? 0}/metrics`)
  t.match(scrape.body, /faultline_requests_total\{api="Items",method="GET",status_class="5xx",response_flag="URS",[^}]*\} 1/)
})
