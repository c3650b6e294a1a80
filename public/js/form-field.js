// One labelled form field with its hint and the API's error beside it (the forms use novalidate:
// the API's validation is the one that counts, and its message is the one shown).
import { h } from './dom.js';

/**
 * `input` already has its `id`; `required`: marked with a star, else "(optional)"; `help`: a sentence
 * about the field (a param's `description`) under it, before the `hint` of what it accepts. Screen
 * readers hear both, and any error, with the field. Returns the row and `showError(message)` ('' clears it).
 */
export function fieldRow({ input, label, help = '', hint = '', required = false, dataset = {} }) {
  const id = input.id;
  input.setAttribute('aria-describedby', [help && `${id}-help`, `${id}-hint`, `${id}-error`].filter(Boolean).join(' '));
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
    help && h('p', { class: 'help', id: `${id}-help` }, help),
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
