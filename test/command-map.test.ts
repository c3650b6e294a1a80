// The mapping file of `migrate --adopt` (tasks/command-map.ts): old commands read as argv patterns of
// task templates, never as shell; the file checked against the task file before anything changes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TaskCatalog } from '../tasks/catalog';
import { CommandMapError, loadCommandMap, mapCommand } from '../tasks/command-map';
import { ROOT } from './helpers/database';

const EXAMPLE = path.join(ROOT, 'examples', 'container-creator');
const catalog = new TaskCatalog(path.join(EXAMPLE, 'tasks.json'));
const map = loadCommandMap(path.join(EXAMPLE, 'adopt-commands.json'), catalog);
const mapped = (command: string) => mapCommand(map, catalog, command);

function mapFile(doc: unknown): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cj-map-')), 'map.json');
  fs.writeFileSync(file, JSON.stringify(doc));
  return file;
}

test("the container-creator's commands map to their templates, params typed and validated", () => {
  expect(mapped('node bin/create-container.js --container-id=12')).toEqual({
    task: 'create-container',
    params: { containerId: 12 },
    command: 'node bin/create-container.js --container-id=12',
    maxAttempts: 1,
  });
  expect(mapped('node bin/reconfigure-container.js --container-id=4')).toMatchObject({
    task: 'reconfigure-container',
    params: { containerId: 4 },
  });
  // Optional elements may be absent, in the template's order.
  expect(mapped('node bin/reconfigure-container.js --container-id=4 --cpus=2')).toMatchObject({
    params: { containerId: 4, cpus: 2 },
  });
  expect(mapped('node  bin/reconfigure-container.js --container-id=4 --memory=2048 --rootfs=60')).toMatchObject({
    params: { containerId: 4, memory: 2048, rootfs: 60 },
  });
});

test('anything else maps to nothing, and says why', () => {
  const none = (command: string, why: RegExp) =>
    expect(mapped(command)).toEqual({ task: null, reason: expect.stringMatching(why) });
  none('node bin/create-container.js --container-id=1; rm -rf /', /not plain words/);
  none('node bin/create-container.js --container-id=$(id)', /not plain words/);
  none("node bin/create-container.js '--container-id=1'", /not plain words/);
  none('', /not plain words/);
  none('node bin/create-container.js', /matches no command/);
  none('node bin/create-container.js --container-id=1 --extra=2', /matches no command/);
  none('node bin/reconfigure-container.js --cpus=2 --container-id=4', /matches no command/);
  none('node bin/create-container.js --container-id=abc', /do not validate.*containerId/);
  none('node bin/create-container.js --container-id=0', /do not validate/);
  none('node bin/reconfigure-container.js --container-id=2 --memory=10', /do not validate.*memory/);
});

test('a mapping file is checked against the task file: the entry and the rule are named', () => {
  const refused = (doc: unknown, why: RegExp) =>
    expect(() => loadCommandMap(mapFile(doc), catalog)).toThrow(
      expect.objectContaining({ name: CommandMapError.name, message: expect.stringMatching(why) }),
    );
  refused({ commands: {} }, /"commands" array/);
  refused({ commands: [{ task: 'nope', argv: ['x'] }] }, /commands\[0\]: task "nope" is not in/);
  refused(
    { commands: [{ task: 'create-container', argv: ['node', '{memory}'] }] },
    /argv\[1\]: \{memory\} is not a param/,
  );
  refused({ commands: [{ task: 'create-container', argv: ['node', '{containerId}{containerId}'] }] }, /exactly one/);
  refused(
    { commands: [{ task: 'create-container', argv: ['node', 'a={containerId}', 'b={containerId}'] }] },
    /appears more than once/,
  );
  refused({ commands: [{ task: 'create-container', argv: ['{containerId}'] }] }, /argv\[0\] must be a fixed word/);
  refused({ commands: [{ task: 'create-container', argv: ['node', 'a b'] }] }, /not a plain word/);
  refused({ commands: [{ task: 'create-container', argv: ['node'], shell: true }] }, /unexpected field "shell"/);
  expect(() => loadCommandMap(path.join(os.tmpdir(), 'no-such-map.json'), catalog)).toThrow(CommandMapError);
});
