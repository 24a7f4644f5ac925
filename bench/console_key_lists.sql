-- The console's key lists at a million keys on PostgreSQL: each statement as
-- the store composes it (KeyQuery in crates/assetpool-store-sql/keys.rs),
-- planned with its values as the store's unprepared statements are, under
-- EXPLAIN ANALYZE. Not run by CI. In a scratch database:
--
--   createdb -h 127.0.0.1 -U postgres console_keys
--   for f in crates/assetpool-store-postgres/migrations/*.sql; do
--     psql -q -h 127.0.0.1 -U postgres -d console_keys -f "$f"; done
--   psql -h 127.0.0.1 -U postgres -d console_keys -v seed=1 -f bench/console_key_lists.sql
--
-- (-v seed=1 inserts the keys; leave it out to explain again.) The keys: 10,000
-- applications of 100 keys, a third named "Shop backend N", the rest
-- "service-N"; 70 % production, 25 % staging, 5 % development; 5 % revoked,
-- 1 % disabled, 2 % expired, 10 % expiring in 2033.
\set ON_ERROR_STOP 1
\if :{?seed}
INSERT INTO applications (id, name, created_at)
SELECT 'app_' || lpad(g::text, 8, '0'), 'application ' || g, 1700000000000 + g
FROM generate_series(1, 10000) g;
INSERT INTO api_keys (id, application_id, name, environment, key_hash, prefix, created_at,
                      expires_at, revoked_at, successor_id, disabled_at)
SELECT 'key_' || md5(g::text),
       'app_' || lpad((1 + g % 10000)::text, 8, '0'),
       CASE WHEN g % 3 = 0 THEN 'Shop backend ' || g ELSE 'service-' || g END,
       CASE WHEN g % 20 = 0 THEN 'development' WHEN g % 4 = 0 THEN 'staging' ELSE 'production' END,
       decode(md5('h' || g::text) || md5('i' || g::text), 'hex'),
       CASE WHEN g % 20 = 0 THEN 'apk_dev_' WHEN g % 4 = 0 THEN 'apk_stg_' ELSE 'apk_prod_' END || substr(md5('p' || g::text), 1, 6),
       1700000000000 + g * 1000,
       CASE WHEN g % 50 = 1 THEN 1700000000000 + g * 1000 + 86400000 WHEN g % 10 = 2 THEN 2000000000000 ELSE NULL END,
       CASE WHEN g % 20 = 3 THEN 1700000000000 + g * 1000 + 5000 ELSE NULL END,
       NULL,
       CASE WHEN g % 100 = 4 THEN 1700000000000 + g * 1000 + 7000 ELSE NULL END
FROM generate_series(1, 1000000) g;
ANALYZE api_keys;
\endif
\pset pager off
\echo == every key, first page, and a page deep in the list
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys ORDER BY created_at, id COLLATE "C" LIMIT 51;
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE created_at >= 1700900000000 AND (created_at > 1700900000000 OR id COLLATE "C" > 'key_') ORDER BY created_at, id COLLATE "C" LIMIT 51;
\echo == environment (development, 5 %), deep
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE environment = 'development' AND created_at >= 1700900000000 AND (created_at > 1700900000000 OR id COLLATE "C" > 'key_') ORDER BY created_at, id COLLATE "C" LIMIT 51;
\echo == application
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE application_id = 'app_00000042' ORDER BY created_at, id COLLATE "C" LIMIT 51;
\echo == states, deep: revoked, disabled, expired, active
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE revoked_at IS NOT NULL AND created_at >= 1700900000000 AND (created_at > 1700900000000 OR id COLLATE "C" > 'key_') ORDER BY created_at, id COLLATE "C" LIMIT 51;
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE revoked_at IS NULL AND disabled_at IS NOT NULL AND (expires_at IS NULL OR expires_at > 1796500000000) AND created_at >= 1700900000000 AND (created_at > 1700900000000 OR id COLLATE "C" > 'key_') ORDER BY created_at, id COLLATE "C" LIMIT 51;
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= 1796500000000 AND created_at >= 1700900000000 AND (created_at > 1700900000000 OR id COLLATE "C" > 'key_') ORDER BY created_at, id COLLATE "C" LIMIT 51;
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE revoked_at IS NULL AND disabled_at IS NULL AND successor_id IS NULL AND (expires_at IS NULL OR expires_at > 1796500000000) AND created_at >= 1700900000000 AND (created_at > 1700900000000 OR id COLLATE "C" > 'key_') ORDER BY created_at, id COLLATE "C" LIMIT 51;
\echo == search: an id, a prefix, a rare name, a name of 11,000 keys, of 333,000 keys
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE (id = 'key_f63f4fbc9f8c85d409f2f59f2b9e12d5' OR (prefix COLLATE "C" >= 'key_f63f4fbc9f8c85d409f2f59f2b9e12d5' AND prefix COLLATE "C" < 'key_f63f4fbc9f8c85d409f2f59f2b9e12d6') OR (name COLLATE "C" >= 'key_f63f4fbc9f8c85d409f2f59f2b9e12d5' AND name COLLATE "C" < 'key_f63f4fbc9f8c85d409f2f59f2b9e12d6')) ORDER BY created_at, id COLLATE "C" LIMIT 51;
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE (id = 'apk_prod_3f2a' OR (prefix COLLATE "C" >= 'apk_prod_3f2a' AND prefix COLLATE "C" < 'apk_prod_3f2b') OR (name COLLATE "C" >= 'apk_prod_3f2a' AND name COLLATE "C" < 'apk_prod_3f2b')) ORDER BY created_at, id COLLATE "C" LIMIT 51;
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE (id = 'service-123456' OR (prefix COLLATE "C" >= 'service-123456' AND prefix COLLATE "C" < 'service-123457') OR (name COLLATE "C" >= 'service-123456' AND name COLLATE "C" < 'service-123457')) ORDER BY created_at, id COLLATE "C" LIMIT 51;
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE (id = 'service-99' OR (prefix COLLATE "C" >= 'service-99' AND prefix COLLATE "C" < 'service-9:') OR (name COLLATE "C" >= 'service-99' AND name COLLATE "C" < 'service-9:')) ORDER BY created_at, id COLLATE "C" LIMIT 51;
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE (id = 'Shop' OR (prefix COLLATE "C" >= 'Shop' AND prefix COLLATE "C" < 'Shoq') OR (name COLLATE "C" >= 'Shop' AND name COLLATE "C" < 'Shoq')) ORDER BY created_at, id COLLATE "C" LIMIT 51;
\echo == search with environment and state
EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM api_keys WHERE environment = 'production' AND revoked_at IS NULL AND disabled_at IS NULL AND successor_id IS NULL AND (expires_at IS NULL OR expires_at > 1796500000000) AND (id = 'service-12345' OR (prefix COLLATE "C" >= 'service-12345' AND prefix COLLATE "C" < 'service-12346') OR (name COLLATE "C" >= 'service-12345' AND name COLLATE "C" < 'service-12346')) ORDER BY created_at, id COLLATE "C" LIMIT 51;
