-- Key lifecycle and network allow-lists: a key may be disabled (reversibly;
-- the tokens of the sessions opened through it are refused meanwhile), carry
-- support staff's notes (a JSON object) and an owner's email, and be limited
-- to client networks (normalised CIDRs separated by spaces; NULL: any address).
ALTER TABLE api_keys ADD COLUMN disabled_at BIGINT;
ALTER TABLE api_keys ADD COLUMN metadata TEXT;
ALTER TABLE api_keys ADD COLUMN owner TEXT;
ALTER TABLE api_keys ADD COLUMN allowed_cidrs TEXT;
-- Every server loads the disabled keys at start (few of them).
CREATE INDEX api_keys_disabled ON api_keys (id) WHERE disabled_at IS NOT NULL;
