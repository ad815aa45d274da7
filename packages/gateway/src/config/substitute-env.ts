/**
 * `${NAME}` in string values, from the environment (CONTRACT.md section 4: secrets stay out of
 * files). `$${NAME}` is a literal `${NAME}`. Only string values are touched, and they stay strings:
 * a number or a boolean cannot come from the environment.
 */
import { formatPath, type ConfigProblem, type PathSegment } from './config-error.js'

export interface EnvSubstitution {
  value: unknown
  problems: ConfigProblem[]
  /** Formatted paths of the values that took something from the environment (never echoed). */
  fromEnv: Set<string>
}

const REFERENCE = /(\$?)\$\{([^}]*)(\})?/g
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export function substituteEnv (value: unknown, env: NodeJS.ProcessEnv): EnvSubstitution {
  const problems: ConfigProblem[] = []
  const fromEnv = new Set<string>()

  function substituteString (text: string, path: PathSegment[]): string {
    if (!text.includes('${')) return text
    let usedEnv = false
    const result = text.replace(REFERENCE, (match: string, escape: string, name: string, close: string | undefined) => {
      if (escape === '$') return match.slice(1)
      if (close === undefined) {
        problems.push({ path: formatPath(path), message: 'has an unterminated "${" (write "$${" for a literal "${")' })
        return match
      }
      if (!NAME.test(name)) {
        problems.push({
          path: formatPath(path),
          message: 'has an invalid variable reference: "${...}" takes a name made of letters, digits and "_" (write "$${" for a literal "${")'
        })
        return match
      }
      const replacement = env[name]
      if (replacement === undefined) {
        problems.push({ path: formatPath(path), message: `environment variable ${name} is not set` })
        return match
      }
      usedEnv = true
      return replacement
    })
    if (usedEnv) fromEnv.add(formatPath(path))
    return result
  }

  function walk (node: unknown, path: PathSegment[]): unknown {
    if (typeof node === 'string') return substituteString(node, path)
    if (Array.isArray(node)) return node.map((item, i) => walk(item, [...path, i]))
    if (typeof node === 'object' && node !== null) {
      // fromEntries defines own properties, so a "__proto__" key stays a (rejected) key.
      return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v, [...path, k])]))
    }
    return node
  }

  return { value: walk(value, []), problems, fromEnv }
}
