/**
 * Every label value the metrics can carry, fixed before the first request: methods, status
 * classes, flags and error sources come from closed tables (the flag catalogue for the last two),
 * so no request can add a series by sending an unusual path, method or header.
 */
import { flagList } from '@faultline/core'

/** What a value outside a closed table is counted as. */
export const OTHER = 'other'

/** Methods counted under their own name; anything else (WebDAV, custom verbs, parser errors' `-`) is `OTHER`. */
export const methods: readonly string[] = Object.freeze(['', 'GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE', 'OTHER'])
const OTHER_METHOD = methods.length - 1
const methodIndexes = new Map<string, number>(methods.slice(1, OTHER_METHOD).map((m, i) => [m, i + 1]))

export function methodIndex (method: string | undefined): number {
  if (method === undefined) return 0
  return methodIndexes.get(method) ?? OTHER_METHOD
}

/** Index 0: no status (never expected: every record gets one). */
export const statusClasses: readonly string[] = Object.freeze(['', '1xx', '2xx', '3xx', '4xx', '5xx'])

export function statusClassIndex (status: number | undefined): number {
  if (status === undefined || status < 100 || status >= 600) return 0
  return (status / 100) | 0
}

/** Index 0: no flag (a success); the last: a flag the catalogue does not know (never expected). */
export const flagCodes: readonly string[] = Object.freeze(['', ...flagList.map((f) => f.code), OTHER])
/** `error_category` of each entry of `flagCodes`: the catalogue's, so it needs no key of its own. */
export const flagCategories: readonly string[] = Object.freeze(['', ...flagList.map((f) => f.category), ''])
const OTHER_FLAG = flagCodes.length - 1
const flagIndexes = new Map<string, number>(flagList.map((f, i) => [f.code, i + 1]))

export function flagIndex (flag: string | undefined): number {
  if (flag === undefined) return 0
  return flagIndexes.get(flag) ?? OTHER_FLAG
}

function catalogueSources (): string[] {
  const sources = new Set<string>()
  for (const f of flagList) {
    sources.add(f.source)
    for (const s of f.sources) sources.add(s)
  }
  return [...sources]
}

/**
 * `error_source` values: the catalogue's. A plugin may name its own source on a GIE (the plugin
 * that threw); it is counted as `other`, its name stays in the access log.
 */
export const errorSources: readonly string[] = Object.freeze(['', ...catalogueSources(), OTHER])
const OTHER_SOURCE = errorSources.length - 1
const sourceIndexes = new Map<string, number>(errorSources.slice(1, OTHER_SOURCE).map((s, i) => [s, i + 1]))

export function errorSourceIndex (source: string | undefined): number {
  if (source === undefined) return 0
  return sourceIndexes.get(source) ?? OTHER_SOURCE
}

export const responseSources: readonly string[] = Object.freeze(['gateway', 'upstream'])

/**
 * One small integer per combination of the request counter's labels but `api` (which selects the
 * map the key is looked up in): building it allocates nothing.
 */
export function requestKey (method: number, statusClass: number, flag: number, source: number, upstream: boolean): number {
  return ((((method * statusClasses.length + statusClass) * flagCodes.length + flag) * errorSources.length + source) * 2) + (upstream ? 1 : 0)
}
