// Sequelize models: they declare the schema the migrations create; they never sync it.
import {
  DataTypes,
  Model,
  type CreationOptional,
  type ForeignKey,
  type InferAttributes,
  type InferCreationAttributes,
  type Sequelize,
} from 'sequelize';

export const JOB_STATUSES = ['pending', 'running', 'success', 'failure', 'cancelled'] as const;
export type JobStatusName = (typeof JOB_STATUSES)[number];
export const FINISHED_STATUSES: readonly JobStatusName[] = ['success', 'failure', 'cancelled'];
export const OUTPUT_STREAMS = ['stdout', 'stderr', 'system'] as const;
export type OutputStream = (typeof OUTPUT_STREAMS)[number];

export type JobParams = Record<string, string | number | boolean>;

export class Job extends Model<InferAttributes<Job>, InferCreationAttributes<Job>> {
  declare id: CreationOptional<number>;
  declare task: string;
  declare params: JobParams;
  declare command: string | null;
  declare status: CreationOptional<JobStatusName>;
  declare createdBy: string | null;
  declare priority: CreationOptional<number>;
  declare runAt: CreationOptional<Date>;
  declare runnerId: CreationOptional<string | null>;
  declare heartbeatAt: CreationOptional<Date | null>;
  declare startedAt: CreationOptional<Date | null>;
  declare finishedAt: CreationOptional<Date | null>;
  declare cancelRequestedAt: CreationOptional<Date | null>;
  declare cancelledBy: CreationOptional<string | null>;
  declare exitCode: CreationOptional<number | null>;
  declare signal: CreationOptional<string | null>;
  declare error: CreationOptional<string | null>;
  declare groupKey: CreationOptional<string | null>;
  declare groupQueued: CreationOptional<boolean>;
  declare idempotencyKey: CreationOptional<string | null>;
  declare attempt: CreationOptional<number>;
  declare maxAttempts: CreationOptional<number>;
  declare lastError: CreationOptional<string | null>;
  declare rerunOf: CreationOptional<number | null>;
  declare createdAt: CreationOptional<Date>;
  declare updatedAt: CreationOptional<Date>;
}

export class JobStatus extends Model<InferAttributes<JobStatus>, InferCreationAttributes<JobStatus>> {
  declare id: CreationOptional<number>;
  declare jobId: ForeignKey<number>;
  declare seq: number;
  declare stream: OutputStream;
  declare output: string;
  declare createdAt: CreationOptional<Date>;
  declare updatedAt: CreationOptional<Date>;
}

export class User extends Model<InferAttributes<User>, InferCreationAttributes<User>> {
  declare id: CreationOptional<number>;
  declare username: string;
  declare passwordHash: string;
  declare isAdmin: CreationOptional<boolean>;
  declare createdAt: CreationOptional<Date>;
  declare updatedAt: CreationOptional<Date>;
}

export class ApiToken extends Model<InferAttributes<ApiToken>, InferCreationAttributes<ApiToken>> {
  declare id: CreationOptional<number>;
  declare userId: ForeignKey<number>;
  declare name: string;
  declare tokenHash: string;
  declare lastUsedAt: CreationOptional<Date | null>;
  declare expiresAt: CreationOptional<Date | null>;
  declare createdAt: CreationOptional<Date>;
  declare updatedAt: CreationOptional<Date>;
}

/** express-session's rows, in the shape connect-session-sequelize reads and writes. */
export class Session extends Model<InferAttributes<Session>, InferCreationAttributes<Session>> {
  declare sid: string;
  declare expires: Date | null;
  declare data: string | null;
  /** Whose session (Users.id), from the session's data; null for a session nobody logged in to. */
  declare userId: CreationOptional<number | null>;
  /** The last request made with it, to the minute. */
  declare lastSeenAt: CreationOptional<Date | null>;
  declare createdAt: CreationOptional<Date>;
  declare updatedAt: CreationOptional<Date>;
}

/** Failed logins of one scope (`pair:`, `addr:` or `user:` key) in the window that starts at windowStart. */
export class LoginFailure extends Model<InferAttributes<LoginFailure>, InferCreationAttributes<LoginFailure>> {
  declare scope: string;
  declare windowStart: Date;
  declare count: number;
}

export interface Models {
  Job: typeof Job;
  JobStatus: typeof JobStatus;
  User: typeof User;
  ApiToken: typeof ApiToken;
  Session: typeof Session;
  LoginFailure: typeof LoginFailure;
}

/** MariaDB stores JSON as LONGTEXT, so the driver may hand back a string. */
export function parseJsonColumn<T>(value: unknown): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}

