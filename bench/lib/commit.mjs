import { execFileSync } from 'node:child_process'

/**
 * The commit of the checkout at `root` (`+dirty` when tracked files had changes), or undefined
 * outside a git checkout: what a results file measured.
 */
export function codeVersion (root) {
  const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  try {
    const commit = git('rev-parse', '--short=12', 'HEAD')
    return git('status', '--porcelain', '--untracked-files=no') === '' ? commit : `${commit}+dirty`
  } catch {
    return undefined
  }
}
