// One labelled form field with its hint and the API's error beside it (the forms use novalidate:
// the API's validation is the one that counts, and its message is the one shown).
import { h } from './dom.js';

/**
 * `input` already has its `id`; `required`: marked with a star, else "(optional)". Returns the row
 * and `showError(message)` ('' clears it).
 */
export function fieldRow({ input, label, hint = '', required = false, dataset = {} }) {
  const id = input.id;
  input.setAttribute('aria-describedby', `${id}-hint ${id}-error`);
  if (required) input.setAttribute('aria-required', 'true');
  const error = h('p', { class: 'field-error', id: `${id}-error`, role: 'alert', hidden: true });
  const row = h(
    'div',
    { class: `field field-${input.type === 'checkbox' ? 'check' : 'text'}`, dataset },
    h(
      'label',
      { for: id },
      label,
      required
        ? h('span', { class: 'required', title: 'required' }, ' *')
        : h('span', { class: 'muted' }, ' (optional)'),
    ),
    input,
    h('p', { class: 'hint muted', id: `${id}-hint` }, hint),
    error,
  );
  return {
    row,
    input,
    showError(message) {
      error.textContent = message;
      error.hidden = message === '';
      row.classList.toggle('invalid', message !== '');
      if (message) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    },
  };
}
