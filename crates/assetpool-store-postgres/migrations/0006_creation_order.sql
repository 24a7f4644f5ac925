-- Lists of keys and users are read a page at a time in creation order (ids
-- compared bytewise, as in SQLite).
CREATE INDEX api_keys_by_creation ON api_keys (created_at, id COLLATE "C");
CREATE INDEX users_by_creation ON users (created_at, id COLLATE "C");
