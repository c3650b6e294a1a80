// #/new?task= — a form built from the task's JSON Schema (GET /tasks). Before sending, the form checks
// every field against the schema and shows each problem beside its field, all at once, in words
// (param-check.js). The API still validates: its error names one field (`error.field`), reworded beside it.
import { ApiError } from './api.js';
import { h, replace } from './dom.js';
import { fieldRow } from './form-field.js';
import { jobOptionFields } from './job-options.js';
import { checkParam, describePattern, plainApiMessage } from './param-check.js';

/** "a whole number, 1 to 10", "at most 500 characters", "1 to 20 characters: digits or “-”": what the schema allows. */
function hint(schema) {
  const parts = [];
  if (schema.type === 'integer' || schema.type === 'number') {
    parts.push(schema.type === 'integer' ? 'a whole number' : 'a number');
    const { minimum: min, maximum: max } = schema;
    if (min !== undefined && max !== undefined) parts.push(`${min} to ${max}`);
    else if (min !== undefined) parts.push(`at least ${min}`);
    else if (max !== undefined) parts.push(`at most ${max}`);
  }
  if (schema.type === 'string' && schema.enum === undefined) {
    if (schema.minLength !== undefined) parts.push(`at least ${schema.minLength} characters`);
    if (schema.maxLength !== undefined) parts.push(`at most ${schema.maxLength} characters`);
    // In words: a regular expression is no help to most people filling in the form.
    if (schema.pattern !== undefined) parts.push(describePattern(schema.pattern));
  }
  return parts.join(', ');
}

/** One input for one param: `read()` gives the value to send, or undefined to leave it out. */
function paramField(name, schema, required) {
  const common = { id: `param-${name}`, name };
  let input;
  let read;
  if (Array.isArray(schema.enum)) {
    input = h(
      'select',
      common,
      h('option', { value: '' }, required ? 'choose…' : '(not set)'),
      schema.enum.map((value, i) =>
        h('option', { value: String(i), selected: value === schema.default }, String(value)),
      ),
    );
    read = () => (input.value === '' ? undefined : schema.enum[Number(input.value)]);
  } else if (schema.type === 'boolean' && required) {
    input = h('input', { ...common, type: 'checkbox', checked: schema.default === true });
    read = () => input.checked;
  } else if (schema.type === 'boolean') {
    // Optional: "not set" differs from false, which a checkbox cannot say.
    input = h(
      'select',
      common,
      ['', 'true', 'false'].map((v) =>
        h('option', { value: v, selected: String(schema.default ?? '') === v }, v || '(not set)'),
      ),
    );
    read = () => (input.value === '' ? undefined : input.value === 'true');
  } else if (schema.type === 'integer' || schema.type === 'number') {
    input = h('input', {
      ...common,
      type: 'number',
      inputmode: schema.type === 'integer' ? 'numeric' : 'decimal',
      step: schema.type === 'integer' ? '1' : 'any',
      min: schema.minimum,
      max: schema.maximum,
      value: schema.default,
    });
    // Sent as typed (1.5 stays 1.5): the API says what is wrong, beside this field.
    read = () => (input.value === '' ? undefined : Number(input.value));
  } else {
    input = h('input', {
      ...common,
      type: 'text',
      autocomplete: 'off',
      spellcheck: 'false',
      maxlength: schema.maxLength,
      value: schema.default,
    });
    read = () => (input.value === '' ? undefined : input.value);
  }
  // The template's words when it has them (SPEC §4: `title`, `description`), else the param's name.
  const row = fieldRow({
    input,
    label: schema.title || name,
    help: schema.description || '',
    hint: hint(schema),
    required,
    dataset: { param: name },
  });
  return { ...row, read, schema, check: () => checkParam(read(), schema, required) };
}

