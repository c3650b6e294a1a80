// The new-job form's own check of each param against the task's JSON Schema, in plain words, so every
// field's problem shows at once before anything is sent. The API still validates (it has the last
// word); its message is reworded the same way when it names a field. No regular expression is shown.

/** A piece of a character class, in words: "lowercase letters", "digits", "“.”". */
const RANGES = [
  [/^a-z$/, 'lowercase letters'],
  [/^A-Z$/, 'capital letters'],
  [/^0-9$/, 'digits'],
  [/^\\d$/, 'digits'],
  [/^\\w$/, 'letters, digits and “_”'],
  [/^\\s$/, 'spaces'],
  [/^ $/, 'spaces'],
];

/** "[a-z0-9.-]" → ["lowercase letters", "digits", "“.”", "“-”"], or null when it is not that simple. */
function classWords(body) {
  const words = [];
  let rest = body;
  while (rest) {
    const range = /^(\\[dws]|[A-Za-z0-9]-[A-Za-z0-9])/.exec(rest);
    if (range) {
      const known = RANGES.find(([re]) => re.test(range[1]));
      words.push(known ? known[1] : `${range[1][0]} to ${range[1][2]}`);
      rest = rest.slice(range[1].length);
      continue;
    }
    const char = /^(\\.|[^\\\]^])/.exec(rest);
    if (!char) return null;
    const c = char[1].length === 2 ? char[1][1] : char[1];
    words.push(c === ' ' ? 'spaces' : `“${c}”`);
    rest = rest.slice(char[1].length);
  }
  return [...new Set(words)];
}

/** "{1,20}" / "+" / "*" / "{3}" → [min, max] (max null: no limit), or null. */
function repeatOf(text) {
  if (text === '+') return [1, null];
  if (text === '*') return [0, null];
  const m = /^\{(\d+)(,(\d*))?\}$/.exec(text);
  if (!m) return null;
  const min = Number(m[1]);
  return [min, m[2] === undefined ? min : m[3] === '' ? null : Number(m[3])];
}

function lengthWords([min, max]) {
  if (max === null)
    return min <= 1 ? (min === 1 ? 'at least 1 character' : 'any length') : `at least ${min} characters`;
  if (min === max) return `exactly ${min} character${min === 1 ? '' : 's'}`;
  return `${min} to ${max} characters`;
}

/**
 * A pattern of the common shape `^[class]{m,n}$` in words ("1 to 20 characters: lowercase letters,
 * digits, “.” or “-”"; a negated class of control characters is "no control characters"); any other
 * pattern is "in the form this task expects" — never the expression itself.
 */
export function describePattern(pattern) {
  const m = /^\^\[(\^?)((?:\\.|[^\]\\])+)\](\{\d+(?:,\d*)?\}|\+|\*)\$$/.exec(pattern ?? '');
  if (m) {
    const [, negated, body, repeat] = m;
    const length = repeatOf(repeat);
    if (negated && /^\\u0000-\\u001[fF]$/.test(body)) return `${lengthWords(length)}, no control characters`;
    const words = negated ? null : classWords(body);
    if (length && words) {
      const list = words.length > 1 ? `${words.slice(0, -1).join(', ')} or ${words.at(-1)}` : words[0];
      return `${lengthWords(length)}: ${list}`;
    }
  }
  return 'in the form this task expects';
}

function numberRange(schema) {
  const { minimum: min, maximum: max } = schema;
  if (min !== undefined && max !== undefined) return `from ${min} to ${max}`;
  if (min !== undefined) return `of at least ${min}`;
  if (max !== undefined) return `of at most ${max}`;
  return '';
}

/**
 * What is wrong with `value` (what the field would send; undefined when left empty) for `schema`,
 * in words, or '' when nothing is. Only the keywords the form's fields can break are checked.
 */
export function checkParam(value, schema, required) {
  if (value === undefined) return required ? (Array.isArray(schema.enum) ? 'Choose one.' : 'Required.') : '';
  if (Array.isArray(schema.enum)) return schema.enum.includes(value) ? '' : 'Choose one of the listed values.';
  if (schema.type === 'integer' || schema.type === 'number') {
    const whole = schema.type === 'integer';
    const want = `Must be ${whole ? 'a whole number' : 'a number'} ${numberRange(schema)}`.trim() + '.';
    if (typeof value !== 'number' || !Number.isFinite(value) || (whole && !Number.isInteger(value))) return want;
    if (schema.minimum !== undefined && value < schema.minimum) return want;
    if (schema.maximum !== undefined && value > schema.maximum) return want;
    return '';
  }
  if (schema.type === 'string' && typeof value === 'string') {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) {
      return `Must be at least ${schema.minLength} characters.`;
    }
    if (schema.maxLength !== undefined && length > schema.maxLength) {
      return `Must be at most ${schema.maxLength} characters.`;
    }
    if (schema.pattern !== undefined) {
      let re = null;
      try {
        re = new RegExp(schema.pattern, 'u');
      } catch {
        // A pattern this browser cannot read: the API's check decides.
      }
      if (re && !re.test(value)) return `Must be ${describePattern(schema.pattern)}.`;
    }
  }
  return '';
}

/** The API's message for a param, reworded: no `param "x"` prefix (it is shown beside x), no pattern. */
export function plainApiMessage(message, schema) {
  let text = String(message).replace(/^param "[^"]*" /, '');
  if (/must match pattern/.test(text)) text = `must be ${describePattern(schema?.pattern)}`;
  text = text
    .replace(/must be <= (\S+)/, 'must be at most $1')
    .replace(/must be >= (\S+)/, 'must be at least $1')
    .replace(/must be integer/, 'must be a whole number');
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? '' : '.');
}
