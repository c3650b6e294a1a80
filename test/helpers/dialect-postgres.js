process.env.CJ_TEST_DIALECT = 'postgres';
