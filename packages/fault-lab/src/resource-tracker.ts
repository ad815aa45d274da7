// Keeps every socket and timer the lab creates, so close() can release them all and
// the process can exit on its own afterwards.
import type { Server, Socket } from 'node:net'

export class ResourceTracker {
  readonly #sockets = new Set<Socket>()
  readonly #timers = new Set<NodeJS.Timeout>()

  /** Remembers every connection the server accepts (raw TCP and, for TLS, the TLS socket) until it closes. */
  trackConnections (server: Server): void {
    const track = (socket: Socket): void => {
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
    }
    server.on('connection', track)
    server.on('secureConnection', track)
  }

  /**
   * setTimeout that close() clears. When `socket` is given the timer is also cleared
   * as soon as that socket closes (the client went away, nobody is waiting any more).
   */
  delay (ms: number, fn: () => void, socket?: Socket): void {
    const forget = (): void => {
      clearTimeout(timer)
      this.#timers.delete(timer)
    }
    const timer = setTimeout(() => {
      forget()
      socket?.off('close', forget)
      fn()
    }, ms)
    this.#timers.add(timer)
    socket?.once('close', forget)
  }

  /** Clears every pending timer and destroys every open socket. */
  releaseAll (): void {
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
  }
}
