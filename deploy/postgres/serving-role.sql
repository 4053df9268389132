-- The PostgreSQL role serving runs as: INSERT into the prediction log, SELECT on the Feast
-- registry, nothing else. Run by provision-roles.sh (compose service postgres-init; in
-- Kubernetes once by whoever holds the database owner's credentials) as the role that owns
-- the tables: the bootstrap user in compose. Idempotent: every run converges the role to
-- exactly these privileges and sets its password (so rotating it is a re-run).
--
-- Every value comes from the environment (psql 15+ \getenv), none from this file:
--   SERVING_DB_USER      the role (compose: churnops_serving)
--   SERVING_DB_PASSWORD  its password
--   PREDICTION_LOG_DB    the database holding prediction_log (compose: churnops, which also holds
--                        MLflow's tables and registry_ext's: serving gets none of them)
--   FEAST_REGISTRY_DB    the Feast SQL registry's own database (compose: feast); serving may read
--                        all of it, so it must not be the prediction log's database
\set ON_ERROR_STOP on
\getenv serving_role SERVING_DB_USER
\getenv serving_password SERVING_DB_PASSWORD
\getenv log_db PREDICTION_LOG_DB
\getenv feast_db FEAST_REGISTRY_DB

\connect :"log_db"
SET client_min_messages = warning;

SELECT format('CREATE ROLE %I LOGIN', :'serving_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'serving_role') \gexec
-- No inherited memberships, no attribute beyond LOGIN; the password as given.
SELECT format(
  'ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD %L',
  :'serving_role', :'serving_password'
) \gexec

-- Nobody creates objects in public unless granted (the default since PostgreSQL 15).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The append-only log serving writes (serving/prediction_log.py SqlSink). The same table as
-- churnops.contracts.prediction_log.prediction_log_table (tests check the two agree): it is
-- created here, by the owner, because serving may not create anything.
CREATE TABLE IF NOT EXISTS prediction_log (
    id BIGSERIAL NOT NULL,
    request_id TEXT NOT NULL,
    ts TIMESTAMP WITH TIME ZONE NOT NULL,
    endpoint TEXT NOT NULL,
    customer_id TEXT,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    feature_service TEXT NOT NULL,
    score FLOAT,
    status TEXT NOT NULL,
    feature_ts TIMESTAMP WITH TIME ZONE,
    gender TEXT,
    senior_citizen BIGINT,
    partner BIGINT,
    dependents BIGINT,
    tenure BIGINT,
    contract TEXT,
    paperless_billing BIGINT,
    payment_method TEXT,
    monthly_charges FLOAT,
    total_charges FLOAT,
    phone_service BIGINT,
    multiple_lines TEXT,
    internet_service TEXT,
    online_security TEXT,
    online_backup TEXT,
    device_protection TEXT,
    tech_support TEXT,
    streaming_tv TEXT,
    streaming_movies TEXT,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_prediction_log_customer_id ON prediction_log (customer_id);
CREATE INDEX IF NOT EXISTS ix_prediction_log_ts ON prediction_log (ts);

GRANT CONNECT ON DATABASE :"log_db" TO :"serving_role";
GRANT USAGE ON SCHEMA public TO :"serving_role";
-- Start from nothing (an earlier grant by hand is taken back), then INSERT on the log only,
-- and the id sequence INSERT draws from. No UPDATE or DELETE, even on the log, and no SELECT
-- but of the generated id: SQLAlchemy inserts one row with RETURNING id, which PostgreSQL
-- allows only with SELECT on that column (no customer data, no score is readable).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"serving_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"serving_role";
GRANT INSERT, SELECT (id) ON TABLE prediction_log TO :"serving_role";
SELECT format('GRANT USAGE ON SEQUENCE %s TO %I', pg_get_serial_sequence('prediction_log', 'id'), :'serving_role')
\gexec

\connect :"feast_db"
SET client_min_messages = warning;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE :"feast_db" TO :"serving_role";
GRANT USAGE ON SCHEMA public TO :"serving_role";
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"serving_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"serving_role";
-- Read the registry: the tables there now, and those this role (the owner, which runs
-- `churnops features apply`) creates later.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"serving_role";
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO :"serving_role";
