-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
-- POSTGRES_DB (churnops) holds MLflow's backend store, registry_ext's tables (models,
-- model_transitions, model_experiments) and the serving prediction log; the Feast SQL registry
-- gets its own database so its tables never share a namespace with MLflow's.
CREATE DATABASE feast;
