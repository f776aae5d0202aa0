// A per-stream event queue: the process pushes, one RPC stream pulls.

export class Subscriber {
  constructor(onConsume) {
    this.items = [];
    this.closed = false;
    this.wake = null;
    this.onConsume = onConsume;
  }

  push(item) {
    if (this.closed) return;
    this.items.push(item);
    this.notify();
  }

  close() {
    this.closed = true;
    this.notify();
  }

  notify() {
    if (this.wake) {
      const w = this.wake;
      this.wake = null;
      w();
    }
  }

  get length() {
    return this.items.length;
  }

  /**
   * Waits up to timeoutMs for the next item.
   * Resolves {item}, {timeout: true}, {done: true} or {aborted: true}.
   */
  async next(timeoutMs, signal) {
    for (;;) {
      if (signal?.aborted) return { aborted: true };
      if (this.items.length > 0) {
        const item = this.items.shift();
        this.onConsume?.();
        return { item };
      }
      if (this.closed) return { done: true };
      if (timeoutMs <= 0) return { timeout: true };
      const started = Date.now();
      let timer;
      let onAbort;
      const woke = await new Promise((resolve) => {
        this.wake = () => resolve("wake");
        timer = setTimeout(() => resolve("timeout"), timeoutMs);
        if (signal) {
          onAbort = () => resolve("abort");
          signal.addEventListener("abort", onAbort, { once: true });
        }
      });
      clearTimeout(timer);
      if (signal && onAbort) signal.removeEventListener("abort", onAbort);
      this.wake = null;
      if (woke === "abort") return { aborted: true };
      if (woke === "timeout") return { timeout: true };
      timeoutMs -= Date.now() - started;
      if (timeoutMs <= 0 && this.items.length === 0 && !this.closed) return { timeout: true };
    }
  }
}

/**
 * Keepalive interval from the Keepalive-Ping-Interval header, as envd reads
 * it (strconv.Atoi seconds; 90 s when absent or not an integer). Returns
 * null for a non-positive value, which crashes or drops envd's stream.
 */
export function keepaliveMs(headers) {
  const raw = headers.get("keepalive-ping-interval");
  if (raw === null) return 90_000;
  if (!/^[+-]?\d+$/.test(raw)) return 90_000;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) return 90_000;
  if (n <= 0) return null;
  return n * 1000;
}