export function renderJobForm(container, { api, me, query, navigate }) {
  let disposed = false;
  replace(container, h('p', { class: 'muted' }, 'Loading tasks…'));

  api.tasks().then(
    (tasks) => {
      if (disposed) return;
      if (tasks.length === 0) {
        replace(container, h('h1', {}, 'New job'), h('p', {}, 'There is no task you may run.'));
        return;
      }
      const taskSelect = h(
        'select',
        { id: 'task', name: 'task' },
        tasks.map((t) => h('option', { value: t.name, selected: t.name === query.get('task') }, t.name)),
      );
      const description = h('p', { class: 'muted task-description' });
      const taskError = h('p', { class: 'field-error', role: 'alert', hidden: true });
      const fieldset = h('div', { class: 'params' });
      // Kept across task changes: when and how urgently is not a property of the task.
      const options = jobOptionFields(me);
      const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });
      const submit = h('button', { type: 'submit', class: 'button' }, 'Start job');
      // novalidate: the browser's own bubbles would say one thing at a time, in its words; checkAll says all.
      const form = h(
        'form',
        { class: 'job-form', novalidate: true },
        h('div', { class: 'field' }, h('label', { for: 'task' }, 'Task'), taskSelect, description, taskError),
        fieldset,
        options.element,
        formError,
        h('div', { class: 'actions' }, submit),
      );
      let fields = new Map();

      function build() {
        const task = tasks.find((t) => t.name === taskSelect.value) ?? tasks[0];
        description.textContent = (task.description || '') + (task.adminOnly ? ' (admins only)' : '');
        const required = new Set(task.params.required ?? []);
        fields = new Map(
          Object.entries(task.params.properties ?? {}).map(([name, schema]) => [
            name,
            paramField(name, schema, required.has(name)),
          ]),
        );
        replace(
          fieldset,
          fields.size
            ? [...fields.values()].map((f) => f.row)
            : h('p', { class: 'muted' }, 'This task takes no params.'),
        );
        clearErrors();
      }

      function clearErrors() {
        for (const f of fields.values()) f.showError('');
        options.clearErrors();
        taskError.hidden = true;
        formError.hidden = true;
      }

      /** The field an API error names: a param's for `invalid_params`, else runAt, delaySec or priority. */
      function fieldOf(err) {
        if (err.field === undefined) return undefined;
        if (err.code === 'invalid_params') return fields.get(err.field);
        return options.field(err.field) ?? fields.get(err.field);
      }

      /** Every field's problem at once, as the schema says; true when there is none. */
      function checkAll() {
        const problems = [
          ...[...fields.values()].map((f) => [f, f.check()]),
          ...options.check().map(([name, message]) => [options.field(name), message]),
        ].filter(([, message]) => message);
        for (const [f, message] of problems) f.showError(message);
        if (problems.length === 0) return true;
        problems[0][0].input.focus();
        formError.textContent =
          problems.length === 1 ? 'One field needs a change.' : `${problems.length} fields need a change.`;
        formError.hidden = false;
        return false;
      }

      taskSelect.addEventListener('change', build);
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        clearErrors();
        if (!checkAll()) return;
        const params = {};
        for (const [name, f] of fields) {
          const value = f.read();
          if (value !== undefined) params[name] = value;
        }
        submit.disabled = true;
        try {
          const { id } = await api.createJob(taskSelect.value, params, options.read());
          navigate(`#/jobs/${id}`);
        } catch (err) {
          if (disposed || (err instanceof ApiError && err.status === 401)) return;
          const field = err instanceof ApiError ? fieldOf(err) : undefined;
          if (field) {
            field.showError(err.code === 'invalid_params' ? plainApiMessage(err.message, field.schema) : err.message);
            field.input.focus();
          } else if (err instanceof ApiError && err.field === 'task') {
            taskError.textContent = err.message;
            taskError.hidden = false;
          } else {
            formError.textContent = err.message;
            formError.hidden = false;
          }
        } finally {
          submit.disabled = false;
        }
      });

      replace(container, h('h1', {}, 'New job'), form);
      build();
    },
    (err) => {
      if (!disposed && err.status !== 401) replace(container, h('p', { class: 'form-error' }, err.message));
    },
  );

  return () => {
    disposed = true;
  };
}
