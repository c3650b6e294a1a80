// sequelize-cli reads this (through .sequelizerc): the same environment variables as the app.
import { loadConfig } from '../config';
import { sequelizeOptions } from './database';

const options = sequelizeOptions(loadConfig().database);
const { dialectModule: _unused, ...cliOptions } = options as typeof options & { dialectModule?: unknown };
void _unused;

export = { development: cliOptions, test: cliOptions, production: cliOptions };
