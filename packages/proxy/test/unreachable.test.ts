/**
 * NRH and CAB need routes and socket kills that only a private network namespace may have:
 * the probe runs under `unshare -n`, where only its own loopback exists.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const probe = fileURLToPath(new URL('../../../test/fixtures/netns-probe.mjs', import.meta.url))
const setup = [
  'ip link set lo up',
  // 127.0.0.9: no route to host; 127.0.0.10: administratively prohibited.
  'ip route add unreachable 127.0.0.9/32 table local',
  'ip route add prohibit 127.0.0.10/32 table local',
  // Only 127.0.0.1 stays local, so 127.0.0.20 has no network at all.
  'ip route del local 127.0.0.0/8 dev lo table local',
  'ip addr add 127.0.0.1/32 dev lo',
  `exec node ${JSON.stringify(probe)}`
].join(' && ')

t.test('unreachable hosts and networks are NRH; a locally aborted connection is CAB', async (t) => {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile('unshare', ['-n', 'sh', '-c', setup], { cwd: fileURLToPath(new URL('../../..', import.meta.url)), timeout: 30000 }, (err, out, errOut) => {
      if (err !== null) reject(new Error(`netns probe failed (needs root, unshare and iproute2): ${err.message}\n${errOut}`))
      else resolve(out)
    })
  })
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l))
  const byApi = Object.fromEntries(lines.map((l) => [l.api_name, l]))
  t.match(byApi.unreachable, { status: 502, response_flag: 'NRH', response_code_details: 'host_unreachable', error_source: 'UpstreamProxy', error_target: '127.0.0.9:8080' })
  t.match(byApi.prohibited, { status: 502, response_flag: 'NRH', response_code_details: 'host_unreachable', error_target: '127.0.0.10:8080' })
  t.match(byApi['no-network'], { status: 502, response_flag: 'NRH', response_code_details: 'network_unreachable', error_target: '127.0.0.20:8080' })
  t.match(byApi.aborted, { status: 502, response_flag: 'CAB', response_code_details: 'connection_aborted', error_category: 'upstream' })
  t.equal(lines.length, 4, 'one line per request')
})
