// Writing long responses to slow readers: never read more from the database than the socket has taken.
import type { Response } from 'express';

/** Resolves true on the response's next 'drain', false when it closes or `stop` fires first. */
export function drained(res: Response, stop?: AbortSignal): Promise<boolean> {
  if (res.destroyed || stop?.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const settle = (value: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      stop?.removeEventListener('abort', onClose);
      resolve(value);
    };
    const onDrain = () => settle(true);
    const onClose = () => settle(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
    stop?.addEventListener('abort', onClose);
  });
}

/**
 * Writes `chunk`. Resolves true once the response can take more (at once, or after 'drain'), false
 * when it closed or `stop` fired first, so the caller reads its next rows only when these have gone.
 */
export async function writeWhenReady(res: Response, chunk: string, stop?: AbortSignal): Promise<boolean> {
  if (res.destroyed || res.writableEnded || stop?.aborted) return false;
  return res.write(chunk) || drained(res, stop);
}
