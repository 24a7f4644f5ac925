-- Scopes: what a key's application, a user and a login session may do. The
-- set's text form (scopes sorted, separated by one space); NULL is
-- unrestricted, '' restricted to none. A session keeps the scopes granted at
-- login, so that refreshing keeps them.

ALTER TABLE api_keys ADD COLUMN scopes TEXT;
ALTER TABLE users ADD COLUMN scopes TEXT;
ALTER TABLE sessions ADD COLUMN scopes TEXT;
