import http, { type IncomingHttpHeaders } from 'node:http'
import https from 'node:https'

export interface HttpAnswer {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

export interface HttpCall extends https.RequestOptions {
  /** Request body, sent as is. */
  body?: string | Buffer
}

/**
 * One request with node:http(s), without connection reuse (no client socket outlives it). The path
 * is sent exactly as written when given in `path` (a URL string would be normalised).
 */
export async function httpRequest (url: string, call: HttpCall = {}): Promise<HttpAnswer> {
  const client = url.startsWith('https:') ? https : http
  const { body, ...options } = call
  return await new Promise((resolve, reject) => {
    const req = client.request(url, { agent: false, ...options }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}
