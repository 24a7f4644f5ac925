-- Applications as records: an application may let only its members log in
-- through its keys (members_only), and lists them with a role each. Lists of
-- applications are read a page at a time in creation order (ids compared
-- bytewise, as in SQLite).
ALTER TABLE applications ADD COLUMN members_only BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX applications_by_creation ON applications (created_at, id COLLATE "C");

CREATE TABLE application_members (
    application_id TEXT NOT NULL REFERENCES applications (id),
    user_id        TEXT NOT NULL REFERENCES users (id),
    role           TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (application_id, user_id)
);
CREATE INDEX application_members_by_user ON application_members (user_id);