export function initModels(sequelize: Sequelize): Models {
  const { INTEGER, BIGINT, STRING, JSON: JSONTYPE, ENUM, DATE, BOOLEAN, TEXT } = DataTypes;
  Job.init(
    {
      id: { type: INTEGER, primaryKey: true, autoIncrement: true },
      task: { type: STRING(100), allowNull: false },
      params: {
        type: JSONTYPE,
        allowNull: false,
        get(this: Job) {
          return parseJsonColumn<JobParams>(this.getDataValue('params'));
        },
      },
      command: { type: STRING(2000), allowNull: true },
      status: { type: ENUM(...JOB_STATUSES), allowNull: false, defaultValue: 'pending' },
      createdBy: { type: STRING(255), allowNull: true },
      priority: { type: INTEGER, allowNull: false, defaultValue: 0 },
      // No JS default: the database's CURRENT_TIMESTAMP(3) fills runAt, on the same clock the claim reads.
      runAt: { type: DATE(3), allowNull: false },
      runnerId: { type: STRING(255), allowNull: true },
      heartbeatAt: { type: DATE(3), allowNull: true },
      startedAt: { type: DATE(3), allowNull: true },
      finishedAt: { type: DATE(3), allowNull: true },
      cancelRequestedAt: { type: DATE(3), allowNull: true },
      cancelledBy: { type: STRING(255), allowNull: true },
      exitCode: { type: INTEGER, allowNull: true },
      signal: { type: STRING(32), allowNull: true },
      error: { type: STRING(255), allowNull: true },
      groupKey: { type: STRING(255), allowNull: true },
      groupQueued: { type: BOOLEAN, allowNull: false, defaultValue: false },
      idempotencyKey: { type: DataTypes.CHAR(64), allowNull: true },
      attempt: { type: INTEGER, allowNull: false, defaultValue: 1 },
      maxAttempts: { type: INTEGER, allowNull: false, defaultValue: 1 },
      lastError: { type: STRING(32), allowNull: true },
      rerunOf: { type: INTEGER, allowNull: true },
      createdAt: { type: DATE(3), allowNull: false },
      updatedAt: { type: DATE(3), allowNull: false },
    },
    { sequelize, tableName: 'Jobs', modelName: 'Job' },
  );
  JobStatus.init(
    {
      id: { type: sequelize.getDialect() === 'sqlite' ? INTEGER : BIGINT, primaryKey: true, autoIncrement: true },
      seq: { type: INTEGER, allowNull: false },
      stream: { type: ENUM(...OUTPUT_STREAMS), allowNull: false },
      output: { type: TEXT, allowNull: false },
      createdAt: { type: DATE(3), allowNull: false },
      updatedAt: { type: DATE(3), allowNull: false },
    },
    { sequelize, tableName: 'JobStatuses', modelName: 'JobStatus' },
  );
  User.init(
    {
      id: { type: INTEGER, primaryKey: true, autoIncrement: true },
      username: { type: STRING(100), allowNull: false, unique: true },
      passwordHash: { type: STRING(255), allowNull: false },
      isAdmin: { type: BOOLEAN, allowNull: false, defaultValue: false },
      createdAt: { type: DATE(3), allowNull: false },
      updatedAt: { type: DATE(3), allowNull: false },
    },
    { sequelize, tableName: 'Users', modelName: 'User' },
  );
  ApiToken.init(
    {
      id: { type: INTEGER, primaryKey: true, autoIncrement: true },
      name: { type: STRING(100), allowNull: false },
      tokenHash: { type: STRING(128), allowNull: false, unique: true },
      lastUsedAt: { type: DATE(3), allowNull: true },
      expiresAt: { type: DATE(3), allowNull: true },
      createdAt: { type: DATE(3), allowNull: false },
      updatedAt: { type: DATE(3), allowNull: false },
    },
    { sequelize, tableName: 'ApiTokens', modelName: 'ApiToken' },
  );
  Session.init(
    {
      sid: { type: STRING(36), primaryKey: true },
      expires: { type: DATE, allowNull: true },
      data: { type: TEXT, allowNull: true },
      userId: { type: INTEGER, allowNull: true },
      lastSeenAt: { type: DATE(3), allowNull: true },
      createdAt: { type: DATE(3), allowNull: false },
      updatedAt: { type: DATE(3), allowNull: false },
    },
    { sequelize, tableName: 'Sessions', modelName: 'Session' },
  );
  LoginFailure.init(
    {
      scope: { type: STRING(191), primaryKey: true },
      windowStart: { type: DATE(3), primaryKey: true },
      count: { type: INTEGER, allowNull: false, defaultValue: 0 },
    },
    { sequelize, tableName: 'LoginFailures', modelName: 'LoginFailure', timestamps: false },
  );
  Job.hasMany(JobStatus, { foreignKey: 'jobId', onDelete: 'CASCADE' });
  JobStatus.belongsTo(Job, { foreignKey: 'jobId' });
  User.hasMany(ApiToken, { foreignKey: 'userId', onDelete: 'CASCADE' });
  ApiToken.belongsTo(User, { foreignKey: 'userId' });
  return { Job, JobStatus, User, ApiToken, Session, LoginFailure };
}
