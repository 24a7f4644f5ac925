-- The audit log becomes a hash chain: each entry written from now on carries
-- the hash of the entry before it (`previous_hash`) and its own (`hash`, see
-- `assetpool_core::audit_chain`). Entries written before this migration have
-- neither: the chain starts after them (`started_after`).
ALTER TABLE audit_log ADD COLUMN previous_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;

-- The chain's head: one row, locked and updated by every append, so appends
-- run one at a time and the end of the log is known (a removed last entry
-- shows).
CREATE TABLE audit_chain (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    started_after BIGINT NOT NULL,
    last_seq      BIGINT,
    last_hash     TEXT NOT NULL
);
INSERT INTO audit_chain (id, started_after, last_seq, last_hash)
SELECT 1, COALESCE(MAX(seq), 0), NULL,
       '0000000000000000000000000000000000000000000000000000000000000000'
FROM audit_log;
