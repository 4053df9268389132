"""The Feast fast path: reading and writing Feast's online store without going through Feast.

Feast's own materialize and ``get_online_features`` are correct but slow (~26 s against ~3 s
for 100k customers x 3 views; ~40 ms against a few ms for 100 ids). This package writes and
reads Feast's Redis layout byte for byte, prunes what the offline answer no longer holds, and
keeps the completion markers, next to Feast's online store. One owner, one module per piece:

==================  ==========================================================================
``feast_private``   every Feast name outside its documented API the fast path uses (the list:
                    ``PRIVATE_API``, checked against ``VERIFIED_FEAST_VERSION``), and nothing else
``codec``           entity keys, feature values and event times, encoded and decoded as Feast does
``fields``          which hash fields hold a view's / a FeatureService's features; decoding a reply
``store_access``    which online stores a direct path can address; Redis clients from Feast's config
``writer``          the direct writer (DuckDB rows -> Feast's Redis bytes, Lua batches, Feast's dedup)
``pruner``          removing online values the offline answer at ``end`` does not hold (Redis, SQLite)
``markers``         the materialization completion markers (Redis, Redis Cluster, SQLite)
``reader``          serving's direct reader (plain Redis and Redis Cluster), checked against Feast
==================  ==========================================================================

``churnops.features.materialize`` chooses the writer and runs the pruner and the markers;
serving imports ``reader`` only (the allowlist of docs/architecture.md). Nothing here imports
Feast at module import: Feast is imported inside the functions that need it.

The Feast private and internal API touched (Feast 0.67.0; ``feast_private.PRIVATE_API`` is the
list the tests check, with the test files that guard each name):

- private: ``feast.infra.online_stores.helpers._mmh3``, ``helpers._redis_key``,
  ``RedisOnlineStore._parse_connection_string``, ``SqliteOnlineStore._get_db_path``,
  ``feast.utils._coerce_datetime``
- internal modules: ``helpers.compute_versioned_name``, ``helpers.compute_table_id``,
  ``key_encoding_utils.deserialize_entity_key`` / ``serialize_entity_key_prefix``,
  ``feast.infra.online_stores.redis.RedisOnlineStoreConfig`` / ``RedisType``,
  ``feast.type_map.python_values_to_proto_values`` / ``feast_value_type_to_python_type``,
  ``feast.utils.make_tzaware``, the ``Value`` and ``EntityKey`` protos, and the registry's
  ``get_any_feature_view`` / ``get_feature_view_by_version`` / ``apply_materialization``
"""

__all__ = ["codec", "feast_private", "fields", "markers", "pruner", "reader", "store_access", "writer"]
