// Copying a text the page has yet to fetch. The Clipboard API takes the text while it is on its way,
// so the click's permission holds however long the fetch takes; where there is no Clipboard API (a
// page on plain HTTP from another host) the old selection copy is tried once the text is here.
import { h } from './dom.js';

/** Copies what `pending` (a promise of a string) gives; rejects with its error, or when the browser refuses. */
export async function copyPendingText(pending) {
  if (navigator.clipboard && typeof ClipboardItem === 'function') {
    const blob = pending.then((text) => new Blob([text], { type: 'text/plain' }));
    const written = navigator.clipboard.write([new ClipboardItem({ 'text/plain': blob })]);
    // The fetch's own error says more than the clipboard's.
    written.catch(() => {});
    await pending;
    await written;
    return;
  }
  const text = await pending;
  if (navigator.clipboard) return navigator.clipboard.writeText(text);
  const buffer = h('textarea', { class: 'copy-buffer', readonly: true, 'aria-hidden': 'true', tabindex: '-1' });
  buffer.value = text;
  document.body.append(buffer);
  buffer.select();
  const copied = document.execCommand('copy');
  buffer.remove();
  if (!copied) throw new Error('this browser lets a page copy only over HTTPS; Download log saves it instead');
}
